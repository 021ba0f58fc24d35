import { serve } from '@hono/node-server'
import { createApp } from './app'
import { runJobs } from './domain/jobs'
import { createLandingService } from './domain/landing'
import { ConfigError, parseConfig } from './config'
import { ensureLocalSecrets, redactSecrets } from './node/bootstrap'
import { createNodeDeps } from './node/deps'

/** Node entry: configuration from the environment, SQLite or PostgreSQL, and an HTTP server. */
async function main() {
  // Files this server creates (database, generated secrets) are readable by its user only.
  process.umask(0o077)
  const { env, secrets } = ensureLocalSecrets(process.env)
  const config = parseConfig(env)
  const deps = await createNodeDeps(config)
  // The OpenTelemetry SDK is loaded only when there is somewhere to send spans: unset, tracing
  // costs nothing beyond the API's no-op calls.
  const tracing =
    config.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim()
      ? (await import('./node/tracing')).startNodeTracing(config, env, deps.logger)
      : null
  const landing = createLandingService(deps)
  const app = createApp(deps, landing)

  const server = serve({ fetch: app.fetch, hostname: config.HOST, port: config.PORT }, (info) => {
    // One write for the whole banner, so whoever waits for "listening on" sees the rest with it.
    const banner = [`marketbridge listening on http://${config.HOST}:${info.port} (public URL ${config.PUBLIC_URL}, Node ${process.version})`]
    const admin = secrets.find((secret) => secret.name === 'ADMIN_TOKEN')
    if (admin?.generated) {
      // Printed once, when generated; afterwards it is only in the file.
      banner.push(
        '',
        `Generated an admin token (kept in ${admin.file}, shown only this once):`,
        `  ${admin.value}`,
        '',
        'Register an org:',
        `  curl -sS -X POST ${config.PUBLIC_URL}/api/v1/orgs -H "Authorization: Bearer ${admin.value}" -H "Content-Type: application/json" -d '{"name":"Acme","fulfillmentUrl":"https://app.acme.example/signup"}'`,
        '',
      )
    } else if (admin) {
      banner.push(`Admin token: in ${admin.file}`)
    }
    console.log(banner.join('\n'))
  })

  // The background job: interrupted landings, pending activations, expired token hashes.
  // One run at a time; the first right after start, so a restart finishes what a crash left.
  let jobRunning = false
  const jobLog = deps.logger.child({ component: 'job' })
  const tick = async () => {
    if (jobRunning) return
    jobRunning = true
    try {
      await runJobs(deps, landing, jobLog)
    } catch (error) {
      jobLog.error('background job failed', { error: error instanceof Error ? error.message : String(error) })
    } finally {
      jobRunning = false
    }
  }
  void tick()
  const jobTimer = setInterval(tick, config.JOB_INTERVAL_MS)
  jobTimer.unref()

  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    clearInterval(jobTimer)
    deps.logger.info('shutting down', { signal })
    // No new connections; requests in flight finish. Keep-alive connections are closed as soon
    // as they fall idle, so a client's idle socket does not hold the exit up.
    server.close(() => {
      // The spans not sent yet go out before the exit (the exporter's own timeout bounds it).
      void Promise.allSettled([tracing?.shutdown(), deps.db.destroy()]).finally(() => process.exit(0))
    })
    const http = server as { closeIdleConnections?: () => void }
    http.closeIdleConnections?.()
    setInterval(() => http.closeIdleConnections?.(), 100).unref()
    // In-flight requests get a grace period, then the process goes regardless.
    setTimeout(() => process.exit(0), 10_000).unref()
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
}

main().catch((error) => {
  const message = redactSecrets(error instanceof Error ? error.message : String(error), process.env)
  console.error(error instanceof ConfigError ? `marketbridge: ${message}` : `marketbridge failed to start: ${message}`)
  process.exit(1)
})
