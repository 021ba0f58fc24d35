import { mkdirSync } from 'node:fs'
import { ConfigError, isPostgresUrl, parseDatabaseConfig } from '../src/config'
import { dataDirFor, redactSecrets } from '../src/node/bootstrap'
import { openNodeDatabase } from '../src/node/deps'

/**
 * `npm run migrate`: brings DATABASE_URL's database (SQLite or PostgreSQL) to the latest schema
 * and exits, printing what it applied. For deployments that migrate as a release step before
 * rolling instances out; `npm start` migrates too, so this is never required. Needs no keys.
 */
async function main() {
  process.umask(0o077)
  const config = parseDatabaseConfig(process.env)
  if (!isPostgresUrl(config.DATABASE_URL)) mkdirSync(dataDirFor(config.DATABASE_URL), { recursive: true, mode: 0o700 })
  const { db, applied } = await openNodeDatabase({ ...config, DATABASE_POOL_MAX: 1 })
  await db.destroy()
  console.log(applied.length > 0 ? `applied ${applied.length} migration(s): ${applied.join(', ')}` : 'the database is up to date: no migration to apply')
}

main().catch((error) => {
  const message = redactSecrets(error instanceof Error ? error.message : String(error), process.env)
  console.error(error instanceof ConfigError ? `marketbridge migrate: ${message}` : `marketbridge migrate failed: ${message}`)
  process.exit(1)
})
