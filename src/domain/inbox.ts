import { NotificationFormatError, ProviderError } from '../../providers/errors'
import { type InboundNotification, type NotificationRequest, type Partner, isPartner } from '../../providers/types'
import * as entitlementsDb from '../db/entitlements'
import * as notificationsDb from '../db/notifications'
import * as orgsDb from '../db/orgs'
import type { EntitlementRow, NotificationRow } from '../db/schema'
import { type AppDeps, nowIso, nowMs } from '../deps'
import type { Logger } from '../logger'
import { findPurchase, purchaseOf } from './entitlements'
import { newId } from './ids'
import { type RetryPolicy, doubling, nextAttempt } from './retry'
import { loadProviderIntegration, notificationUrl } from './integrations'
import { applyMarketplaceState, storePurchase } from './lifecycle'

/**
 * A worker holds a notification while it asks the marketplace about it: up to four calls, each
 * within its retry deadline (twice UPSTREAM_TIMEOUT_MS), and a margin. A crashed worker's rows
 * are taken over after that.
 */
const leaseMs = (deps: AppDeps) => 4 * 2 * deps.config.UPSTREAM_TIMEOUT_MS + 2_000
/** Retries back off from 5 s, doubling, up to 30 min (×0.5–1); after 60 attempts the row is given up (IGNORED, logged). */
export const NOTIFICATION_RETRY: RetryPolicy = { delaysMs: doubling(5_000, 30 * 60 * 1000), jitter: [0.5, 1], giveUpAfterMs: null, maxAttempts: 60 }
const JOB_BATCH = 25

export type ReceiveOutcome =
  | { status: 200; notificationId: string; duplicate: boolean }
  | { status: 400 | 401 | 404; code: 'VALIDATION_ERROR' | 'UNAUTHORIZED' | 'NOT_FOUND'; message: string }

/**
 * `POST /public/notifications/{partner}/orgId/{orgId}`: authenticate first, then store (keyed by
 * the marketplace's message id, so a redelivery is the same row), then answer. Nothing that fails
 * authentication is parsed beyond what verification needs, stored or acted on.
 */
export async function receiveNotification(
  deps: AppDeps,
  input: { partner: string; orgId: string; partnerId: string | null; request: Omit<NotificationRequest, 'notificationUrl'>; log: Logger },
): Promise<ReceiveOutcome> {
  const notFound = { status: 404, code: 'NOT_FOUND', message: 'No such org or integration.' } as const
  if (!isPartner(input.partner) || input.orgId.length > 64 || (input.partnerId?.length ?? 0) > 200) return notFound
  const partner = input.partner
  const org = await orgsDb.findOrg(deps.db, input.orgId)
  const integration = org ? await loadProviderIntegration(deps, org.id, partner) : undefined
  if (!org || !integration || (input.partnerId !== null && input.partnerId !== integration.partnerId)) return notFound
  const handler = deps.providers[partner].notifications
  if (!handler) return { status: 404, code: 'NOT_FOUND', message: `Notifications from ${partner} are not taken yet.` }

  const log = input.log.child({ orgId: org.id, partner })
  // Microsoft and Pub/Sub post JSON; SNS posts its JSON as text/plain (EventBridge as JSON).
  const type = (input.request.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase()
  if (!(type === 'application/json' || (partner === 'aws' && type === 'text/plain'))) {
    return { status: 400, code: 'VALIDATION_ERROR', message: `A ${partner} notification is sent as ${partner === 'aws' ? 'application/json or text/plain' : 'application/json'}.` }
  }
  let notification
  try {
    notification = await handler.authenticate(integration, { ...input.request, notificationUrl: notificationUrl(deps, integration.row) }, { log })
  } catch (error) {
    if (error instanceof NotificationFormatError) {
      return { status: 400, code: 'VALIDATION_ERROR', message: `Not a ${partner} notification: ${error.message}.` }
    }
    throw error
  }
  if (!notification) return { status: 401, code: 'UNAUTHORIZED', message: 'The notification could not be authenticated.' }

  const now = nowIso(deps)
  const id = newId('ntf')
  const stored = await notificationsDb.insertNotification(deps.db, {
    id,
    org_id: org.id,
    partner,
    message_id: notification.messageId,
    subject: notification.subject,
    action: notification.action,
    occurred_at: notification.occurredAt ?? null,
    lookup: notification.match ? JSON.stringify(notification.match) : null,
    payload: JSON.stringify(notification.payload),
    status: 'PENDING',
    next_attempt_at: now,
    created_at: now,
    updated_at: now,
  })
  if (stored) {
    log.info('notification stored', { notificationId: id, action: notification.action, messageId: notification.messageId })
    return { status: 200, notificationId: id, duplicate: false }
  }
  const existing = await notificationsDb.findNotificationByMessage(deps.db, org.id, partner, notification.messageId)
  log.info('notification redelivered', { notificationId: existing?.id, action: notification.action, messageId: notification.messageId })
  return { status: 200, notificationId: existing?.id ?? id, duplicate: true }
}

function describe(error: unknown) {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error)
}

/**
 * Applies one stored notification if this caller can lease it: asks the marketplace (the
 * provider confirms and acknowledges), then brings the entitlement to what it reports. Safe to
 * call any number of times and from several processes: a settled row is not leased again, and
 * applying a state the entitlement already has writes nothing.
 */
export async function applyNotification(deps: AppDeps, id: string, log: Logger): Promise<'applied' | 'ignored' | 'waiting' | 'retry' | 'busy'> {
  const row = await notificationsDb.leaseNotification(deps.db, id, nowIso(deps), new Date(nowMs(deps) + leaseMs(deps)).toISOString())
  return row ? applyLeased(deps, row, log) : 'busy'
}

/** `applyNotification` of a row this caller has just leased. */
async function applyLeased(deps: AppDeps, row: NotificationRow, log: Logger): Promise<'applied' | 'ignored' | 'waiting' | 'retry' | 'busy'> {
  if (!isPartner(row.partner)) return 'busy'
  const partner: Partner = row.partner
  const rowLog = log.child({ orgId: row.org_id, partner, notificationId: row.id, action: row.action })
  const integration = await loadProviderIntegration(deps, row.org_id, partner)
  const handler = deps.providers[partner].notifications
  if (!integration || !handler) {
    await notificationsDb.settleNotification(deps.db, row.id, 'IGNORED', nowIso(deps), 'the integration is gone')
    return 'ignored'
  }
  try {
    const match = row.lookup ? (JSON.parse(row.lookup) as InboundNotification['match']) : undefined
    const notification: InboundNotification = {
      messageId: row.message_id,
      subject: row.subject,
      action: row.action,
      occurredAt: row.occurred_at,
      match,
      payload: JSON.parse(row.payload) as Record<string, unknown>,
    }
    const ctx = { log: rowLog }
    const located = handler.locate ? await handler.locate(integration, notification, ctx) : undefined
    const externalIds = located?.externalIds ?? [row.subject]
    const found: EntitlementRow[] = []
    for (const externalId of externalIds) {
      const hit = await findPurchase(deps, row.org_id, partner, externalId)
      if (hit && !found.some((e) => e.id === hit.id)) found.push(hit)
      if (found.length && !located?.all) break
    }
    if (match && (!found.length || located?.all)) {
      const byBuyer = await entitlementsDb.findEntitlementsByBuyer(deps.db, { orgId: row.org_id, partner, ...match })
      for (const hit of byBuyer.slice(0, located?.all ? byBuyer.length : 1)) if (!found.some((e) => e.id === hit.id)) found.push(hit)
    }
    // Applied when the landing creates the entitlement (wakeNotifications), under whichever key it is stored.
    let waitUnder = located?.externalIds.find((id) => id !== row.subject)
    if (!found.length && handler.search) {
      const searched = await handler.search(integration, notification, ctx)
      const [hit] = searched ? await entitlementsDb.findEntitlementsByBuyer(deps.db, { orgId: row.org_id, partner, ...searched.match }) : []
      if (hit) found.push(hit)
      else if (searched) waitUnder = searched.subject
    }

    const newer = await notificationsDb.newerApplied(deps.db, row)
    let outcome: 'applied' | 'ignored' | 'waiting' = 'applied'
    for (const entitlement of found.length ? found : [null]) {
      const effect = await handler.apply(integration, notification, entitlement ? purchaseOf(entitlement) : null, ctx, located)
      if (effect.outcome === 'unknown') {
        rowLog.warn('notification ignored', { reason: effect.reason })
        await notificationsDb.settleNotification(deps.db, row.id, 'IGNORED', nowIso(deps), effect.reason)
        return 'ignored'
      }
      if (effect.outcome === 'create') {
        // The message is the purchase (Azure's Subscribe): stored as a landing stores one, so whichever comes first creates it.
        const owner = { orgId: row.org_id, partner, partnerId: integration.partnerId }
        const stored = await storePurchase(deps, owner, effect.purchase, 'marketplace', { action: row.action, notificationId: row.id })
        if (stored.created) await wakeNotifications(deps, row.org_id, partner, [stored.row.external_id])
        rowLog.info('notification stored its purchase', { entitlementId: stored.row.id, created: stored.created })
        continue
      }
      if (effect.outcome === 'waiting' || (!entitlement && effect.purchase)) {
        rowLog.info('notification waits for its purchase to land')
        await notificationsDb.settleNotification(deps.db, row.id, 'WAITING', nowIso(deps), null, waitUnder)
        outcome = 'waiting'
        break
      }
      if (effect.purchase && entitlement) {
        const data = { action: row.action, notificationId: row.id, ...(effect.reason ? { reason: effect.reason } : {}) }
        // A message older than one already applied may still bring other fields, never an older status.
        const purchase = effect.purchase
        const { event } = await applyMarketplaceState(deps, entitlement, (current) => (newer ? { ...purchase, status: current.status as typeof purchase.status } : purchase), data)
        rowLog.info('notification applied', { entitlementId: entitlement.id, event })
      }
      // What waited for the key this message just gave its entitlement (an AWS agreement id) is due now.
      if (effect.wake?.length) await wakeNotifications(deps, row.org_id, partner, effect.wake)
    }
    if (outcome === 'applied') await notificationsDb.settleNotification(deps.db, row.id, 'APPLIED', nowIso(deps))
    return outcome
  } catch (error) {
    if (!(error instanceof ProviderError)) rowLog.error('notification could not be applied', { error: describe(error) })
    const next = nextAttempt(NOTIFICATION_RETRY, row.attempts, nowMs(deps))
    if (next.giveUp) {
      rowLog.error('notification given up after retries', { attempts: row.attempts, error: describe(error) })
      await notificationsDb.settleNotification(deps.db, row.id, 'IGNORED', nowIso(deps), `gave up: ${describe(error)}`.slice(0, 500))
      return 'ignored'
    }
    rowLog.warn('notification will be retried', { attempts: row.attempts, error: describe(error) })
    await notificationsDb.retryNotificationLater(deps.db, row.id, new Date(next.at).toISOString(), describe(error).slice(0, 500), nowIso(deps))
    return 'retry'
  }
}

/**
 * Settled notifications are kept this long to recognise redeliveries (Microsoft retries for 8
 * hours, SNS and Pub/Sub redeliver for up to 7 days), then forgotten.
 */
const KEEP_SETTLED_MS = 30 * 24 * 3600 * 1000

/** The job's part: every due notification, a batch per run; settled ones past their keep are pruned. */
export async function applyDueNotifications(deps: AppDeps, log: Logger): Promise<number> {
  await notificationsDb.pruneSettled(deps.db, new Date(nowMs(deps) - KEEP_SETTLED_MS).toISOString())
  // One at a time, each leased just before it is applied (a lease covers one notification's calls).
  let applied = 0
  for (; applied < JOB_BATCH; applied++) {
    const row = await notificationsDb.claimDueNotification(deps.db, nowIso(deps), new Date(nowMs(deps) + leaseMs(deps)).toISOString())
    if (!row) break
    await applyLeased(deps, row, log.child({ job: 'notifications' }))
  }
  return applied
}

/**
 * A purchase just got its entitlement: the notifications that waited for it are due now (the
 * job applies them; the landing does not wait for the marketplace calls that takes).
 */
export async function wakeNotifications(deps: AppDeps, orgId: string, partner: Partner, subjects: string[]): Promise<number> {
  let woken = 0
  for (const subject of subjects) woken += (await notificationsDb.wakeWaiting(deps.db, orgId, partner, subject, nowIso(deps))).length
  return woken
}
