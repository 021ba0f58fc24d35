/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import type { AppDeps } from '../../deps'
import { getOrg, updateOrg } from '../../domain/orgs'
import { rotateWebhookSecret } from '../../domain/webhook-signing'
import { DELIVERY_STATUSES, listDeliveries, queuePing, retryDelivery } from '../../domain/webhooks'
import { ApiError, formatIssues } from '../../errors'
import { query } from '../../pages/console/components'
import { orgPath } from '../../pages/console/layout'
import { type DeliveryFilter, WEBHOOK_NOTICES, WebhooksPage, type WebhooksView } from '../../pages/console/webhooks'
import { UpdateOrgSchema } from '../../schemas'
import { type ConsoleApp, type ConsoleContext, auditOf, page, redirectTo } from './app'

/** Deliveries per page of the console's list. */
const PAGE_SIZE = 50
/** What a cursor the API issued looks like (base64url); anything else is not carried back. */
const CURSOR = /^[A-Za-z0-9_-]{1,512}$/

/** The list's filter and page from a query string: an unknown status is refused as the API refuses it. */
function listQuery(c: ConsoleContext): { status: DeliveryFilter | null; cursor: string | null } {
  const status = c.req.query('status') || null
  if (status !== null && !(DELIVERY_STATUSES as readonly string[]).includes(status)) {
    throw new ApiError('VALIDATION_ERROR', `The status filter must be ${DELIVERY_STATUSES.join(', ')} or none.`)
  }
  const cursor = c.req.query('cursor') || null
  if (cursor !== null && cursor.length > 512) throw new ApiError('INVALID_CURSOR', 'cursor is not one this API returned.')
  return { status: status as DeliveryFilter | null, cursor }
}

/** The Webhooks page with what the API answers now (and, after a POST, what that POST has to show). */
async function render(c: ConsoleContext, deps: AppDeps, extra: Partial<Pick<WebhooksView, 'urlForm' | 'secret' | 'notice'>> = {}, status = 200) {
  const orgId = c.get('org').id
  // Read again: a POST that changed the org renders its new state.
  const org = await getOrg(deps, orgId)
  const { status: filter, cursor } = c.req.method === 'GET' ? listQuery(c) : { status: null, cursor: null }
  const deliveries = await listDeliveries(deps, orgId, { status: filter ?? undefined, limit: PAGE_SIZE, cursor: cursor ?? undefined })
  const notice = extra.notice ?? (c.req.method === 'GET' ? (WEBHOOK_NOTICES[c.req.query('notice') ?? ''] ?? null) : null)
  const view: WebhooksView = { org, viewer: c.get('viewer'), deliveries, status: filter, cursor, ...extra, notice }
  return page(c, { title: 'Webhooks', current: 'webhooks', status, children: <WebhooksPage view={view} /> })
}

/** Webhooks (contract §14): the org's webhookUrl, its signing secret, a test ping, the deliveries with retry. */
export function webhookPages(app: ConsoleApp, deps: AppDeps) {
  app.get('/orgs/:orgId/webhooks', (c) => render(c, deps))

  // As PATCH /api/v1/orgs/{orgId} {"webhookUrl"}: empty removes it (null).
  app.post('/orgs/:orgId/webhooks/url', async (c) => {
    const orgId = c.get('org').id
    const typed = c.get('form').webhookUrl ?? ''
    const parsed = UpdateOrgSchema.safeParse({ webhookUrl: typed.trim() === '' ? null : typed })
    if (!parsed.success) return render(c, deps, { urlForm: { value: typed, error: `Invalid request: ${formatIssues(parsed.error)}.` } }, 400)
    const before = c.get('org').webhookUrl
    let updated: Awaited<ReturnType<typeof updateOrg>>
    try {
      updated = await updateOrg(deps, orgId, { webhookUrl: parsed.data.webhookUrl }, auditOf(c))
    } catch (error) {
      if (error instanceof ApiError && error.code === 'VALIDATION_ERROR') return render(c, deps, { urlForm: { value: typed, error: error.message } }, 400)
      throw error
    }
    // A first webhookUrl brings the org its signing secret: shown in this answer only.
    if (updated.webhookSecret) return render(c, deps, { secret: { value: updated.webhookSecret, first: true }, notice: WEBHOOK_NOTICES['url-saved'] })
    const notice = updated.webhookUrl === before ? 'url-unchanged' : updated.webhookUrl === null ? 'url-removed' : 'url-saved'
    return redirectTo(c, orgPath(orgId, 'webhooks'), notice)
  })

  // Answered here, not through a redirect: the secret is in no URL and no later page.
  app.post('/orgs/:orgId/webhooks/secret', async (c) => {
    const secret = await rotateWebhookSecret(deps, c.get('org').id, auditOf(c))
    return render(c, deps, { secret: { value: secret, first: false } })
  })

  app.post('/orgs/:orgId/webhooks/test', async (c) => {
    const orgId = c.get('org').id
    await queuePing(deps, orgId, auditOf(c))
    return redirectTo(c, orgPath(orgId, 'webhooks'), 'ping-queued')
  })

  app.post('/orgs/:orgId/webhooks/deliveries/:id/retry', async (c) => {
    const orgId = c.get('org').id
    const delivery = await retryDelivery(deps, orgId, c.req.param('id'), c.get('log'), auditOf(c))
    // Back to the list as it was filtered and paged (only values it could have had).
    const status = c.req.query('status')
    const cursor = c.req.query('cursor')
    const back = query({
      status: status && (DELIVERY_STATUSES as readonly string[]).includes(status) ? status : null,
      cursor: cursor && CURSOR.test(cursor) ? cursor : null,
    })
    return redirectTo(c, `${orgPath(orgId, 'webhooks')}${back}`, delivery.status === 'SUCCEEDED' ? 'retried-ok' : 'retried-failed')
  })
}
