import * as orgsDb from '../db/orgs'
import type { WebhookDeliveryRow } from '../db/schema'
import * as webhooksDb from '../db/webhooks'
import { type AppDeps, nowIso, nowMs } from '../deps'
import { ApiError, notFound } from '../errors'
import type { Logger } from '../logger'
import { type AuditContext, auditStatement } from './audit'
import type { Statement } from '../db/batch'
import { decodeCursor, encodeCursor } from './cursor'
import { webhookDelivery } from './envelopes'
import { newId } from './ids'
import { getOrg } from './orgs'
import { type RetryPolicy, nextAttempt } from './retry'
import { signatures } from './webhook-signing'
import { SpanKind, type TraceSpan, contextFrom, inSpan, traceHeaders } from '../telemetry'

/** Webhooks to the ISV (contract §8): written with their event, sent, retried; signed by webhook-signing.ts. */

/** Retries after about 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, then every 8 h (±20 %), for 3 days. */
export const WEBHOOK_RETRY: RetryPolicy = {
  delaysMs: [5_000, 30_000, 120_000, 600_000, 1_800_000, 3_600_000, 7_200_000, 14_400_000, 28_800_000],
  jitter: [0.8, 1.2],
  giveUpAfterMs: 3 * 24 * 3600 * 1000,
  maxAttempts: null,
}
const ATTEMPT_TIMEOUT_MS = 10_000
/** Of a receiver's answer only this much is read, and kept in lastError. */
const MAX_BODY_BYTES = 4096
const LEASE_MS = ATTEMPT_TIMEOUT_MS + 5_000
const JOB_BATCH = 50

export interface WebhookDelivery {
  id: string
  eventId: string | null
  type: string
  status: WebhookDeliveryRow['status']
  attempts: number
  lastStatusCode: number | null
  lastError: string | null
  nextAttemptAt: string | null
  createdAt: string
  updatedAt: string
}

export function toDelivery(row: WebhookDeliveryRow): WebhookDelivery {
  return {
    id: row.id,
    eventId: row.event_id,
    type: row.type,
    status: row.status,
    attempts: row.attempts,
    lastStatusCode: row.last_status_code,
    lastError: row.last_error,
    nextAttemptAt: row.status === 'PENDING' ? row.next_attempt_at : null,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  }
}

export const DELIVERY_STATUSES = ['PENDING', 'SUCCEEDED', 'FAILED'] as const satisfies ReadonlyArray<WebhookDeliveryRow['status']>

/** `GET …/webhook-deliveries` (the API and the console's Webhooks page): a page, newest first. */
export async function listDeliveries(
  deps: AppDeps,
  orgId: string,
  query: { status?: WebhookDeliveryRow['status']; limit: number; cursor?: string },
): Promise<{ items: WebhookDelivery[]; nextCursor: string | null }> {
  const before = query.cursor ? decodeCursor(query.cursor) : undefined
  await getOrg(deps, orgId)
  const page = await webhooksDb.listDeliveries(deps.db, { orgId, status: query.status, limit: query.limit, before })
  const last = page.rows.at(-1)
  return { items: page.rows.map(toDelivery), nextCursor: page.hasMore && last ? encodeCursor(last) : null }
}

/** When the next attempt is due after `attempts` failed ones, or null once 3 days have passed (FAILED). */
export function nextAttemptAt(createdAt: string, attempts: number, now: number): string | null {
  const next = nextAttempt(WEBHOOK_RETRY, attempts, now, Date.parse(createdAt))
  return next.giveUp ? null : new Date(next.at).toISOString()
}

/** Reads at most MAX_BODY_BYTES of a receiver's answer and drops the rest. */
async function readSome(response: Response): Promise<string> {
  if (!response.body) return ''
  const reader = response.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  try {
    while (size < MAX_BODY_BYTES) {
      const { done, value } = await reader.read()
      if (done) break
      chunks.push(value)
      size += value.byteLength
    }
  } finally {
    await reader.cancel().catch(() => undefined)
  }
  const all = new Uint8Array(size)
  let offset = 0
  for (const chunk of chunks) {
    all.set(chunk, offset)
    offset += chunk.byteLength
  }
  return new TextDecoder().decode(all.subarray(0, MAX_BODY_BYTES))
}

/**
 * One attempt at one delivery, if this caller can lease it (`force`: a manual retry, whatever its
 * state). Never throws for the receiver's sake: a hang, a 5xx, a redirect, a reset connection or a
 * huge body is one failed attempt, recorded, and retried on the schedule.
 */
export async function attemptDelivery(
  deps: AppDeps,
  id: string,
  log: Logger,
  options: { force?: boolean; also?: (leaseUntil: string) => Statement[] } = {},
): Promise<WebhookDeliveryRow | undefined> {
  const leaseUntil = new Date(nowMs(deps) + LEASE_MS).toISOString()
  const row = await webhooksDb.leaseDelivery(deps.db, id, nowIso(deps), leaseUntil, options.force, options.also?.(leaseUntil))
  return row ? sendLeased(deps, row, log) : undefined
}

/**
 * One attempt at a delivery this caller has just leased: counted (metrics) and, when tracing, a
 * CLIENT span `webhook.deliver` in the trace of the request that caused the event (its
 * `traceparent` is stored with the delivery), whose own `traceparent` the ISV receives.
 */
function sendLeased(deps: AppDeps, row: WebhookDeliveryRow, log: Logger): Promise<WebhookDeliveryRow | undefined> {
  const attributes = { 'marketbridge.webhook.type': row.type, 'marketbridge.webhook.attempt': row.attempts + 1 }
  return inSpan('webhook.deliver', attributes, (span) => sendLeasedIn(deps, row, log, span), SpanKind.CLIENT, contextFrom(row.trace_parent))
}

async function sendLeasedIn(deps: AppDeps, row: WebhookDeliveryRow, log: Logger, span: TraceSpan | null): Promise<WebhookDeliveryRow | undefined> {
  const org = await orgsDb.findOrg(deps.db, row.org_id)
  const record = (outcome: { ok: boolean; statusCode: number | null; error: string | null }) => {
    deps.metrics?.webhookDelivery(outcome.ok ? 'success' : 'failure')
    if (span) {
      if (outcome.statusCode !== null) span.set('http.response.status_code', outcome.statusCode)
      if (!outcome.ok) span.fail(outcome.statusCode === null ? 'no answer' : `HTTP ${outcome.statusCode}`)
    }
    const attempts = row.attempts + 1
    const next = outcome.ok ? null : nextAttemptAt(row.created_at, attempts, nowMs(deps))
    return webhooksDb.recordAttempt(deps.db, row.id, {
      status: outcome.ok ? 'SUCCEEDED' : next ? 'PENDING' : 'FAILED',
      statusCode: outcome.statusCode,
      error: outcome.error,
      nextAttemptAt: next,
      now: nowIso(deps),
    })
  }
  if (!org?.webhook_url) return record({ ok: false, statusCode: null, error: 'the org has no webhookUrl now' })
  // An org whose webhookUrl predates signing secrets has none yet: it gets one from POST …/webhook-secret.
  if (!org.webhook_secret) return record({ ok: false, statusCode: null, error: 'the org has no signing secret yet: POST /api/v1/orgs/{orgId}/webhook-secret' })
  const url = org.webhook_url
  const deliveryLog = log.child({ orgId: org.id, deliveryId: row.id, type: row.type })
  // SSRF guard (Node): the address is checked at send time, since DNS may have changed since the URL was set.
  const refused = deps.checkWebhookTarget ? await deps.checkWebhookTarget(url) : null
  if (refused) {
    deliveryLog.warn('webhook refused by the address guard', { reason: refused })
    return record({ ok: false, statusCode: null, error: `refused: ${refused}` })
  }
  const timestamp = Math.floor(nowMs(deps) / 1000)
  const started = performance.now()
  try {
    const response = await fetch(url, {
      method: 'POST',
      redirect: 'manual',
      signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
      headers: {
        'content-type': 'application/json',
        'user-agent': 'marketbridge-webhooks/1',
        'webhook-id': row.id,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': await signatures(deps, org, row.id, timestamp, row.payload),
        ...traceHeaders(),
      },
      body: row.payload,
    })
    const body = await readSome(response)
    const ok = response.status >= 200 && response.status < 300
    deliveryLog.info('webhook attempt', { status: response.status, attempt: row.attempts + 1, latencyMs: Math.round(performance.now() - started) })
    return record({ ok, statusCode: response.status, error: ok ? null : `HTTP ${response.status}${body ? `: ${body}` : ''}`.slice(0, MAX_BODY_BYTES) })
  } catch (error) {
    // fetch's own message is "fetch failed"; the cause says why (CERT_HAS_EXPIRED, ECONNRESET, …).
    const cause = error instanceof Error && error.cause instanceof Error ? ` (${(error.cause as Error & { code?: string }).code ?? error.cause.message})` : ''
    const reason = error instanceof Error ? (error.name === 'TimeoutError' ? `no answer within ${ATTEMPT_TIMEOUT_MS / 1000} s` : `${error.name}: ${error.message}${cause}`) : String(error)
    deliveryLog.warn('webhook attempt failed', { error: reason, attempt: row.attempts + 1, latencyMs: Math.round(performance.now() - started) })
    return record({ ok: false, statusCode: null, error: reason.slice(0, MAX_BODY_BYTES) })
  }
}

/**
 * The due deliveries, a batch of JOB_BATCH sent at once, batch after batch while full (a backlog
 * after a receiver's outage drains without waiting for the job), at most MAX_BATCHES per call.
 */
const MAX_BATCHES = 100

export async function deliverDue(deps: AppDeps, log: Logger): Promise<number> {
  let sent = 0
  for (let batch = 0; batch < MAX_BATCHES; batch++) {
    // Leased together, sent at once: each attempt ends (ATTEMPT_TIMEOUT_MS) well inside its lease.
    const due = await webhooksDb.claimDueDeliveries(deps.db, nowIso(deps), new Date(nowMs(deps) + LEASE_MS).toISOString(), JOB_BATCH)
    await Promise.all(due.map((row) => sendLeased(deps, row, log)))
    sent += due.length
    if (due.length < JOB_BATCH) break
  }
  return sent
}

const running = new WeakMap<AppDeps, { promise: Promise<void>; again: boolean }>()

/**
 * Sends what is due now, in the background of the request that may have written events (the
 * landing, a notification, the API): one run at a time per process, and one more if asked again
 * meanwhile, so a burst of landings does not start a burst of runs. The job catches the rest.
 */
export function kickDeliveries(deps: AppDeps, log: Logger): Promise<void> {
  const current = running.get(deps)
  if (current) {
    current.again = true
    return current.promise
  }
  const state = { again: false, promise: Promise.resolve() }
  state.promise = (async () => {
    try {
      do {
        state.again = false
        await deliverDue(deps, log)
      } while (state.again)
    } catch (error) {
      log.error('webhook deliveries failed; the job retries them', { error: error instanceof Error ? error.message : String(error) })
    } finally {
      running.delete(deps)
    }
  })()
  running.set(deps, state)
  return state.promise
}

/** `POST …/webhooks/test`: queues a `ping` (sent at once by the caller's background run). */
export async function queuePing(deps: AppDeps, orgId: string, audit: AuditContext): Promise<WebhookDelivery> {
  const org = await getOrg(deps, orgId)
  if (!org.webhookUrl) throw new ApiError('VALIDATION_ERROR', 'The org has no webhookUrl; set one first (PATCH /api/v1/orgs/{orgId}).')
  const head = { id: newId('evt'), type: 'ping', createdAt: nowIso(deps), orgId, entityType: null, entityId: null, action: 'PING', entityStatus: null, partner: null }
  // A ping is no stored event: its delivery names none.
  const delivery = webhookDelivery(head, '{}', null)
  const row = await webhooksDb.insertDelivery(deps.db, delivery, [
    auditStatement(deps, audit, { orgId, action: 'webhook.test_sent', targetType: 'webhook_delivery', targetId: delivery.id, changes: {} }),
  ])
  return toDelivery(row)
}

/** `POST …/webhook-deliveries/{id}/retry`: one attempt now, whatever the delivery's state. */
export async function retryDelivery(deps: AppDeps, orgId: string, id: string, log: Logger, audit: AuditContext): Promise<WebhookDelivery> {
  const existing = await webhooksDb.findDelivery(deps.db, orgId, id)
  if (!existing) throw notFound('Webhook delivery')
  // Recorded with the lease that starts the attempt, and only if this retry took it (an attempt
  // already under way elsewhere means this one makes none). The outcome is the delivery's own record.
  const attempted = await attemptDelivery(deps, id, log, {
    force: true,
    also: (leaseUntil) => [
      auditStatement(deps, audit, { orgId, action: 'webhook_delivery.retried', targetType: 'webhook_delivery', targetId: id, changes: {}, when: webhooksDb.leasedAs(id, leaseUntil) }),
    ],
  })
  return toDelivery(attempted ?? existing)
}

/** The webhook deliveries of an entitlement's events (contract §8: one per Event), newest first, at most `limit`. */
export async function listEntitlementDeliveries(deps: AppDeps, orgId: string, entitlementId: string, limit = 100): Promise<WebhookDelivery[]> {
  return (await webhooksDb.listEventDeliveries(deps.db, orgId, entitlementId, limit)).map(toDelivery)
}
