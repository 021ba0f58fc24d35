import { serve } from '@hono/node-server'
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata polyfill.
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { Hono } from 'hono'
import { type CryptoKey, SignJWT, generateKeyPair, importSPKI, jwtVerify } from 'jose'
import { generateKeyPairSync, randomBytes, randomUUID, webcrypto } from 'node:crypto'
import type { AddressInfo } from 'node:net'

/**
 * Google Cloud emulator, written from Google's documents (frontend and backend integration of
 * integrated SaaS, the Partner Procurement API reference, OAuth 2.0 for service accounts):
 *
 * - The marketplace's JWT signing certificates: JSON `{kid: PEM X.509}` served at the
 *   `cloud-commerce-partner` x509 metadata path, made from a real RSA key.
 * - Buyer JWTs (`x-gcp-marketplace-token`): RS256, `kid`, iss = the x509 URL, aud, sub, iat,
 *   exp (about 5 minutes later), `google.user_identity`, optionally `google.orders`.
 * - The OAuth token endpoint: `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` with a
 *   service-account assertion signed by the account's key, aud
 *   `https://oauth2.googleapis.com/token`, a `scope`; answers an access token.
 * - The Procurement API `/v1/providers/{p}/accounts/{a}` (get, `:approve`) and
 *   `/v1/providers/{p}/entitlements` (list with `filter=account=<id>`, get), bearer-authorized
 *   for the provider's service account.
 */

export const GOOGLE_ISSUER = 'https://www.googleapis.com/robot/v1/metadata/x509/cloud-commerce-partner@system.gserviceaccount.com'
export const GOOGLE_TOKEN_AUDIENCE = 'https://oauth2.googleapis.com/token'
const CERTS_PATH = '/robot/v1/metadata/x509/cloud-commerce-partner@system.gserviceaccount.com'

x509.cryptoProvider.set(webcrypto as unknown as Crypto)

export interface EmulatedAccount {
  name: string
  provider: string
  state: string
  approvals: Array<{ name: string; state: 'PENDING' | 'APPROVED' | 'REJECTED'; reason?: string; updateTime?: string }>
  createTime: string
  updateTime: string
}

export interface EmulatedGcpEntitlement {
  name: string
  account: string
  provider: string
  product: string
  productExternalName?: string
  plan: string
  state: string
  offer?: string
  quoteExternalName?: string
  orderId?: string
  offerEndTime?: string
  usageReportingId?: string
  createTime: string
  updateTime: string
}

export type GcpRoute = 'certs' | 'token' | 'approve' | 'getAccount' | 'listEntitlements' | 'getEntitlement'

interface SigningKey {
  kid: string
  privateKey: CryptoKey
  pem: string
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

export async function createGcpEmulator() {
  const signing: SigningKey[] = [await makeSigningKey()]
  const serviceAccounts = new Map<string, { providerId: string; publicKeyPem: string }>()
  const accessTokens = new Map<string, { providerId: string; expiresAt: number }>()
  const accounts = new Map<string, EmulatedAccount>()
  const entitlements = new Map<string, EmulatedGcpEntitlement>()
  const calls: Array<{ route: GcpRoute | null; method: string; path: string; query: Record<string, string>; body: string; authorization: string | null }> = []
  const faults: Array<{ route: GcpRoute; status: number; remaining: number }> = []
  let alreadyApproved: 'error' | 'ok' = 'error'
  /** Which `aud` the token endpoint wants: Google's documented constant, or its own URL. */
  let tokenAudience: 'google' | 'self' = 'google'
  let baseUrl = ''

  const app = new Hono()
  const googleError = (status: number, message: string, reason: string) =>
    Response.json({ error: { code: status, message, status: reason } }, { status })

  const take = (route: GcpRoute) => {
    const fault = faults.find((f) => f.route === route && f.remaining > 0)
    if (!fault) return null
    fault.remaining--
    return googleError(fault.status, 'injected fault', fault.status >= 500 ? 'UNAVAILABLE' : 'FAILED_PRECONDITION')
  }

  const record = async (c: { req: { method: string; url: string; raw: Request; header: (n: string) => string | undefined } }, route: GcpRoute | null) => {
    const url = new URL(c.req.url)
    calls.push({
      route,
      method: c.req.method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      body: c.req.method === 'GET' ? '' : await c.req.raw.clone().text(),
      authorization: c.req.header('authorization') ?? null,
    })
  }

  app.get(CERTS_PATH, async (c) => {
    await record(c, 'certs')
    const fault = take('certs')
    if (fault) return fault
    return c.json(Object.fromEntries(signing.map((key) => [key.kid, key.pem])), 200, { 'cache-control': 'public, max-age=19000' })
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
    const rest = new URL(c.req.url).pathname.slice(`/v1/providers/${providerId}/`.length)
    const [collection, rawId] = rest.split('/') as [string, string | undefined]
    const [id, verb] = (rawId ?? '').split(':') as [string, string | undefined]
    const route: GcpRoute | null =
      collection === 'accounts' && verb === 'approve' && c.req.method === 'POST'
        ? 'approve'
        : collection === 'accounts' && !verb && c.req.method === 'GET' && id
          ? 'getAccount'
          : collection === 'entitlements' && !rawId && c.req.method === 'GET'
            ? 'listEntitlements'
            : collection === 'entitlements' && id && !verb && c.req.method === 'GET'
              ? 'getEntitlement'
              : null
    await record(c, route)
    const bearer = /^Bearer (.+)$/.exec(c.req.header('authorization') ?? '')?.[1]
    const access = bearer ? accessTokens.get(bearer) : undefined
    if (!access || access.expiresAt < Date.now()) return googleError(401, 'Request had invalid authentication credentials.', 'UNAUTHENTICATED')
    if (access.providerId !== providerId) return googleError(403, 'The caller does not have permission', 'PERMISSION_DENIED')
    if (!route) return googleError(404, 'Method not found.', 'NOT_FOUND')
    const fault = take(route)
    if (fault) return fault

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
    // listEntitlements: filter "account=<id>" (also "state=..."), pages of pageSize.
    const filter = c.req.query('filter') ?? ''
    const conditions = filter.split(/\s+AND\s+|\s+/).filter(Boolean).map((part) => part.split('=') as [string, string])
    const matches = [...entitlements.values()].filter(
      (e) =>
        e.provider === providerId &&
        conditions.every(([key, value]) =>
          key === 'account' ? e.account === `providers/${providerId}/accounts/${value}` || e.account.endsWith(`/accounts/${value}`) : key === 'state' ? e.state === value : true,
        ),
    )
    const size = Math.min(Number(c.req.query('pageSize') ?? 2) || 2, 200)
    const offset = Number(c.req.query('pageToken') ?? 0)
    const next = offset + size < matches.length ? String(offset + size) : undefined
    return c.json({ entitlements: matches.slice(offset, offset + size), ...(next ? { nextPageToken: next } : {}) })
  })

  return {
    app,
    calls,
    accounts,
    entitlements,
    get certsUrl() {
      return `${baseUrl}${CERTS_PATH}`
    },
    get tokenUrl() {
      return `${baseUrl}/token`
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
    /** A buyer's procurement account awaiting the "signup" approval, with one entitlement (or none). */
    addPurchase(input: { providerId: string; plan?: string; product?: string; private?: boolean; state?: string; withEntitlement?: boolean; orderId?: string }) {
      const accountId = randomUUID()
      const now = new Date().toISOString()
      const account: EmulatedAccount = {
        name: `providers/${input.providerId}/accounts/${accountId}`,
        provider: input.providerId,
        state: 'ACCOUNT_ACTIVATION_REQUESTED',
        approvals: [{ name: 'signup', state: 'PENDING' }],
        createTime: now,
        updateTime: now,
      }
      accounts.set(account.name, account)
      let entitlement: EmulatedGcpEntitlement | undefined
      if (input.withEntitlement !== false) entitlement = this.addEntitlement({ ...input, accountId })
      return { accountId, account, entitlement }
    },
    addEntitlement(input: { providerId: string; accountId: string; plan?: string; product?: string; private?: boolean; state?: string; orderId?: string; createTime?: string }) {
      const id = input.orderId ?? randomUUID()
      const product = input.product ?? 'acme-saas.endpoints.acme-public.cloud.goog'
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
        offerEndTime: new Date(Date.now() + 365 * 24 * 3600_000).toISOString(),
        createTime: input.createTime ?? new Date().toISOString(),
        updateTime: new Date().toISOString(),
      }
      entitlements.set(entitlement.name, entitlement)
      return entitlement
    },
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
    async strangerKey() {
      return (await generateKeyPair('RS256')).privateKey
    },
    setTokenAudience(audience: 'google' | 'self') {
      tokenAudience = audience
    },
    setAlreadyApprovedBehaviour(behaviour: 'error' | 'ok') {
      alreadyApproved = behaviour
    },
    failNext(route: GcpRoute, status: number, times = 1) {
      faults.push({ route, status, remaining: times })
    },
    callsTo(route: GcpRoute) {
      return calls.filter((call) => call.route === route)
    },
    async listen(): Promise<{ url: string; close: () => Promise<void> }> {
      return new Promise((resolve) => {
        const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, (info: AddressInfo) => {
          baseUrl = `http://127.0.0.1:${info.port}`
          resolve({ url: baseUrl, close: () => new Promise<void>((done) => server.close(() => done())) })
        })
      })
    },
  }
}

export type GcpEmulator = Awaited<ReturnType<typeof createGcpEmulator>>

