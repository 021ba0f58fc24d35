/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import type { AppDeps } from '../../deps'
import { createOrg, listOrgs } from '../../domain/orgs'
import { ApiError } from '../../errors'
import { refusedFields } from '../../pages/console/parts'
import { type OrgForm, type OrgFormErrors, OrgsView, type OrgsViewProps } from '../../pages/console/orgs'
import { CreateOrgSchema } from '../../schemas'
import { type ConsoleApp, type ConsoleContext, auditOf, page } from './app'

/**
 * The operator's pages (contract §14): every org, and org creation as POST /api/v1/orgs does it
 * (the same schema and domain function; the org.created entry names the console's operator).
 * An ISV session is answered 404, as for a page that does not exist.
 */

const PAGE_SIZE = 50

const MESSAGES: Record<keyof OrgForm, string> = {
  name: 'Enter a name of 1 to 200 characters.',
  fulfillmentUrl: 'Enter the URL buyers are sent to (at most 2048 characters).',
  webhookUrl: 'Enter a URL of at most 2048 characters, or leave it empty.',
}

function operatorOnly(c: ConsoleContext) {
  if (!c.get('viewer').operator) throw new ApiError('NOT_FOUND', 'There is nothing at this address.')
}

export function orgPages(app: ConsoleApp, deps: AppDeps) {
  async function view(c: ConsoleContext, props: Partial<OrgsViewProps>, status = 200) {
    const cursor = c.req.method === 'GET' ? c.req.query('cursor') : undefined
    if (cursor && cursor.length > 512) throw new ApiError('INVALID_CURSOR', 'This page link is not one the console made. Go back to the first page.')
    const orgs = await listOrgs(deps, { limit: PAGE_SIZE, ...(cursor ? { cursor } : {}) })
    return page(c, { title: 'Orgs', current: 'orgs', status, children: <OrgsView viewer={c.get('viewer')} orgs={orgs} paged={Boolean(cursor)} {...props} /> })
  }

  app.get('/orgs', (c) => {
    operatorOnly(c)
    return view(c, {})
  })

  app.post('/orgs', async (c) => {
    operatorOnly(c)
    const form = c.get('form')
    const values: OrgForm = { name: form.name ?? '', fulfillmentUrl: form.fulfillmentUrl ?? '', webhookUrl: form.webhookUrl ?? '' }
    const parsed = CreateOrgSchema.safeParse({ name: values.name, fulfillmentUrl: values.fulfillmentUrl, ...(values.webhookUrl.trim() ? { webhookUrl: values.webhookUrl } : {}) })
    if (!parsed.success) {
      const errors: OrgFormErrors = {}
      for (const field of refusedFields(parsed.error)) if (Object.hasOwn(MESSAGES, field)) errors[field as keyof OrgForm] = MESSAGES[field as keyof OrgForm]
      return view(c, { values, errors }, 400)
    }
    let created: Awaited<ReturnType<typeof createOrg>>
    try {
      created = await createOrg(deps, parsed.data, auditOf(c))
    } catch (error) {
      if (!(error instanceof ApiError && error.code === 'VALIDATION_ERROR')) throw error
      // The URL rules (https, no credentials): the domain's message, at its field.
      const field = (['fulfillmentUrl', 'webhookUrl'] as const).find((name) => error.message.startsWith(name))
      return view(c, { values, errors: field ? { [field]: error.message } : { form: error.message } }, 400)
    }
    return view(c, { created })
  })
}
