import type { D1Database, ExecutionContext, Fetcher, ScheduledController } from '@cloudflare/workers-types'
import * as workers from 'cloudflare:workers'
import { type NativeTracing, useNativeTracing } from '../providers/shared/telemetry'
import { type App, createApp } from './app'
import { buildDeps } from './composition'
import { type Config, ConfigError, parseConfig } from './config'
import { migrateToLatest } from './db/migrate'
import { createD1Db } from './db/d1'
import { D1 } from './db/dialect'
import { wallClock } from './deps'
import { runJobs } from './domain/jobs'
import { createLandingService } from './domain/landing'
import { createLogger } from './logger'
import type { DB } from './db/schema'
import { createWorkerEmailSender } from './worker-email'

/**
 * Bindings: the D1 database `DB`, the static assets `ASSETS` (wrangler.toml `[assets]`: the
 * swagger-ui-dist folder, for /api/docs), plus the contract's variables as `vars` and secrets.
 */
export interface WorkerEnv {
  DB: D1Database
  ASSETS?: Fetcher
  [name: string]: unknown
}

/**
 * Workers entry: the same app factory as Node, with D1 behind Kysely. The app is built once
 * per isolate; the database is migrated with the same statically imported migration list
 * before the first request is served (the migrator is a no-op once it is up to date).
 */
let built: { env: WorkerEnv; app: Promise<App> } | undefined

async function build(env: WorkerEnv, origin: string): Promise<App> {
  // Without PUBLIC_URL, the address the Worker is reached at is the public one.
  const config = parseConfig({ ...env, PUBLIC_URL: env.PUBLIC_URL || origin })
  const db = createD1Db(env.DB)
  await migrateToLatest(db, D1)
  const deps = await workerDeps(config, db)
  return createApp(env.ASSETS ? { ...deps, docsAsset: assetsReader(env.ASSETS) } : deps)
}

/** The shared dependencies plus what only Workers has: SMTP over `cloudflare:sockets`. */
async function workerDeps(config: Config, db: DB) {
  const deps = await buildDeps(config, db, createLogger(), wallClock)
  return config.SMTP_URL ? { ...deps, sendEmail: createWorkerEmailSender(config.SMTP_URL) } : deps
}

/**
 * `AppDeps.docsAsset` on Workers: the file from the static-assets binding (uploaded by `wrangler
 * deploy`, never part of the script bundle). `run_worker_first` sends every request to this
 * Worker, so the binding is reached only here, only for the app's allow-listed names. The host
 * of the URL is ignored by the binding.
 */
function assetsReader(assets: Fetcher) {
  return async (file: string): Promise<Response | null> => {
    const response = (await assets.fetch(`https://assets.local/${encodeURIComponent(file)}`)) as unknown as Response
    if (response.ok) return response
    await response.body?.cancel()
    return null
  }
}

// Workers' own tracing (contract §16): with `[observability.traces]` enabled in wrangler.toml the
// platform records the handler, every fetch (marketplace calls, webhooks) and every D1 query, and
// our named spans (the route, `<partner>.<call>`, `db.transaction`, `job <duty>`,
// `webhook.deliver`) join them as custom spans. Read off the module, not named, so that a
// workerd without it (older than custom spans) runs as before, untraced.
const platformTracing = workers.tracing as NativeTracing | undefined
if (platformTracing && typeof platformTracing.enterSpan === 'function' && typeof platformTracing.getActiveSpan === 'function') useNativeTracing(platformTracing)

export default {
  async fetch(request: Request, env: WorkerEnv, ctx: ExecutionContext): Promise<Response> {
    if (!built || built.env !== env) built = { env, app: build(env, new URL(request.url).origin) }
    let app: App
    try {
      app = await built.app
    } catch (error) {
      built = undefined
      const message = error instanceof ConfigError ? error.message : 'The broker could not start.'
      console.log(JSON.stringify({ level: 'error', msg: 'worker start failed', error: error instanceof Error ? error.message : String(error) }))
      return Response.json({ error: { code: 'SERVICE_UNAVAILABLE', message, requestId: crypto.randomUUID() } }, { status: 503 })
    }
    return app.fetch(request, env, ctx)
  },

  /** Cron trigger (wrangler.toml `[triggers]`): the background job Node runs with a timer. */
  async scheduled(_controller: ScheduledController, env: WorkerEnv): Promise<void> {
    // Jobs never print signup URLs, so PUBLIC_URL may stay whatever the bindings say.
    const config = parseConfig({ ...env, PUBLIC_URL: env.PUBLIC_URL || 'http://localhost' })
    const db = createD1Db(env.DB)
    await migrateToLatest(db, D1)
    const deps = await workerDeps(config, db)
    await runJobs(deps, createLandingService(deps), deps.logger.child({ component: 'job' }))
  },
}
