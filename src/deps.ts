import type { Context, MiddlewareHandler } from 'hono'
import type { ProviderRegistry } from '../providers/index'
import type { UpstreamObserver } from '../providers/shared/telemetry'
import type { Config } from './config'
import type { DB } from './db/schema'
import type { SecretBox } from './domain/crypto'
import type { AppEnv } from './env'
import type { Logger } from './logger'

/*
 * A leaf: the dependencies' types and the clock, imported by everything, importing nothing at
 * run time. Building them (providers, the secret box) is src/composition.ts, for the entries.
 */

export interface EmailMessage {
  from: string
  to: string
  cc: string[]
  subject: string
  text: string
  html: string
}

/** One outbox's backlog at scrape time: how many wait, and how long the oldest has (seconds). */
export interface OutboxGauge {
  queue: 'webhooks' | 'notifications' | 'emails' | 'usage'
  pending: number
  oldestSeconds: number
}

/**
 * The runtime's metrics (contract §16; Node: prom-client, src/node/metrics.ts). Every label value
 * passed is one of a fixed set (partner, outcome, call, status code): never an id or a URL.
 */
export interface Metrics {
  landing(partner: string, outcome: string, seconds: number): void
  /** Each marketplace call (handed to the providers). */
  upstream: UpstreamObserver
  notification(partner: string, outcome: string): void
  webhookDelivery(outcome: 'success' | 'failure'): void
  /** The exposition, with the outbox gauges read just now from the database. */
  render(outboxes: OutboxGauge[]): Promise<{ contentType: string; body: string }>
}

/** Everything the app needs, built by an entry (Node, Workers, tests) and handed to `createApp`. */
export interface AppDeps {
  config: Config
  db: DB
  providers: ProviderRegistry
  secrets: SecretBox
  logger: Logger
  /**
   * The clock: every time the domain stores or compares (created_at, leases, next attempts,
   * expiries) is read here, never from Date.now(), so a test can move time. Entries pass wallClock.
   */
  now: () => Date
  /**
   * The SSRF guard for webhook deliveries, asked at every send: a reason to refuse the URL, or
   * null. Node resolves the host and refuses private, loopback and link-local addresses (unless
   * the ISV gave http://localhost or 127.0.0.1 literally); Workers cannot reach those anyway.
   */
  checkWebhookTarget?: (url: string) => Promise<string | null>
  /**
   * Sends one email over SMTP_URL (Node: nodemailer). Absent, or no SMTP_URL: emails are SKIPPED.
   * Throws with a reason when the server refuses or cannot be reached (the outbox retries).
   */
  sendEmail?: (message: EmailMessage) => Promise<void>
  /**
   * Reads JSON request bodies up to `limit` bytes the runtime's fastest way, answering `tooLarge`
   * beyond it (Node: straight from the IncomingMessage). Absent: the standard Request body.
   */
  jsonBodies?: (limit: number, tooLarge: (c: Context<AppEnv>) => Response | Promise<Response>) => MiddlewareHandler<AppEnv>
  /**
   * One file of the `swagger-ui-dist` package for `/api/docs` (Node: read from node_modules once,
   * then from memory; Workers: the static-assets binding ASSETS), or null when there is none.
   * Only names on the allow-list (SWAGGER_UI_FILES in src/pages/docs.tsx) are asked for; the app
   * sets the content type and cache headers, and keeps the response's ETag. Absent: every such
   * file is 404 and `/api/docs` says it cannot show the viewer.
   */
  docsAsset?: (file: string) => Promise<Response | null>
  /** Counters and histograms for `GET /metrics` (Node). Absent (Workers): nothing is counted and /metrics is 404. */
  metrics?: Metrics
  /** Whether a request came over loopback (Node: the socket's peer), for /metrics without METRICS_TOKEN. */
  fromLoopback?: (c: Context<AppEnv>) => boolean
}

/** The real time, for the entries to hand in as `AppDeps.now`. */
export const wallClock = (): Date => new Date()

export const nowIso = (deps: Pick<AppDeps, 'now'>) => deps.now().toISOString()
/** The clock in epoch milliseconds. */
export const nowMs = (deps: Pick<AppDeps, 'now'>) => deps.now().getTime()
