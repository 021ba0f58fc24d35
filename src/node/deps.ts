import { buildDeps } from '../composition'
import { type Config, type DatabaseConfig, isPostgresUrl } from '../config'
import { type Dialect, POSTGRES, SQLITE } from '../db/dialect'
import { migrateToLatest } from '../db/migrate'
import type { DB } from '../db/schema'
import { type AppDeps, wallClock } from '../deps'
import { type Logger, createLogger } from '../logger'
import { createNodeDocsAssets } from './docs-assets'
import { createNodeEmailSender } from './email'
import { nodeJsonBodies } from './json-body'
import { fromLoopback } from './loopback'
import { createNodeMetrics } from './metrics'
import { createStdoutSink } from './log-sink'
import { createPostgresDb } from './postgres'
import { createSqliteDb } from './sqlite'
import { checkWebhookTarget } from './webhook-target'

/** One in-memory copy of the docs page's files per process, however many apps it builds (tests). */
const docsAsset = createNodeDocsAssets()

/** Node's database for DATABASE_URL, migrated: SQLite by better-sqlite3, or PostgreSQL by a pg pool. */
export async function openNodeDatabase(config: DatabaseConfig): Promise<{ db: DB; dialect: Dialect; applied: string[] }> {
  const postgres = isPostgresUrl(config.DATABASE_URL)
  const db = postgres ? createPostgresDb(config.DATABASE_URL, { poolMax: config.DATABASE_POOL_MAX }) : createSqliteDb(config.DATABASE_URL)
  const dialect = postgres ? POSTGRES : SQLITE
  try {
    return { db, dialect, applied: await migrateToLatest(db, dialect) }
  } catch (error) {
    // A pool left open would keep the process alive after the failed start.
    await db.destroy()
    throw error
  }
}

/** Node's dependencies: a migrated database plus the shared ones. */
export async function createNodeDeps(config: Config, options: { logger?: Logger } = {}): Promise<AppDeps> {
  const { db } = await openNodeDatabase(config)
  const deps = await buildDeps(config, db, options.logger ?? createLogger({ sink: createStdoutSink() }), wallClock, createNodeMetrics())
  return {
    ...deps,
    fromLoopback,
    checkWebhookTarget,
    jsonBodies: nodeJsonBodies,
    docsAsset,
    ...(config.SMTP_URL ? { sendEmail: createNodeEmailSender(config.SMTP_URL) } : {}),
  }
}
