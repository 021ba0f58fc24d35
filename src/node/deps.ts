import type { Config } from '../config'
import { migrateToLatest } from '../db/migrate'
import { type AppDeps, buildDeps } from '../deps'
import { type Logger, createLogger } from '../logger'
import { createNodeEmailSender } from './email'
import { nodeJsonBodies } from './json-body'
import { createStdoutSink } from './log-sink'
import { createSqliteDb } from './sqlite'
import { checkWebhookTarget } from './webhook-target'

/** Node's dependencies: a migrated SQLite database (better-sqlite3) plus the shared ones. */
export async function createNodeDeps(config: Config, options: { logger?: Logger } = {}): Promise<AppDeps> {
  const db = createSqliteDb(config.DATABASE_URL)
  await migrateToLatest(db)
  const deps = await buildDeps(config, db, options.logger ?? createLogger({ sink: createStdoutSink() }))
  return { ...deps, checkWebhookTarget, jsonBodies: nodeJsonBodies, ...(config.SMTP_URL ? { sendEmail: createNodeEmailSender(config.SMTP_URL) } : {}) }
}
