/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import type { z } from 'zod'
import type { AppDeps } from '../../deps'
import { createApiKey, listApiKeys, revokeApiKey, rotateApiKey } from '../../domain/api-keys'
import { ApiError, notFound } from '../../errors'
import { ApiKeysView, type ApiKeysViewProps, type KeyForm, type KeyFormErrors, SignedOutByRevoke } from '../../pages/console/api-keys'
import { Notice } from '../../pages/console/components'
import { refusedFields } from '../../pages/console/parts'
import { orgPath } from '../../pages/console/layout'
import { type ApiKey, CreateApiKeySchema, RotateApiKeySchema } from '../../schemas'
import { type ConsoleApp, type ConsoleContext, auditOf, page, redirectTo } from './app'

/**
 * API keys (contract §13, §14): the keys as GET …/api-keys lists them; create and rotate answer
 * the new secret in the POST's own page (never in a URL, never stored), revoke asks first.
 */

const KEY_MESSAGES: Record<keyof KeyForm, string> = {
  name: 'Enter a name of 1 to 100 characters.',
  scope: 'Choose full or read.',
  expiresAt: 'Enter a date and time (UTC), or leave it empty.',
  rateLimitPerMinute: 'Enter a whole number from 1 to 100000, or leave it empty.',
}
const GRACE_MESSAGE = 'Enter whole seconds from 0 to 604800 (a week), or leave it empty for a day.'

/**
 * A date and time without a zone (`2027-01-31 18:00`, `T` or a space between, seconds optional)
 * read as UTC; anything else is passed on for the schema to judge.
 */
function utcTime(value: string): string | undefined {
  if (!value) return undefined
  const local = /^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d)(:\d\d(\.\d{1,3})?)?$/.exec(value)
  return local ? `${local[1]}T${local[2]}${local[3] ?? ':00'}Z` : value
}

/** A whole number typed in a form field; undefined when empty, NaN when it is not one. */
function wholeNumber(value: string): number | undefined {
  if (!value) return undefined
  return /^\d{1,9}$/.test(value) ? Number(value) : Number.NaN
}

/** The create form as the API's body (the same schema judges it), or the message for each refused field. */
function keyInput(values: Required<KeyForm>): { ok: true; input: z.infer<typeof CreateApiKeySchema> } | { ok: false; errors: KeyFormErrors } {
  const body = {
    name: values.name.trim(),
    ...(values.scope ? { scope: values.scope } : {}),
    ...(values.expiresAt.trim() ? { expiresAt: utcTime(values.expiresAt.trim()) } : {}),
    ...(values.rateLimitPerMinute.trim() ? { rateLimitPerMinute: wholeNumber(values.rateLimitPerMinute.trim()) } : {}),
  }
  const parsed = CreateApiKeySchema.safeParse(body)
  if (parsed.success) return { ok: true, input: parsed.data }
  const errors: KeyFormErrors = {}
  for (const field of refusedFields(parsed.error)) if (Object.hasOwn(KEY_MESSAGES, field)) errors[field as keyof KeyForm] = KEY_MESSAGES[field as keyof KeyForm]
  return { ok: false, errors }
}

const NOTICES: Record<string, string> = {
  revoked: 'The key was revoked: the API refuses it from now on, and console sessions signed in with it have ended.',
}

export function apiKeyPages(app: ConsoleApp, deps: AppDeps) {
  const path = (c: ConsoleContext) => orgPath(c.get('org').id, 'api-keys')

  async function view(c: ConsoleContext, props: Partial<ApiKeysViewProps> & { keys?: ApiKey[] }, status = 200) {
    const org = c.get('org')
    const keys = props.keys ?? (await listApiKeys(deps, org.id))
    return page(c, {
      title: 'API keys',
      current: 'api-keys',
      status,
      children: (
        <ApiKeysView
          org={org}
          viewer={c.get('viewer')}
          sessionKeyId={c.get('session').keyId}
          defaultLimit={deps.config.RATE_LIMIT_PER_MINUTE}
          {...props}
          keys={keys}
        />
      ),
    })
  }

  app.get('/orgs/:orgId/api-keys', (c) => {
    const notice = NOTICES[c.req.query('notice') ?? '']
    return view(c, notice ? { notice: <Notice kind="ok">{notice}</Notice> } : {})
  })

  app.post('/orgs/:orgId/api-keys', async (c) => {
    const form = c.get('form')
    const values = { name: form.name ?? '', scope: form.scope ?? '', expiresAt: form.expiresAt ?? '', rateLimitPerMinute: form.rateLimitPerMinute ?? '' }
    const parsed = keyInput(values)
    if (!parsed.ok) return view(c, { values, errors: parsed.errors }, 400)
    try {
      const fresh = await createApiKey(deps, c.get('org').id, parsed.input, auditOf(c))
      return view(c, { fresh })
    } catch (error) {
      if (!(error instanceof ApiError && error.code === 'VALIDATION_ERROR')) throw error
      // The domain's own rules (an expiry in the past): its message, the values kept.
      const errors: KeyFormErrors = { form: error.message, ...(error.message.startsWith('expiresAt') ? { expiresAt: 'Choose a time in the future (UTC).' } : {}) }
      return view(c, { values, errors }, 400)
    }
  })

  app.post('/orgs/:orgId/api-keys/:keyId/rotate', async (c) => {
    const orgId = c.get('org').id
    const keyId = c.req.param('keyId')
    const typed = (c.get('form').gracePeriodSeconds ?? '').trim()
    const grace = wholeNumber(typed)
    const parsed = RotateApiKeySchema.safeParse(grace === undefined ? {} : { gracePeriodSeconds: grace })
    if (!parsed.success) {
      const keys = await listApiKeys(deps, orgId)
      if (!keys.some((key) => key.id === keyId)) throw notFound('API key')
      return view(c, { keys, rotateError: { keyId, message: GRACE_MESSAGE, value: typed } }, 400)
    }
    try {
      const rotated = await rotateApiKey(deps, orgId, keyId, parsed.data, auditOf(c))
      const keys = await listApiKeys(deps, orgId)
      return view(c, { keys, fresh: { ...rotated, replaced: keys.find((key) => key.id === keyId) } })
    } catch (error) {
      // A key that is no longer active: said on the page, nothing changed.
      if (!(error instanceof ApiError && error.code === 'CONFLICT')) throw error
      return view(c, { notice: <Notice kind="bad">{error.message}</Notice> }, 409)
    }
  })

  app.post('/orgs/:orgId/api-keys/:keyId/revoke', async (c) => {
    const revoked = await revokeApiKey(deps, c.get('org').id, c.req.param('keyId'), auditOf(c))
    // The session's own key: the frame refuses the session from its next request on; say so here.
    if (revoked.id === c.get('session').keyId) return page(c, { title: 'API key revoked', current: 'api-keys', children: <SignedOutByRevoke apiKey={revoked} /> })
    return redirectTo(c, path(c), 'revoked')
  })

  // The address bar after a rotate or revoke: back to the list (they are forms, not pages).
  app.get('/orgs/:orgId/api-keys/:keyId/:action{rotate|revoke}', (c) => c.redirect(path(c), 303))
}
