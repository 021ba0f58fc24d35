import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { runJobs } from '../src/domain/jobs'
import { createLandingService } from '../src/domain/landing'
import type { AzureWebhookBody, MintWebhookTokenInput } from '../sandbox/emulators/azure'
import { type AzureSetup, createAzureScenario, sleep, startAzure, waitFor } from './helpers'

/**
 * Azure's side of contract §7, end to end through the real route: the Entra JWT is verified
 * with jose against the emulator's JWKS, every operation is confirmed with Microsoft's
 * operations API before it is applied, ChangePlan/ChangeQuantity/Reinstate are acknowledged
 * with PATCH, and a redelivery never writes a second event.
 */
let azure: AzureSetup
beforeAll(async () => {
  azure = await startAzure()
})
afterAll(async () => {
  await azure.close()
})

type Scenario = Awaited<ReturnType<typeof createAzureScenario>>

interface Entitlement {
  id: string
  status: string
  planId: string | null
  quantity: number | null
  term: { start: string | null; end: string | null }
}
interface Event {
  type: string
  source: string
  data: Record<string, unknown>
}

/** A broker with an Azure integration and one buyer who has landed (ACTIVE). */
async function landed(subscription: { quantity?: number; planId?: string } = {}) {
  const scenario = await createAzureScenario(azure)
  const sub = azure.emulator.addSubscription({ appId: azure.clientId, ...subscription })
  const landing = await scenario.broker.request(scenario.landingPath(`?token=${encodeURIComponent(azure.emulator.issuePurchaseToken(sub.id))}`), { token: null })
  expect(landing.status).toBe(303)
  const entitlementId = new URL(landing.headers.get('location')!).searchParams.get('sugerEntitlementId')!
  return { ...scenario, sub, entitlementId }
}

function notificationPath(scenario: Scenario) {
  return scenario.integration.notificationUrl
}

async function notify(scenario: Scenario, body: object | string, token?: string | null, tokenInput: Partial<MintWebhookTokenInput> = {}) {
  const jwt = token === undefined ? await azure.emulator.mintWebhookToken({ tenantId: azure.tenantId, clientId: azure.clientId, ...tokenInput }) : token
  return scenario.broker.request(notificationPath(scenario), {
    method: 'POST',
    token: null,
    headers: { 'content-type': 'application/json', ...(jwt === null ? {} : { authorization: `Bearer ${jwt}` }) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
}

async function notificationRows(scenario: Scenario) {
  return scenario.broker.deps.db.selectFrom('notifications').selectAll().orderBy('created_at').execute()
}

/** Waits until every stored notification has left PENDING (the route applies right after answering). */
async function settled(scenario: Scenario) {
  for (let i = 0; i < 100; i++) {
    const rows = await notificationRows(scenario)
    if (rows.every((row) => row.status !== 'PENDING' || row.lease_until === null && row.attempts > 0)) return rows
    await sleep(20)
  }
  throw new Error('notifications did not settle')
}

async function entitlement(scenario: Scenario, id: string) {
  return (await (await scenario.broker.request(`/api/v1/orgs/${scenario.org.id}/entitlements/${id}`, { token: scenario.apiKey })).json()) as Entitlement
}

async function events(scenario: Scenario, id: string) {
  const body = (await (await scenario.broker.request(`/api/v1/orgs/${scenario.org.id}/entitlements/${id}/events`, { token: scenario.apiKey })).json()) as { items: Event[] }
  return body.items
}

const marketplaceEvents = async (scenario: Scenario, id: string) => (await events(scenario, id)).filter((event) => event.source === 'marketplace')

describe('Azure notifications: the effects of §7', () => {
  test('integrations answer their notificationUrl beside the signupUrl', async () => {
    const scenario = await createAzureScenario(azure)
    const integration = scenario.integration
    expect(integration.notificationUrl).toBe(`http://broker.test/public/notifications/azure/orgId/${scenario.org.id}?partnerId=${integration.partnerId}`)
    const listed = (await (await scenario.broker.request(`/api/v1/orgs/${scenario.org.id}/integrations`, { token: scenario.apiKey })).json()) as { items: Array<{ notificationUrl: string }> }
    expect(listed.items[0]!.notificationUrl).toBe(integration.notificationUrl)
  })

  test('Suspend: SUSPENDED with one SUSPEND event; a redelivery (Microsoft retries) is answered 200 and writes nothing', async () => {
    const s = await landed()
    const { webhookBody } = azure.emulator.startOperation(s.sub.id, 'Suspend')
    const first = await notify(s, webhookBody)
    expect(first.status).toBe(200)
    await settled(s)
    expect((await entitlement(s, s.entitlementId)).status).toBe('SUSPENDED')
    for (let i = 0; i < 3; i++) expect((await notify(s, webhookBody)).status).toBe(200)
    await settled(s)
    const written = await marketplaceEvents(s, s.entitlementId)
    expect(written.map((e) => e.type)).toEqual(['SUSPEND'])
    expect(written[0]!.data).toMatchObject({ action: 'Suspend', status: 'SUSPENDED', previousStatus: 'ACTIVE' })
    expect(await notificationRows(s)).toHaveLength(1)
    expect(azure.emulator.callsTo('patchOperation').filter((call) => call.path.includes(webhookBody.id))).toHaveLength(0)
  })

  test('Reinstate: acknowledged with PATCH Success once, then ACTIVE with a REINSTATE event', async () => {
    const s = await landed()
    await notify(s, azure.emulator.startOperation(s.sub.id, 'Suspend').webhookBody)
    await settled(s)
    const { webhookBody } = azure.emulator.startOperation(s.sub.id, 'Reinstate')
    expect((await notify(s, webhookBody)).status).toBe(200)
    await settled(s)
    await notify(s, webhookBody)
    await settled(s)
    const patches = azure.emulator.callsTo('patchOperation').filter((call) => call.path.includes(webhookBody.id))
    expect(patches.map((call) => JSON.parse(call.body))).toEqual([{ status: 'Success' }])
    expect((await entitlement(s, s.entitlementId)).status).toBe('ACTIVE')
    expect((await marketplaceEvents(s, s.entitlementId)).map((e) => e.type)).toEqual(['SUSPEND', 'REINSTATE'])
    expect(azure.emulator.subscriptions.get(s.sub.id)!.saasSubscriptionStatus).toBe('Subscribed')
  })

  test('ChangePlan: PATCH Success, the new plan taken from the operation (GET still shows the old one until then), one UPDATE', async () => {
    const s = await landed({ planId: 'silver' })
    const { webhookBody } = azure.emulator.startOperation(s.sub.id, 'ChangePlan', { planId: 'gold' })
    expect((await notify(s, webhookBody)).status).toBe(200)
    await settled(s)
    expect((await entitlement(s, s.entitlementId)).planId).toBe('gold')
    const written = await marketplaceEvents(s, s.entitlementId)
    expect(written.map((e) => e.type)).toEqual(['UPDATE'])
    expect(written[0]!.data).toMatchObject({ action: 'ChangePlan', planId: 'gold' })
    expect(azure.emulator.callsTo('patchOperation').filter((call) => call.path.includes(webhookBody.id))).toHaveLength(1)
    expect(azure.emulator.subscriptions.get(s.sub.id)!.planId).toBe('gold')
  })

  test('ChangeQuantity with the quantity spelled " 25" (as Microsoft may send it): quantity from the operation', async () => {
    const s = await landed({ quantity: 10 })
    const { webhookBody } = azure.emulator.startOperation(s.sub.id, 'ChangeQuantity', { quantity: 25, webhookQuantity: 'padded' })
    expect((webhookBody as AzureWebhookBody).quantity).toBe(' 25')
    expect((await notify(s, webhookBody)).status).toBe(200)
    await settled(s)
    expect((await entitlement(s, s.entitlementId)).quantity).toBe(25)
    expect((await marketplaceEvents(s, s.entitlementId)).map((e) => e.type)).toEqual(['UPDATE'])
  })

  test('a change Microsoft already auto-accepted (PATCH answers 409) is settled, not an error: still applied once', async () => {
    const s = await landed({ planId: 'silver' })
    const { operation, webhookBody } = azure.emulator.startOperation(s.sub.id, 'ChangePlan', { planId: 'platinum', autoAcceptMs: 1 })
    await waitFor('Microsoft auto-accepting the change', () => operation.status === 'Succeeded')
    expect((await notify(s, webhookBody)).status).toBe(200)
    const rows = await settled(s)
    expect(rows[0]!.status).toBe('APPLIED')
    expect((await entitlement(s, s.entitlementId)).planId).toBe('platinum')
    expect((await marketplaceEvents(s, s.entitlementId)).map((e) => e.type)).toEqual(['UPDATE'])
  })

  test('Unsubscribe: CANCELLED with a CANCEL event; Renew: the new term with an UPDATE', async () => {
    const renewed = await landed()
    const endBefore = azure.emulator.subscriptions.get(renewed.sub.id)!.term.endDate!
    await notify(renewed, azure.emulator.startOperation(renewed.sub.id, 'Renew').webhookBody)
    await settled(renewed)
    const after = await entitlement(renewed, renewed.entitlementId)
    expect(Date.parse(after.term.end!)).toBeGreaterThan(Date.parse(endBefore))
    expect(after.term.end).toBe(azure.emulator.subscriptions.get(renewed.sub.id)!.term.endDate)
    expect((await marketplaceEvents(renewed, renewed.entitlementId)).map((e) => e.type)).toEqual(['UPDATE'])

    const cancelled = await landed()
    await notify(cancelled, azure.emulator.startOperation(cancelled.sub.id, 'Unsubscribe').webhookBody)
    await settled(cancelled)
    expect((await entitlement(cancelled, cancelled.entitlementId)).status).toBe('CANCELLED')
    expect((await marketplaceEvents(cancelled, cancelled.entitlementId)).map((e) => e.type)).toEqual(['CANCEL'])
  })

  test('a late, older Suspend after a Reinstate does not move the status backwards (the subscription is asked)', async () => {
    const s = await landed()
    const suspend = azure.emulator.startOperation(s.sub.id, 'Suspend').webhookBody
    const reinstate = azure.emulator.startOperation(s.sub.id, 'Reinstate').webhookBody
    await notify(s, reinstate)
    await settled(s)
    await notify(s, suspend)
    await settled(s)
    expect((await entitlement(s, s.entitlementId)).status).toBe('ACTIVE')
  })

  test('an operation Microsoft does not know (or that does not match) is answered 200 and ignored', async () => {
    const s = await landed()
    const { webhookBody } = azure.emulator.startOperation(s.sub.id, 'Suspend')
    azure.emulator.forgetOperation(webhookBody.id)
    expect((await notify(s, webhookBody)).status).toBe(200)
    const forged = azure.emulator.startOperation(s.sub.id, 'Renew').webhookBody
    expect((await notify(s, { ...forged, action: 'Unsubscribe' })).status).toBe(200)
    const rows = await settled(s)
    expect(rows.map((row) => row.status)).toEqual(['IGNORED', 'IGNORED'])
    expect((await entitlement(s, s.entitlementId)).status).toBe('ACTIVE')
    expect(await marketplaceEvents(s, s.entitlementId)).toEqual([])
  })
})

describe('Azure notifications: authentication before anything is stored', () => {
  test('no token, another key, wrong kid, wrong tenant, audience, calling app, expired or alg none: 401, nothing stored, Microsoft never asked', async () => {
    const s = await landed()
    const { webhookBody } = azure.emulator.startOperation(s.sub.id, 'Suspend')
    const base = { tenantId: azure.tenantId, clientId: azure.clientId }
    const forged = [
      null,
      'not-a-jwt',
      await azure.emulator.mintWebhookToken({ ...base, key: await azure.emulator.strangerKey() }),
      await azure.emulator.mintWebhookToken({ ...base, kid: 'unknown-kid' }),
      await azure.emulator.mintWebhookToken({ ...base, tid: 'another-tenant' }),
      await azure.emulator.mintWebhookToken({ ...base, issuer: 'https://sts.windows.net/another-tenant/' }),
      await azure.emulator.mintWebhookToken({ ...base, audience: 'another-app' }),
      await azure.emulator.mintWebhookToken({ ...base, appid: 'not-the-marketplace' }),
      await azure.emulator.mintWebhookToken({ ...base, expiresInSeconds: -120, iatOffsetSeconds: -3600 }),
      await azure.emulator.mintWebhookToken({ ...base, alg: 'none' }),
    ]
    const operationCalls = azure.emulator.callsTo('getOperation').length
    for (const token of forged) {
      const response = await notify(s, webhookBody, token)
      expect(response.status, String(token).slice(0, 20)).toBe(401)
      const body = (await response.json()) as { error: { code: string; requestId: string } }
      expect(body.error.code).toBe('UNAUTHORIZED')
    }
    expect(await notificationRows(s)).toEqual([])
    expect(azure.emulator.callsTo('getOperation').length).toBe(operationCalls)
    expect((await entitlement(s, s.entitlementId)).status).toBe('ACTIVE')
    // Both of Microsoft's issuers and both audience spellings are accepted.
    expect((await notify(s, webhookBody, undefined, { issuer: 'v2', audience: `api://${azure.clientId}` })).status).toBe(200)
  })

  test('bad input: not JSON, not a webhook, too large, another org, wrong partnerId: a clear 4xx, nothing stored', async () => {
    const s = await landed()
    const other = await s.broker.createOrg({ name: 'Other' })
    expect((await notify(s, 'not json')).status).toBe(400)
    expect((await notify(s, { hello: 'world' })).status).toBe(400)
    expect((await notify(s, { id: 'op', subscriptionId: s.sub.id, action: 'Explode' })).status).toBe(400)
    expect((await notify(s, { id: 'x'.repeat(300 * 1024), subscriptionId: s.sub.id, action: 'Suspend' })).status).toBe(413)
    const jwtForType = await azure.emulator.mintWebhookToken({ tenantId: azure.tenantId, clientId: azure.clientId })
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', null]) {
      const wrongType = await s.broker.request(notificationPath(s), {
        method: 'POST',
        token: null,
        headers: { authorization: `Bearer ${jwtForType}`, ...(type ? { 'content-type': type } : {}) },
        body: JSON.stringify(azure.emulator.startOperation(s.sub.id, 'Suspend').webhookBody),
      })
      expect(wrongType.status, String(type)).toBe(400)
    }
    const jwt = await azure.emulator.mintWebhookToken({ tenantId: azure.tenantId, clientId: azure.clientId })
    const elsewhere = await s.broker.request(`/public/notifications/azure/orgId/${other.org.id}`, {
      method: 'POST',
      token: null,
      headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' },
      body: JSON.stringify(azure.emulator.startOperation(s.sub.id, 'Suspend').webhookBody),
    })
    expect(elsewhere.status).toBe(404)
    const wrongPartner = await s.broker.request(notificationPath(s).replace(/partnerId=[^&]+/, 'partnerId=azure_nope'), {
      method: 'POST',
      token: null,
      headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' },
      body: '{}',
    })
    expect(wrongPartner.status).toBe(404)
    expect(await notificationRows(s)).toEqual([])
  })
})

describe('Azure notifications: durability and races', () => {
  test('Microsoft unreachable when it arrives: stored, answered 200, applied by the job once Microsoft answers', async () => {
    const s = await landed()
    const { webhookBody } = azure.emulator.startOperation(s.sub.id, 'Suspend')
    azure.emulator.failNext('getOperation', 503, 3)
    expect((await notify(s, webhookBody)).status).toBe(200)
    const [row] = await settled(s)
    expect(row).toMatchObject({ status: 'PENDING', attempts: 1 })
    expect(row!.last_error).toMatch(/503/)
    expect((await entitlement(s, s.entitlementId)).status).toBe('ACTIVE')
    // The backoff is over (made so here), the job runs.
    await s.broker.deps.db.updateTable('notifications').set({ next_attempt_at: '2000-01-01T00:00:00.000Z' }).execute()
    const result = await runJobs(s.broker.deps, createLandingService(s.broker.deps), s.broker.deps.logger)
    expect(result.notifications).toBe(1)
    expect((await notificationRows(s))[0]!.status).toBe('APPLIED')
    expect((await entitlement(s, s.entitlementId)).status).toBe('SUSPENDED')
    expect((await marketplaceEvents(s, s.entitlementId)).map((e) => e.type)).toEqual(['SUSPEND'])
  })

  test('a notification that overtakes its buyer waits, and is applied after the landing creates the entitlement', async () => {
    const scenario = await createAzureScenario(azure)
    const sub = azure.emulator.addSubscription({ appId: azure.clientId, planId: 'silver' })
    const { webhookBody } = azure.emulator.startOperation(sub.id, 'ChangePlan', { planId: 'gold' })
    expect((await notify(scenario, webhookBody)).status).toBe(200)
    const [waiting] = await settled(scenario)
    expect(waiting!.status).toBe('WAITING')
    // Acknowledged at once all the same: Microsoft would otherwise reject the customer's change.
    expect(azure.emulator.callsTo('patchOperation').filter((call) => call.path.includes(webhookBody.id))).toHaveLength(1)
    const landing = await scenario.broker.request(scenario.landingPath(`?token=${encodeURIComponent(azure.emulator.issuePurchaseToken(sub.id))}`), { token: null })
    expect(landing.status).toBe(303)
    expect((await notificationRows(scenario))[0]!.status).toBe('PENDING')
    await runJobs(scenario.broker.deps, createLandingService(scenario.broker.deps), scenario.broker.deps.logger)
    expect((await notificationRows(scenario))[0]!.status).toBe('APPLIED')
    const id = new URL(landing.headers.get('location')!).searchParams.get('sugerEntitlementId')!
    expect((await entitlement(scenario, id)).planId).toBe('gold')
  })
})

describe('reconciliation', () => {
  test('POST …/refresh re-reads the entitlement now: a change made without a webhook is applied with data.reconciled', async () => {
    const s = await landed()
    // A publisher's own API change sends no webhook.
    azure.emulator.subscriptions.get(s.sub.id)!.saasSubscriptionStatus = 'Suspended'
    const refreshed = await s.broker.request(`/api/v1/orgs/${s.org.id}/entitlements/${s.entitlementId}/refresh`, { method: 'POST', token: s.apiKey })
    expect(refreshed.status).toBe(200)
    expect(((await refreshed.json()) as Entitlement).status).toBe('SUSPENDED')
    const written = await marketplaceEvents(s, s.entitlementId)
    expect(written.map((e) => e.type)).toEqual(['SUSPEND'])
    expect(written[0]!.data).toMatchObject({ reconciled: true })
    // Nothing changed since: no second event.
    await s.broker.request(`/api/v1/orgs/${s.org.id}/entitlements/${s.entitlementId}/refresh`, { method: 'POST', token: s.apiKey })
    expect(await marketplaceEvents(s, s.entitlementId)).toHaveLength(1)
    const other = await s.broker.createOrg({ name: 'Other' })
    expect((await s.broker.request(`/api/v1/orgs/${s.org.id}/entitlements/${s.entitlementId}/refresh`, { method: 'POST', token: other.apiKey })).status).toBe(404)
    azure.emulator.failNext('get', 503, 3)
    const down = await s.broker.request(`/api/v1/orgs/${s.org.id}/entitlements/${s.entitlementId}/refresh`, { method: 'POST', token: s.apiKey })
    expect(down.status).toBe(502)
    expect(((await down.json()) as { error: { code: string } }).error.code).toBe('UPSTREAM_ERROR')
    // The audit log (§13): each refresh made through the API, with what it changed (the second, nothing); the failed one, none.
    const audit = (await (await s.broker.request(`/api/v1/orgs/${s.org.id}/audit-log?action=entitlement.refreshed`, { token: s.apiKey })).json()) as {
      items: Array<{ targetType: string; targetId: string; requestId: string; changes: Record<string, unknown> }>
    }
    expect(audit.items).toEqual([
      expect.objectContaining({ targetType: 'entitlement', targetId: s.entitlementId, changes: {} }),
      expect.objectContaining({ targetType: 'entitlement', targetId: s.entitlementId, requestId: refreshed.headers.get('x-request-id'), changes: expect.objectContaining({ status: { from: 'ACTIVE', to: 'SUSPENDED' } }) }),
    ])
  })

  test('the job re-reads every entitlement that is not cancelled once a day', async () => {
    const s = await landed()
    const jobs = () => runJobs(s.broker.deps, createLandingService(s.broker.deps), s.broker.deps.logger)
    expect((await jobs()).reconciled).toBe(0)
    azure.emulator.subscriptions.get(s.sub.id)!.saasSubscriptionStatus = 'Unsubscribed'
    // A day later.
    await s.broker.deps.db.updateTable('entitlements').set({ created_at: '2000-01-01T00:00:00.000Z' }).where('id', '=', s.entitlementId).execute()
    expect((await jobs()).reconciled).toBe(1)
    expect((await entitlement(s, s.entitlementId)).status).toBe('CANCELLED')
    expect((await marketplaceEvents(s, s.entitlementId))[0]).toMatchObject({ type: 'CANCEL', data: { reconciled: true } })
    expect((await jobs()).reconciled).toBe(0)
  })
})
