/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import { ENTITLEMENT_STATUSES, isPartner } from '../../../providers/types'
import type { AppDeps } from '../../deps'
import { getEntitlementJson, listEntitlementEvents, listEntitlementsJson } from '../../domain/entitlements'
import { listIntegrations } from '../../domain/integrations'
import { refreshEntitlement } from '../../domain/reconcile'
import { listUsage } from '../../domain/usage'
import { listEntitlementDeliveries } from '../../domain/webhooks'
import { ApiError, notFound } from '../../errors'
import { PageHead } from '../../pages/console/components'
import { EntitlementDetail, EntitlementList, type ListFilters, entitlementPath, entitlementsPath } from '../../pages/console/entitlements'
import type { Entitlement } from '../../schemas'
import { type ConsoleApp, type ConsoleContext, auditOf, page, redirectTo } from './app'

/** The longest search text taken (ids and emails are far shorter). */
const MAX_SEARCH = 200
const PAGE_SIZE = 50
/** A cursor the API hands out is far shorter; anything longer is not one (as the API's own limit). */
const MAX_CURSOR = 512

const isStatus = (value: string | undefined): value is string => value !== undefined && (ENTITLEMENT_STATUSES as readonly string[]).includes(value)

/**
 * The `:id` of an entitlement page. No id the broker gives is longer than the API takes (64) or
 * holds U+0000, which PostgreSQL's text cannot even be asked about: such an id is a 404 on every
 * database alike, without a query.
 */
function entitlementIdOf(c: ConsoleContext): string {
  const id = c.req.param('id') ?? ''
  if (id.length > 64 || id.includes('\u0000')) throw notFound('Entitlement')
  return id
}

/**
 * Entitlements (contract §14): the list (marketplace and status filters, search, cursor paging)
 * and one entitlement's page (every field, history, usage, webhook deliveries, Refresh), from the
 * domain functions the API's routes call (src/routes/entitlements.ts).
 */
export function entitlementPages(app: ConsoleApp, deps: AppDeps) {
  app.get('/orgs/:orgId/entitlements', async (c) => {
    const org = c.get('org')
    const partner = c.req.query('partner')
    const status = c.req.query('status')
    const q = (c.req.query('q') ?? '').trim()
    const cursor = c.req.query('cursor') || undefined
    const asked = Number(c.req.query('limit'))
    // A page size the API takes (1..1000) is kept; anything else is the console's own.
    const limit = Number.isInteger(asked) && asked >= 1 && asked <= 1000 ? asked : undefined
    // A value the selects do not offer is no filter (the form then shows "All").
    const filters: ListFilters = { partner: partner && isPartner(partner) ? partner : undefined, status: isStatus(status) ? status : undefined, q: q || undefined }
    const render = (props: Omit<Parameters<typeof EntitlementList>[0], 'orgId' | 'filters' | 'limit'>, code = 200) =>
      page(c, {
        title: 'Entitlements',
        current: 'entitlements',
        status: code,
        children: (
          <>
            <PageHead title="Entitlements" crumbs={org.name} />
            <EntitlementList orgId={org.id} filters={filters} limit={limit} {...props} />
          </>
        ),
      })

    if (q.length > MAX_SEARCH) return render({ page: null, searchError: `Search for at most ${MAX_SEARCH} characters.` }, 400)
    // PostgreSQL's text cannot hold U+0000: refused alike on every database.
    if (q.includes('\u0000')) return render({ page: null, searchError: 'The search may not contain the NUL character.' }, 400)
    if (cursor && cursor.length > MAX_CURSOR) return render({ page: null, problem: 'This page link is not valid. Start again from the first page.' }, 400)
    try {
      const json = await listEntitlementsJson(deps, org.id, { ...filters, limit: limit ?? PAGE_SIZE, cursor })
      return render({ page: JSON.parse(json) as { items: Entitlement[]; nextCursor: string | null }, cursor })
    } catch (error) {
      if (error instanceof ApiError && error.code === 'INVALID_CURSOR') return render({ page: null, problem: 'This page link is not valid. Start again from the first page.' }, 400)
      throw error
    }
  })

  app.get('/orgs/:orgId/entitlements/:id', async (c) => {
    const org = c.get('org')
    const id = entitlementIdOf(c)
    // The entitlement first: another org's (or no) entitlement is a 404 page before anything else is read.
    const json = await getEntitlementJson(deps, org.id, id)
    const entitlement = JSON.parse(json) as Entitlement
    const usageCursor = c.req.query('usageCursor') || undefined
    if (usageCursor && usageCursor.length > MAX_CURSOR) throw new ApiError('INVALID_CURSOR', 'This page link is not valid: open the entitlement again.')
    const [events, usage, deliveries, integrations] = await Promise.all([
      listEntitlementEvents(deps, org.id, id),
      listUsage(deps, org.id, id, { limit: PAGE_SIZE, cursor: usageCursor }),
      listEntitlementDeliveries(deps, org.id, id),
      listIntegrations(deps, org.id),
    ])
    return page(c, {
      title: `Entitlement ${entitlement.id}`,
      current: 'entitlements',
      children: (
        <>
          <PageHead
            title={entitlement.id}
            crumbs={<a href={entitlementsPath(org.id)}>Entitlements</a>}
          />
          <EntitlementDetail
            orgId={org.id}
            viewer={c.get('viewer')}
            entitlement={entitlement}
            json={json}
            events={events}
            usage={usage}
            usageCursor={usageCursor}
            deliveries={deliveries}
            hasIntegration={integrations.some((integration) => integration.partner === entitlement.partner)}
            webhookUrl={org.webhookUrl}
            notice={c.req.query('notice')}
          />
        </>
      ),
    })
  })

  app.post('/orgs/:orgId/entitlements/:id/refresh', async (c) => {
    const org = c.get('org')
    const id = entitlementIdOf(c)
    const before = JSON.parse(await getEntitlementJson(deps, org.id, id)) as Entitlement
    const back = entitlementPath(org.id, id)
    const integrations = await listIntegrations(deps, org.id)
    if (!integrations.some((integration) => integration.partner === before.partner)) return redirectTo(c, back, 'no-integration')
    let after: Entitlement
    try {
      after = JSON.parse(await refreshEntitlement(deps, org.id, id, c.get('log'), auditOf(c))) as Entitlement
    } catch (error) {
      // The marketplace did not answer: nothing was written; the page says so.
      if (error instanceof ApiError && error.code === 'UPSTREAM_ERROR') return redirectTo(c, back, 'refresh-failed')
      throw error
    }
    // An Event moves updatedAt; a re-read that only refreshed the marketplace's raw detail does not (domain/lifecycle.ts).
    return redirectTo(c, back, after.updatedAt !== before.updatedAt ? 'refreshed' : 'unchanged')
  })
}
