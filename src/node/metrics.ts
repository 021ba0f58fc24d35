import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { Metrics, OutboxGauge } from '../deps'

/** Seconds: a landing or a marketplace call within a 20 s deadline, from a cache hit to a timeout. */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30]

/**
 * The Prometheus metrics of contract §16, in a registry of this broker's own (tests build several
 * in one process), with prom-client's default process and Node metrics. The outbox gauges are set
 * from the database at each scrape (src/domain/metrics.ts), so every instance that shares a
 * database reports the same backlog.
 */
export function createNodeMetrics(): Metrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const landings = new Counter({
    name: 'marketbridge_landings_total',
    help: 'Buyer landings on /public/signup, by marketplace and outcome (success, or the kind of refusal).',
    labelNames: ['partner', 'outcome'] as const,
    registers: [registry],
  })
  const landingSeconds = new Histogram({
    name: 'marketbridge_landing_duration_seconds',
    help: 'Time to answer a landing, whatever its outcome, marketplace calls included.',
    labelNames: ['partner'] as const,
    buckets: BUCKETS,
    registers: [registry],
  })
  const requests = new Counter({
    name: 'marketbridge_marketplace_requests_total',
    help: 'Marketplace API calls (retries within a call count once), by the final HTTP status ("error": no answer).',
    labelNames: ['partner', 'call', 'status'] as const,
    registers: [registry],
  })
  const requestSeconds = new Histogram({
    name: 'marketbridge_marketplace_request_duration_seconds',
    help: 'Time of a marketplace API call, its retries and backoff included.',
    labelNames: ['partner', 'call'] as const,
    buckets: BUCKETS,
    registers: [registry],
  })
  const notifications = new Counter({
    name: 'marketbridge_notifications_total',
    help: 'Marketplace notifications received on /public/notifications, by outcome.',
    labelNames: ['partner', 'outcome'] as const,
    registers: [registry],
  })
  const deliveries = new Counter({
    name: 'marketbridge_webhook_deliveries_total',
    help: 'Webhook delivery attempts to the ISVs, by outcome (success: a 2xx answer).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  })
  const pending = new Gauge({
    name: 'marketbridge_outbox_pending',
    help: 'Work waiting in each outbox (webhooks, notifications, emails, usage), read from the database at scrape time.',
    labelNames: ['queue'] as const,
    registers: [registry],
  })
  const oldest = new Gauge({
    name: 'marketbridge_outbox_oldest_pending_seconds',
    help: 'Age of the oldest waiting item of each outbox (usage: since the usage time), 0 when none waits.',
    labelNames: ['queue'] as const,
    registers: [registry],
  })

  return {
    landing(partner, outcome, seconds) {
      landings.inc({ partner, outcome })
      landingSeconds.observe({ partner }, seconds)
    },
    upstream(call) {
      const status = call.status !== null && Number.isInteger(call.status) && call.status >= 100 && call.status <= 599 ? String(call.status) : 'error'
      requests.inc({ partner: call.partner, call: call.call, status })
      requestSeconds.observe({ partner: call.partner, call: call.call }, call.seconds)
    },
    notification(partner, outcome) {
      notifications.inc({ partner, outcome })
    },
    webhookDelivery(outcome) {
      deliveries.inc({ outcome })
    },
    async render(outboxes: OutboxGauge[]) {
      for (const outbox of outboxes) {
        pending.set({ queue: outbox.queue }, outbox.pending)
        oldest.set({ queue: outbox.queue }, outbox.oldestSeconds)
      }
      return { contentType: registry.contentType, body: await registry.metrics() }
    },
  }
}
