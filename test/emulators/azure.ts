import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import type { AddressInfo } from 'node:net'
import { randomBytes, randomUUID } from 'node:crypto'

/**
 * Azure emulator: the Entra ID v2 token endpoint (client credentials) and the SaaS
 * fulfillment API v2 (api-version 2018-08-31), written from Microsoft's documents
 * (shared/seeds/002, 003) and shared/spec/marketplaces.md, not from the broker's client.
 *
 * What it enforces, as the real service does:
 * - token: `grant_type=client_credentials`, a registered client id in that tenant, the right
 *   secret (else 401 invalid_client / AADSTS7000215), scope `20e940b3-…/.default`.
 * - every fulfillment call: `api-version=2018-08-31`, a bearer token it issued and that has
 *   not expired, for the app the offer was published with (else 403).
 * - resolve: `x-ms-marketplace-token` present (else 400 HeaderNotPresent), known, unexpired.
 * - activate: planId present and equal to the purchased plan, quantity equal when given;
 *   400 when Subscribed/Suspended, 404 when Unsubscribed; 200 with no body.
 */

export const MARKETPLACE_RESOURCE = '20e940b3-4c77-4b0b-9a53-9e16a1b010a7'

export type SaasStatus = 'PendingFulfillmentStart' | 'Subscribed' | 'Suspended' | 'Unsubscribed'

export interface EmulatedParty {
  emailId: string
  objectId: string
  tenantId: string
  puid: string
}

export interface EmulatedSubscription {
  id: string
  name: string
  publisherId: string
  offerId: string
  planId: string
  quantity?: number
  beneficiary: EmulatedParty
  purchaser: EmulatedParty
  saasSubscriptionStatus: SaasStatus
  term: { termUnit: string; startDate?: string; endDate?: string }
  autoRenew: boolean
  isTest: boolean
  isFreeTrial: boolean
  allowedCustomerOperations: string[]
  sessionMode: string
  sandboxType: string
  created: string
  lastModified: string
  /** Not returned: the Entra app (client id) the offer was published with. */
  appId: string
}

export interface EmulatedPlan {
  planId: string
  displayName: string
  isPrivate: boolean
  description?: string
  minQuantity?: number
  maxQuantity?: number
  hasFreeTrials?: boolean
  isPricePerSeat?: boolean
  isStopSell?: boolean
  market?: string
}

export interface RecordedCall {
  method: string
  path: string
  query: Record<string, string>
  headers: Record<string, string>
  body: string
}

export type AzureRoute = 'token' | 'resolve' | 'activate' | 'get' | 'list' | 'plans'

interface Fault {
  route: AzureRoute
  status: number
  remaining: number
  headers?: Record<string, string>
}

export interface AzureEmulatorOptions {
  /** Added to every resolve and activate (a realistic marketplace). */
  latencyMs?: number
  /** Keep every call (method, path, headers, body) for assertions; off for load runs. Default true. */
  record?: boolean
}

const API_VERSION = '2018-08-31'

export function createAzureEmulator(options: AzureEmulatorOptions = {}) {
  const apps = new Map<string, { tenantId: string; clientSecret: string }>()
  const subscriptions = new Map<string, EmulatedSubscription>()
  const purchaseTokens = new Map<string, { subscriptionId: string; expiresAt: number }>()
  const accessTokens = new Map<string, { appId: string; tenantId: string; expiresAt: number }>()
  const plans = new Map<string, EmulatedPlan[]>()
  /** Subscriptions a resolve answered 200 for: what "the marketplace resolved" means to a test. */
  const resolved = new Set<string>()
  const calls: RecordedCall[] = []
  const faults: Fault[] = []
  const hooks: Array<{ route: AzureRoute; run: () => void }> = []
  let accessTokenLifetimeSeconds = 3599

  const app = new Hono()
  const counts: Record<string, number> = {}

  app.use('*', async (c, next) => {
    const url = new URL(c.req.url)
    const route = routeOf({ method: c.req.method, path: url.pathname, query: {}, headers: {}, body: '' }) ?? 'other'
    counts[route] = (counts[route] ?? 0) + 1
    if (options.record === false) return next()
    calls.push({
      method: c.req.method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: Object.fromEntries(c.req.raw.headers),
      body: ['GET', 'HEAD'].includes(c.req.method) ? '' : await c.req.raw.clone().text(),
    })
    await next()
  })

  const injectFault = (route: AzureRoute) => {
    const hook = hooks.findIndex((h) => h.route === route)
    if (hook !== -1) hooks.splice(hook, 1)[0]!.run()
    const fault = faults.find((f) => f.route === route && f.remaining > 0)
    if (!fault) return null
    fault.remaining--
    return new Response(JSON.stringify({ error: { code: 'InternalServerError', message: 'injected fault' } }), {
      status: fault.status,
      headers: { 'content-type': 'application/json', ...fault.headers },
    })
  }
  const delay = () => (options.latencyMs ? new Promise((r) => setTimeout(r, options.latencyMs)) : Promise.resolve())

  // ---- Entra ID v2 token endpoint: POST /{tenant}/oauth2/v2.0/token --------------------
  app.post('/:tenant/oauth2/v2.0/token', async (c) => {
    const fault = injectFault('token')
    if (fault) return fault
    const tenant = c.req.param('tenant')
    const form = new URLSearchParams(await c.req.text())
    const aadError = (status: number, error: string, description: string) =>
      c.json({ error, error_description: description, error_codes: [Number(description.slice(5, 12)) || 0] }, status as 400)
    if (form.get('grant_type') !== 'client_credentials') {
      return aadError(400, 'unsupported_grant_type', 'AADSTS70003: The app requested an unsupported grant type.')
    }
    const clientId = form.get('client_id') ?? ''
    const registered = apps.get(clientId)
    if (!registered || registered.tenantId !== tenant) {
      return aadError(400, 'unauthorized_client', `AADSTS700016: Application with identifier '${clientId}' was not found in the directory '${tenant}'.`)
    }
    if (form.get('client_secret') !== registered.clientSecret) {
      return aadError(401, 'invalid_client', 'AADSTS7000215: Invalid client secret provided.')
    }
    const scopes = (form.get('scope') ?? '').split(' ')
    if (!scopes.includes(`${MARKETPLACE_RESOURCE}/.default`)) {
      return aadError(400, 'invalid_scope', 'AADSTS70011: The provided value for the input parameter \'scope\' is not valid.')
    }
    const accessToken = fakeJwt({ aud: MARKETPLACE_RESOURCE, tid: tenant, appid: clientId, jti: randomUUID() })
    accessTokens.set(accessToken, { appId: clientId, tenantId: tenant, expiresAt: Date.now() + accessTokenLifetimeSeconds * 1000 })
    return c.json({
      token_type: 'Bearer',
      expires_in: accessTokenLifetimeSeconds,
      ext_expires_in: accessTokenLifetimeSeconds,
      access_token: accessToken,
    })
  })

  // ---- SaaS fulfillment API v2 ---------------------------------------------------------
  const api = new Hono<{ Variables: { appId: string } }>()

  api.use('*', async (c, next) => {
    if (c.req.query('api-version') !== API_VERSION) {
      return c.json({ error: { code: 'BadArgument', message: 'The api-version query parameter is missing or not supported.' } }, 400)
    }
    const auth = c.req.header('authorization') ?? ''
    const match = /^Bearer (.+)$/.exec(auth)
    const issued = match ? accessTokens.get(match[1]!) : undefined
    if (!issued || issued.expiresAt < Date.now()) {
      return c.json({ error: { code: 'Forbidden', message: 'The authorization token is invalid, expired or not provided.' } }, 403)
    }
    c.set('appId', issued.appId)
    await next()
  })

  const forbidden = () =>
    Response.json(
      { error: { code: 'Forbidden', message: 'This SaaS subscription belongs to an offer published with a different Azure AD app ID.' } },
      { status: 403 },
    )
  const publicView = (sub: EmulatedSubscription) => {
    const { appId: _appId, ...rest } = sub
    return rest
  }

  api.post('/subscriptions/resolve', async (c) => {
    await delay()
    const fault = injectFault('resolve')
    if (fault) return fault
    const token = c.req.header('x-ms-marketplace-token')
    if (token === undefined || token === '') {
      return c.json({ error: { code: 'BadArgument', message: 'HeaderNotPresent: x-ms-marketplace-token' } }, 400)
    }
    const entry = purchaseTokens.get(token)
    if (!entry || entry.expiresAt < Date.now()) {
      return c.json({ error: { code: 'BadArgument', message: 'The marketplace token is malformed, invalid or expired.' } }, 400)
    }
    const sub = subscriptions.get(entry.subscriptionId)!
    if (sub.appId !== c.get('appId')) return forbidden()
    resolved.add(sub.id)
    return c.json({
      id: sub.id,
      subscriptionName: sub.name,
      offerId: sub.offerId,
      planId: sub.planId,
      // The documents show this top-level quantity as a string, empty when not per seat.
      quantity: sub.quantity === undefined ? '' : String(sub.quantity),
      subscription: publicView(sub),
    })
  })

  api.post('/subscriptions/:id/activate', async (c) => {
    await delay()
    const fault = injectFault('activate')
    if (fault) return fault
    const sub = subscriptions.get(c.req.param('id'))
    if (!sub) return c.json({ error: { code: 'EntityNotFound', message: 'Subscription not found.' } }, 404)
    if (sub.appId !== c.get('appId')) return forbidden()
    if (sub.saasSubscriptionStatus === 'Unsubscribed') {
      return c.json({ error: { code: 'EntityNotFound', message: 'The SaaS subscription is in an Unsubscribed state.' } }, 404)
    }
    let body: { planId?: unknown; quantity?: unknown }
    try {
      body = await c.req.json()
    } catch {
      return c.json({ error: { code: 'BadArgument', message: 'Request body is not valid JSON.' } }, 400)
    }
    const badRequest = (message: string) => c.json({ error: { code: 'BadArgument', message } }, 400)
    if (typeof body.planId !== 'string' || body.planId === '') return badRequest('planId doesn\'t exist in request payload.')
    if (body.planId !== sub.planId) return badRequest('planId in request payload doesn\'t match the one that was purchased.')
    if (body.quantity !== undefined && body.quantity !== null && body.quantity !== '') {
      if (Number(body.quantity) !== sub.quantity) return badRequest('quantity in request payload doesn\'t match the one that was purchased.')
    }
    if (sub.saasSubscriptionStatus === 'Subscribed' || sub.saasSubscriptionStatus === 'Suspended') {
      return badRequest(`The SaaS subscription is in a ${sub.saasSubscriptionStatus} state.`)
    }
    const start = new Date()
    const end = new Date(start)
    end.setUTCMonth(end.getUTCMonth() + (sub.term.termUnit === 'P1Y' ? 12 : 1))
    sub.saasSubscriptionStatus = 'Subscribed'
    sub.term = { ...sub.term, startDate: start.toISOString(), endDate: end.toISOString() }
    sub.lastModified = new Date().toISOString()
    return c.body(null, 200)
  })

  api.get('/subscriptions/:id/listAvailablePlans', (c) => {
    const fault = injectFault('plans')
    if (fault) return fault
    const sub = subscriptions.get(c.req.param('id'))
    // Documented: "If subscriptionId is not found, empty response body is returned."
    if (!sub) return c.body(null, 200)
    if (sub.appId !== c.get('appId')) return forbidden()
    return c.json({ plans: plans.get(sub.offerId) ?? [{ planId: sub.planId, displayName: sub.planId, isPrivate: false }] })
  })

  api.get('/subscriptions/:id', (c) => {
    const fault = injectFault('get')
    if (fault) return fault
    const sub = subscriptions.get(c.req.param('id'))
    if (!sub || sub.appId !== c.get('appId')) {
      return c.json({ error: { code: 'EntityNotFound', message: 'SaaS subscription cannot be found.' } }, 404)
    }
    return c.json(publicView(sub))
  })

  api.get('/subscriptions', (c) => {
    const fault = injectFault('list')
    if (fault) return fault
    const mine = [...subscriptions.values()].filter((sub) => sub.appId === c.get('appId'))
    const offset = Number(c.req.query('continuationToken') ?? '0') || 0
    const page = mine.slice(offset, offset + 100)
    const next = offset + 100 < mine.length ? offset + 100 : null
    const origin = new URL(c.req.url).origin
    return c.json({
      subscriptions: page.map(publicView),
      ...(next === null
        ? {}
        : { '@nextLink': `${origin}/api/saas/subscriptions?continuationToken=${next}&api-version=${API_VERSION}` }),
    })
  })

  app.route('/api/saas', api)

  // ---- Test controls over HTTP, for the benchmarks' separate emulator process ----------------
  app.post('/_emulator/apps', async (c) => {
    const body = (await c.req.json()) as { tenantId: string; clientId: string; clientSecret: string }
    apps.set(body.clientId, { tenantId: body.tenantId, clientSecret: body.clientSecret })
    return c.json({ ok: true })
  })
  app.post('/_emulator/purchases', async (c) => {
    const body = (await c.req.json()) as { appId: string; count: number; planId?: string; quantity?: number }
    const tokens: string[] = []
    for (let i = 0; i < body.count; i++) {
      const sub = controls.addSubscription({ appId: body.appId, planId: body.planId ?? 'silver', quantity: body.quantity })
      tokens.push(controls.issuePurchaseToken(sub.id))
    }
    return c.json({ tokens })
  })
  app.get('/_emulator/stats', (c) => c.json({ calls: counts, subscriptions: subscriptions.size }))

  // ---- Test controls (not part of Microsoft's API) --------------------------------------
  const controls = {
    app,
    calls,
    subscriptions,
    resolved,
    /** Registers a publisher's Entra app (the ISV's client credentials). */
    registerApp(input: { tenantId: string; clientId: string; clientSecret: string }) {
      apps.set(input.clientId, { tenantId: input.tenantId, clientSecret: input.clientSecret })
    },
    /** Creates a purchased subscription (PendingFulfillmentStart unless told otherwise). */
    addSubscription(input: Partial<EmulatedSubscription> & { appId: string }): EmulatedSubscription {
      const tenantId = randomUUID()
      const party = { emailId: 'buyer@contoso.example', objectId: randomUUID(), tenantId, puid: '10037FFE8D3C0000' }
      const now = new Date().toISOString()
      const sub: EmulatedSubscription = {
        id: randomUUID(),
        name: 'Contoso Cloud Solution',
        publisherId: 'contoso',
        offerId: 'offer1',
        planId: 'silver',
        beneficiary: party,
        purchaser: party,
        saasSubscriptionStatus: 'PendingFulfillmentStart',
        term: { termUnit: 'P1M' },
        autoRenew: true,
        isTest: false,
        isFreeTrial: false,
        allowedCustomerOperations: ['Delete', 'Update', 'Read'],
        sessionMode: 'None',
        sandboxType: 'None',
        created: now,
        lastModified: '0001-01-01T00:00:00',
        ...input,
      }
      subscriptions.set(sub.id, sub)
      return sub
    },
    /** Mints a landing-page token for a subscription: base64 with `+`, `/` and `=` in it, like Azure's. */
    issuePurchaseToken(subscriptionId: string, options: { expiresInMs?: number; token?: string } = {}): string {
      let token = options.token
      while (!token) {
        const candidate = randomBytes(96).toString('base64')
        // Make sure each token exercises the `+` and `/` handling.
        if (candidate.includes('+') && candidate.includes('/')) token = candidate
      }
      purchaseTokens.set(token, { subscriptionId, expiresAt: Date.now() + (options.expiresInMs ?? 24 * 3600 * 1000) })
      return token
    },
    setPlans(offerId: string, offerPlans: EmulatedPlan[]) {
      plans.set(offerId, offerPlans)
    },
    setAccessTokenLifetime(seconds: number) {
      accessTokenLifetimeSeconds = seconds
    },
    /** The next `times` calls of `route` answer `status` (e.g. 503) instead of being served. */
    failNext(route: AzureRoute, status: number, times = 1, headers?: Record<string, string>) {
      faults.push({ route, status, remaining: times, headers })
    },
    /** Runs `run` just before the next call of `route` is served (e.g. another tab activating first). */
    onNext(route: AzureRoute, run: () => void) {
      hooks.push({ route, run })
    },
    callsTo(route: AzureRoute): RecordedCall[] {
      return calls.filter((call) => routeOf(call) === route)
    },
    async listen(): Promise<{ url: string; close: () => Promise<void> }> {
      return new Promise((resolve) => {
        const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, (info: AddressInfo) => {
          resolve({
            url: `http://127.0.0.1:${info.port}`,
            close: () => new Promise<void>((done) => server.close(() => done())),
          })
        })
      })
    },
  }
  return controls
}

export type AzureEmulator = ReturnType<typeof createAzureEmulator>

function routeOf(call: RecordedCall): AzureRoute | null {
  if (call.method === 'POST' && /\/oauth2\/v2\.0\/token$/.test(call.path)) return 'token'
  if (call.method === 'POST' && call.path === '/api/saas/subscriptions/resolve') return 'resolve'
  if (call.method === 'POST' && /^\/api\/saas\/subscriptions\/[^/]+\/activate$/.test(call.path)) return 'activate'
  if (call.method === 'GET' && /\/listAvailablePlans$/.test(call.path)) return 'plans'
  if (call.method === 'GET' && call.path === '/api/saas/subscriptions') return 'list'
  if (call.method === 'GET' && /^\/api\/saas\/subscriptions\/[^/]+$/.test(call.path)) return 'get'
  return null
}

function fakeJwt(claims: Record<string, unknown>): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const now = Math.floor(Date.now() / 1000)
  return `${encode({ typ: 'JWT', alg: 'RS256' })}.${encode({ iat: now, nbf: now, exp: now + 3600, ...claims })}.${randomBytes(32).toString('base64url')}`
}
