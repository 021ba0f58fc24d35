import { Hono, type MiddlewareHandler } from 'hono'
import { KeyObject, createHash, createHmac, randomBytes, randomUUID, sign as nodeSign, constants as cryptoConstants, webcrypto } from 'node:crypto'
import { listenOnLoopback } from './listen'

/**
 * Azure emulator: the Entra ID v2 token endpoint (client credentials), Entra's signing keys
 * (JWKS), the SaaS fulfillment API v2 with its operations API and the metered billing APIs
 * (api-version 2018-08-31), plus a sender of Microsoft's webhook, written from Microsoft's
 * documents (shared/seeds/002, 003; "SaaS fulfillment operations APIs v2", "Implementing a webhook
 * on the SaaS service", "Marketplace metered billing APIs"
 * https://learn.microsoft.com/partner-center/marketplace/marketplace-metering-service-apis) and
 * shared/spec/marketplaces.md, not from the broker's client.
 *
 * What it enforces, as the real service does:
 * - token: `grant_type=client_credentials`, a registered client id in that tenant, the right
 *   secret (else 401 invalid_client / AADSTS7000215), scope `20e940b3-…/.default`.
 * - every fulfillment and operations call: `api-version=2018-08-31`, a bearer token it issued
 *   and that has not expired, for the app the offer was published with (else 403).
 * - resolve: `x-ms-marketplace-token` present (else 400 HeaderNotPresent), known, unexpired.
 * - activate: planId present and equal to the purchased plan, quantity equal when given;
 *   400 when Subscribed/Suspended, 404 when Unsubscribed; 200 with no body.
 * - JWKS `GET /{tenant}/discovery/v2.0/keys` (and v1 `/{tenant}/discovery/keys`): Entra's shape,
 *   `{keys: [{kty: "RSA", use: "sig", kid, x5t, n, e, x5c: [self-signed cert], issuer?}]}`, no
 *   `alg` (Entra sends none). Real RSA keys, made on first use; `rotateSigningKey()` adds one.
 * - webhook tokens (`mintWebhookToken`): RS256 with `kid` (and `x5t` for v1), `aud` = the ISV's
 *   client id, `iss` `https://sts.windows.net/{tid}/` (v1) or
 *   `https://login.microsoftonline.com/{tid}/v2.0` (v2), `tid`, `appid` (v1) / `azp` (v2) =
 *   the marketplace's app `20e940b3-…`, iat/nbf/exp; every part can be forged for negative tests.
 * - operations: `GET …/subscriptions/{id}/operations` lists the InProgress ones as
 *   `{operations: [...]}`; `GET …/operations/{opId}` answers the operation (404 when unknown, or
 *   when it belongs to another subscription; 403 for another app's subscription);
 *   `PATCH …/operations/{opId}` with `{"status": "Success" | "Failure"}` settles an InProgress
 *   one (Success applies ChangePlan / ChangeQuantity / Reinstate to the subscription, Failure
 *   leaves it), 409 when the operation is already settled (e.g. auto-accepted), 400 for any
 *   other status.
 * - cancel, `DELETE …/subscriptions/{id}`: 202 with `Operation-Location` (and `Operation-Id`) of an
 *   `Unsubscribe` operation that is InProgress for `cancelDelayMs` (default 0: Succeeded at once),
 *   then Succeeded with the subscription Unsubscribed; 400 when `Delete` is not among its
 *   allowedCustomerOperations; 404 unknown; 403 another app's. `cancelWebhookBody` is the
 *   Unsubscribe webhook Microsoft sends afterwards (`operationRequestSource: "Partner"`).
 * - lifecycle (`startOperation`): Suspend / Unsubscribe / Renew have already happened at
 *   Microsoft (operation `Succeeded`, GET shows the new status or term); ChangePlan /
 *   ChangeQuantity / Reinstate are `InProgress` and GET shows the old plan / quantity / status
 *   until PATCH Success or the optional auto-accept (Microsoft's is about 10 s).
 * - metering, `POST /api/usageEvent` `{resourceId (= subscription id), quantity, dimension,
 *   effectiveStartTime, planId}`: same token rules (another app's subscription: 403). 200
 *   `{usageEventId, status: "Accepted", messageTime, resourceId, quantity, dimension,
 *   effectiveStartTime, planId}`; 409 `{additionalInfo: {acceptedMessage: {…the accepted event,
 *   status: "Duplicate"}}, message: "This usage event already exist.", code: "Conflict"}` when an
 *   event for the same resource, dimension and UTC hour was accepted; 400 with the documented body
 *   `{message: "One or more errors have occurred.", target: "usageEventRequest", details:
 *   [{message, target, code}], code: "BadArgument"}` for missing / malformed input, quantity ≤ 0,
 *   effectiveStartTime in the future or more than 24 h back ("Event has expired."), an unknown
 *   resource, a subscription not Subscribed, a planId that is not the purchased plan or a dimension
 *   the plan lacks (`setDimensions`); `details[0].code` names the reason with the batch statuses
 *   (`BadArgument`, `InvalidQuantity`, `Expired`, `ResourceNotFound`, `ResourceNotActive`,
 *   `InvalidDimension`), an emulator choice (the document shows only BadArgument).
 * - `POST /api/batchUsageEvent` `{request: [...]}`: 1..25 items, else 400; 200 `{count, result}`
 *   with one item per event, in order: an accepted event as above, else `{status, messageTime:
 *   "0001-01-01T00:00:00", error, resourceId, quantity, dimension, effectiveStartTime, planId}`
 *   with the documented statuses `Duplicate` (error = the 409 body; also the second of two items
 *   for the same hour in one batch), `Expired`, `ResourceNotFound`, `ResourceNotAuthorized` (another
 *   app's subscription), `ResourceNotActive`, `InvalidDimension`, `InvalidQuantity`, `BadArgument`
 *   (error = the 400 body). `Error` is documented but never produced.
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

export type AzureRoute =
  | 'token'
  | 'resolve'
  | 'activate'
  | 'get'
  | 'list'
  | 'plans'
  | 'jwks'
  | 'getOperation'
  | 'listOperations'
  | 'patchOperation'
  | 'delete'
  | 'usageEvent'
  | 'batchUsageEvent'

/** `Subscribe`: a plan with auto-activation was bought (see azure-auto-activation.ts). */
export type OperationAction = 'ChangePlan' | 'ChangeQuantity' | 'Suspend' | 'Unsubscribe' | 'Reinstate' | 'Renew' | 'Subscribe'

/** Documented values of an operation's `status`. */
export type OperationStatus = 'NotStarted' | 'InProgress' | 'Failed' | 'Succeeded' | 'Conflict'

/** An operation as `GET …/operations/{operationId}` answers it. */
export interface EmulatedOperation {
  id: string
  activityId: string
  subscriptionId: string
  offerId: string
  publisherId: string
  /** The plan the operation leads to (the new one for ChangePlan). */
  planId: string
  /** The seats the operation leads to (the new number for ChangeQuantity); null when not per seat. */
  quantity: number | null
  action: OperationAction
  timeStamp: string
  status: OperationStatus
  errorStatusCode: string
  errorMessage: string
}

/** The JSON Microsoft POSTs to the Connection webhook. */
export interface AzureWebhookBody {
  id: string
  activityId: string
  subscriptionId: string
  publisherId: string
  offerId: string
  planId: string
  quantity?: string | number
  action: OperationAction
  status: 'InProgress' | 'Succeeded'
  timeStamp: string
  /** `Partner` when the publisher asked for it through the API (a cancel), else `Azure`. */
  operationRequestSource: 'Azure' | 'Partner'
  subscription?: Omit<EmulatedSubscription, 'appId'>
  purchaseToken?: null
}

/** How the webhook body spells `quantity`: `"25"`, `" 25"` (seed 003), `""`, `25`, or no field. */
export type WebhookQuantitySpelling = 'string' | 'padded' | 'empty' | 'number' | 'absent'

export interface StartOperationInput {
  planId?: string
  quantity?: number
  /** Settle an InProgress operation as Success this many ms after it starts (Microsoft: ~10 s). */
  autoAcceptMs?: number
  /** Default: `'string'` for ChangeQuantity, `'absent'` for the other actions. */
  webhookQuantity?: WebhookQuantitySpelling
  /** Add `subscription` (as GET answers it now) and `purchaseToken: null`, as newer samples do. */
  includeSubscription?: boolean
}

export interface MintWebhookTokenInput {
  /** The publisher's tenant (Partner Center "Microsoft Entra tenant ID"): `iss` and `tid`. */
  tenantId: string
  /** The ISV's app (Partner Center "Microsoft Entra application ID"): default `aud`. */
  clientId: string
  audience?: string
  /** The calling app: `appid` (v1) / `azp` (v2); default the marketplace's app; null = no claim. */
  appid?: string | null
  /** Sets an `azp` claim (also on v1 tokens). */
  azp?: string
  /** `'v1'` (default): `https://sts.windows.net/{tid}/`; `'v2'`: `https://login.microsoftonline.com/{tid}/v2.0`; or a literal issuer. */
  issuer?: 'v1' | 'v2' | (string & {})
  /** Overrides `tid` only (the issuer keeps `tenantId`). */
  tid?: string
  /** Default 3600. Negative = already expired. */
  expiresInSeconds?: number
  /** Shifts iat/nbf/exp (negative = issued in the past, positive = not yet valid). */
  iatOffsetSeconds?: number
  /** Header `kid`; default the current signing key's; null = no `kid` (and no `x5t`). */
  kid?: string | null
  /** Sign with this private key instead of Entra's (e.g. `strangerKey()`). */
  key?: CryptoKey
  /** Default RS256. Also RS384/RS512/PS256/PS384/PS512, `none` (no signature) and HS256/384/512 keyed with the public key's PEM (algorithm confusion). */
  alg?: string
  /** Extra claims, or overrides; a value of undefined removes the claim. */
  claims?: Record<string, unknown>
}

/** A usage event as the publisher sends it (SaaS: `resourceId` is the subscription id). */
export interface UsageEventInput {
  resourceId: string
  quantity: number
  dimension: string
  /** UTC; Microsoft's examples have no zone (`2018-12-01T08:30:14`), which means UTC. */
  effectiveStartTime: string
  planId: string
}

/** The documented per-item statuses of `POST /api/batchUsageEvent` ("Description of status code"). */
export type UsageEventStatus =
  | 'Accepted'
  | 'Expired'
  | 'Duplicate'
  | 'Error'
  | 'ResourceNotFound'
  | 'ResourceNotAuthorized'
  | 'ResourceNotActive'
  | 'InvalidDimension'
  | 'InvalidQuantity'
  | 'BadArgument'

/** An event Microsoft accepted: the 200 body of `POST /api/usageEvent`. */
export interface AcceptedUsageEvent extends UsageEventInput {
  usageEventId: string
  status: 'Accepted'
  messageTime: string
}

/** Microsoft's error body for the metering APIs (the 400 example; the 409 adds `additionalInfo`). */
export interface UsageEventError {
  message: string
  code: string
  target?: string
  details?: Array<{ message: string; target: string; code: string }>
  additionalInfo?: { acceptedMessage: Omit<AcceptedUsageEvent, 'status'> & { status: 'Duplicate' } }
}

/** One item of `result` in the `POST /api/batchUsageEvent` answer. */
export interface BatchUsageEventResult extends Partial<UsageEventInput> {
  usageEventId?: string
  status: UsageEventStatus
  messageTime: string
  error?: UsageEventError
}

interface Fault {
  route: AzureRoute
  status: number
  remaining: number
  headers?: Record<string, string>
}

export interface AzureEmulatorOptions {
  /** Added to every resolve and activate (a realistic marketplace). */
  latencyMs?: number
  /** The metering APIs answer this long after they have taken the events (a slow way back: answers a crash can lose). */
  meteringAnswerDelayMs?: number
  /** Keep every call (method, path, headers, body) for assertions; off for load runs. Default true. */
  record?: boolean
  /**
   * How long a publisher's cancel (`DELETE …/subscriptions/{id}`) stays InProgress before it
   * succeeds and the subscription is Unsubscribed. Default 0: done before the 202 is answered.
   */
  cancelDelayMs?: number
}

const API_VERSION = '2018-08-31'
/** Documented: "The maximal number of events in a single batch is 25." */
const MAX_BATCH_USAGE_EVENTS = 25
/** Documented: usage events "can only be emitted for the past 24 hours". */
const USAGE_WINDOW_MS = 24 * 3600_000
/** The `messageTime` Microsoft puts on an item it did not accept (the documented Duplicate item). */
const NO_MESSAGE_TIME = '0001-01-01T00:00:00'

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
  let cancelDelayMs = options.cancelDelayMs ?? 0
  const operations = new Map<string, EmulatedOperation>()
  const autoAccepts = new Map<string, ReturnType<typeof setTimeout>>()
  /** Every usage event Microsoft accepted, oldest first. */
  const usageEvents: AcceptedUsageEvent[] = []
  /** The accepted event per resource, dimension and UTC hour (what makes the next one a duplicate). */
  const usageEventsByHour = new Map<string, AcceptedUsageEvent>()
  /** Custom dimensions per `offerId/planId`; a plan without an entry takes any dimension. */
  const dimensions = new Map<string, Set<string>>()
  /** The metering windows' clock (24 h back, not in the future). */
  let meteringNow: () => number = () => Date.now()
  /** Entra's signing keys, newest first; made on first use (RSA key generation is not free). */
  let keyring: Promise<SigningKey[]> | null = null
  const signingKeys = () => (keyring ??= makeSigningKey().then((key) => [key]))
  /** The marketplace app's service principal in the publisher tenant (`oid` / `sub` of its tokens). */
  const marketplacePrincipalId = randomUUID()

  const app = new Hono()
  const counts: Record<string, number> = {}
  /** Requests received and not answered yet (a test waits for Microsoft to finish what it was sent). */
  let inFlight = 0

  app.use('*', async (c, next) => {
    const url = new URL(c.req.url)
    const route = routeOf({ method: c.req.method, path: url.pathname, query: {}, headers: {}, body: '' }) ?? 'other'
    counts[route] = (counts[route] ?? 0) + 1
    inFlight++
    try {
      if (options.record !== false) {
        calls.push({
          method: c.req.method,
          path: url.pathname,
          query: Object.fromEntries(url.searchParams),
          headers: Object.fromEntries(c.req.raw.headers),
          body: ['GET', 'HEAD'].includes(c.req.method) ? '' : await c.req.raw.clone().text(),
        })
      }
      await next()
    } finally {
      inFlight--
    }
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
  const answerDelay = () => (options.meteringAnswerDelayMs ? new Promise((r) => setTimeout(r, options.meteringAnswerDelayMs)) : Promise.resolve())

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

  /** Every fulfillment, operations and metering call: the api-version and a bearer token it issued. */
  const requireMarketplaceToken: MiddlewareHandler<{ Variables: { appId: string } }> = async (c, next) => {
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
  }
  api.use('*', requireMarketplaceToken)

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
    startBilling(sub)
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

  // ---- Operations API ------------------------------------------------------------------
  const notFound = (message: string) => Response.json({ error: { code: 'EntityNotFound', message } }, { status: 404 })
  /** The subscription in the path, or the answer for a missing one (404) or another app's (403). */
  const ownSubscription = (id: string, appId: string): { sub: EmulatedSubscription; refusal?: never } | { sub?: never; refusal: Response } => {
    const sub = subscriptions.get(id)
    if (!sub) return { refusal: notFound('SaaS subscription cannot be found.') }
    if (sub.appId !== appId) return { refusal: forbidden() }
    return { sub }
  }
  const operationIn = (sub: EmulatedSubscription, operationId: string) => {
    const op = operations.get(operationId)
    return op && op.subscriptionId === sub.id ? op : undefined
  }

  api.get('/subscriptions/:id/operations', (c) => {
    const fault = injectFault('listOperations')
    if (fault) return fault
    const { sub, refusal } = ownSubscription(c.req.param('id'), c.get('appId'))
    if (refusal) return refusal
    return c.json({
      operations: [...operations.values()].filter((op) => op.subscriptionId === sub.id && op.status === 'InProgress'),
    })
  })

  api.get('/subscriptions/:id/operations/:operationId', (c) => {
    const fault = injectFault('getOperation')
    if (fault) return fault
    const { sub, refusal } = ownSubscription(c.req.param('id'), c.get('appId'))
    if (refusal) return refusal
    const op = operationIn(sub, c.req.param('operationId'))
    if (!op) return notFound('Operation cannot be found.')
    return c.json(op)
  })

  api.patch('/subscriptions/:id/operations/:operationId', async (c) => {
    const fault = injectFault('patchOperation')
    if (fault) return fault
    const { sub, refusal } = ownSubscription(c.req.param('id'), c.get('appId'))
    if (refusal) return refusal
    const op = operationIn(sub, c.req.param('operationId'))
    if (!op) return notFound('Operation cannot be found.')
    let body: { status?: unknown }
    try {
      body = await c.req.json()
    } catch {
      return c.json({ error: { code: 'BadArgument', message: 'Request body is not valid JSON.' } }, 400)
    }
    if (body.status !== 'Success' && body.status !== 'Failure') {
      return c.json({ error: { code: 'BadArgument', message: 'status must be Success or Failure.' } }, 400)
    }
    if (op.status !== 'InProgress') {
      return c.json({ error: { code: 'Conflict', message: `The operation is already ${op.status}.` } }, 409)
    }
    settle(op, body.status)
    return c.body(null, 200)
  })

  // "Cancel a subscription" (seeds 002/003): the publisher unsubscribes a subscription. 202 with
  // an `Operation-Location` to poll until the operation is Succeeded (then the subscription is
  // Unsubscribed), Failed or Conflict; 400 when Delete is not among its allowedCustomerOperations;
  // 404 unknown, 403 another app's. Microsoft's own emulator answers an Unsubscribed one 202 too
  // (an operation that changes nothing) and adds an `Operation-Id` header.
  api.delete('/subscriptions/:id', (c) => {
    const fault = injectFault('delete')
    if (fault) return fault
    const { sub, refusal } = ownSubscription(c.req.param('id'), c.get('appId'))
    if (refusal) return refusal
    if (!sub.allowedCustomerOperations.includes('Delete')) {
      return c.json({ error: { code: 'BadArgument', message: 'Delete is not in allowedCustomerOperations list for this SaaS subscription.' } }, 400)
    }
    const operation: EmulatedOperation = {
      id: randomUUID(),
      activityId: randomUUID(),
      subscriptionId: sub.id,
      offerId: sub.offerId,
      publisherId: sub.publisherId,
      planId: sub.planId,
      quantity: sub.quantity ?? null,
      action: 'Unsubscribe',
      timeStamp: microsoftTimestamp(),
      status: 'InProgress',
      errorStatusCode: '',
      errorMessage: '',
    }
    operations.set(operation.id, operation)
    const finish = () => {
      if (operation.status !== 'InProgress') return
      if (sub.saasSubscriptionStatus !== 'Unsubscribed') applyChange(sub, operation)
      operation.status = 'Succeeded'
    }
    const delayMs = cancelDelayMs
    if (delayMs > 0) {
      const timer = setTimeout(finish, delayMs)
      timer.unref?.()
      autoAccepts.set(operation.id, timer)
    } else finish()
    const location = `${new URL(c.req.url).origin}/api/saas/subscriptions/${encodeURIComponent(sub.id)}/operations/${operation.id}?api-version=${API_VERSION}`
    return c.body(null, 202, { 'Operation-Location': location, 'Operation-Id': operation.id })
  })

  app.route('/api/saas', api)

  // ---- Marketplace metered billing APIs: POST /api/usageEvent, POST /api/batchUsageEvent -----
  const metering = new Hono<{ Variables: { appId: string } }>()
  const hourKey = (resourceId: string, dimension: string, at: number) =>
    `${resourceId}\n${dimension}\n${Math.floor(at / 3600_000)}`
  /** The body Microsoft answers a refused single event with (its 400 example), `code` of the detail = the reason. */
  const usageError = (status: UsageEventStatus, target: string, message: string): UsageEventError => ({
    message: 'One or more errors have occurred.',
    target: 'usageEventRequest',
    details: [{ message, target, code: status }],
    code: 'BadArgument',
  })
  const conflictError = (accepted: AcceptedUsageEvent): UsageEventError => ({
    additionalInfo: { acceptedMessage: { ...accepted, status: 'Duplicate' } },
    message: 'This usage event already exist.',
    code: 'Conflict',
  })
  type UsageVerdict =
    | { status: 'Accepted'; event: UsageEventInput; at: number }
    | { status: 'Duplicate'; accepted: AcceptedUsageEvent }
    | { status: 'ResourceNotAuthorized' }
    | { status: Exclude<UsageEventStatus, 'Accepted' | 'Duplicate' | 'ResourceNotAuthorized'>; target: string; message: string }
  /** Microsoft's checks of one usage event, in the order a publisher can fix them. */
  const judgeUsageEvent = (raw: unknown, appId: string): UsageVerdict => {
    const item = (raw !== null && typeof raw === 'object' ? raw : {}) as Record<string, unknown>
    const bad = (target: string, message: string) => ({ status: 'BadArgument' as const, target, message })
    for (const [field, target] of [['resourceId', 'ResourceId'], ['dimension', 'Dimension'], ['planId', 'PlanId'], ['effectiveStartTime', 'EffectiveStartTime']] as const) {
      if (typeof item[field] !== 'string' || item[field] === '') return bad(target, `The ${field} is required.`)
    }
    if (item.quantity === undefined || item.quantity === null) return bad('Quantity', 'The quantity is required.')
    if (typeof item.quantity !== 'number' || !Number.isFinite(item.quantity)) return bad('Quantity', 'The quantity is not a number.')
    const event = {
      resourceId: item.resourceId as string,
      quantity: item.quantity,
      dimension: item.dimension as string,
      effectiveStartTime: item.effectiveStartTime as string,
      planId: item.planId as string,
    }
    const at = parseUtc(event.effectiveStartTime)
    if (at === null) return bad('EffectiveStartTime', 'The effectiveStartTime is not a valid date and time.')
    if (event.quantity <= 0) return { status: 'InvalidQuantity', target: 'Quantity', message: 'The quantity passed is lower or equal to 0.' }
    const sub = subscriptions.get(event.resourceId)
    if (!sub) return { status: 'ResourceNotFound', target: 'ResourceId', message: 'The usage resource provided is invalid.' }
    if (sub.appId !== appId) return { status: 'ResourceNotAuthorized' }
    if (sub.saasSubscriptionStatus !== 'Subscribed') {
      return { status: 'ResourceNotActive', target: 'ResourceId', message: `The resource is suspended or was never activated (${sub.saasSubscriptionStatus}).` }
    }
    if (event.planId !== sub.planId) return bad('PlanId', 'The planId is not the plan purchased for this resource.')
    const known = dimensions.get(`${sub.offerId}/${sub.planId}`)
    if (known && !known.has(event.dimension)) {
      return { status: 'InvalidDimension', target: 'Dimension', message: 'The dimension for which the usage is passed is invalid for this offer/plan.' }
    }
    const now = meteringNow()
    if (at > now) return bad('EffectiveStartTime', 'The effectiveStartTime is in the future.')
    if (at < now - USAGE_WINDOW_MS) {
      return { status: 'Expired', target: 'EffectiveStartTime', message: 'The effectiveStartTime is more than 24 hours in the past. Event has expired.' }
    }
    const accepted = usageEventsByHour.get(hourKey(event.resourceId, event.dimension, at))
    if (accepted) return { status: 'Duplicate', accepted }
    return { status: 'Accepted', event, at }
  }
  const acceptUsageEvent = (event: UsageEventInput, at: number): AcceptedUsageEvent => {
    const accepted: AcceptedUsageEvent = { usageEventId: randomUUID(), status: 'Accepted', messageTime: microsoftTimestamp(), ...event }
    usageEvents.push(accepted)
    usageEventsByHour.set(hourKey(event.resourceId, event.dimension, at), accepted)
    return accepted
  }
  const readJson = async (req: Request): Promise<{ ok: true; body: unknown } | { ok: false }> => {
    try {
      return { ok: true, body: await req.json() }
    } catch {
      return { ok: false }
    }
  }

  metering.post('/usageEvent', requireMarketplaceToken, async (c) => {
    const fault = injectFault('usageEvent')
    if (fault) return fault
    const parsed = await readJson(c.req.raw)
    if (!parsed.ok) return c.json(usageError('BadArgument', 'usageEventRequest', 'The request body is not valid JSON.'), 400)
    const verdict = judgeUsageEvent(parsed.body, c.get('appId'))
    switch (verdict.status) {
      case 'Accepted': {
        const accepted = acceptUsageEvent(verdict.event, verdict.at)
        await answerDelay()
        return c.json(accepted, 200)
      }
      case 'Duplicate':
        return c.json(conflictError(verdict.accepted), 409)
      case 'ResourceNotAuthorized':
        return forbidden()
      default:
        return c.json(usageError(verdict.status, verdict.target, verdict.message), 400)
    }
  })

  metering.post('/batchUsageEvent', requireMarketplaceToken, async (c) => {
    const fault = injectFault('batchUsageEvent')
    if (fault) return fault
    const parsed = await readJson(c.req.raw)
    if (!parsed.ok) return c.json(usageError('BadArgument', 'batchUsageEventRequest', 'The request body is not valid JSON.'), 400)
    const request = (parsed.body as { request?: unknown } | null)?.request
    if (!Array.isArray(request) || request.length === 0) {
      return c.json(usageError('BadArgument', 'Request', 'The request is required.'), 400)
    }
    if (request.length > MAX_BATCH_USAGE_EVENTS) {
      return c.json(usageError('BadArgument', 'Request', `The batch contained more than ${MAX_BATCH_USAGE_EVENTS} usage events.`), 400)
    }
    const result = request.map((raw): BatchUsageEventResult => {
      const verdict = judgeUsageEvent(raw, c.get('appId'))
      if (verdict.status === 'Accepted') return acceptUsageEvent(verdict.event, verdict.at)
      const item = (raw !== null && typeof raw === 'object' ? raw : {}) as Partial<UsageEventInput>
      const echo = {
        resourceId: item.resourceId,
        quantity: item.quantity,
        dimension: item.dimension,
        effectiveStartTime: item.effectiveStartTime,
        planId: item.planId,
      }
      const error =
        verdict.status === 'Duplicate' ? conflictError(verdict.accepted)
        : verdict.status === 'ResourceNotAuthorized'
          ? { code: 'Forbidden', message: 'You are not authorized to provide usage for this resource.' }
          : usageError(verdict.status, verdict.target, verdict.message)
      return { status: verdict.status, messageTime: NO_MESSAGE_TIME, error, ...echo }
    })
    await answerDelay()
    return c.json({ count: result.length, result }, 200)
  })

  app.route('/api', metering)

  // ---- Entra signing keys: GET /{tenant}/discovery/v2.0/keys (and the v1 /discovery/keys) ------
  const jwks = async (tenant: string, version: 'v1' | 'v2') => {
    const fault = injectFault('jwks')
    if (fault) return fault
    const issuerTenant = ['common', 'organizations', 'consumers'].includes(tenant) ? '{tenantid}' : tenant
    const keys = (await signingKeys()).map((key) => ({
      kty: 'RSA',
      use: 'sig',
      kid: key.kid,
      x5t: key.kid,
      n: key.n,
      e: key.e,
      x5c: [key.x5c],
      ...(version === 'v2' ? { issuer: `https://login.microsoftonline.com/${issuerTenant}/v2.0` } : {}),
    }))
    return Response.json({ keys })
  }
  app.get('/:tenant/discovery/v2.0/keys', (c) => jwks(c.req.param('tenant'), 'v2'))
  app.get('/:tenant/discovery/keys', (c) => jwks(c.req.param('tenant'), 'v1'))

  // ---- The subscription life cycle at Microsoft ----------------------------------------------
  const clearAutoAccept = (operationId: string) => {
    const timer = autoAccepts.get(operationId)
    if (timer) clearTimeout(timer)
    autoAccepts.delete(operationId)
  }
  /** What the operation changes on Microsoft's side, once it has happened. */
  const applyChange = (sub: EmulatedSubscription, op: EmulatedOperation) => {
    switch (op.action) {
      case 'ChangePlan':
        sub.planId = op.planId
        break
      case 'ChangeQuantity':
        sub.quantity = op.quantity ?? undefined
        break
      case 'Reinstate':
        sub.saasSubscriptionStatus = 'Subscribed'
        break
      case 'Suspend':
        sub.saasSubscriptionStatus = 'Suspended'
        break
      case 'Unsubscribe':
        sub.saasSubscriptionStatus = 'Unsubscribed'
        break
      case 'Renew': {
        const months = termMonths(sub.term.termUnit)
        const start = sub.term.startDate ? new Date(sub.term.startDate) : new Date()
        const end = sub.term.endDate ? new Date(sub.term.endDate) : addMonths(start, months)
        sub.term = { ...sub.term, startDate: addMonths(start, months).toISOString(), endDate: addMonths(end, months).toISOString() }
        break
      }
    }
    sub.lastModified = new Date().toISOString()
  }
  const settle = (op: EmulatedOperation, outcome: 'Success' | 'Failure') => {
    clearAutoAccept(op.id)
    if (outcome === 'Failure') {
      op.status = 'Failed'
      return
    }
    const sub = subscriptions.get(op.subscriptionId)
    if (sub) applyChange(sub, op)
    op.status = 'Succeeded'
  }

  async function mintWebhookToken(input: MintWebhookTokenInput): Promise<string> {
    const current = (await signingKeys())[0]!
    const literalIssuer = input.issuer !== undefined && input.issuer !== 'v1' && input.issuer !== 'v2'
    const v2 = input.issuer === 'v2' || (literalIssuer && /\/v2\.0\/?$/.test(input.issuer!))
    const iss =
      input.issuer === 'v2'
        ? `https://login.microsoftonline.com/${input.tenantId}/v2.0`
        : literalIssuer
          ? input.issuer!
          : `https://sts.windows.net/${input.tenantId}/`
    const now = Math.floor(Date.now() / 1000) + (input.iatOffsetSeconds ?? 0)
    const caller = input.appid === undefined ? MARKETPLACE_RESOURCE : input.appid
    const claims: Record<string, unknown> = {
      aud: input.audience ?? input.clientId,
      iss,
      iat: now,
      nbf: now,
      exp: now + (input.expiresInSeconds ?? 3600),
      aio: randomBytes(48).toString('base64'),
      ...(v2
        ? { azp: input.azp ?? caller ?? undefined, azpacr: '2' }
        : { appid: caller ?? undefined, appidacr: '2', idp: `https://sts.windows.net/${input.tenantId}/`, azp: input.azp }),
      idtyp: 'app',
      oid: marketplacePrincipalId,
      rh: `0.${randomBytes(24).toString('base64url')}.`,
      sub: marketplacePrincipalId,
      tid: input.tid ?? input.tenantId,
      uti: randomBytes(16).toString('base64url'),
      ver: v2 ? '2.0' : '1.0',
      ...input.claims,
    }
    for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name]
    const alg = input.alg ?? 'RS256'
    const kid = input.kid === undefined ? current.kid : input.kid
    const header = { typ: 'JWT', alg, ...(kid === null ? {} : v2 ? { kid } : { x5t: kid, kid }) }
    const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
    const signingInput = `${encode(header)}.${encode(claims)}`
    return `${signingInput}.${await signJws(alg, signingInput, input.key ?? current.privateKey, current.spkiPem)}`
  }

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
  app.get('/_emulator/stats', (c) => c.json({ calls: counts, subscriptions: subscriptions.size, usageEvents: usageEvents.length }))
  app.get('/_emulator/usageEvents', (c) => c.json({ usageEvents }))
  app.delete('/_emulator/usageEvents', (c) => {
    controls.clearUsageEvents()
    return c.json({ ok: true })
  })

  // ---- Test controls (not part of Microsoft's API) --------------------------------------
  const controls = {
    app,
    calls,
    subscriptions,
    resolved,
    /** Every operation Microsoft knows, by id (what `GET …/operations/{id}` answers). */
    operations,
    mintWebhookToken,
    /** Every usage event Microsoft accepted (single or batch), oldest first; the array stays the same object. */
    usageEvents,
    /** The accepted usage events of one resource (subscription), optionally of one dimension. */
    usageEventsFor(resourceId: string, dimension?: string): AcceptedUsageEvent[] {
      return usageEvents.filter((e) => e.resourceId === resourceId && (dimension === undefined || e.dimension === dimension))
    },
    /** Microsoft forgets every usage event (no duplicates any more). */
    clearUsageEvents() {
      usageEvents.length = 0
      usageEventsByHour.clear()
    },
    /**
     * Records an accepted usage event without a call (e.g. "another process already reported this
     * hour"), so that the next one for the same resource, dimension and hour is a duplicate.
     */
    seedUsageEvent(event: UsageEventInput): AcceptedUsageEvent {
      const at = parseUtc(event.effectiveStartTime)
      if (at === null) throw new Error(`seedUsageEvent: bad effectiveStartTime ${event.effectiveStartTime}`)
      return acceptUsageEvent(event, at)
    },
    /** The plan's custom dimensions: others are `InvalidDimension`. null = any dimension (the default). */
    setDimensions(offerId: string, planId: string, names: string[] | null) {
      if (names === null) dimensions.delete(`${offerId}/${planId}`)
      else dimensions.set(`${offerId}/${planId}`, new Set(names))
    },
    /** The clock of the metering windows (24 h back, not in the future); null = the real one. */
    setMeteringClock(now: (() => number) | null) {
      meteringNow = now ?? (() => Date.now())
    },
    /** A fresh RSA private key Entra never published: tokens signed with it must be refused. */
    async strangerKey(): Promise<CryptoKey> {
      const pair = (await webcrypto.subtle.generateKey(RSA_KEY_PARAMS, true, ['sign', 'verify'])) as unknown as CryptoKeyPair
      return pair.privateKey
    },
    /** The `kid` tokens are signed with now (makes the keys if needed). */
    async currentKid(): Promise<string> {
      return (await signingKeys())[0]!.kid
    },
    /** Entra rolls its keys: a new key signs from now on; the old one stays published unless told. */
    async rotateSigningKey(options: { keepPrevious?: boolean } = {}): Promise<string> {
      const previous = options.keepPrevious === false ? [] : await signingKeys()
      const next = await makeSigningKey()
      keyring = Promise.resolve([next, ...previous])
      return next.kid
    },
    /**
     * Something happens to a subscription at Microsoft. Suspend / Unsubscribe / Renew have already
     * happened (operation `Succeeded`); ChangePlan / ChangeQuantity / Reinstate wait `InProgress`
     * for the publisher's PATCH (or `autoAcceptMs`). Returns the live operation and the body
     * Microsoft would POST to the Connection webhook (send it with `sendWebhook`).
     */
    startOperation(
      subscriptionId: string,
      action: OperationAction,
      input: StartOperationInput = {},
    ): { operation: EmulatedOperation; webhookBody: AzureWebhookBody } {
      const sub = subscriptions.get(subscriptionId)
      if (!sub) throw new Error(`startOperation: no subscription ${subscriptionId}`)
      if (action === 'ChangePlan' && !input.planId) throw new Error('startOperation: ChangePlan needs a planId')
      if (action === 'ChangeQuantity' && input.quantity === undefined) throw new Error('startOperation: ChangeQuantity needs a quantity')
      const alreadyHappened = action === 'Suspend' || action === 'Unsubscribe' || action === 'Renew'
      const operation: EmulatedOperation = {
        id: randomUUID(),
        activityId: randomUUID(),
        subscriptionId,
        offerId: sub.offerId,
        publisherId: sub.publisherId,
        planId: action === 'ChangePlan' ? input.planId! : sub.planId,
        quantity: action === 'ChangeQuantity' ? input.quantity! : (sub.quantity ?? null),
        action,
        timeStamp: microsoftTimestamp(),
        status: alreadyHappened ? 'Succeeded' : 'InProgress',
        errorStatusCode: '',
        errorMessage: '',
      }
      operations.set(operation.id, operation)
      if (alreadyHappened) applyChange(sub, operation)
      else if (input.autoAcceptMs !== undefined) {
        const timer = setTimeout(() => {
          if (operations.get(operation.id) === operation && operation.status === 'InProgress') settle(operation, 'Success')
        }, input.autoAcceptMs)
        timer.unref?.()
        autoAccepts.set(operation.id, timer)
      }
      const spelling = input.webhookQuantity ?? (action === 'ChangeQuantity' ? 'string' : 'absent')
      const seats = operation.quantity === null ? '' : String(operation.quantity)
      const quantity =
        spelling === 'string' ? seats
        : spelling === 'padded' ? ` ${seats}`
        : spelling === 'empty' ? ''
        : spelling === 'number' ? (operation.quantity ?? undefined)
        : undefined
      const webhookBody: AzureWebhookBody = {
        id: operation.id,
        activityId: operation.activityId,
        subscriptionId,
        publisherId: operation.publisherId,
        offerId: operation.offerId,
        planId: operation.planId,
        ...(quantity === undefined ? {} : { quantity }),
        action,
        status: alreadyHappened ? 'Succeeded' : 'InProgress',
        timeStamp: operation.timeStamp,
        operationRequestSource: 'Azure',
        ...(input.includeSubscription ? { subscription: structuredClone(publicView(sub)), purchaseToken: null } : {}),
      }
      return { operation, webhookBody }
    },
    /** Microsoft no longer knows the operation: GET / PATCH answer 404. */
    forgetOperation(operationId: string): boolean {
      clearAutoAccept(operationId)
      return operations.delete(operationId)
    },
    /**
     * POSTs a webhook body to `url` as Microsoft does: JSON, `Authorization: Bearer <Entra JWT>`
     * minted for `tenantId` / `clientId` (default: the only registered app), or `token` as given
     * (null = no header). Redirects are not followed.
     */
    async sendWebhook(
      url: string,
      webhookBody: object,
      options: { token?: string | null; tenantId?: string; clientId?: string } = {},
    ): Promise<Response> {
      let token: string | null
      if (options.token !== undefined) token = options.token
      else {
        let tenantId = options.tenantId
        let clientId = options.clientId
        if (!tenantId || !clientId) {
          if (apps.size !== 1) throw new Error('sendWebhook: give tenantId and clientId (more or fewer than one app registered)')
          const [onlyClientId, only] = [...apps.entries()][0]!
          clientId ??= onlyClientId
          tenantId ??= only.tenantId
        }
        token = await mintWebhookToken({ tenantId, clientId })
      }
      return fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token === null ? {} : { authorization: `Bearer ${token}` }) },
        body: JSON.stringify(webhookBody),
        redirect: 'manual',
      })
    },
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
    /** How long the next cancels (`DELETE …/subscriptions/{id}`) stay InProgress (0: done at once). */
    setCancelDelay(ms: number) {
      cancelDelayMs = ms
    },
    /**
     * The webhook Microsoft sends once a publisher's cancel has succeeded ("The partner will also
     * get webhook notification when the action is completed successfully"), for `sendWebhook`.
     */
    cancelWebhookBody(operationId: string): AzureWebhookBody {
      const operation = operations.get(operationId)
      if (!operation || operation.action !== 'Unsubscribe') throw new Error(`cancelWebhookBody: no cancel operation ${operationId}`)
      return {
        id: operation.id,
        activityId: operation.activityId,
        subscriptionId: operation.subscriptionId,
        publisherId: operation.publisherId,
        offerId: operation.offerId,
        planId: operation.planId,
        action: 'Unsubscribe',
        status: 'Succeeded',
        timeStamp: operation.timeStamp,
        operationRequestSource: 'Partner',
      }
    },
    /** The next `times` calls of `route` answer `status` (e.g. 503) instead of being served. */
    failNext(route: AzureRoute, status: number, times = 1, headers?: Record<string, string>) {
      faults.push({ route, status, remaining: times, headers })
    },
    /** Runs `run` just before the next call of `route` is served (e.g. another tab activating first). */
    onNext(route: AzureRoute, run: () => void) {
      hooks.push({ route, run })
    },
    /** Resolves once every request received so far has been answered (its change made at Microsoft). */
    async idle(timeoutMs = 10_000): Promise<void> {
      const deadline = Date.now() + timeoutMs
      while (inFlight > 0) {
        if (Date.now() > deadline) throw new Error(`idle: ${inFlight} requests still in flight`)
        await new Promise((r) => setTimeout(r, 10))
      }
    },
    callsTo(route: AzureRoute): RecordedCall[] {
      return calls.filter((call) => routeOf(call) === route)
    },
    async listen(): Promise<{ url: string; close: () => Promise<void> }> {
      return listenOnLoopback(app.fetch)
    },
  }
  return controls
}

export type AzureEmulator = ReturnType<typeof createAzureEmulator>

function routeOf(call: RecordedCall): AzureRoute | null {
  if (call.method === 'POST' && /\/oauth2\/v2\.0\/token$/.test(call.path)) return 'token'
  if (call.method === 'GET' && /\/discovery\/(v2\.0\/)?keys$/.test(call.path)) return 'jwks'
  if (call.method === 'POST' && call.path === '/api/usageEvent') return 'usageEvent'
  if (call.method === 'POST' && call.path === '/api/batchUsageEvent') return 'batchUsageEvent'
  if (call.method === 'GET' && /\/api\/saas\/subscriptions\/[^/]+\/operations$/.test(call.path)) return 'listOperations'
  if (call.method === 'GET' && /\/api\/saas\/subscriptions\/[^/]+\/operations\/[^/]+$/.test(call.path)) return 'getOperation'
  if (call.method === 'PATCH' && /\/api\/saas\/subscriptions\/[^/]+\/operations\/[^/]+$/.test(call.path)) return 'patchOperation'
  if (call.method === 'POST' && call.path === '/api/saas/subscriptions/resolve') return 'resolve'
  if (call.method === 'POST' && /^\/api\/saas\/subscriptions\/[^/]+\/activate$/.test(call.path)) return 'activate'
  if (call.method === 'GET' && /\/listAvailablePlans$/.test(call.path)) return 'plans'
  if (call.method === 'GET' && call.path === '/api/saas/subscriptions') return 'list'
  if (call.method === 'GET' && /^\/api\/saas\/subscriptions\/[^/]+$/.test(call.path)) return 'get'
  if (call.method === 'DELETE' && /^\/api\/saas\/subscriptions\/[^/]+$/.test(call.path)) return 'delete'
  return null
}

function fakeJwt(claims: Record<string, unknown>): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
  const now = Math.floor(Date.now() / 1000)
  return `${encode({ typ: 'JWT', alg: 'RS256' })}.${encode({ iat: now, nbf: now, exp: now + 3600, ...claims })}.${randomBytes(32).toString('base64url')}`
}

const RSA_KEY_PARAMS = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 }

interface SigningKey {
  /** Entra's kid is the certificate's SHA-1 thumbprint (base64url), the same as x5t. */
  kid: string
  privateKey: CryptoKey
  n: string
  e: string
  /** The self-signed certificate, base64 DER, as in Entra's `x5c`. */
  x5c: string
  spkiPem: string
}

async function makeSigningKey(): Promise<SigningKey> {
  const pair = (await webcrypto.subtle.generateKey(RSA_KEY_PARAMS, true, ['sign', 'verify'])) as unknown as CryptoKeyPair
  // Loaded only here so that processes that never ask for keys (the bench) don't pay for it;
  // @peculiar/x509 resolves its services through tsyringe, which needs the Reflect polyfill.
  await import('reflect-metadata')
  const x509 = await import('@peculiar/x509')
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomBytes(16).toString('hex'),
      name: 'CN=accounts.accesscontrol.windows.net',
      notBefore: new Date(Date.now() - 24 * 3600_000),
      notAfter: new Date(Date.now() + 5 * 365 * 24 * 3600_000),
      signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      keys: pair,
    },
    webcrypto as unknown as Crypto,
  )
  const der = Buffer.from(cert.rawData)
  const jwk = await webcrypto.subtle.exportKey('jwk', pair.publicKey as unknown as webcrypto.CryptoKey)
  const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', pair.publicKey as unknown as webcrypto.CryptoKey))
  return {
    kid: createHash('sha1').update(der).digest('base64url'),
    privateKey: pair.privateKey,
    n: jwk.n!,
    e: jwk.e!,
    x5c: der.toString('base64'),
    spkiPem: `-----BEGIN PUBLIC KEY-----\n${spki.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END PUBLIC KEY-----\n`,
  }
}

/** The JWS signature (base64url) of `signingInput` for `alg`, including deliberately bad ones. */
async function signJws(alg: string, signingInput: string, key: CryptoKey, publicKeyPem: string): Promise<string> {
  const data = Buffer.from(signingInput)
  if (alg === 'none') return ''
  const hmac = /^HS(256|384|512)$/.exec(alg)
  if (hmac) return createHmac(`sha${hmac[1]}`, publicKeyPem).update(data).digest('base64url')
  const rsa = /^(RS|PS)(256|384|512)$/.exec(alg)
  if (!rsa) throw new Error(`mintWebhookToken: unsupported alg ${alg}`)
  if (!key.extractable) {
    // A key Node cannot convert: sign with the key's own WebCrypto algorithm.
    const algorithm = key.algorithm.name === 'RSA-PSS' ? { name: 'RSA-PSS', saltLength: Number(rsa[2]) / 8 } : key.algorithm.name
    return Buffer.from(await webcrypto.subtle.sign(algorithm, key as unknown as webcrypto.CryptoKey, data)).toString('base64url')
  }
  const pss = rsa[1] === 'PS'
  return nodeSign(`sha${rsa[2]}`, data, {
    key: KeyObject.from(key as unknown as webcrypto.CryptoKey),
    padding: pss ? cryptoConstants.RSA_PKCS1_PSS_PADDING : cryptoConstants.RSA_PKCS1_PADDING,
    ...(pss ? { saltLength: Number(rsa[2]) / 8 } : {}),
  }).toString('base64url')
}

/**
 * Milliseconds of an ISO 8601 date-time; one without a zone is UTC (Microsoft's examples:
 * `2018-12-01T08:30:14`). null when it is not a date-time.
 */
function parseUtc(value: string): number | null {
  const match = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$/i.exec(value)
  if (!match) return null
  const at = Date.parse(match[1] ? value : `${value}Z`)
  return Number.isNaN(at) ? null : at
}

/** Microsoft's timestamps carry seven fractional digits: `2022-03-12T01:53:14.5038009Z`. */
/** What a successful activate (or an auto-activation) does at Microsoft: Subscribed, billed from now for one term. */
export function startBilling(sub: EmulatedSubscription): void {
  const start = new Date()
  const end = new Date(start)
  end.setUTCMonth(end.getUTCMonth() + (sub.term.termUnit === 'P1Y' ? 12 : 1))
  sub.saasSubscriptionStatus = 'Subscribed'
  sub.term = { ...sub.term, startDate: start.toISOString(), endDate: end.toISOString() }
  sub.lastModified = new Date().toISOString()
}

export function microsoftTimestamp(date = new Date()): string {
  return date.toISOString().replace(/Z$/, '0000Z')
}

/** Months in an ISO 8601 term unit (`P1M`, `P1Y`, `P3Y`, …); one month when unknown. */
function termMonths(termUnit: string): number {
  const match = /^P(\d+)([MY])$/.exec(termUnit)
  if (!match) return 1
  return Number(match[1]) * (match[2] === 'Y' ? 12 : 1)
}

function addMonths(date: Date, months: number): Date {
  const next = new Date(date)
  next.setUTCMonth(next.getUTCMonth() + months)
  return next
}
