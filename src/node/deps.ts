import { createProviders } from '../../providers/index'
import type { Config } from '../config'
import { migrateToLatest } from '../db/migrate'
import type { AppDeps } from '../deps'
import { createSecretBox } from '../domain/crypto'
import { type Logger, createLogger } from '../logger'
import { createSqliteDb } from './sqlite'

/** Builds the Node dependencies from a parsed config: SQLite (migrated), providers, secrets. */
export async function createNodeDeps(config: Config, options: { logger?: Logger } = {}): Promise<AppDeps> {
  const db = createSqliteDb(config.DATABASE_URL)
  await migrateToLatest(db)
  return {
    config,
    db,
    secrets: await createSecretBox(config.ENCRYPTION_KEY),
    logger: options.logger ?? createLogger(),
    providers: createProviders({
      azure: { apiUrl: config.AZURE_MARKETPLACE_API_URL, loginUrl: config.AZURE_LOGIN_URL },
    }),
  }
}
