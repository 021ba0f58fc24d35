import { describe } from 'vitest'
import { POSTGRES } from '../src/db/dialect'
import { createPostgresDb } from '../src/node/postgres'
import { dataLayerSuite } from './data-layer.suite'
import { createTestDatabase, postgresAvailable } from './postgres'

// PostgreSQL as `DATABASE_URL=postgres://…` runs it: a pg pool on a fresh database of the test server.
describe.runIf(await postgresAvailable())('PostgreSQL', () => {
  dataLayerSuite('PostgreSQL (pg)', POSTGRES, async () => {
    const database = await createTestDatabase()
    const db = createPostgresDb(database.url, { poolMax: 4 })
    return { db, close: async () => {
      await db.destroy()
      await database.drop()
    } }
  })
})
