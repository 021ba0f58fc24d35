import { Hono } from 'hono'
import type { AppDeps } from '../deps'
import { applyNotification, receiveNotification } from '../domain/inbox'
import { kickDeliveries } from '../domain/webhooks'
import type { AppEnv } from '../env'
import { partnerLabel } from '../../providers/shared/telemetry'
import { parseRawQuery } from './landing'

/**
 * `POST /public/notifications/{partner}/orgId/{orgId}` (contract §7): the marketplace's
 * lifecycle messages. Authenticated first, stored, answered 200, then applied right after the
 * answer (Workers: `waitUntil`), so Microsoft gets its 200 at once and its PATCH within seconds.
 * A failure to apply is the background job's to retry, never the sender's.
 */
/** A refused notification's outcome label by its status. */
const NOTIFICATION_REFUSALS = { 400: 'invalid', 401: 'unauthorized', 404: 'not-found' } as const

export function notificationRoutes(deps: AppDeps) {
  const app = new Hono<AppEnv>()

  app.post('/:partner/orgId/:orgId', async (c) => {
    const partner = c.req.param('partner')
    const orgId = c.req.param('orgId')
    c.set('logFields', { orgId, partner })
    const log = c.get('log')
    const outcome = await receiveNotification(deps, {
      partner,
      orgId,
      partnerId: parseRawQuery(c.req.url).get('partnerId') ?? null,
      request: { headers: c.req.raw.headers, body: await c.req.text(), url: c.req.url },
      log,
    }).catch((error: unknown) => {
      deps.metrics?.notification(partnerLabel(partner), 'error')
      throw error
    })
    deps.metrics?.notification(partnerLabel(partner), outcome.status === 200 ? (outcome.duplicate ? 'duplicate' : 'stored') : NOTIFICATION_REFUSALS[outcome.status])
    if (outcome.status !== 200) {
      c.set('logFields', { orgId, partner, outcome: outcome.code })
      return c.json({ error: { code: outcome.code, message: outcome.message, requestId: c.get('requestId') } }, outcome.status)
    }
    c.set('logFields', { orgId, partner, notificationId: outcome.notificationId, outcome: outcome.duplicate ? 'duplicate' : 'stored' })
    const applying = applyNotification(deps, outcome.notificationId, log)
      .then(() => kickDeliveries(deps, log))
      .catch((error: unknown) => log.error('notification apply failed; the job retries it', { error: error instanceof Error ? error.message : String(error) }))
    try {
      c.executionCtx.waitUntil(applying)
    } catch {
      // Node: no execution context; the promise runs on after the answer.
    }
    return c.json({ received: true, notificationId: outcome.notificationId }, 200)
  })

  return app
}
