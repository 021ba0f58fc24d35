import type { Config } from '../config'
import { SQLITE } from '../db/dialect'
import { migrateToLatest } from '../db/migrate'
import { type AppDeps, buildDeps } from '../deps'
import { type Logger, createLogger } from '../logger'
import { createNodeDocsAssets } from './docs-assets'
import { createNodeEmailSender } from './email'
import { nodeJsonBodies } from './json-body'
import { createStdoutSink } from './log-sink'
import { createSqliteDb } from './sqlite'
import { checkWebhookTarget } from './webhook-target'

/** One in-memory copy of the docs page's files per process, however many apps it builds (tests). */
const docsAsset = createNodeDocsAssets()

/** Node's dependencies: a migrated SQLite database (better-sqlite3) plus the shared ones. */
export async function createNodeDeps(config: Config, options: { logger?: Logger } = {}): Promise<AppDeps> {
  const db = createSqliteDb(config.DATABASE_URL)
  await migrateToLatest(db, SQLITE)
  const deps = await buildDeps(config, db, options.logger ?? createLogger({ sink: createStdoutSink() }))
  return {
    ...deps,
    checkWebhookTarget,
    jsonBodies: nodeJsonBodies,
    docsAsset,
    ...(config.SMTP_URL ? { sendEmail: createNodeEmailSender(config.SMTP_URL) } : {}),
  }
}
