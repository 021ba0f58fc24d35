import { SQLITE } from '../src/db/dialect'
import { createSqliteDb } from '../src/node/sqlite'
import { dataLayerSuite } from './data-layer.suite'

dataLayerSuite('SQLite (better-sqlite3)', SQLITE, async () => {
  const db = createSqliteDb('sqlite::memory:')
  return { db, close: () => db.destroy() }
})
