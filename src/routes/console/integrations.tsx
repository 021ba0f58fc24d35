/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import { type Partner, isPartner } from '../../../providers/types'
import type { AppDeps } from '../../deps'
import { checkIntegration, configureIntegration, listIntegrations, rotateNotificationSecret } from '../../domain/integrations'
import { ApiError, notFound } from '../../errors'
import { marketplaceName } from '../../pages/console/components'
import { bodyOfForm, formOfIntegration, typedValues } from '../../pages/console/integration-forms'
import { IntegrationEditPage, IntegrationsPage, type IntegrationsView, integrationNotice } from '../../pages/console/integrations'
import { orgPath } from '../../pages/console/layout'
import { type ConsoleApp, type ConsoleContext, auditOf, page, redirectTo } from './app'

/** The marketplace of an …/integrations/{partner}/… address; any other is no page. */
function partnerOf(c: ConsoleContext): Partner {
  const partner = c.req.param('partner') ?? ''
  if (!isPartner(partner)) throw notFound('Marketplace')
  return partner
}

/** The Integrations page with what GET /api/v1/orgs/{orgId}/integrations answers now, and what a POST has to show. */
async function render(c: ConsoleContext, deps: AppDeps, extra: Partial<Pick<IntegrationsView, 'checked' | 'notificationSecret' | 'notice'>> = {}) {
  const org = c.get('org')
  const integrations = await listIntegrations(deps, org.id)
  const notice = extra.notice ?? (c.req.method === 'GET' ? integrationNotice(c.req.query('notice')) : null)
  const view: IntegrationsView = { org, viewer: c.get('viewer'), integrations, ...extra, notice }
  return page(c, { title: 'Integrations', current: 'integrations', children: <IntegrationsPage view={view} /> })
}

async function renderEdit(c: ConsoleContext, deps: AppDeps, partner: Partner, typed?: { values: Record<string, string>; error: string }) {
  const org = c.get('org')
  const existing = (await listIntegrations(deps, org.id)).find((item) => item.partner === partner)
  return page(c, {
    title: `${existing ? 'Edit' : 'Set up'} ${marketplaceName(partner)}`,
    current: 'integrations',
    status: typed ? 400 : 200,
    children: <IntegrationEditPage view={{ org, viewer: c.get('viewer'), partner, existing, values: typed?.values ?? formOfIntegration(partner, existing), error: typed?.error }} />,
  })
}

/**
 * Integrations (contract §14): per marketplace its settings without secrets, the signup and
 * notification URLs, Check credentials (§13), edit; for AWS the EventBridge notification secret.
 */
export function integrationPages(app: ConsoleApp, deps: AppDeps) {
  app.get('/orgs/:orgId/integrations', (c) => render(c, deps))

  app.post('/orgs/:orgId/integrations/:partner/check', async (c) => {
    const partner = partnerOf(c)
    const result = await checkIntegration(deps, c.get('org').id, partner, c.get('log'))
    return render(c, deps, { checked: { partner, result } })
  })

  app.get('/orgs/:orgId/integrations/:partner/edit', (c) => renderEdit(c, deps, partnerOf(c)))

  // As PUT /api/v1/orgs/{orgId}/integrations/{partner}, except that a secret left blank is the stored one.
  app.post('/orgs/:orgId/integrations/:partner/edit', async (c) => {
    const partner = partnerOf(c)
    const orgId = c.get('org').id
    const form = c.get('form')
    let saved: Awaited<ReturnType<typeof configureIntegration>>
    try {
      saved = await configureIntegration(deps, orgId, partner, bodyOfForm(partner, form), auditOf(c), { keepOmittedSecrets: true })
    } catch (error) {
      if (error instanceof ApiError && error.code === 'VALIDATION_ERROR') return renderEdit(c, deps, partner, { values: typedValues(partner, form), error: error.message })
      throw error
    }
    c.get('log').info('console integration saved', { orgId, partner })
    // AWS: the EventBridge secret of a new integration, in this answer only.
    if (saved.notificationSecret) return render(c, deps, { notificationSecret: { value: saved.notificationSecret, rotated: false }, notice: integrationNotice(`saved-${partner}`) })
    return redirectTo(c, orgPath(orgId, 'integrations'), `saved-${partner}`)
  })

  app.post('/orgs/:orgId/integrations/aws/notification-secret', async (c) => {
    const secret = await rotateNotificationSecret(deps, c.get('org').id, auditOf(c))
    return render(c, deps, { notificationSecret: { value: secret, rotated: true } })
  })
}
