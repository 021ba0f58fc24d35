import type { ProviderRegistry } from '../providers/index'
import type { Config } from './config'
import type { DB } from './db/schema'
import type { SecretBox } from './domain/crypto'
import type { Logger } from './logger'

/** Everything the app needs, built by an entry (Node, Workers, tests) and handed to `createApp`. */
export interface AppDeps {
  config: Config
  db: DB
  providers: ProviderRegistry
  secrets: SecretBox
  logger: Logger
  /** Injectable for tests; defaults to the wall clock. */
  now?: () => Date
}

export const nowIso = (deps: Pick<AppDeps, 'now'>) => (deps.now?.() ?? new Date()).toISOString()
