import { Hono } from 'hono'
import { outboxBacklog } from '../db/metrics'
import { type AppDeps, type Metrics, type OutboxGauge, nowMs } from '../deps'
import { timingSafeEqual } from '../domain/crypto'
import type { AppEnv } from '../env'
import { ApiError } from '../errors'

/** Each outbox's backlog now, its age in whole seconds (0 when nothing waits). */
export async function outboxGauges(deps: Pick<AppDeps, 'db' | 'now'>): Promise<OutboxGauge[]> {
  const now = nowMs(deps)
  return (await outboxBacklog(deps.db)).map(({ queue, pending, oldest }) => {
    const at = oldest === null ? Number.NaN : Date.parse(oldest)
    return { queue, pending, oldestSeconds: Number.isNaN(at) ? 0 : Math.max(0, Math.floor((now - at) / 1000)) }
  })
}

/**
 * `GET /metrics` (contract §16): the Prometheus exposition of the runtime's `metrics`, with the
 * outbox gauges read from the database for this scrape. With METRICS_TOKEN, only
 * `Authorization: Bearer <METRICS_TOKEN>`; without it, only a peer on loopback (a scraper on
 * the same host, or one behind a proxy there; anything else is refused as forbidden).
 */
export function metricsRoutes(deps: AppDeps & { metrics: Metrics }) {
  const app = new Hono<AppEnv>()
  app.get('/', async (c) => {
    const token = deps.config.METRICS_TOKEN
    if (token) {
      const header = c.req.header('authorization') ?? ''
      const sent = /^Bearer\s+(.+)$/i.exec(header)?.[1]?.trim() ?? ''
      if (!sent || !timingSafeEqual(sent, token)) {
        c.header('www-authenticate', 'Bearer realm="metrics"')
        throw new ApiError('UNAUTHORIZED', 'GET /metrics needs Authorization: Bearer <METRICS_TOKEN>.')
      }
    } else if (!deps.fromLoopback?.(c)) {
      throw new ApiError('FORBIDDEN', 'Without METRICS_TOKEN, /metrics answers only on loopback: set METRICS_TOKEN to scrape it from elsewhere.')
    }
    let gauges: OutboxGauge[]
    try {
      gauges = await outboxGauges(deps)
    } catch (error) {
      // A scrape that fails is what a monitoring system alerts on (`up` = 0); stale gauges would not be.
      c.get('log').error('metrics: the database did not answer', { error: error instanceof Error ? error.message : String(error) })
      throw new ApiError('SERVICE_UNAVAILABLE', 'The database is not answering.')
    }
    const { contentType, body } = await deps.metrics.render(gauges)
    return c.body(body, 200, { 'content-type': contentType, 'cache-control': 'no-store' })
  })
  return app
}
