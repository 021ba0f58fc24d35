import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { GOOGLE_ISSUER, type GcpEmulator, createGcpEmulator } from '../sandbox/emulators/gcp'
import { createTestBroker } from './helpers'

let gcp: GcpEmulator
let url: string
let close: () => Promise<void>
const providerId = 'acme-provider'
const audience = 'app.acme.example'

beforeAll(async () => {
  gcp = await createGcpEmulator()
  ;({ url, close } = await gcp.listen())
})
afterAll(async () => {
  await close()
})

async function scenario(integration: Record<string, unknown> = {}) {
  const broker = await createTestBroker({ GCP_MARKETPLACE_CERTS_URL: gcp.certsUrl, GCP_OAUTH_TOKEN_URL: gcp.tokenUrl, GCP_PROCUREMENT_API_URL: url })
  const { org, apiKey } = await broker.createOrg()
  const put = await broker.request(`/api/v1/orgs/${org.id}/integrations/gcp`, {
    method: 'PUT',
    token: apiKey,
    json: { providerId, audience, serviceAccountKey: await gcp.createServiceAccount(providerId), ...integration },
  })
  expect(put.status).toBe(200)
  const post = (token: string | null) =>
    broker.request(`/public/signup/gcp/orgId/${org.id}`, {
      method: 'POST',
      token: null,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(token === null ? {} : { 'x-gcp-marketplace-token': token }).toString(),
    })
  const entitlement = async (response: Response) => {
    const id = new URL(response.headers.get('location')!).searchParams.get('sugerEntitlementId')!
    return (await (await broker.request(`/api/v1/orgs/${org.id}/entitlements/${id}`, { token: apiKey })).json()) as Record<string, any>
  }
  return { broker, org, apiKey, post, entitlement }
}

const approvalOf = (accountId: string) => gcp.accounts.get(`providers/${providerId}/accounts/${accountId}`)!.approvals[0]!.state

describe('gcp landing: happy paths', () => {
  test('verifies the JWT, approves the account and maps the entitlement', async () => {
    const s = await scenario()
    const { accountId, entitlement } = gcp.addPurchase({ providerId, plan: 'pro' })
    const response = await s.post(await gcp.mintToken({ aud: audience, sub: accountId, 'google.user_identity': 'obfuscated-user-1' }))
    expect(response.status).toBe(303)
    expect(new URL(response.headers.get('location')!).searchParams.get('offerType')).toBe('DEFAULT')
    expect(approvalOf(accountId)).toBe('APPROVED')
    const approve = gcp.callsTo('approve').at(-1)!
    expect(approve.path).toBe(`/v1/providers/${providerId}/accounts/${accountId}:approve`)
    expect(JSON.parse(approve.body)).toEqual({ approvalName: 'signup' })
    expect(gcp.callsTo('listEntitlements').at(-1)!.query.filter).toBe(`account=${accountId}`)
    expect(await s.entitlement(response)).toMatchObject({
      partner: 'gcp',
      status: 'PENDING_START',
      externalId: entitlement!.name.split('/').pop(),
      productId: entitlement!.productExternalName,
      planId: 'pro',
      buyer: { accountId, customerId: 'obfuscated-user-1' },
      term: { end: entitlement!.offerEndTime },
      info: { entitlement: { name: entitlement!.name }, account: { id: accountId } },
    })
  })

  test('an entitlement from a private offer is PRIVATE', async () => {
    const s = await scenario()
    const { accountId } = gcp.addPurchase({ providerId, private: true })
    const response = await s.post(await gcp.mintToken({ aud: audience, sub: accountId }))
    expect(new URL(response.headers.get('location')!).searchParams.get('offerType')).toBe('PRIVATE')
  })

  test("the integration's offerTypes mapping (by plan) wins", async () => {
    const s = await scenario({ offerTypes: { enterprise: 'FIXED_FEE' } })
    const { accountId } = gcp.addPurchase({ providerId, plan: 'enterprise', private: true })
    const response = await s.post(await gcp.mintToken({ aud: audience, sub: accountId }))
    expect(new URL(response.headers.get('location')!).searchParams.get('offerType')).toBe('FIXED_FEE')
  })

  test('google.orders picks the named entitlement; otherwise the newest one wins', async () => {
    const s = await scenario()
    const { accountId } = gcp.addPurchase({ providerId, withEntitlement: false })
    const older = gcp.addEntitlement({ providerId, accountId, plan: 'old', createTime: '2026-01-01T00:00:00Z' })
    const newer = gcp.addEntitlement({ providerId, accountId, plan: 'new', createTime: '2026-06-01T00:00:00Z' })
    gcp.addEntitlement({ providerId, accountId, plan: 'middle', createTime: '2026-03-01T00:00:00Z' })
    const byOrder = await s.post(await gcp.mintToken({ aud: audience, sub: accountId, 'google.orders': [older.orderId] }))
    expect((await s.entitlement(byOrder)).planId).toBe('old')
    const byAge = await s.post(await gcp.mintToken({ aud: audience, sub: accountId }))
    expect((await s.entitlement(byAge)).externalId).toBe(newer.orderId)
  })

  test('an account without an entitlement yet is stored as account/<id>', async () => {
    const s = await scenario()
    const { accountId } = gcp.addPurchase({ providerId, withEntitlement: false })
    const response = await s.post(await gcp.mintToken({ aud: audience, sub: accountId }))
    expect(response.status).toBe(303)
    expect(await s.entitlement(response)).toMatchObject({ externalId: `account/${accountId}`, status: 'PENDING_START', productId: null, planId: null })
  })

  test('a returning buyer (account already approved, new JWT) lands on the same entitlement', async () => {
    const s = await scenario()
    const { accountId } = gcp.addPurchase({ providerId })
    const first = await s.post(await gcp.mintToken({ aud: audience, sub: accountId }))
    const second = await s.post(await gcp.mintToken({ aud: audience, sub: accountId, iat: Math.floor(Date.now() / 1000) - 1 }))
    expect(second.status).toBe(303)
    expect(second.headers.get('location')).toBe(first.headers.get('location'))
    expect(gcp.callsTo('getAccount').length).toBeGreaterThan(0) // the refused re-approval was checked, not trusted blindly
  })

  test('the service-account token is exchanged once (aud, scope and signature checked by the emulator) and reused', async () => {
    const before = gcp.callsTo('token').length
    const s = await scenario()
    for (let i = 0; i < 3; i++) {
      const { accountId } = gcp.addPurchase({ providerId })
      expect((await s.post(await gcp.mintToken({ aud: audience, sub: accountId }))).status).toBe(303)
    }
    expect(gcp.callsTo('token').length - before).toBe(1)
  })

  test('a token endpoint that wants its own URL as the assertion audience is answered on the second try', async () => {
    gcp.setTokenAudience('self')
    try {
      const s = await scenario()
      const before = gcp.callsTo('token').length
      const { accountId } = gcp.addPurchase({ providerId })
      expect((await s.post(await gcp.mintToken({ aud: audience, sub: accountId }))).status).toBe(303)
      const calls = gcp.callsTo('token').slice(before)
      expect(calls).toHaveLength(2)
      const aud = (call: { body: string }) => JSON.parse(Buffer.from(new URLSearchParams(call.body).get('assertion')!.split('.')[1]!, 'base64url').toString()).aud
      expect(aud(calls[0]!)).toBe('https://oauth2.googleapis.com/token')
      expect(aud(calls[1]!)).toBe(gcp.tokenUrl)
    } finally {
      gcp.setTokenAudience('google')
    }
  })

  test('a transient 5xx from the Procurement API is retried', async () => {
    const s = await scenario()
    const { accountId } = gcp.addPurchase({ providerId })
    gcp.failNext('listEntitlements', 503, 2)
    expect((await s.post(await gcp.mintToken({ aud: audience, sub: accountId }))).status).toBe(303)
  })

  test('a service account Google does not know is a configuration problem (503 page, error logged with the org)', async () => {
    const s = await scenario({ serviceAccountKey: { ...(await gcp.createServiceAccount('other-provider')), client_email: 'ghost@nowhere.iam.gserviceaccount.com' } })
    const { accountId } = gcp.addPurchase({ providerId })
    const response = await s.post(await gcp.mintToken({ aud: audience, sub: accountId }))
    expect(response.status).toBe(503)
    expect(approvalOf(accountId)).toBe('PENDING')
    const line = s.broker.logs.map((l) => JSON.parse(l)).find((l) => l.msg.includes('integration misconfigured'))
    expect(line).toMatchObject({ orgId: s.org.id, partner: 'gcp', call: 'gcp.token' })
  })
})

describe('gcp landing: JWT refusals approve nothing', () => {
  const now = () => Math.floor(Date.now() / 1000)
  const cases: Array<[string, (accountId: string) => Promise<string>]> = [
    ['expired', (sub) => gcp.mintToken({ aud: audience, sub, iat: now() - 900, exp: now() - 120 })],
    ['for another audience', (sub) => gcp.mintToken({ aud: 'evil.example', sub })],
    ['signed by another key', async (sub) => gcp.mintToken({ aud: audience, sub }, { key: await gcp.strangerKey() })],
    ['alg none', (sub) => gcp.mintToken({ aud: audience, sub }, { alg: 'none' })],
    ['HS256 keyed with the public certificate', (sub) => gcp.mintToken({ aud: audience, sub }, { alg: 'HS256', hmacSecret: new TextEncoder().encode(gcp.certificatePem) })],
    ['with an unknown kid', (sub) => gcp.mintToken({ aud: audience, sub }, { kid: 'no-such-kid' })],
    ['without a kid', (sub) => gcp.mintToken({ aud: audience, sub }, { kid: null })],
    ['with a wrong issuer', (sub) => gcp.mintToken({ aud: audience, sub, iss: 'https://accounts.google.com' })],
    ['with an empty subject', () => gcp.mintToken({ aud: audience, sub: '' })],
    ['issued in the future', (sub) => gcp.mintToken({ aud: audience, sub, iat: now() + 600, exp: now() + 900 })],
    ['not a JWT at all', async () => 'not.a.jwt'],
  ]

  test.each(cases)('a JWT %s is a 400 page; the account stays unapproved', async (_, mint) => {
    const s = await scenario()
    const { accountId } = gcp.addPurchase({ providerId })
    const approvesBefore = gcp.callsTo('approve').length
    const token = await mint(accountId)
    const response = await s.post(token)
    expect(response.status).toBe(400)
    expect(response.headers.get('cache-control')).toBe('no-store')
    const html = await response.text()
    expect(html).toContain('Google Cloud Marketplace')
    expect(html).not.toContain(token)
    expect(gcp.callsTo('approve').length).toBe(approvesBefore)
    expect(approvalOf(accountId)).toBe('PENDING')
    const refusal = s.broker.logs.map((l) => JSON.parse(l)).find((l) => l.msg === 'marketplace token refused')
    expect(refusal?.reason).toMatch(/GCP token/)
    expect(s.broker.logs.join('\n')).not.toContain(token)
  })

  test('the expected issuer stays Google’s even though the certificates come from elsewhere', () => {
    expect(GOOGLE_ISSUER).toBe('https://www.googleapis.com/robot/v1/metadata/x509/cloud-commerce-partner@system.gserviceaccount.com')
  })
})

describe('gcp certificates', () => {
  test('an unknown kid refetches the certificates at most once a minute; a rotated key is picked up', async () => {
    const s = await scenario()
    const { accountId } = gcp.addPurchase({ providerId })
    expect((await s.post(await gcp.mintToken({ aud: audience, sub: accountId }))).status).toBe(303)
    const fetches = gcp.callsTo('certs').length
    for (let i = 0; i < 5; i++) {
      expect((await s.post(await gcp.mintToken({ aud: audience, sub: accountId }, { kid: `bogus-${i}` }))).status).toBe(400)
    }
    expect(gcp.callsTo('certs').length).toBe(fetches) // fetched less than a minute ago: no refetch

    // A fresh broker (fresh cache) after Google rotated its key finds the new kid.
    const t = await scenario()
    await gcp.rotateKey()
    const { accountId: other } = gcp.addPurchase({ providerId })
    expect((await t.post(await gcp.mintToken({ aud: audience, sub: other }))).status).toBe(303)
  })
})

describe('gcp landing: automatic offer approval', () => {
  const autoProduct = 'auto-landing.endpoints.acme-public.cloud.goog'
  const openProduct = 'open-landing.endpoints.acme-public.cloud.goog'
  beforeAll(() => {
    gcp.configureProduct(autoProduct, { automaticOfferApproval: true })
    gcp.configureProduct(openProduct, { automaticOfferApproval: true, accountApproval: false })
  })
  const approvalsOf = (entitlementId: string) => gcp.callsTo('approveEntitlement').filter((call) => call.path.includes(entitlementId))

  test('an offer with a future start: the account is approved, the entitlement is not; PENDING_START with the offer dates in term and Google’s fields in info', async () => {
    const s = await scenario()
    const start = new Date(Date.now() + 7 * 24 * 3600_000).toISOString()
    const { accountId, entitlement } = gcp.addPurchase({ providerId, product: autoProduct, private: true, offerStartTime: start })
    const entitlementId = entitlement!.name.split('/').pop()!
    const response = await s.post(await gcp.mintToken({ aud: audience, sub: accountId }))
    expect(response.status).toBe(303)
    expect(approvalOf(accountId)).toBe('APPROVED')
    const stored = await s.entitlement(response)
    expect(stored).toMatchObject({
      status: 'PENDING_START',
      externalId: entitlementId,
      offerType: 'PRIVATE',
      term: { start, end: entitlement!.offerEndTime },
      info: { entitlement: { newOfferStartTime: start, newOfferEndTime: entitlement!.offerEndTime, state: 'ENTITLEMENT_ACTIVATION_REQUESTED' } },
    })
    expect(approvalsOf(entitlementId)).toEqual([])
    expect(gcp.entitlements.get(entitlement!.name)!.state).toBe('ENTITLEMENT_ACTIVATION_REQUESTED')
  })

  test('a product without account approval whose offer is already active: the landing succeeds, ACTIVE, nothing approved', async () => {
    const s = await scenario()
    const { accountId, entitlement } = gcp.addPurchase({ providerId, product: openProduct })
    expect(entitlement!.state).toBe('ENTITLEMENT_ACTIVE')
    const response = await s.post(await gcp.mintToken({ aud: audience, sub: accountId }))
    expect(response.status).toBe(303)
    expect(await s.entitlement(response)).toMatchObject({ status: 'ACTIVE', externalId: entitlement!.name.split('/').pop() })
    expect(approvalsOf(entitlement!.name.split('/').pop()!)).toEqual([])
    // The same landing again (reload): the same entitlement, still ACTIVE.
    const again = await s.post(await gcp.mintToken({ aud: audience, sub: accountId }))
    expect(again.headers.get('location')).toBe(response.headers.get('location'))
  })

  test('an ENTITLEMENT_ACTIVE entitlement that still names a future newOfferStartTime is not ACTIVE before it', async () => {
    const s = await scenario()
    const { accountId, entitlement } = gcp.addPurchase({ providerId, product: openProduct })
    const start = new Date(Date.now() + 3600_000).toISOString()
    entitlement!.newOfferStartTime = start
    const response = await s.post(await gcp.mintToken({ aud: audience, sub: accountId }))
    expect(await s.entitlement(response)).toMatchObject({ status: 'PENDING_START', term: { start } })
  })
})
