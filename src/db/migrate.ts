import { type Kysely, type MigrationProvider, type MigrationResultSet, Migrator } from 'kysely'
import { migrationsFor } from '../../migrations/index'
import type { Dialect } from './dialect'

/**
 * Brings the database to the latest schema of its dialect's migration list (migrations/index.ts);
 * answers the names it applied; throws with the failing migration's name. On PostgreSQL Kysely
 * runs the whole run in one transaction under an advisory lock, so instances starting together
 * wait for each other and each migration runs once.
 */
export async function migrateToLatest(db: Kysely<any>, dialect: Dialect): Promise<string[]> {
  const provider: MigrationProvider = { getMigrations: async () => migrationsFor(dialect.name) }
  const { error, results }: MigrationResultSet = await new Migrator({ db, provider }).migrateToLatest()
  if (error) {
    const failed = results?.find((result) => result.status === 'Error')
    const what = failed ? `migration ${failed.migrationName} failed` : 'could not migrate the database'
    throw new Error(`${what}: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
  }
  return (results ?? []).filter((result) => result.status === 'Success').map((result) => result.migrationName)
}
