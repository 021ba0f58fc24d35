import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { runJobs } from '../src/domain/jobs'
import { createLandingService } from '../src/domain/landing'
import { type GcpEmulator, createGcpEmulator } from '../sandbox/emulators/gcp'
import { createTestBroker, lifecycleProbe } from './helpers'

/**
 * Google's side of contract §7 through the real route: Pub/Sub push with a Google OIDC token
 * (verified with jose against the emulator's JWKS: issuer, audience = the notificationUrl,
 * email = the push service account, email_verified), each entitlement re-read from the
 * Procurement API, ENTITLEMENT_CREATION_REQUESTED approved, plan changes approved unless the
 * integration says not to, an account deleted cancelling its entitlements.
 */
let gcp: GcpEmulator
const closers: Array<() => Promise<void>> = []
let gcpUrl: string
const PUSH_ACCOUNT = 'pubsub-push@acme-project.iam.gserviceaccount.com'

beforeAll(async () => {
  gcp = await createGcpEmulator()
  const server = await gcp.listen()
  gcpUrl = server.url
  closers.push(server.close)
})
afterAll(async () => {
  for (const close of closers) await close()
})

async function scenario(settings: Record<string, unknown> = {}) {
  const broker = await createTestBroker({
    GCP_MARKETPLACE_CERTS_URL: gcp.certsUrl,
    GCP_OAUTH_TOKEN_URL: gcp.tokenUrl,
    GCP_PROCUREMENT_API_URL: gcpUrl,
    GCP_OIDC_CERTS_URL: gcp.oidcCertsUrl,
  })
  const { org, apiKey } = await broker.createOrg()
  const providerId = `prov-${org.id.slice(-8)}`
  const key = await gcp.createServiceAccount(providerId)
  const put = await broker.request(`/api/v1/orgs/${org.id}/integrations/gcp`, {
    method: 'PUT',
    token: apiKey,
    json: { providerId, audience: 'acme.example', serviceAccountKey: key, pushServiceAccount: PUSH_ACCOUNT, ...settings },
  })
  expect(put.status, await put.clone().text()).toBe(200)
  const { integration } = (await put.json()) as { integration: { notificationUrl: string; autoApprovePlanChanges: boolean } }
  const land = async (accountId: string) => {
    const jwt = await gcp.mintToken({ aud: 'acme.example', sub: accountId, 'google.user_identity': 'user-1' })
    const landing = await broker.request(`/public/signup/gcp/orgId/${org.id}`, {
      method: 'POST',
      token: null,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ 'x-gcp-marketplace-token': jwt }).toString(),
    })
    expect(landing.status).toBe(303)
    return new URL(landing.headers.get('location')!).searchParams.get('sugerEntitlementId')!
  }
  let n = 0
  const push = async (data: unknown, options: { token?: string | null; audience?: string; email?: string } = {}) => {
    const token =
      options.token === undefined ? await gcp.mintOidcToken({ audience: options.audience ?? integration.notificationUrl, email: options.email ?? PUSH_ACCOUNT }) : options.token
    const body = {
      message: { data: Buffer.from(JSON.stringify(data)).toString('base64'), messageId: `${Date.now()}${n++}`, publishTime: new Date().toISOString() },
      subscription: `projects/acme/subscriptions/${providerId}`,
    }
    return broker.request(integration.notificationUrl, {
      method: 'POST',
      token: null,
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    })
  }
  const { read, events, rows, settled } = lifecycleProbe(broker, org.id, apiKey)
  return { broker, org, apiKey, providerId, integration, land, push, read, events, rows, settled }
}

describe('Google Pub/Sub notifications', () => {
  test('ENTITLEMENT_CREATION_REQUESTED is approved at Google (status stays PENDING_START), then ENTITLEMENT_ACTIVE makes it ACTIVE', async () => {
    const s = await scenario()
    const { accountId, entitlement } = gcp.addPurchase({ providerId: s.providerId })
    const id = await s.land(accountId)
    const entitlementId = entitlement!.name.split('/').pop()!
    expect((await s.read(id)).status).toBe('PENDING_START')
    const created = gcp.pubsubMessage('ENTITLEMENT_CREATION_REQUESTED', { entitlementId, providerId: s.providerId })
    expect((await s.push(created)).status).toBe(200)
    await s.settled()
    expect(gcp.callsTo('approveEntitlement')).toHaveLength(1)
    expect(gcp.entitlements.get(entitlement!.name)!.state).toBe('ENTITLEMENT_ACTIVE')
    expect((await s.read(id)).status).toBe('PENDING_START')
    expect((await s.push(gcp.pubsubMessage('ENTITLEMENT_ACTIVE', { entitlementId, providerId: s.providerId }))).status).toBe(200)
    await s.settled()
    expect((await s.read(id)).status).toBe('ACTIVE')
    expect((await s.events(id)).map((e) => [e.type, e.data.action])).toEqual([['ACTIVATE', 'ENTITLEMENT_ACTIVE']])
  })

  test('plan change: approved automatically, then ENTITLEMENT_PLAN_CHANGED sets the plan; with autoApprovePlanChanges false nothing is approved', async () => {
    const s = await scenario()
    const { accountId, entitlement } = gcp.addPurchase({ providerId: s.providerId, state: 'ENTITLEMENT_ACTIVE', plan: 'standard' })
    const id = await s.land(accountId)
    const entitlementId = entitlement!.name.split('/').pop()!
    expect((await s.push(gcp.requestPlanChange(entitlementId, 'premium'))).status).toBe(200)
    await s.settled()
    const approvals = gcp.callsTo('approvePlanChange').filter((call) => call.path.includes(entitlementId))
    expect(approvals.map((call) => JSON.parse(call.body))).toEqual([{ pendingPlanName: 'premium' }])
    expect((await s.read(id)).planId).toBe('standard')
    expect((await s.push(gcp.completePlanChange(entitlementId))).status).toBe(200)
    await s.settled()
    expect((await s.read(id)).planId).toBe('premium')
    expect((await s.events(id)).map((e) => e.type)).toEqual(['UPDATE'])

    const manual = await scenario({ autoApprovePlanChanges: false })
    expect(manual.integration.autoApprovePlanChanges).toBe(false)
    const other = gcp.addPurchase({ providerId: manual.providerId, state: 'ENTITLEMENT_ACTIVE' })
    await manual.land(other.accountId)
    const otherId = other.entitlement!.name.split('/').pop()!
    await manual.push(gcp.requestPlanChange(otherId, 'premium'))
    await manual.settled()
    expect(gcp.callsTo('approvePlanChange').filter((call) => call.path.includes(otherId))).toHaveLength(0)
  })

  test('pending cancellation, reverted, cancelled; a redelivery writes nothing twice', async () => {
    const s = await scenario()
    const { accountId, entitlement } = gcp.addPurchase({ providerId: s.providerId, state: 'ENTITLEMENT_ACTIVE' })
    const id = await s.land(accountId)
    const entitlementId = entitlement!.name.split('/').pop()!
    const pending = gcp.setEntitlementState(entitlementId, 'ENTITLEMENT_PENDING_CANCELLATION')
    await s.push(pending)
    await s.settled()
    expect((await s.read(id)).status).toBe('PENDING_CANCEL')
    await s.push(gcp.setEntitlementState(entitlementId, 'ENTITLEMENT_ACTIVE'))
    await s.settled()
    expect((await s.read(id)).status).toBe('ACTIVE')
    const cancelled = gcp.setEntitlementState(entitlementId, 'ENTITLEMENT_CANCELLED', { cancellationReason: 'buyer cancelled' } as never)
    await s.push(cancelled)
    await s.settled()
    expect((await s.read(id)).status).toBe('CANCELLED')
    // The older pending-cancellation message, delivered again late: nothing moves back.
    await s.push(pending)
    await s.settled()
    expect((await s.read(id)).status).toBe('CANCELLED')
    expect((await s.events(id)).map((e) => e.type)).toEqual(['PENDING_CANCEL', 'ACTIVATE', 'CANCEL'])
  })

  test('a purchase landed before its entitlement existed (account/<id>) takes the entitlement’s real id: still one entitlement', async () => {
    const s = await scenario()
    const { accountId } = gcp.addPurchase({ providerId: s.providerId, withEntitlement: false })
    const id = await s.land(accountId)
    expect((await s.read(id)).externalId).toBe(`account/${accountId}`)
    const entitlement = gcp.addEntitlement({ providerId: s.providerId, accountId })
    const entitlementId = entitlement.name.split('/').pop()!
    await s.push(gcp.pubsubMessage('ENTITLEMENT_CREATION_REQUESTED', { entitlementId, providerId: s.providerId }))
    await s.settled()
    expect((await s.read(id)).externalId).toBe(entitlementId)
    expect(gcp.callsTo('approveEntitlement').filter((call) => call.path.includes(entitlementId))).toHaveLength(1)
    const list = (await (await s.broker.request(`/api/v1/orgs/${s.org.id}/entitlements`, { token: s.apiKey })).json()) as { items: unknown[] }
    expect(list.items).toHaveLength(1)
  })

  test('a message that overtakes its buyer waits (the account is not approved yet) and is applied after the landing', async () => {
    const s = await scenario()
    const { accountId, entitlement } = gcp.addPurchase({ providerId: s.providerId })
    const entitlementId = entitlement!.name.split('/').pop()!
    await s.push(gcp.pubsubMessage('ENTITLEMENT_CREATION_REQUESTED', { entitlementId, providerId: s.providerId }))
    const [waiting] = await s.settled()
    expect(waiting!.status).toBe('WAITING')
    expect(gcp.callsTo('approveEntitlement').filter((call) => call.path.includes(entitlementId))).toHaveLength(0)
    await s.land(accountId)
    await runJobs(s.broker.deps, createLandingService(s.broker.deps), s.broker.deps.logger)
    expect((await s.rows())[0]!.status).toBe('APPLIED')
    expect(gcp.entitlements.get(entitlement!.name)!.state).toBe('ENTITLEMENT_ACTIVE')
  })

  test('ACCOUNT_DELETED cancels every entitlement of the account', async () => {
    const s = await scenario()
    const { accountId } = gcp.addPurchase({ providerId: s.providerId, state: 'ENTITLEMENT_ACTIVE' })
    const id = await s.land(accountId)
    await s.push(gcp.deleteAccount(accountId))
    await s.settled()
    expect((await s.read(id)).status).toBe('CANCELLED')
  })

  test('authentication: no token, another key, another audience, another service account, unverified email, no pushServiceAccount configured: 401, nothing stored', async () => {
    const s = await scenario()
    const { accountId, entitlement } = gcp.addPurchase({ providerId: s.providerId })
    await s.land(accountId)
    const data = gcp.pubsubMessage('ENTITLEMENT_ACTIVE', { entitlementId: entitlement!.name.split('/').pop()!, providerId: s.providerId })
    const url = s.integration.notificationUrl
    const forged = [
      null,
      await gcp.mintOidcToken({ audience: url, email: PUSH_ACCOUNT, key: await gcp.strangerKey() }),
      await gcp.mintOidcToken({ audience: 'https://elsewhere.example/push', email: PUSH_ACCOUNT }),
      await gcp.mintOidcToken({ audience: url.replace(/\?.*$/, ''), email: PUSH_ACCOUNT }),
      await gcp.mintOidcToken({ audience: url, email: 'someone@else.iam.gserviceaccount.com' }),
      await gcp.mintOidcToken({ audience: url, email: PUSH_ACCOUNT, emailVerified: false }),
      await gcp.mintOidcToken({ audience: url, email: PUSH_ACCOUNT, issuer: 'https://evil.example' }),
      await gcp.mintOidcToken({ audience: url, email: PUSH_ACCOUNT, expiresInSeconds: -600, issuedAt: Math.floor(Date.now() / 1000) - 4000 }),
    ]
    for (const [i, token] of forged.entries()) expect((await s.push(data, { token })).status, `forgery ${i}`).toBe(401)
    expect(await s.rows()).toEqual([])
    const bad = await s.broker.request(url, {
      method: 'POST',
      token: null,
      headers: { authorization: `Bearer ${await gcp.mintOidcToken({ audience: url, email: PUSH_ACCOUNT })}`, 'content-type': 'application/json' },
      body: JSON.stringify({ message: { data: 'not base64 json', messageId: '1' } }),
    })
    expect(bad.status).toBe(400)

    const unconfigured = await scenario({ pushServiceAccount: undefined })
    const put = await unconfigured.broker.request(`/api/v1/orgs/${unconfigured.org.id}/integrations/gcp`, {
      method: 'PUT',
      token: unconfigured.apiKey,
      json: { providerId: unconfigured.providerId, audience: 'acme.example', serviceAccountKey: await gcp.createServiceAccount(unconfigured.providerId) },
    })
    expect(put.status).toBe(200)
    expect((await unconfigured.push(data)).status).toBe(401)
  })
})

describe('Google automatic offer approval and account messages (contract §17)', () => {
  const autoProduct = 'auto-lifecycle.endpoints.acme-public.cloud.goog'
  const openProduct = 'open-lifecycle.endpoints.acme-public.cloud.goog'
  beforeAll(() => {
    gcp.configureProduct(autoProduct, { automaticOfferApproval: true })
    gcp.configureProduct(openProduct, { automaticOfferApproval: true, accountApproval: false })
  })
  const short = (entitlement: { name: string }) => entitlement.name.split('/').pop()!
  const approvalsOf = (entitlementId: string) => gcp.callsTo('approveEntitlement').filter((call) => call.path.includes(entitlementId))

  test('ENTITLEMENT_OFFER_ACCEPTED with a future start: waits for the buyer, stays PENDING_START with the offer dates, nothing approved; ACTIVE once Google’s entitlement is', async () => {
    const s = await scenario()
    const start = new Date(Date.now() + 3600_000).toISOString()
    const { accountId, entitlement, offerAccepted } = gcp.addPurchase({ providerId: s.providerId, product: autoProduct, private: true, offerStartTime: start })
    const entitlementId = short(entitlement!)
    expect((await s.push(offerAccepted)).status).toBe(200)
    expect((await s.settled())[0]!.status).toBe('WAITING')
    const id = await s.land(accountId)
    await runJobs(s.broker.deps, createLandingService(s.broker.deps), s.broker.deps.logger)
    expect((await s.rows()).map((row) => row.status)).toEqual(['APPLIED'])
    const pending = await s.read(id)
    expect(pending).toMatchObject({ status: 'PENDING_START', externalId: entitlementId, term: { start, end: entitlement!.offerEndTime } })
    expect((pending as unknown as { info: { entitlement: Record<string, unknown> } }).info.entitlement).toMatchObject({ newOfferStartTime: start, newOfferEndTime: entitlement!.offerEndTime })
    // The offer dates are stored: the message was applied, and no approval was asked for.
    expect(approvalsOf(entitlementId)).toEqual([])
    expect(gcp.entitlements.get(entitlement!.name)!.state).toBe('ENTITLEMENT_ACTIVATION_REQUESTED')

    // The scheduled start comes: Google's entitlement becomes active and says so.
    const active = gcp.startOffer(entitlementId)
    expect(active).toMatchObject({ eventType: 'ENTITLEMENT_ACTIVE' })
    expect((await s.push(active)).status).toBe(200)
    await s.settled()
    const started = await s.read(id)
    expect(started).toMatchObject({ status: 'ACTIVE', term: { start, end: entitlement!.offerEndTime } })
    expect((await s.events(id)).map((e) => [e.type, e.data.action])).toEqual([['ACTIVATE', 'ENTITLEMENT_ACTIVE']])
    expect(approvalsOf(entitlementId)).toEqual([])
  })

  test('ENTITLEMENT_OFFER_ACCEPTED after the landing; the start passes without a message: reconciliation (refresh) makes it ACTIVE', async () => {
    const s = await scenario()
    const start = new Date(Date.now() + 700).toISOString()
    const { accountId, entitlement, offerAccepted } = gcp.addPurchase({ providerId: s.providerId, product: openProduct, offerStartTime: start })
    const id = await s.land(accountId)
    expect((await s.push(offerAccepted)).status).toBe(200)
    expect((await s.settled()).map((row) => row.status)).toEqual(['APPLIED'])
    expect(await s.read(id)).toMatchObject({ status: 'PENDING_START', term: { start } })
    expect(approvalsOf(short(entitlement!))).toEqual([])
    for (let i = 0; i < 100 && entitlement!.state !== 'ENTITLEMENT_ACTIVE'; i++) await new Promise((r) => setTimeout(r, 20))
    expect(entitlement!.state).toBe('ENTITLEMENT_ACTIVE')
    const refreshed = await s.broker.request(`/api/v1/orgs/${s.org.id}/entitlements/${id}/refresh`, { method: 'POST', token: s.apiKey })
    expect(refreshed.status).toBe(200)
    expect(await refreshed.json()).toMatchObject({ status: 'ACTIVE', term: { start } })
    expect((await s.events(id)).map((e) => [e.type, e.data.reconciled])).toEqual([['ACTIVATE', true]])
  })

  test('an ENTITLEMENT_CREATION_REQUESTED for an entitlement Google approved already (offer dates set) is not approved again', async () => {
    const s = await scenario()
    const { accountId, entitlement } = gcp.addPurchase({ providerId: s.providerId, product: autoProduct, offerStartTime: new Date(Date.now() + 3600_000).toISOString() })
    const id = await s.land(accountId)
    await s.push(gcp.pubsubMessage('ENTITLEMENT_CREATION_REQUESTED', { entitlementId: short(entitlement!), providerId: s.providerId }))
    expect((await s.settled()).map((row) => row.status)).toEqual(['APPLIED'])
    expect(approvalsOf(short(entitlement!))).toEqual([])
    expect((await s.read(id)).status).toBe('PENDING_START')
  })

  test('RENEWED writes UPDATE with the new term; OFFER_ENDED and CANCELLING apply what changed; PLAN_CHANGE_CANCELLED is 200 and writes nothing', async () => {
    const s = await scenario()
    const { accountId, entitlement } = gcp.addPurchase({ providerId: s.providerId, product: openProduct })
    const entitlementId = short(entitlement!)
    const id = await s.land(accountId)
    expect((await s.read(id)).status).toBe('ACTIVE')
    const renewed = gcp.renewEntitlement(entitlementId)
    expect((await s.push(renewed)).status).toBe(200)
    await s.settled()
    expect((await s.read(id)).term.end).toBe(entitlement!.offerEndTime)
    const [update] = await s.events(id)
    expect(update).toMatchObject({ type: 'UPDATE', data: { action: 'ENTITLEMENT_RENEWED', term: { end: entitlement!.offerEndTime } } })

    gcp.requestPlanChange(entitlementId, 'premium')
    const withdrawn = gcp.cancelPlanChange(entitlementId)
    // Google's term moved meanwhile (its own message not here yet): this message still changes nothing.
    gcp.renewEntitlement(entitlementId)
    expect((await s.push(withdrawn)).status).toBe(200)
    expect((await s.settled()).at(-1)!.status).toBe('APPLIED')
    expect(await s.events(id)).toHaveLength(1)

    const ended = gcp.endOffer(entitlementId)
    expect((await s.push(ended)).status).toBe(200)
    await s.settled()
    expect(await s.read(id)).toMatchObject({ status: 'ACTIVE', term: { end: entitlement!.offerEndTime } })
    expect((await s.events(id)).map((e) => [e.type, e.data.action])).toEqual([
      ['UPDATE', 'ENTITLEMENT_RENEWED'],
      ['UPDATE', 'ENTITLEMENT_OFFER_ENDED'],
    ])
    const cancelling = gcp.setEntitlementState(entitlementId, 'ENTITLEMENT_PENDING_CANCELLATION', { eventType: 'ENTITLEMENT_CANCELLING' })
    expect((await s.push(cancelling)).status).toBe(200)
    await s.settled()
    expect((await s.read(id)).status).toBe('PENDING_CANCEL')
    expect((await s.events(id)).at(-1)).toMatchObject({ type: 'PENDING_CANCEL', data: { action: 'ENTITLEMENT_CANCELLING' } })
  })

  test('an account message without eventType is 200; the account is re-read and, its approval pending and its buyer landed, approved; the offer waiting on it starts', async () => {
    const s = await scenario()
    const { accountId, entitlement } = gcp.addPurchase({ providerId: s.providerId, product: openProduct, offerStartTime: new Date(Date.now() + 3600_000).toISOString() })
    const id = await s.land(accountId)
    // Account approval is turned on (or the approval reset) after the landing: Google's account message.
    const message = gcp.setAccountApproval(accountId, 'PENDING')
    expect(message.eventType).toBeUndefined()
    expect(gcp.startOffer(short(entitlement!))).toBeNull()
    const approvals = gcp.callsTo('approve').filter((call) => call.path.includes(accountId)).length
    expect((await s.push(message)).status).toBe(200)
    const rows = await s.settled()
    expect(rows.map((row) => [row.status, row.action])).toEqual([['APPLIED', 'ACCOUNT']])
    expect(gcp.callsTo('approve').filter((call) => call.path.includes(accountId))).toHaveLength(approvals + 1)
    expect(gcp.accounts.get(`providers/${s.providerId}/accounts/${accountId}`)!.approvals[0]!.state).toBe('APPROVED')
    expect((await s.read(id)).status).toBe('ACTIVE')
    expect((await s.events(id)).map((e) => [e.type, e.data.action])).toEqual([['ACTIVATE', 'ACCOUNT']])
    expect(approvalsOf(short(entitlement!))).toEqual([])

    // The documented message for an account nobody has landed with: 200, applied, nothing approved.
    const other = gcp.addPurchase({ providerId: s.providerId })
    const before = gcp.callsTo('approve').length
    expect((await s.push(gcp.accountMessage(other.accountId))).status).toBe(200)
    expect((await s.settled()).at(-1)!.status).toBe('APPLIED')
    expect(gcp.callsTo('approve')).toHaveLength(before)
  })
})
