import { type Kysely, type MigrationProvider, Migrator } from 'kysely'
import { migrations } from '../../migrations/index'

const provider: MigrationProvider = { getMigrations: async () => migrations }

/** Brings any dialect's database to the latest schema; throws with the failing migration's name. */
export async function migrateToLatest(db: Kysely<any>): Promise<void> {
  const migrator = new Migrator({ db, provider })
  const { error, results } = await migrator.migrateToLatest()
  if (error) {
    const failed = results?.find((result) => result.status === 'Error')
    throw new Error(`migration ${failed?.migrationName ?? '(unknown)'} failed: ${String(error)}`, { cause: error })
  }
}
