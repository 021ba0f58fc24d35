// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata polyfill.
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { Hono } from 'hono'
import { type CryptoKey, SignJWT, generateKeyPair, importSPKI, jwtVerify } from 'jose'
import { createHash, generateKeyPairSync, randomBytes, randomInt, randomUUID, webcrypto } from 'node:crypto'
import { listenOnLoopback } from './listen'

/**
 * Google Cloud emulator, written from Google's documents (frontend and backend integration of
 * integrated SaaS, "Manage customer entitlements for your SaaS product", the Partner Procurement
 * API v1 reference, OAuth 2.0 for service accounts, Pub/Sub "Push subscriptions" and
 * "Authentication for push subscriptions"):
 *
 * - The marketplace's JWT signing certificates: JSON `{kid: PEM X.509}` served at the
 *   `cloud-commerce-partner` x509 metadata path, made from a real RSA key.
 * - Buyer JWTs (`x-gcp-marketplace-token`): RS256, `kid`, iss = the x509 URL, aud, sub, iat,
 *   exp (about 5 minutes later), `google.user_identity`, optionally `google.orders`.
 * - The OAuth token endpoint: `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` with a
 *   service-account assertion signed by the account's key, aud
 *   `https://oauth2.googleapis.com/token`, a `scope`; answers an access token.
 * - The Procurement API, bearer-authorized for the provider's service account (401
 *   UNAUTHENTICATED without a live token, 403 PERMISSION_DENIED for another provider):
 *   - `/v1/providers/{p}/accounts/{a}` get, `:approve` `{approvalName}`;
 *   - `/v1/providers/{p}/entitlements` list (`filter=account=<id>`, `state=<state>`, the state
 *     case-insensitive and with or without its `ENTITLEMENT_` prefix, as Google documents; pages
 *     of `pageSize`), get;
 *   - `…/entitlements/{e}:approve` (`{}` or `{properties, entitlementMigrated}`): only from
 *     ENTITLEMENT_ACTIVATION_REQUESTED, and only once the account's `signup` approval is APPROVED
 *     (else 400 FAILED_PRECONDITION "Precondition check failed."); becomes ENTITLEMENT_ACTIVE;
 *   - `:reject {reason}`: only from ENTITLEMENT_ACTIVATION_REQUESTED; becomes ENTITLEMENT_CANCELLED;
 *   - `:approvePlanChange {pendingPlanName}` and `:rejectPlanChange {pendingPlanName, reason}`:
 *     only from ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL, `pendingPlanName` = `newPendingPlan`.
 *     Approval moves to ENTITLEMENT_PENDING_PLAN_CHANGE (the plan changes when the billing cycle
 *     ends: `completePlanChange`), or with `setPlanChangeTiming('immediate')` to ENTITLEMENT_ACTIVE
 *     on the new plan at once; rejection goes back to ENTITLEMENT_ACTIVE on the old plan.
 *   Request bodies are read as Google's JSON mapping does: unknown fields are 400 INVALID_ARGUMENT,
 *   snake_case names are accepted. Every entitlement has a `usageReportingId`
 *   (`project_number:<digits>`, a Service Control consumerId) and its `updateTime` moves
 *   (strictly forward) on every change; `messageToUser` clears when the state changes.
 * - Pub/Sub: `pubsubMessage` builds the marketplace's message (`{eventId, eventType, providerId,
 *   entitlement: {id, updateTime, newPlan?}}` or `{…, account: {id, updateTime}}`), and `push`
 *   POSTs it the way a push subscription does: JSON `{"message": {"attributes"?, "data":
 *   base64(JSON), "messageId", "message_id", "publishTime", "publish_time"}, "subscription"}`,
 *   `Authorization: Bearer <OIDC JWT>` signed by Google's OIDC key (RS256, `kid`; claims iss
 *   `https://accounts.google.com`, aud = the configured audience, by default the push URL exactly,
 *   azp = sub = the service account's numeric id, email, email_verified, iat, exp one hour later),
 *   whose JWKS is served at `/oauth2/v3/certs` (`oidcCertsUrl`; `rotateOidcKey`, `oidcKid`).
 *   `mintOidcToken` mints one (or a forged one: `strangerKey()`, another kid, issuer, audience).
 * - Test controls that change the state as Google would and return the message Google would
 *   publish (also appended to `published`, as are the messages the API actions above cause):
 *   `requestPlanChange`, `completePlanChange`, `cancelPlanChange`, `setEntitlementState`,
 *   `renewEntitlement`, `endOffer`, `deleteEntitlement`, `deleteAccount`, `setAccountApproval`.
 * - Per product (Producer Portal), `configureProduct`: automatic offer approval ("Turn on automatic
 *   offer approval", "Manage entitlements for private offers with automatic offer approval",
 *   2025-09) and account approval (a product may require none). With automatic approval a purchase
 *   is approved by Google at once: Google publishes ENTITLEMENT_OFFER_ACCEPTED `{id, updateTime,
 *   newOfferDuration, newOfferStartTime, newOfferEndTime}` and never ENTITLEMENT_CREATION_REQUESTED;
 *   the entitlement stays ENTITLEMENT_ACTIVATION_REQUESTED, `newOfferStartTime`/`newOfferEndTime`
 *   set (the resource fills them only once approved), until the offer's start (possibly a scheduled
 *   date) has come and the account is approved, then ENTITLEMENT_ACTIVE (the `newOffer…` fields
 *   cleared, `offerEndTime` kept) and ENTITLEMENT_ACTIVE is published. `:approve` on such an
 *   entitlement is 400 FAILED_PRECONDITION (and recorded, like every call).
 * - Account messages as "Manage user accounts" shows them, without `eventType`: `accountMessage`.
 */

export const GOOGLE_ISSUER = 'https://www.googleapis.com/robot/v1/metadata/x509/cloud-commerce-partner@system.gserviceaccount.com'
export const GOOGLE_TOKEN_AUDIENCE = 'https://oauth2.googleapis.com/token'
/** The `iss` of the OIDC tokens Pub/Sub push sends. */
export const GOOGLE_OIDC_ISSUER = 'https://accounts.google.com'
const CERTS_PATH = '/robot/v1/metadata/x509/cloud-commerce-partner@system.gserviceaccount.com'
const OIDC_CERTS_PATH = '/oauth2/v3/certs'
const DEFAULT_PRODUCT = 'acme-saas.endpoints.acme-public.cloud.goog'

x509.cryptoProvider.set(webcrypto as unknown as Crypto)

export interface EmulatedAccount {
  name: string
  provider: string
  state: string
  approvals: Array<{ name: string; state: 'PENDING' | 'APPROVED' | 'REJECTED'; reason?: string; updateTime?: string }>
  createTime: string
  updateTime: string
}

export type GcpEntitlementState =
  | 'ENTITLEMENT_ACTIVATION_REQUESTED'
  | 'ENTITLEMENT_ACTIVE'
  | 'ENTITLEMENT_PENDING_CANCELLATION'
  | 'ENTITLEMENT_CANCELLED'
  | 'ENTITLEMENT_PENDING_PLAN_CHANGE'
  | 'ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL'
  | 'ENTITLEMENT_SUSPENDED'

export interface EmulatedGcpEntitlement {
  name: string
  account: string
  provider: string
  product: string
  productExternalName?: string
  plan: string
  newPendingPlan?: string
  state: string
  offer?: string
  newPendingOffer?: string
  quoteExternalName?: string
  orderId?: string
  offerEndTime?: string
  offerDuration?: string
  newOfferStartTime?: string
  newOfferEndTime?: string
  newPendingOfferDuration?: string
  subscriptionEndTime?: string
  usageReportingId: string
  messageToUser?: string
  inputProperties?: Record<string, unknown>
  cancellationReason?: string
  createTime: string
  updateTime: string
}

/** The JSON inside a marketplace Pub/Sub message's `data`. */
export interface GcpPubsubData {
  eventId: string
  /** Absent on account messages as Google documents them. */
  eventType?: string
  providerId: string
  entitlement?: { id: string; updateTime: string; newPlan?: string; [field: string]: unknown }
  account?: { id: string; updateTime: string }
}

export type GcpRoute =
  | 'certs'
  | 'token'
  | 'approve'
  | 'getAccount'
  | 'listEntitlements'
  | 'getEntitlement'
  | 'approveEntitlement'
  | 'rejectEntitlement'
  | 'approvePlanChange'
  | 'rejectPlanChange'
  | 'oidcCerts'

interface SigningKey {
  kid: string
  privateKey: CryptoKey
  pem: string
}

interface OidcKey {
  kid: string
  privateKey: CryptoKey
  jwk: { kid: string; kty: string; alg: 'RS256'; use: 'sig'; n: string; e: string }
}

async function makeSigningKey(): Promise<SigningKey> {
  const keys = (await webcrypto.subtle.generateKey(
    { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 },
    true,
    ['sign', 'verify'],
  )) as unknown as CryptoKeyPair
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString('hex'),
    name: 'CN=cloud-commerce-partner.system.gserviceaccount.com',
    notBefore: new Date(Date.now() - 3600_000),
    notAfter: new Date(Date.now() + 7 * 24 * 3600_000),
    signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
    keys,
  })
  return { kid: randomBytes(20).toString('hex'), privateKey: keys.privateKey as unknown as CryptoKey, pem: cert.toString('pem') }
}

/** Google's OIDC signing key (a second, unrelated RSA key), published as a JWK. */
async function makeOidcKey(): Promise<OidcKey> {
  const keys = (await webcrypto.subtle.generateKey(
    { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 },
    true,
    ['sign', 'verify'],
  )) as unknown as CryptoKeyPair
  const jwk = (await webcrypto.subtle.exportKey('jwk', keys.publicKey as unknown as webcrypto.CryptoKey)) as { n: string; e: string }
  const kid = randomBytes(20).toString('hex')
  return { kid, privateKey: keys.privateKey as unknown as CryptoKey, jwk: { kid, kty: 'RSA', alg: 'RS256', use: 'sig', n: jwk.n, e: jwk.e } }
}

/** A service account's numeric unique id (what Google puts in `azp` and `sub`), stable per email. */
function numericIdFor(email: string) {
  return `1${BigInt(`0x${createHash('sha256').update(email).digest('hex')}`).toString().slice(0, 20)}`
}

const digits = (count: number) => Array.from({ length: count }, (_, i) => (i === 0 ? randomInt(1, 10) : randomInt(0, 10))).join('')

/** Which Pub/Sub event Google sends when an entitlement reaches a state. */
const EVENT_FOR_STATE: Record<string, string> = {
  ENTITLEMENT_ACTIVATION_REQUESTED: 'ENTITLEMENT_CREATION_REQUESTED',
  ENTITLEMENT_ACTIVE: 'ENTITLEMENT_ACTIVE',
  ENTITLEMENT_PENDING_CANCELLATION: 'ENTITLEMENT_PENDING_CANCELLATION',
  ENTITLEMENT_CANCELLED: 'ENTITLEMENT_CANCELLED',
  ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL: 'ENTITLEMENT_PLAN_CHANGE_REQUESTED',
}

export async function createGcpEmulator() {
  const signing: SigningKey[] = [await makeSigningKey()]
  const oidcKeys: OidcKey[] = [await makeOidcKey()]
  const serviceAccounts = new Map<string, { providerId: string; publicKeyPem: string; keyDeleted?: boolean }>()
  const accessTokens = new Map<string, { providerId: string; expiresAt: number }>()
  const accounts = new Map<string, EmulatedAccount>()
  const entitlements = new Map<string, EmulatedGcpEntitlement>()
  const calls: Array<{ route: GcpRoute | null; method: string; path: string; query: Record<string, string>; body: string; authorization: string | null }> = []
  /** Every Pub/Sub message Google would have published, in order (API actions and test controls). */
  const published: GcpPubsubData[] = []
  const faults: Array<{ route: GcpRoute; status: number; remaining: number }> = []
  let alreadyApproved: 'error' | 'ok' = 'error'
  /** Which `aud` the token endpoint wants: Google's documented constant, or its own URL. */
  let tokenAudience: 'google' | 'self' = 'google'
  /** After `:approvePlanChange`: wait for the billing cycle (ENTITLEMENT_PENDING_PLAN_CHANGE) or change at once. */
  let planChangeTiming: 'endOfCycle' | 'immediate' = 'endOfCycle'
  let baseUrl = ''
  let lastUpdate = 0
  /** Producer Portal's per-product settings. */
  const products = new Map<string, { automaticOfferApproval: boolean; accountApproval: boolean }>()
  const productSettings = (product: string) => products.get(product) ?? { automaticOfferApproval: false, accountApproval: true }
  /** Entitlements Google approved itself (automatic offer approval): no `:approve`, they start on their own. */
  const autoApproved = new Set<string>()
  const timers = new Set<ReturnType<typeof setTimeout>>()
  const offerAccepted = new Map<string, GcpPubsubData>()

  /** A timestamp strictly later than every one handed out before, so updateTimes always order changes. */
  const nextTime = () => {
    lastUpdate = Math.max(Date.now(), lastUpdate + 1)
    return new Date(lastUpdate).toISOString()
  }
  const touch = (entitlement: EmulatedGcpEntitlement) => {
    entitlement.updateTime = nextTime()
  }
  const shortId = (name: string) => name.split('/').pop()!

  const findEntitlement = (id: string) => {
    const found = entitlements.get(id) ?? [...entitlements.values()].find((e) => shortId(e.name) === id)
    if (!found) throw new Error(`gcp emulator: no entitlement ${id}`)
    return found
  }
  const findAccount = (id: string) => accounts.get(id) ?? [...accounts.values()].find((a) => shortId(a.name) === id)

  const app = new Hono()
  const googleError = (status: number, message: string, reason: string) =>
    Response.json({ error: { code: status, message, status: reason } }, { status })
  const preconditionFailed = () => googleError(400, 'Precondition check failed.', 'FAILED_PRECONDITION')

  const take = (route: GcpRoute) => {
    const fault = faults.find((f) => f.route === route && f.remaining > 0)
    if (!fault) return null
    fault.remaining--
    return googleError(fault.status, 'injected fault', fault.status >= 500 ? 'UNAVAILABLE' : 'FAILED_PRECONDITION')
  }

  const record = async (c: { req: { method: string; url: string; raw: Request; header: (n: string) => string | undefined } }, route: GcpRoute | null) => {
    const url = new URL(c.req.url)
    const body = c.req.method === 'GET' ? '' : await c.req.raw.clone().text()
    calls.push({
      route,
      method: c.req.method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      body,
      authorization: c.req.header('authorization') ?? null,
    })
    return body
  }

  /**
   * A request message as Google's JSON mapping reads it: an empty body is the empty message,
   * lowerCamelCase or snake_case field names, an unknown field is 400 INVALID_ARGUMENT.
   */
  const readMessage = (text: string, fields: string[]): { message: Record<string, unknown> } | { refusal: Response } => {
    if (!text.trim()) return { message: {} }
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      return { refusal: googleError(400, 'Invalid JSON payload received. Unexpected token.', 'INVALID_ARGUMENT') }
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
      return { refusal: googleError(400, 'Invalid JSON payload received. Expected an object.', 'INVALID_ARGUMENT') }
    }
    const message: Record<string, unknown> = {}
    for (const [key, value] of Object.entries(parsed)) {
      const name = key.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase())
      if (!fields.includes(name)) {
        return { refusal: googleError(400, `Invalid JSON payload received. Unknown name "${key}": Cannot find field.`, 'INVALID_ARGUMENT') }
      }
      if (value !== null && name !== 'properties' && typeof value !== 'string') {
        return { refusal: googleError(400, `Invalid value at '${key}' (TYPE_STRING), ${JSON.stringify(value)}`, 'INVALID_ARGUMENT') }
      }
      message[name] = value
    }
    return { message }
  }

  const pubsubMessage = (
    eventType: string,
    input: { entitlementId?: string; accountId?: string; providerId: string; newPlan?: string; entitlementFields?: Record<string, unknown> },
  ): GcpPubsubData => {
    const data: GcpPubsubData = { eventId: randomUUID(), eventType, providerId: input.providerId }
    if (input.entitlementId !== undefined) {
      const known = entitlements.get(`providers/${input.providerId}/entitlements/${input.entitlementId}`)
      data.entitlement = {
        id: input.entitlementId,
        updateTime: known?.updateTime ?? new Date().toISOString(),
        ...(input.newPlan !== undefined ? { newPlan: input.newPlan } : {}),
        ...input.entitlementFields,
      }
    }
    if (input.accountId !== undefined) {
      const known = accounts.get(`providers/${input.providerId}/accounts/${input.accountId}`)
      data.account = { id: input.accountId, updateTime: known?.updateTime ?? new Date().toISOString() }
    }
    return data
  }

  const publish = (data: GcpPubsubData) => {
    published.push(data)
    return data
  }
  const entitlementEvent = (entitlement: EmulatedGcpEntitlement, eventType: string, newPlan?: string) =>
    publish(pubsubMessage(eventType, { entitlementId: shortId(entitlement.name), providerId: entitlement.provider, newPlan }))

  /** Moves an entitlement to a state; leaving a plan-change state drops the pending plan, and messageToUser clears. */
  const changeState = (entitlement: EmulatedGcpEntitlement, state: string) => {
    if (entitlement.state !== state) delete entitlement.messageToUser
    entitlement.state = state
    if (state !== 'ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL' && state !== 'ENTITLEMENT_PENDING_PLAN_CHANGE') {
      delete entitlement.newPendingPlan
      delete entitlement.newPendingOffer
    }
    touch(entitlement)
  }
  const applyPendingPlan = (entitlement: EmulatedGcpEntitlement) => {
    const newPlan = entitlement.newPendingPlan!
    entitlement.plan = newPlan
    if (entitlement.newPendingOffer) entitlement.offer = entitlement.newPendingOffer
    changeState(entitlement, 'ENTITLEMENT_ACTIVE')
    return entitlementEvent(entitlement, 'ENTITLEMENT_PLAN_CHANGED', newPlan)
  }

  const accountApproved = (accountName: string) => {
    const signup = accounts.get(accountName)?.approvals.find((a) => a.name === 'signup')
    return !signup || signup.state === 'APPROVED'
  }
  /** An automatically approved offer whose start has come, of an approved account, becomes active. */
  const startIfDue = (entitlement: EmulatedGcpEntitlement) => {
    if (!autoApproved.has(entitlement.name) || entitlement.state !== 'ENTITLEMENT_ACTIVATION_REQUESTED') return null
    if (Date.parse(entitlement.newOfferStartTime ?? '') > Date.now() || !accountApproved(entitlement.account)) return null
    if (!entitlement.offerEndTime && entitlement.newOfferEndTime) entitlement.offerEndTime = entitlement.newOfferEndTime
    if (!entitlement.offerDuration && entitlement.newPendingOfferDuration) entitlement.offerDuration = entitlement.newPendingOfferDuration
    delete entitlement.newOfferStartTime
    delete entitlement.newOfferEndTime
    delete entitlement.newPendingOfferDuration
    changeState(entitlement, 'ENTITLEMENT_ACTIVE')
    return entitlementEvent(entitlement, 'ENTITLEMENT_ACTIVE')
  }
  const startDue = () => {
    for (const entitlement of entitlements.values()) startIfDue(entitlement)
  }
  /** Also without any request in between: the start is Google's clock, not the seller's calls. */
  const scheduleStart = (entitlement: EmulatedGcpEntitlement) => {
    const wait = Date.parse(entitlement.newOfferStartTime ?? '') - Date.now()
    if (!(wait > 0)) return
    const timer = setTimeout(() => {
      timers.delete(timer)
      startIfDue(entitlement)
    }, Math.min(wait + 5, 2 ** 31 - 1))
    timer.unref?.()
    timers.add(timer)
  }

  const mintOidcToken = async (options: {
    audience: string
    email: string
    emailVerified?: boolean
    issuer?: string
    expiresInSeconds?: number
    issuedAt?: number
    kid?: string | null
    key?: CryptoKey
    claims?: Record<string, unknown>
  }) => {
    const iat = options.issuedAt ?? Math.floor(Date.now() / 1000)
    const id = numericIdFor(options.email)
    const payload = {
      aud: options.audience,
      azp: id,
      email: options.email,
      email_verified: options.emailVerified ?? true,
      exp: iat + (options.expiresInSeconds ?? 3600),
      iat,
      iss: options.issuer ?? GOOGLE_OIDC_ISSUER,
      sub: id,
      ...options.claims,
    }
    const kid = options.kid === undefined ? oidcKeys[0]!.kid : options.kid
    return new SignJWT(payload)
      .setProtectedHeader({ alg: 'RS256', ...(kid ? { kid } : {}), typ: 'JWT' })
      .sign(options.key ?? oidcKeys[0]!.privateKey)
  }

  app.get(CERTS_PATH, async (c) => {
    await record(c, 'certs')
    const fault = take('certs')
    if (fault) return fault
    return c.json(Object.fromEntries(signing.map((key) => [key.kid, key.pem])), 200, { 'cache-control': 'public, max-age=19000' })
  })

  app.get(OIDC_CERTS_PATH, async (c) => {
    await record(c, 'oidcCerts')
    const fault = take('oidcCerts')
    if (fault) return fault
    return c.json({ keys: oidcKeys.map((key) => key.jwk) }, 200, { 'cache-control': 'public, max-age=19000, must-revalidate, no-transform' })
  })

  app.post('/token', async (c) => {
    await record(c, 'token')
    const fault = take('token')
    if (fault) return fault
    const form = new URLSearchParams(await c.req.text())
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') {
      return c.json({ error: 'unsupported_grant_type', error_description: 'Invalid grant_type.' }, 400)
    }
    const assertion = form.get('assertion') ?? ''
    const claims = JSON.parse(Buffer.from(assertion.split('.')[1] ?? '', 'base64url').toString() || '{}') as { iss?: string }
    const account = serviceAccounts.get(claims.iss ?? '')
    if (!account) return c.json({ error: 'invalid_grant', error_description: 'Invalid issuer: unknown service account.' }, 400)
    if (account.keyDeleted) return c.json({ error: 'invalid_grant', error_description: 'Invalid JWT Signature.' }, 400)
    try {
      const { payload } = await jwtVerify(assertion, await importSPKI(account.publicKeyPem, 'RS256'), {
        algorithms: ['RS256'],
        audience: tokenAudience === 'google' ? GOOGLE_TOKEN_AUDIENCE : `${baseUrl}/token`,
        issuer: claims.iss,
        requiredClaims: ['iat', 'exp'],
      })
      if ((payload.exp ?? 0) - (payload.iat ?? 0) > 3600) throw new Error('lifetime longer than an hour')
      if (typeof payload.scope !== 'string' || !payload.scope.split(' ').includes('https://www.googleapis.com/auth/cloud-platform')) {
        return c.json({ error: 'invalid_scope', error_description: 'The cloud-platform scope is required.' }, 400)
      }
    } catch (error) {
      return c.json({ error: 'invalid_grant', error_description: `Invalid JWT Signature or claims (${(error as Error).message}).` }, 400)
    }
    const token = `ya29.${randomBytes(32).toString('base64url')}`
    accessTokens.set(token, { providerId: account.providerId, expiresAt: Date.now() + 3600_000 })
    return c.json({ access_token: token, expires_in: 3599, token_type: 'Bearer' })
  })

  app.all('/v1/providers/:provider/*', async (c) => {
    const providerId = c.req.param('provider')
    const pathname = new URL(c.req.url).pathname
    const marker = `/v1/providers/${providerId}/`
    const rest = decodeURIComponent(pathname.slice(pathname.indexOf(marker) + marker.length))
    const [collection, rawId] = rest.split('/') as [string, string | undefined]
    const [id, verb] = (rawId ?? '').split(':') as [string, string | undefined]
    const post = c.req.method === 'POST'
    const entitlementVerbs: Record<string, GcpRoute> = {
      approve: 'approveEntitlement',
      reject: 'rejectEntitlement',
      approvePlanChange: 'approvePlanChange',
      rejectPlanChange: 'rejectPlanChange',
    }
    const route: GcpRoute | null =
      collection === 'accounts' && verb === 'approve' && post
        ? 'approve'
        : collection === 'accounts' && !verb && c.req.method === 'GET' && id
          ? 'getAccount'
          : collection === 'entitlements' && !rawId && c.req.method === 'GET'
            ? 'listEntitlements'
            : collection === 'entitlements' && id && !verb && c.req.method === 'GET'
              ? 'getEntitlement'
              : collection === 'entitlements' && id && verb && post && Object.hasOwn(entitlementVerbs, verb)
                ? entitlementVerbs[verb]!
                : null
    const requestBody = await record(c, route)
    const bearer = /^Bearer (.+)$/.exec(c.req.header('authorization') ?? '')?.[1]
    const access = bearer ? accessTokens.get(bearer) : undefined
    if (!access || access.expiresAt < Date.now()) return googleError(401, 'Request had invalid authentication credentials.', 'UNAUTHENTICATED')
    if (access.providerId !== providerId) return googleError(403, 'The caller does not have permission', 'PERMISSION_DENIED')
    if (!route) return googleError(404, 'Method not found.', 'NOT_FOUND')
    const fault = take(route)
    if (fault) return fault
    startDue()

    if (route === 'approve') {
      const account = accounts.get(`providers/${providerId}/accounts/${id}`)
      if (!account) return googleError(404, `Account ${id} not found.`, 'NOT_FOUND')
      let body: { approvalName?: string }
      try {
        body = await c.req.json()
      } catch {
        return googleError(400, 'Invalid JSON payload.', 'INVALID_ARGUMENT')
      }
      const approval = account.approvals.find((a) => a.name === body.approvalName)
      if (!approval) return googleError(400, `Unknown approval name ${body.approvalName}.`, 'INVALID_ARGUMENT')
      if (approval.state === 'APPROVED' && alreadyApproved === 'error') {
        return googleError(400, 'Precondition check failed: the approval is not pending.', 'FAILED_PRECONDITION')
      }
      approval.state = 'APPROVED'
      approval.updateTime = new Date().toISOString()
      account.state = 'ACCOUNT_ACTIVE'
      account.updateTime = approval.updateTime
      startDue()
      return c.json({})
    }
    if (route === 'getAccount') {
      const account = accounts.get(`providers/${providerId}/accounts/${id}`)
      return account ? c.json(account) : googleError(404, `Account ${id} not found.`, 'NOT_FOUND')
    }
    if (route === 'getEntitlement') {
      const entitlement = entitlements.get(`providers/${providerId}/entitlements/${id}`)
      return entitlement ? c.json(entitlement) : googleError(404, `Entitlement ${id} not found.`, 'NOT_FOUND')
    }
    if (route === 'listEntitlements') {
      // filter "account=<id>" and/or "state=<state>" (case-insensitive, ENTITLEMENT_ prefix optional), pages of pageSize.
      const filter = c.req.query('filter') ?? ''
      const conditions = filter.split(/\s+AND\s+|\s+/).filter(Boolean).map((part) => part.split('=') as [string, string])
      const sameState = (state: string, wanted: string) => {
        const upper = wanted.replace(/^"|"$/g, '').toUpperCase()
        return state === upper || state === `ENTITLEMENT_${upper}`
      }
      const matches = [...entitlements.values()].filter(
        (e) =>
          e.provider === providerId &&
          conditions.every(([key, value]) =>
            key === 'account' ? e.account === `providers/${providerId}/accounts/${value}` || e.account.endsWith(`/accounts/${value}`) : key === 'state' ? sameState(e.state, value ?? '') : true,
          ),
      )
      const size = Math.min(Number(c.req.query('pageSize') ?? 2) || 2, 200)
      const offset = Number(c.req.query('pageToken') ?? 0)
      const next = offset + size < matches.length ? String(offset + size) : undefined
      return c.json({ entitlements: matches.slice(offset, offset + size), ...(next ? { nextPageToken: next } : {}) })
    }

    // The entitlement actions: approve, reject, approvePlanChange, rejectPlanChange.
    const fields: Record<string, string[]> = {
      approveEntitlement: ['properties', 'entitlementMigrated'],
      rejectEntitlement: ['reason'],
      approvePlanChange: ['pendingPlanName'],
      rejectPlanChange: ['pendingPlanName', 'reason'],
    }
    const read = readMessage(requestBody, fields[route]!)
    if ('refusal' in read) return read.refusal
    const { message } = read
    const entitlement = entitlements.get(`providers/${providerId}/entitlements/${id}`)
    if (!entitlement) return googleError(404, `Entitlement ${id} not found.`, 'NOT_FOUND')

    if (route === 'approveEntitlement') {
      // Approved by Google already (automatic offer approval): there is nothing for the provider to approve.
      if (autoApproved.has(entitlement.name)) return preconditionFailed()
      if (!accounts.has(entitlement.account) || !accountApproved(entitlement.account)) return preconditionFailed()
      if (entitlement.state !== 'ENTITLEMENT_ACTIVATION_REQUESTED') return preconditionFailed()
      changeState(entitlement, 'ENTITLEMENT_ACTIVE')
      entitlementEvent(entitlement, 'ENTITLEMENT_ACTIVE')
      return c.json({})
    }
    if (route === 'rejectEntitlement') {
      if (entitlement.state !== 'ENTITLEMENT_ACTIVATION_REQUESTED') return preconditionFailed()
      changeState(entitlement, 'ENTITLEMENT_CANCELLED')
      entitlementEvent(entitlement, 'ENTITLEMENT_CANCELLED')
      return c.json({})
    }
    // approvePlanChange / rejectPlanChange
    if (typeof message.pendingPlanName !== 'string' || !message.pendingPlanName) {
      return googleError(400, 'Request contains an invalid argument: pendingPlanName is required.', 'INVALID_ARGUMENT')
    }
    if (entitlement.state !== 'ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL') return preconditionFailed()
    if (message.pendingPlanName !== entitlement.newPendingPlan) return preconditionFailed()
    if (route === 'rejectPlanChange') {
      changeState(entitlement, 'ENTITLEMENT_ACTIVE')
      entitlementEvent(entitlement, 'ENTITLEMENT_PLAN_CHANGE_CANCELLED')
      return c.json({})
    }
    if (planChangeTiming === 'immediate') applyPendingPlan(entitlement)
    else changeState(entitlement, 'ENTITLEMENT_PENDING_PLAN_CHANGE')
    return c.json({})
  })

  const addEntitlement = (input: {
    providerId: string
    accountId: string
    plan?: string
    product?: string
    private?: boolean
    state?: string
    orderId?: string
    createTime?: string
    usageReportingId?: string
    inputProperties?: Record<string, unknown>
    /** Automatic offer approval: when the offer starts (default: at once), and its end or its duration. */
    offerStartTime?: string
    offerEndTime?: string
    offerDuration?: string
  }) => {
    const id = input.orderId ?? randomUUID()
    const product = input.product ?? DEFAULT_PRODUCT
    const automatic = productSettings(product).automaticOfferApproval
    const entitlement: EmulatedGcpEntitlement = {
      name: `providers/${input.providerId}/entitlements/${id}`,
      account: `providers/${input.providerId}/accounts/${input.accountId}`,
      provider: input.providerId,
      product,
      productExternalName: product,
      plan: input.plan ?? 'standard',
      state: input.state ?? 'ENTITLEMENT_ACTIVATION_REQUESTED',
      offer: input.private
        ? `projects/123456/services/${product}/privateOffers/${randomUUID()}`
        : `projects/123456/services/${product}/standardOffers/${randomUUID()}`,
      orderId: id,
      offerEndTime: input.offerEndTime ?? new Date(Date.parse(input.offerStartTime ?? new Date().toISOString()) + 365 * 24 * 3600_000).toISOString(),
      usageReportingId: input.usageReportingId ?? `project_number:${digits(12)}`,
      ...(input.inputProperties ? { inputProperties: input.inputProperties } : {}),
      createTime: input.createTime ?? new Date().toISOString(),
      updateTime: nextTime(),
    }
    entitlements.set(entitlement.name, entitlement)
    if (automatic && !input.state) {
      // Approved by Google at once; the offer's dates are on the resource from now on.
      autoApproved.add(entitlement.name)
      entitlement.newOfferStartTime = input.offerStartTime ?? new Date().toISOString()
      if (input.offerDuration) {
        entitlement.newPendingOfferDuration = input.offerDuration
        entitlement.offerDuration = input.offerDuration
      }
      entitlement.newOfferEndTime = entitlement.offerEndTime
      const accepted = publish(
        pubsubMessage('ENTITLEMENT_OFFER_ACCEPTED', {
          entitlementId: id,
          providerId: input.providerId,
          entitlementFields: {
            newOfferDuration: input.offerDuration ?? '',
            newOfferStartTime: entitlement.newOfferStartTime,
            newOfferEndTime: input.offerDuration ? '' : entitlement.newOfferEndTime,
          },
        }),
      )
      offerAccepted.set(entitlement.name, accepted)
      startIfDue(entitlement)
      scheduleStart(entitlement)
    }
    return entitlement
  }

  return {
    app,
    calls,
    accounts,
    entitlements,
    /** Every Pub/Sub message Google would have published so far (API actions and test controls), oldest first. */
    published,
    get certsUrl() {
      return `${baseUrl}${CERTS_PATH}`
    },
    get tokenUrl() {
      return `${baseUrl}/token`
    },
    /** Google's OIDC JWKS (`https://www.googleapis.com/oauth2/v3/certs`), for Pub/Sub push tokens. */
    get oidcCertsUrl() {
      return `${baseUrl}${OIDC_CERTS_PATH}`
    },
    /** Whether a bearer is an access token this emulator issued and that has not expired (for other Google API emulators, e.g. Service Control). */
    isAccessToken(bearer: string) {
      const access = accessTokens.get(bearer)
      return Boolean(access && access.expiresAt >= Date.now())
    },
    /** A provider's service account; returns the JSON key Google would let the ISV download. */
    async createServiceAccount(providerId: string) {
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
      const email = `marketbridge-${randomBytes(3).toString('hex')}@${providerId}.iam.gserviceaccount.com`
      serviceAccounts.set(email, { providerId, publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() })
      return {
        type: 'service_account',
        project_id: providerId,
        private_key_id: randomBytes(20).toString('hex'),
        private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        client_email: email,
        client_id: String(Math.floor(Math.random() * 1e20)),
        token_uri: GOOGLE_TOKEN_AUDIENCE,
      }
    },
    /**
     * The ISV deleted the account's key (IAM "Delete service account keys"): assertions signed with
     * it are refused (invalid_grant); access tokens already issued with it stay valid until they expire.
     */
    deleteServiceAccountKey(email: string) {
      const account = serviceAccounts.get(email)
      if (!account) throw new Error(`deleteServiceAccountKey: no service account ${email}`)
      account.keyDeleted = true
    },
    /** A buyer's procurement account awaiting the "signup" approval, with one entitlement (or none). */
    addPurchase(input: {
      providerId: string
      plan?: string
      product?: string
      private?: boolean
      state?: string
      withEntitlement?: boolean
      orderId?: string
      usageReportingId?: string
      offerStartTime?: string
      offerEndTime?: string
      offerDuration?: string
    }) {
      const accountId = randomUUID()
      const now = new Date().toISOString()
      const withApproval = productSettings(input.product ?? DEFAULT_PRODUCT).accountApproval
      const account: EmulatedAccount = {
        name: `providers/${input.providerId}/accounts/${accountId}`,
        provider: input.providerId,
        state: withApproval ? 'ACCOUNT_ACTIVATION_REQUESTED' : 'ACCOUNT_ACTIVE',
        approvals: withApproval ? [{ name: 'signup', state: 'PENDING' }] : [],
        createTime: now,
        updateTime: now,
      }
      accounts.set(account.name, account)
      let entitlement: EmulatedGcpEntitlement | undefined
      if (input.withEntitlement !== false) entitlement = addEntitlement({ ...input, accountId })
      /** With automatic offer approval: the ENTITLEMENT_OFFER_ACCEPTED message Google published for it. */
      const accepted = entitlement ? offerAccepted.get(entitlement.name) : undefined
      return { accountId, account, entitlement, ...(accepted ? { offerAccepted: accepted } : {}) }
    },
    /**
     * Producer Portal's per-product settings: automatic offer approval (default off) and whether
     * buyers' accounts need the seller's signup approval (default on). Applies to later purchases.
     */
    configureProduct(product: string, settings: { automaticOfferApproval?: boolean; accountApproval?: boolean }) {
      products.set(product, { ...productSettings(product), ...settings })
    },
    /** Whether Google approved this entitlement itself (automatic offer approval). */
    isAutoApproved(entitlementId: string) {
      return autoApproved.has(findEntitlement(entitlementId).name)
    },
    /** An automatically approved offer's scheduled start comes now (it starts if its account is approved): its ENTITLEMENT_ACTIVE, or null. */
    startOffer(entitlementId: string) {
      const entitlement = findEntitlement(entitlementId)
      if (entitlement.newOfferStartTime) entitlement.newOfferStartTime = new Date().toISOString()
      return startIfDue(entitlement)
    },
    /** An account message as "Manage user accounts" shows it: `{eventId, providerId, account: {id, updateTime}}`, no eventType. */
    accountMessage(accountId: string): GcpPubsubData {
      const account = findAccount(accountId)
      if (!account) throw new Error(`gcp emulator: no account ${accountId}`)
      return { eventId: randomUUID(), providerId: account.provider, account: { id: shortId(account.name), updateTime: account.updateTime } }
    },
    /**
     * The account's signup approval changes at Google (e.g. reset to PENDING, or account approval
     * turned on for the product since): the account message Google publishes (without eventType).
     */
    setAccountApproval(accountId: string, state: 'PENDING' | 'APPROVED' | 'REJECTED') {
      const account = findAccount(accountId)
      if (!account) throw new Error(`gcp emulator: no account ${accountId}`)
      const signup = account.approvals.find((a) => a.name === 'signup')
      if (signup) signup.state = state
      else account.approvals.push({ name: 'signup', state })
      account.state = state === 'APPROVED' ? 'ACCOUNT_ACTIVE' : 'ACCOUNT_ACTIVATION_REQUESTED'
      account.updateTime = nextTime()
      if (state === 'APPROVED') startDue()
      const data: GcpPubsubData = { eventId: randomUUID(), providerId: account.provider, account: { id: shortId(account.name), updateTime: account.updateTime } }
      return publish(data)
    },
    /** The entitlement renews for another term: `offerEndTime` moves on (default a year); ENTITLEMENT_RENEWED. */
    renewEntitlement(entitlementId: string, options: { offerEndTime?: string } = {}) {
      const entitlement = findEntitlement(entitlementId)
      const end = Date.parse(entitlement.offerEndTime ?? new Date().toISOString())
      entitlement.offerEndTime = options.offerEndTime ?? new Date(end + 365 * 24 * 3600_000).toISOString()
      touch(entitlement)
      return entitlementEvent(entitlement, 'ENTITLEMENT_RENEWED')
    },
    /**
     * The entitlement's offer term ended (ENTITLEMENT_OFFER_ENDED): `offerEndTime` is the actual end,
     * in the past. A usage-based entitlement goes on (the default); `cancel` ends it too
     * (ENTITLEMENT_CANCELLED, cancellationReason "expired").
     */
    endOffer(entitlementId: string, options: { cancel?: boolean } = {}) {
      const entitlement = findEntitlement(entitlementId)
      entitlement.offerEndTime = new Date(Date.now() - 1000).toISOString()
      if (options.cancel) {
        changeState(entitlement, 'ENTITLEMENT_CANCELLED')
        entitlement.cancellationReason = 'expired'
      } else touch(entitlement)
      return entitlementEvent(entitlement, 'ENTITLEMENT_OFFER_ENDED')
    },
    /** The customer withdraws a plan change that has not taken effect: back to ENTITLEMENT_ACTIVE on the old plan; ENTITLEMENT_PLAN_CHANGE_CANCELLED. */
    cancelPlanChange(entitlementId: string) {
      const entitlement = findEntitlement(entitlementId)
      if (entitlement.state !== 'ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL' && entitlement.state !== 'ENTITLEMENT_PENDING_PLAN_CHANGE') {
        throw new Error(`gcp emulator: no plan change on ${entitlementId} (it is ${entitlement.state})`)
      }
      changeState(entitlement, 'ENTITLEMENT_ACTIVE')
      return entitlementEvent(entitlement, 'ENTITLEMENT_PLAN_CHANGE_CANCELLED')
    },
    addEntitlement,
    /**
     * The JWT Google posts as `x-gcp-marketplace-token`. Overrides forge the bad ones:
     * another key, another kid, alg none or HS256, other claims.
     */
    async mintToken(claims: Record<string, unknown>, options: { kid?: string | null; key?: CryptoKey; alg?: 'RS256' | 'none' | 'HS256'; hmacSecret?: Uint8Array } = {}) {
      const now = Math.floor(Date.now() / 1000)
      const payload = { iss: GOOGLE_ISSUER, iat: now, exp: now + 300, ...claims }
      const kid = options.kid === undefined ? signing[0]!.kid : options.kid
      if (options.alg === 'none') {
        const enc = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
        return `${enc({ alg: 'none', typ: 'JWT', ...(kid ? { kid } : {}) })}.${enc(payload)}.`
      }
      if (options.alg === 'HS256') {
        return new SignJWT(payload).setProtectedHeader({ alg: 'HS256', typ: 'JWT', ...(kid ? { kid } : {}) }).sign(options.hmacSecret!)
      }
      return new SignJWT(payload)
        .setProtectedHeader({ alg: 'RS256', typ: 'JWT', ...(kid ? { kid } : {}) })
        .sign(options.key ?? signing[0]!.privateKey)
    },
    /**
     * The OIDC token a Pub/Sub push subscription sends (`Authorization: Bearer …`): RS256 with
     * Google's OIDC key and kid; iss `https://accounts.google.com`, aud, azp = sub = the service
     * account's numeric id, email, email_verified (true), iat, exp (an hour later). Overrides forge
     * the bad ones: another key (`strangerKey()`), kid (null: none), issuer, audience, lifetime
     * (negative: already expired), any claim (`claims`, applied last).
     */
    mintOidcToken,
    /** The kid of the current OIDC signing key. */
    get oidcKid() {
      return oidcKeys[0]!.kid
    },
    /** Google rotates its OIDC keys: a new one signs from now on; the old one stays published unless `dropOld`. */
    async rotateOidcKey(options: { dropOld?: boolean } = {}) {
      oidcKeys.unshift(await makeOidcKey())
      oidcKeys.length = options.dropOld ? 1 : Math.min(oidcKeys.length, 2)
    },
    /** The PEM of the current signing certificate (what an attacker could download too). */
    get certificatePem() {
      return signing[0]!.pem
    },
    get kid() {
      return signing[0]!.kid
    },
    /** Google rotates keys: a new signing key (new kid) takes over; the old one is dropped. */
    async rotateKey() {
      signing.unshift(await makeSigningKey())
      signing.length = 1
    },
    /** An RSA private key Google never published: signs marketplace JWTs (`mintToken`) or OIDC tokens (`mintOidcToken`). */
    async strangerKey() {
      return (await generateKeyPair('RS256')).privateKey
    },
    setTokenAudience(audience: 'google' | 'self') {
      tokenAudience = audience
    },
    setAlreadyApprovedBehaviour(behaviour: 'error' | 'ok') {
      alreadyApproved = behaviour
    },
    /**
     * What `:approvePlanChange` does: 'endOfCycle' (default) -> ENTITLEMENT_PENDING_PLAN_CHANGE until
     * `completePlanChange`; 'immediate' -> ENTITLEMENT_ACTIVE on the new plan at once (and the
     * ENTITLEMENT_PLAN_CHANGED message goes to `published`).
     */
    setPlanChangeTiming(timing: 'endOfCycle' | 'immediate') {
      planChangeTiming = timing
    },
    failNext(route: GcpRoute, status: number, times = 1) {
      faults.push({ route, status, remaining: times })
    },
    callsTo(route: GcpRoute) {
      return calls.filter((call) => call.route === route)
    },

    /** The marketplace's Pub/Sub message (the JSON inside `data`). */
    pubsubMessage,
    /** The customer picks another plan: ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL with `newPendingPlan`. */
    requestPlanChange(entitlementId: string, newPlan: string) {
      const entitlement = findEntitlement(entitlementId)
      if (entitlement.state !== 'ENTITLEMENT_ACTIVE') throw new Error(`gcp emulator: a plan change needs an active entitlement (it is ${entitlement.state})`)
      entitlement.newPendingPlan = newPlan
      changeState(entitlement, 'ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL')
      return entitlementEvent(entitlement, 'ENTITLEMENT_PLAN_CHANGE_REQUESTED', newPlan)
    },
    /** The billing cycle ended: an approved plan change takes effect (ENTITLEMENT_ACTIVE, new plan). */
    completePlanChange(entitlementId: string) {
      const entitlement = findEntitlement(entitlementId)
      if (entitlement.state !== 'ENTITLEMENT_PENDING_PLAN_CHANGE' || !entitlement.newPendingPlan) {
        throw new Error(`gcp emulator: no approved plan change on ${entitlementId} (it is ${entitlement.state})`)
      }
      return applyPendingPlan(entitlement)
    },
    /**
     * Any other change Google makes (e.g. ENTITLEMENT_PENDING_CANCELLATION, ENTITLEMENT_CANCELLED
     * with `cancellationReason`, back to ENTITLEMENT_ACTIVE: ENTITLEMENT_CANCELLATION_REVERTED).
     * `extra` sets fields; `extra.eventType` overrides the event sent.
     */
    setEntitlementState(entitlementId: string, state: GcpEntitlementState | (string & {}), extra: Partial<EmulatedGcpEntitlement> & { eventType?: string } = {}) {
      const entitlement = findEntitlement(entitlementId)
      const previous = entitlement.state
      const { eventType, ...fields } = extra
      changeState(entitlement, state)
      Object.assign(entitlement, fields)
      const event =
        eventType ??
        (state === 'ENTITLEMENT_ACTIVE' && previous === 'ENTITLEMENT_PENDING_CANCELLATION' ? 'ENTITLEMENT_CANCELLATION_REVERTED' : (EVENT_FOR_STATE[state] ?? state))
      return entitlementEvent(entitlement, event, state === 'ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL' ? entitlement.newPendingPlan : undefined)
    },
    /** Google deletes an entitlement (GET answers 404 afterwards): ENTITLEMENT_DELETED. */
    deleteEntitlement(entitlementId: string) {
      const entitlement = findEntitlement(entitlementId)
      const data = entitlementEvent(entitlement, 'ENTITLEMENT_DELETED')
      data.entitlement!.updateTime = nextTime()
      entitlements.delete(entitlement.name)
      return data
    },
    /** The customer's account is deleted: GET answers 404, its entitlements are cancelled; ACCOUNT_DELETED. */
    deleteAccount(accountId: string) {
      const account = findAccount(accountId)
      if (!account) throw new Error(`gcp emulator: no account ${accountId}`)
      for (const entitlement of entitlements.values()) {
        if (entitlement.account === account.name && entitlement.state !== 'ENTITLEMENT_CANCELLED') changeState(entitlement, 'ENTITLEMENT_CANCELLED')
      }
      account.updateTime = nextTime()
      accounts.delete(account.name)
      return publish({ eventId: randomUUID(), eventType: 'ACCOUNT_DELETED', providerId: account.provider, account: { id: shortId(account.name), updateTime: account.updateTime } })
    },
    /**
     * Delivers `data` as a Pub/Sub push subscription would: POST `url` with the JSON envelope
     * (data = base64 of JSON.stringify(data), or of the string itself) and an OIDC bearer token
     * (aud = `audience` ?? `url` exactly; `token: null` sends none, a string is sent as it is).
     * Redirects are not followed.
     */
    async push(
      url: string,
      data: GcpPubsubData | Record<string, unknown> | string,
      options: {
        audience?: string
        serviceAccountEmail: string
        token?: string | null
        messageId?: string
        publishTime?: string
        subscription?: string
        attributes?: Record<string, string>
      },
    ): Promise<Response> {
      const token = options.token === undefined ? await mintOidcToken({ audience: options.audience ?? url, email: options.serviceAccountEmail }) : options.token
      const messageId = options.messageId ?? digits(16)
      const publishTime = options.publishTime ?? new Date().toISOString()
      const envelope = {
        message: {
          ...(options.attributes ? { attributes: options.attributes } : {}),
          data: Buffer.from(typeof data === 'string' ? data : JSON.stringify(data)).toString('base64'),
          messageId,
          message_id: messageId,
          publishTime,
          publish_time: publishTime,
        },
        subscription: options.subscription ?? 'projects/acme-isv-project/subscriptions/marketplace-notifications',
      }
      return fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify(envelope),
        redirect: 'manual',
      })
    },
    async listen(): Promise<{ url: string; close: () => Promise<void> }> {
      const listening = await listenOnLoopback(app.fetch)
      baseUrl = listening.url
      return {
        ...listening,
        close: async () => {
          for (const timer of timers) clearTimeout(timer)
          timers.clear()
          await listening.close()
        },
      }
    },
  }
}

export type GcpEmulator = Awaited<ReturnType<typeof createGcpEmulator>>
