import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { SignJWT, createRemoteJWKSet, decodeProtectedHeader, importPKCS8, jwtVerify } from 'jose'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { GOOGLE_OIDC_ISSUER, GOOGLE_TOKEN_AUDIENCE, type GcpEmulator, createGcpEmulator } from '../../sandbox/emulators/gcp'

let gcp: GcpEmulator
let url: string
let close: () => Promise<void>
let token: string
const providerId = 'lifecycle-provider'

/** An access token the way a service account gets one: a signed assertion to the token endpoint. */
async function accessToken(provider: string) {
  const key = await gcp.createServiceAccount(provider)
  const now = Math.floor(Date.now() / 1000)
  const assertion = await new SignJWT({ scope: 'https://www.googleapis.com/auth/cloud-platform' })
    .setProtectedHeader({ alg: 'RS256', kid: key.private_key_id })
    .setIssuer(key.client_email)
    .setAudience(GOOGLE_TOKEN_AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(now + 3600)
    .sign(await importPKCS8(key.private_key, 'RS256'))
  const response = await fetch(gcp.tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }).toString(),
  })
  expect(response.status).toBe(200)
  return ((await response.json()) as { access_token: string }).access_token
}

const api = (path: string, init: { method?: string; body?: unknown; token?: string | null } = {}) =>
  fetch(`${url}/v1/${path}`, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: {
      ...(init.token === null ? {} : { authorization: `Bearer ${init.token ?? token}` }),
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: init.body === undefined ? undefined : typeof init.body === 'string' ? init.body : JSON.stringify(init.body),
  })
const entitlementPath = (id: string) => `providers/${providerId}/entitlements/${id}`
const getEntitlement = async (id: string) => (await (await api(entitlementPath(id))).json()) as Record<string, any>
const approveAccount = (accountId: string) => api(`providers/${providerId}/accounts/${accountId}:approve`, { body: { approvalName: 'signup' } })

/** An approved account with an ENTITLEMENT_ACTIVE entitlement. */
async function activePurchase(plan = 'standard') {
  const { accountId, entitlement } = gcp.addPurchase({ providerId, plan })
  const id = entitlement!.name.split('/').pop()!
  expect((await approveAccount(accountId)).status).toBe(200)
  expect((await api(`${entitlementPath(id)}:approve`, { body: {} })).status).toBe(200)
  return { accountId, id }
}

beforeAll(async () => {
  gcp = await createGcpEmulator()
  ;({ url, close } = await gcp.listen())
  token = await accessToken(providerId)
})
afterAll(async () => {
  await close()
})

describe('entitlements :approve / :reject', () => {
  test('approving before the account is approved is 400 FAILED_PRECONDITION; after, 200 and ENTITLEMENT_ACTIVE', async () => {
    const { accountId, entitlement } = gcp.addPurchase({ providerId, plan: 'pro' })
    const id = entitlement!.name.split('/').pop()!
    const before = await getEntitlement(id)
    expect(before.state).toBe('ENTITLEMENT_ACTIVATION_REQUESTED')

    const early = await api(`${entitlementPath(id)}:approve`, { body: {} })
    expect(early.status).toBe(400)
    expect(await early.json()).toEqual({ error: { code: 400, message: 'Precondition check failed.', status: 'FAILED_PRECONDITION' } })
    expect((await getEntitlement(id)).state).toBe('ENTITLEMENT_ACTIVATION_REQUESTED')

    expect((await approveAccount(accountId)).status).toBe(200)
    const approved = await api(`${entitlementPath(id)}:approve`, { body: {} })
    expect(approved.status).toBe(200)
    expect(await approved.json()).toEqual({})
    const after = await getEntitlement(id)
    expect(after.state).toBe('ENTITLEMENT_ACTIVE')
    expect(Date.parse(after.updateTime)).toBeGreaterThan(Date.parse(before.updateTime))
    expect(gcp.published.at(-1)).toMatchObject({ eventType: 'ENTITLEMENT_ACTIVE', providerId, entitlement: { id, updateTime: after.updateTime } })
    expect(gcp.callsTo('approveEntitlement').at(-1)).toMatchObject({ method: 'POST', path: `/v1/${entitlementPath(id)}:approve`, body: '{}' })

    // Not awaiting approval any more.
    const again = await api(`${entitlementPath(id)}:approve`, { body: {} })
    expect(again.status).toBe(400)
    expect(((await again.json()) as any).error.status).toBe('FAILED_PRECONDITION')
  })

  test('an empty body and `properties` are accepted; an unknown field is 400 INVALID_ARGUMENT', async () => {
    const { accountId, entitlement } = gcp.addPurchase({ providerId })
    const id = entitlement!.name.split('/').pop()!
    await approveAccount(accountId)
    const wrong = await api(`${entitlementPath(id)}:approve`, { body: { approvalName: 'signup' } })
    expect(wrong.status).toBe(400)
    expect(((await wrong.json()) as any).error.status).toBe('INVALID_ARGUMENT')
    expect((await api(`${entitlementPath(id)}:approve`, { body: { properties: { tier: 'gold' } } })).status).toBe(200)

    const other = gcp.addEntitlement({ providerId, accountId })
    expect((await api(`${entitlementPath(other.name.split('/').pop()!)}:approve`, { method: 'POST' })).status).toBe(200)
  })

  test('reject {reason} cancels an entitlement awaiting approval', async () => {
    const { entitlement } = gcp.addPurchase({ providerId })
    const id = entitlement!.name.split('/').pop()!
    expect((await api(`${entitlementPath(id)}:reject`, { body: { reason: 'not eligible' } })).status).toBe(200)
    expect((await getEntitlement(id)).state).toBe('ENTITLEMENT_CANCELLED')
    expect(JSON.parse(gcp.callsTo('rejectEntitlement').at(-1)!.body)).toEqual({ reason: 'not eligible' })
    expect((await api(`${entitlementPath(id)}:reject`, { body: { reason: 'again' } })).status).toBe(400)
  })

  test('bearer-authorized, failNext works, unknown entitlement is 404', async () => {
    const { id } = await activePurchase()
    expect((await api(`${entitlementPath(id)}:approvePlanChange`, { body: { pendingPlanName: 'x' }, token: null })).status).toBe(401)
    const stranger = await accessToken('someone-else')
    expect((await api(`${entitlementPath(id)}:rejectPlanChange`, { body: { pendingPlanName: 'x' }, token: stranger })).status).toBe(403)
    expect((await api(`${entitlementPath('nope')}:reject`, { body: {} })).status).toBe(404)

    const { accountId, entitlement } = gcp.addPurchase({ providerId })
    await approveAccount(accountId)
    const fresh = entitlement!.name.split('/').pop()!
    gcp.failNext('approveEntitlement', 503)
    expect((await api(`${entitlementPath(fresh)}:approve`, { body: {} })).status).toBe(503)
    expect((await getEntitlement(fresh)).state).toBe('ENTITLEMENT_ACTIVATION_REQUESTED')
    expect((await api(`${entitlementPath(fresh)}:approve`, { body: {} })).status).toBe(200)
  })

  test('every entitlement has a usageReportingId (project_number:<digits>)', async () => {
    const { id } = await activePurchase()
    expect((await getEntitlement(id)).usageReportingId).toMatch(/^project_number:\d+$/)
  })
})

describe('plan changes', () => {
  test('requested -> approvePlanChange -> ENTITLEMENT_PENDING_PLAN_CHANGE -> completePlanChange -> ENTITLEMENT_ACTIVE on the new plan', async () => {
    const { id } = await activePurchase('standard')
    const requested = gcp.requestPlanChange(id, 'enterprise')
    expect(requested).toMatchObject({ eventType: 'ENTITLEMENT_PLAN_CHANGE_REQUESTED', providerId, entitlement: { id, newPlan: 'enterprise' } })
    const pending = await getEntitlement(id)
    expect(pending).toMatchObject({ state: 'ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL', plan: 'standard', newPendingPlan: 'enterprise' })
    expect(requested.entitlement!.updateTime).toBe(pending.updateTime)

    const mismatch = await api(`${entitlementPath(id)}:approvePlanChange`, { body: { pendingPlanName: 'pro' } })
    expect(mismatch.status).toBe(400)
    expect(((await mismatch.json()) as any).error.status).toBe('FAILED_PRECONDITION')
    expect((await api(`${entitlementPath(id)}:approvePlanChange`, { body: {} })).status).toBe(400)

    gcp.failNext('approvePlanChange', 500)
    expect((await api(`${entitlementPath(id)}:approvePlanChange`, { body: { pendingPlanName: 'enterprise' } })).status).toBe(500)
    expect((await api(`${entitlementPath(id)}:approvePlanChange`, { body: { pendingPlanName: 'enterprise' } })).status).toBe(200)
    expect(await getEntitlement(id)).toMatchObject({ state: 'ENTITLEMENT_PENDING_PLAN_CHANGE', plan: 'standard', newPendingPlan: 'enterprise' })
    // Approving twice: no longer awaiting approval.
    expect((await api(`${entitlementPath(id)}:approvePlanChange`, { body: { pendingPlanName: 'enterprise' } })).status).toBe(400)

    const changed = gcp.completePlanChange(id)
    expect(changed).toMatchObject({ eventType: 'ENTITLEMENT_PLAN_CHANGED', entitlement: { id, newPlan: 'enterprise' } })
    const after = await getEntitlement(id)
    expect(after).toMatchObject({ state: 'ENTITLEMENT_ACTIVE', plan: 'enterprise' })
    expect(after.newPendingPlan).toBeUndefined()
    expect(gcp.published.at(-1)).toEqual(changed)
  })

  test("with setPlanChangeTiming('immediate') the approval changes the plan at once", async () => {
    const { id } = await activePurchase('standard')
    gcp.requestPlanChange(id, 'pro')
    gcp.setPlanChangeTiming('immediate')
    try {
      expect((await api(`${entitlementPath(id)}:approvePlanChange`, { body: { pending_plan_name: 'pro' } })).status).toBe(200)
    } finally {
      gcp.setPlanChangeTiming('endOfCycle')
    }
    expect(await getEntitlement(id)).toMatchObject({ state: 'ENTITLEMENT_ACTIVE', plan: 'pro' })
    expect(gcp.published.at(-1)).toMatchObject({ eventType: 'ENTITLEMENT_PLAN_CHANGED', entitlement: { id, newPlan: 'pro' } })
  })

  test('rejectPlanChange keeps the old plan, ENTITLEMENT_ACTIVE', async () => {
    const { id } = await activePurchase('standard')
    gcp.requestPlanChange(id, 'pro')
    expect((await api(`${entitlementPath(id)}:rejectPlanChange`, { body: { pendingPlanName: 'pro', reason: 'not offered' } })).status).toBe(200)
    const after = await getEntitlement(id)
    expect(after).toMatchObject({ state: 'ENTITLEMENT_ACTIVE', plan: 'standard' })
    expect(after.newPendingPlan).toBeUndefined()
  })
})

describe('other changes Google makes', () => {
  test('pending cancellation, reverted, cancelled (with a reason), and the messages', async () => {
    const { id } = await activePurchase()
    expect(gcp.setEntitlementState(id, 'ENTITLEMENT_PENDING_CANCELLATION')).toMatchObject({ eventType: 'ENTITLEMENT_PENDING_CANCELLATION', entitlement: { id } })
    expect(gcp.setEntitlementState(id, 'ENTITLEMENT_ACTIVE').eventType).toBe('ENTITLEMENT_CANCELLATION_REVERTED')
    const cancelled = gcp.setEntitlementState(id, 'ENTITLEMENT_CANCELLED', { cancellationReason: 'CUSTOMER_REQUESTED' })
    expect(cancelled.eventType).toBe('ENTITLEMENT_CANCELLED')
    expect(await getEntitlement(id)).toMatchObject({ state: 'ENTITLEMENT_CANCELLED', cancellationReason: 'CUSTOMER_REQUESTED', updateTime: cancelled.entitlement!.updateTime })
  })

  test('deleteAccount: ACCOUNT_DELETED, the account is gone, its entitlements cancelled', async () => {
    const { accountId, id } = await activePurchase()
    const message = gcp.deleteAccount(accountId)
    expect(message).toMatchObject({ eventType: 'ACCOUNT_DELETED', providerId, account: { id: accountId } })
    expect(message.entitlement).toBeUndefined()
    expect((await api(`providers/${providerId}/accounts/${accountId}`)).status).toBe(404)
    expect((await getEntitlement(id)).state).toBe('ENTITLEMENT_CANCELLED')
  })

  test('list filters state case-insensitively with or without the ENTITLEMENT_ prefix', async () => {
    const { accountId } = await activePurchase()
    for (const state of ['active', 'ENTITLEMENT_ACTIVE', 'Active']) {
      const listed = (await (await api(`providers/${providerId}/entitlements?filter=${encodeURIComponent(`account=${accountId} state=${state}`)}`)).json()) as any
      expect(listed.entitlements).toHaveLength(1)
    }
  })
})

describe('Pub/Sub push: OIDC token and envelope', () => {
  const pushAccount = 'pubsub-push@acme-isv.iam.gserviceaccount.com'

  test('the JWKS has the documented shape and verifies a minted token with the documented claims', async () => {
    const jwks = (await (await fetch(gcp.oidcCertsUrl)).json()) as { keys: Array<Record<string, string>> }
    expect(jwks.keys).toHaveLength(1)
    expect(jwks.keys[0]).toMatchObject({ kid: gcp.oidcKid, kty: 'RSA', alg: 'RS256', use: 'sig', e: 'AQAB' })
    expect(jwks.keys[0]!.n).toMatch(/^[A-Za-z0-9_-]{300,}$/)

    const audience = 'https://broker.example/public/notifications/gcp/orgId/org_1?partnerId=x'
    const jwt = await gcp.mintOidcToken({ audience, email: pushAccount })
    expect(decodeProtectedHeader(jwt)).toEqual({ alg: 'RS256', kid: gcp.oidcKid, typ: 'JWT' })
    const { payload } = await jwtVerify(jwt, createRemoteJWKSet(new URL(gcp.oidcCertsUrl)), { issuer: GOOGLE_OIDC_ISSUER, audience, algorithms: ['RS256'] })
    expect(payload).toMatchObject({ iss: 'https://accounts.google.com', aud: audience, email: pushAccount, email_verified: true })
    expect(payload.exp! - payload.iat!).toBe(3600)
    expect(payload.azp).toMatch(/^\d{21}$/)
    expect(payload.sub).toBe(payload.azp)
    expect(gcp.callsTo('oidcCerts').length).toBeGreaterThan(0)
  })

  test('forged tokens fail verification: a stranger key, an unknown kid, expired', async () => {
    const jwks = createRemoteJWKSet(new URL(gcp.oidcCertsUrl))
    const verify = (jwt: string) => jwtVerify(jwt, jwks, { issuer: GOOGLE_OIDC_ISSUER, audience: 'a', algorithms: ['RS256'] })
    await expect(verify(await gcp.mintOidcToken({ audience: 'a', email: pushAccount, key: await gcp.strangerKey() }))).rejects.toThrow()
    await expect(verify(await gcp.mintOidcToken({ audience: 'a', email: pushAccount, kid: 'f'.repeat(40) }))).rejects.toThrow()
    await expect(verify(await gcp.mintOidcToken({ audience: 'a', email: pushAccount, expiresInSeconds: -120 }))).rejects.toThrow()
    await expect(verify(await gcp.mintOidcToken({ audience: 'a', email: pushAccount }))).resolves.toBeTruthy()
  })

  test('push POSTs the envelope with base64 data and a bearer token whose aud is the URL exactly', async () => {
    const received: Array<{ headers: Headers; body: any; url: string }> = []
    const receiver = new Hono()
    receiver.post('*', async (c) => {
      received.push({ headers: c.req.raw.headers, body: await c.req.json(), url: c.req.url })
      return c.body(null, 204)
    })
    const server = await new Promise<{ base: string; stop: () => Promise<void> }>((resolve) => {
      const s = serve({ fetch: receiver.fetch, hostname: '127.0.0.1', port: 0 }, (info: AddressInfo) =>
        resolve({ base: `http://127.0.0.1:${info.port}`, stop: () => new Promise<void>((done) => s.close(() => done())) }),
      )
    })
    try {
      const { id } = await activePurchase()
      const data = gcp.requestPlanChange(id, 'pro')
      const target = `${server.base}/public/notifications/gcp/orgId/org_1?partnerId=p-1`
      const response = await gcp.push(target, data, { serviceAccountEmail: pushAccount, messageId: '1234567890123456' })
      expect(response.status).toBe(204)
      const { headers, body } = received[0]!
      expect(headers.get('content-type')).toBe('application/json')
      expect(body).toMatchObject({
        message: { messageId: '1234567890123456', message_id: '1234567890123456' },
        subscription: expect.stringMatching(/^projects\/[^/]+\/subscriptions\/[^/]+$/),
      })
      expect(body.message.publishTime).toBe(body.message.publish_time)
      expect(JSON.parse(Buffer.from(body.message.data, 'base64').toString())).toEqual(data)
      const bearer = /^Bearer (.+)$/.exec(headers.get('authorization')!)![1]!
      const { payload } = await jwtVerify(bearer, createRemoteJWKSet(new URL(gcp.oidcCertsUrl)), { issuer: GOOGLE_OIDC_ISSUER, audience: target })
      expect(payload.email).toBe(pushAccount)

      await gcp.push(target, data, { serviceAccountEmail: pushAccount, token: null })
      expect(received[1]!.headers.get('authorization')).toBeNull()
      await gcp.push(target, data, { serviceAccountEmail: pushAccount, audience: 'https://custom.example/aud' })
      const custom = /^Bearer (.+)$/.exec(received[2]!.headers.get('authorization')!)![1]!
      expect(JSON.parse(Buffer.from(custom.split('.')[1]!, 'base64url').toString()).aud).toBe('https://custom.example/aud')
    } finally {
      await server.stop()
    }
  })

  test('pubsubMessage builds entitlement and account messages', () => {
    expect(gcp.pubsubMessage('ENTITLEMENT_CREATION_REQUESTED', { providerId, entitlementId: 'e-1' })).toEqual({
      eventId: expect.any(String),
      eventType: 'ENTITLEMENT_CREATION_REQUESTED',
      providerId,
      entitlement: { id: 'e-1', updateTime: expect.any(String) },
    })
    expect(gcp.pubsubMessage('ACCOUNT_ACTIVE', { providerId, accountId: 'a-1' })).toEqual({
      eventId: expect.any(String),
      eventType: 'ACCOUNT_ACTIVE',
      providerId,
      account: { id: 'a-1', updateTime: expect.any(String) },
    })
  })
})

describe('automatic offer approval (per product) and account messages', () => {
  const autoProduct = 'auto-saas.endpoints.acme-public.cloud.goog'
  const openProduct = 'open-saas.endpoints.acme-public.cloud.goog'
  beforeAll(() => {
    gcp.configureProduct(autoProduct, { automaticOfferApproval: true })
    gcp.configureProduct(openProduct, { automaticOfferApproval: true, accountApproval: false })
  })

  test('a purchase publishes ENTITLEMENT_OFFER_ACCEPTED with the offer dates, never CREATION_REQUESTED; a future start is not active before it, then ENTITLEMENT_ACTIVE', async () => {
    const start = new Date(Date.now() + 600).toISOString()
    const before = gcp.published.length
    const { accountId, entitlement, offerAccepted } = gcp.addPurchase({ providerId, product: autoProduct, private: true, offerStartTime: start })
    const id = entitlement!.name.split('/').pop()!
    expect(gcp.published.slice(before).map((m) => m.eventType)).toEqual(['ENTITLEMENT_OFFER_ACCEPTED'])
    expect(offerAccepted).toEqual(gcp.published.at(-1))
    expect(offerAccepted).toMatchObject({ eventType: 'ENTITLEMENT_OFFER_ACCEPTED', providerId, entitlement: { id, newOfferDuration: '', newOfferStartTime: start } })
    expect(offerAccepted!.entitlement!.newOfferEndTime).toBe(entitlement!.offerEndTime)

    const pending = await getEntitlement(id)
    expect(pending).toMatchObject({ state: 'ENTITLEMENT_ACTIVATION_REQUESTED', newOfferStartTime: start, newOfferEndTime: entitlement!.offerEndTime })
    expect(gcp.isAutoApproved(id)).toBe(true)
    // Nothing for the provider to approve: the call is refused and recorded.
    const calls = gcp.callsTo('approveEntitlement').length
    const approve = await api(`${entitlementPath(id)}:approve`, { body: {} })
    expect(approve.status).toBe(400)
    expect(gcp.callsTo('approveEntitlement')).toHaveLength(calls + 1)
    // The account approval still applies (a per-product setting of its own).
    expect((await approveAccount(accountId)).status).toBe(200)
    expect((await getEntitlement(id)).state).toBe('ENTITLEMENT_ACTIVATION_REQUESTED')

    for (let i = 0; i < 100 && (await getEntitlement(id)).state !== 'ENTITLEMENT_ACTIVE'; i++) await new Promise((r) => setTimeout(r, 20))
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(start))
    const active = await getEntitlement(id)
    expect(active.state).toBe('ENTITLEMENT_ACTIVE')
    expect(active.newOfferStartTime).toBeUndefined()
    expect(active.offerEndTime).toBe(entitlement!.offerEndTime)
    expect(gcp.published.filter((m) => m.entitlement?.id === id).map((m) => m.eventType)).toEqual(['ENTITLEMENT_OFFER_ACCEPTED', 'ENTITLEMENT_ACTIVE'])
  })

  test('the start waits for the account approval; without account approval for the product it starts at once; the start comes by itself (no request)', async () => {
    const waiting = gcp.addPurchase({ providerId, product: autoProduct })
    const waitingId = waiting.entitlement!.name.split('/').pop()!
    expect((await getEntitlement(waitingId)).state).toBe('ENTITLEMENT_ACTIVATION_REQUESTED')
    expect((await approveAccount(waiting.accountId)).status).toBe(200)
    expect((await getEntitlement(waitingId)).state).toBe('ENTITLEMENT_ACTIVE')

    const open = gcp.addPurchase({ providerId, product: openProduct })
    expect(open.account.approvals).toEqual([])
    expect(open.entitlement!.state).toBe('ENTITLEMENT_ACTIVE')

    const later = gcp.addPurchase({ providerId, product: openProduct, offerStartTime: new Date(Date.now() + 300).toISOString(), offerDuration: 'P1Y' })
    expect(later.entitlement!.state).toBe('ENTITLEMENT_ACTIVATION_REQUESTED')
    expect(later.offerAccepted!.entitlement).toMatchObject({ newOfferDuration: 'P1Y', newOfferEndTime: '' })
    for (let i = 0; i < 100 && later.entitlement!.state !== 'ENTITLEMENT_ACTIVE'; i++) await new Promise((r) => setTimeout(r, 20))
    expect(later.entitlement!.state).toBe('ENTITLEMENT_ACTIVE')
    expect(later.entitlement!.offerDuration).toBe('P1Y')
    expect(gcp.published.at(-1)).toMatchObject({ eventType: 'ENTITLEMENT_ACTIVE', entitlement: { id: later.entitlement!.name.split('/').pop() } })

    const scheduled = gcp.addPurchase({ providerId, product: openProduct, offerStartTime: new Date(Date.now() + 3600_000).toISOString() })
    const message = gcp.startOffer(scheduled.entitlement!.name.split('/').pop()!)
    expect(message).toMatchObject({ eventType: 'ENTITLEMENT_ACTIVE' })
  })

  test('a product without automatic approval is unchanged: no offer dates, no message until approved', async () => {
    const before = gcp.published.length
    const { entitlement } = gcp.addPurchase({ providerId })
    expect(gcp.published.length).toBe(before)
    expect(entitlement!.newOfferStartTime).toBeUndefined()
    expect(gcp.isAutoApproved(entitlement!.name.split('/').pop()!)).toBe(false)
  })

  test('renewed, offer ended (going on, or cancelled), plan change cancelled by the customer', async () => {
    const { id } = await activePurchase()
    const end = (await getEntitlement(id)).offerEndTime as string
    expect(gcp.renewEntitlement(id)).toMatchObject({ eventType: 'ENTITLEMENT_RENEWED', entitlement: { id } })
    const renewed = await getEntitlement(id)
    expect(Date.parse(renewed.offerEndTime)).toBe(Date.parse(end) + 365 * 24 * 3600_000)
    expect(gcp.endOffer(id)).toMatchObject({ eventType: 'ENTITLEMENT_OFFER_ENDED' })
    const ended = await getEntitlement(id)
    expect(ended.state).toBe('ENTITLEMENT_ACTIVE')
    expect(Date.parse(ended.offerEndTime)).toBeLessThan(Date.now())
    gcp.requestPlanChange(id, 'pro')
    expect(gcp.cancelPlanChange(id)).toMatchObject({ eventType: 'ENTITLEMENT_PLAN_CHANGE_CANCELLED' })
    expect(await getEntitlement(id)).toMatchObject({ state: 'ENTITLEMENT_ACTIVE', plan: 'standard' })
    expect(gcp.endOffer(id, { cancel: true })).toMatchObject({ eventType: 'ENTITLEMENT_OFFER_ENDED' })
    expect(await getEntitlement(id)).toMatchObject({ state: 'ENTITLEMENT_CANCELLED', cancellationReason: 'expired' })
  })

  test('account messages carry no eventType: {eventId, providerId, account: {id, updateTime}}; setAccountApproval publishes one', async () => {
    const { accountId } = gcp.addPurchase({ providerId })
    const message = gcp.accountMessage(accountId)
    expect(Object.keys(message).sort()).toEqual(['account', 'eventId', 'providerId'])
    expect(message.account).toEqual({ id: accountId, updateTime: gcp.accounts.get(`providers/${providerId}/accounts/${accountId}`)!.updateTime })
    expect((await approveAccount(accountId)).status).toBe(200)
    const reset = gcp.setAccountApproval(accountId, 'PENDING')
    expect(reset.eventType).toBeUndefined()
    expect(gcp.published.at(-1)).toEqual(reset)
    const account = (await (await api(`providers/${providerId}/accounts/${accountId}`)).json()) as { approvals: Array<{ name: string; state: string }> }
    expect(account.approvals).toEqual([expect.objectContaining({ name: 'signup', state: 'PENDING' })])
  })
})
