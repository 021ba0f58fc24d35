import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { runJobs } from '../src/domain/jobs'
import { createLandingService } from '../src/domain/landing'
import { type AzureSetup, createAzureScenario, createTestBroker, startAzure } from './helpers'

let azure: AzureSetup
let slowAzure: AzureSetup
const scratch: string[] = []

beforeAll(async () => {
  azure = await startAzure()
  slowAzure = await startAzure({ latencyMs: 300 })
})
afterAll(async () => {
  await azure.close()
  await slowAzure.close()
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true })
})

type Scenario = Awaited<ReturnType<typeof createAzureScenario>>
const land = (scenario: Scenario, token: string, app = scenario.broker.app) =>
  app.request(`http://broker.test${scenario.landingPath(`?token=${encodeURIComponent(token)}`)}`)

async function entitlements(scenario: Scenario) {
  const response = await scenario.broker.request(`/api/v1/orgs/${scenario.org.id}/entitlements?limit=1000`, { token: scenario.apiKey })
  return ((await response.json()) as { items: Array<{ id: string; status: string; externalId: string }> }).items
}

describe('the CREATE event survives a crash after the entitlement was stored', () => {
  test('an entitlement left without events (a version that wrote them separately died before its CREATE) gets the events its status implies from the next landing; once', async () => {
    const scenario = await createAzureScenario(azure)
    const sub = azure.emulator.addSubscription({ appId: azure.clientId })
    const first = await land(scenario, azure.emulator.issuePurchaseToken(sub.id))
    expect(first.status).toBe(303)
    const id = new URL(first.headers.get('location')!).searchParams.get('sugerEntitlementId')!
    // As if the process had died right after storing the entitlement: no events.
    await scenario.broker.deps.db.deleteFrom('entitlement_events').where('entitlement_id', '=', id).execute()
    const again = await land(scenario, azure.emulator.issuePurchaseToken(sub.id))
    expect(again.headers.get('location')).toBe(first.headers.get('location'))
    const events = (await (await scenario.broker.request(`/api/v1/orgs/${scenario.org.id}/entitlements/${id}/events`, { token: scenario.apiKey })).json()) as { items: Array<{ type: string }> }
    expect(events.items.map((e) => e.type)).toEqual(['CREATE', 'ACTIVATE'])
    await land(scenario, azure.emulator.issuePurchaseToken(sub.id))
    const after = (await (await scenario.broker.request(`/api/v1/orgs/${scenario.org.id}/entitlements/${id}/events`, { token: scenario.apiKey })).json()) as { items: Array<{ type: string }> }
    expect(after.items.map((e) => e.type)).toEqual(['CREATE', 'ACTIVATE'])
  })
})

describe('one purchase, one entitlement, across processes', () => {
  test('8 concurrent visits with one token through two broker processes (one SQLite file): one Resolve sequence, one Activate, one 303', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'marketbridge-two-'))
    scratch.push(dir)
    const databaseUrl = `sqlite:${join(dir, 'shared.db')}`
    const scenario = await createAzureScenario(slowAzure, {}, { DATABASE_URL: databaseUrl })
    // A second "process": its own app, landing service and in-memory state, the same database and key.
    const other = await createTestBroker({
      DATABASE_URL: databaseUrl,
      ENCRYPTION_KEY: scenario.broker.deps.config.ENCRYPTION_KEY,
      AZURE_MARKETPLACE_API_URL: slowAzure.url,
      AZURE_LOGIN_URL: slowAzure.url,
    })
    const sub = slowAzure.emulator.addSubscription({ appId: slowAzure.clientId, quantity: 3 })
    const token = slowAzure.emulator.issuePurchaseToken(sub.id)
    const resolvesBefore = slowAzure.emulator.callsTo('resolve').length
    const responses = await Promise.all(Array.from({ length: 8 }, (_, i) => land(scenario, token, i % 2 ? other.app : scenario.broker.app)))
    expect(responses.map((r) => r.status)).toEqual(Array(8).fill(303))
    expect(new Set(responses.map((r) => r.headers.get('location'))).size).toBe(1)
    expect(slowAzure.emulator.callsTo('activate').filter((c) => c.path.includes(sub.id))).toHaveLength(1)
    expect(slowAzure.emulator.callsTo('resolve').length - resolvesBefore).toBe(1)
    expect(await entitlements(scenario)).toHaveLength(1)
    await other.close()
  })
})

describe('nothing lost when activation fails', () => {
  test('Activate failing after retries: stored PENDING_START, 503 "received" page; the job activates it later (ACTIVE + ACTIVATE event)', async () => {
    const scenario = await createAzureScenario(azure)
    const sub = azure.emulator.addSubscription({ appId: azure.clientId, quantity: 2 })
    const token = azure.emulator.issuePurchaseToken(sub.id)
    azure.emulator.failNext('activate', 500, 3)
    const response = await land(scenario, token)
    expect(response.status).toBe(503)
    expect(await response.text()).toMatch(/purchase was received/i)
    const [stored] = await entitlements(scenario)
    expect(stored!.status).toBe('PENDING_START')
    const pending = await scenario.broker.deps.db.selectFrom('pending_activations').selectAll().execute()
    expect(pending).toHaveLength(1)
    expect(pending[0]).toMatchObject({ entitlement_id: stored!.id, attempts: 1 })
    expect(pending[0]!.last_error).toMatch(/500/)

    // The job respects the backoff...
    const landing = createLandingService(scenario.broker.deps)
    expect((await runJobs(scenario.broker.deps, landing, scenario.broker.deps.logger)).activations).toBe(0)
    // ...and once it is over, asks Azure (GET) and activates.
    await scenario.broker.deps.db.updateTable('pending_activations').set({ next_attempt_at: '2000-01-01T00:00:00.000Z' }).execute()
    expect((await runJobs(scenario.broker.deps, landing, scenario.broker.deps.logger)).activations).toBe(1)
    expect(azure.emulator.subscriptions.get(sub.id)!.saasSubscriptionStatus).toBe('Subscribed')
    const [after] = await entitlements(scenario)
    expect(after!.status).toBe('ACTIVE')
    const events = (await (await scenario.broker.request(`/api/v1/orgs/${scenario.org.id}/entitlements/${stored!.id}/events`, { token: scenario.apiKey })).json()) as {
      items: Array<{ type: string; source: string }>
    }
    expect(events.items.map((e) => e.type)).toEqual(['CREATE', 'ACTIVATE'])
    expect(await scenario.broker.deps.db.selectFrom('pending_activations').selectAll().execute()).toHaveLength(0)
    // And the buyer's reload now lands.
    expect((await land(scenario, token)).status).toBe(303)
  })

  test('an Activate that went through although we saw an error is never sent again: the job asks first', async () => {
    const scenario = await createAzureScenario(azure)
    const sub = azure.emulator.addSubscription({ appId: azure.clientId })
    const token = azure.emulator.issuePurchaseToken(sub.id)
    // Microsoft activated it, but every answer we got was a 500.
    azure.emulator.onNext('activate', () => {
      sub.saasSubscriptionStatus = 'Subscribed'
    })
    azure.emulator.failNext('activate', 500, 3)
    expect((await land(scenario, token)).status).toBe(503)
    const activations = azure.emulator.callsTo('activate').filter((c) => c.path.includes(sub.id)).length
    await scenario.broker.deps.db.updateTable('pending_activations').set({ next_attempt_at: '2000-01-01T00:00:00.000Z' }).execute()
    await runJobs(scenario.broker.deps, createLandingService(scenario.broker.deps), scenario.broker.deps.logger)
    expect(azure.emulator.callsTo('activate').filter((c) => c.path.includes(sub.id)).length).toBe(activations)
    expect((await entitlements(scenario))[0]!.status).toBe('ACTIVE')
  })

  test('a revisit retries the activation at once, whatever the backoff', async () => {
    const scenario = await createAzureScenario(azure)
    const sub = azure.emulator.addSubscription({ appId: azure.clientId })
    const token = azure.emulator.issuePurchaseToken(sub.id)
    azure.emulator.failNext('activate', 503, 3)
    expect((await land(scenario, token)).status).toBe(503)
    const response = await land(scenario, token)
    expect(response.status).toBe(303)
    expect((await entitlements(scenario))[0]!.status).toBe('ACTIVE')
  })

  test('a landing interrupted after Resolve (its process died) is finished by the job from the sealed token', async () => {
    const scenario = await createAzureScenario(azure)
    const sub = azure.emulator.addSubscription({ appId: azure.clientId })
    const token = azure.emulator.issuePurchaseToken(sub.id)
    // What a crash leaves: a claim whose lease has run out, nothing else.
    const { sha256Hex } = await import('../src/domain/crypto')
    const tokenHash = await sha256Hex(`azure\n${scenario.org.id}\n${token}`)
    await scenario.broker.deps.db
      .insertInto('landing_claims')
      .values({
        token_hash: tokenHash,
        org_id: scenario.org.id,
        partner: 'azure',
        partner_id: scenario.integration.partnerId,
        sealed_token: await scenario.broker.deps.secrets.seal(token, `landing:${tokenHash}`),
        lease_until: '2000-01-01T00:00:00.000Z',
        created_at: '2000-01-01T00:00:00.000Z',
      })
      .execute()
    const claim = await scenario.broker.deps.db.selectFrom('landing_claims').select('sealed_token').executeTakeFirstOrThrow()
    expect(claim.sealed_token).not.toContain(token)
    const result = await runJobs(scenario.broker.deps, createLandingService(scenario.broker.deps), scenario.broker.deps.logger)
    expect(result.recovered).toBe(1)
    const [stored] = await entitlements(scenario)
    expect(stored).toMatchObject({ externalId: sub.id, status: 'ACTIVE' })
    expect(await scenario.broker.deps.db.selectFrom('landing_claims').selectAll().execute()).toHaveLength(0)
    // The buyer's reload is answered from the database.
    const calls = azure.emulator.calls.length
    expect((await land(scenario, token)).status).toBe(303)
    expect(azure.emulator.calls.length).toBe(calls)
  })
})

describe('upstream budget', () => {
  test('a marketplace slower than the per-attempt timeout: 3 attempts, then the buyer gets a 502 within the deadline', async () => {
    const scenario = await createAzureScenario(slowAzure, {}, { UPSTREAM_TIMEOUT_MS: '150' })
    const sub = slowAzure.emulator.addSubscription({ appId: slowAzure.clientId })
    const token = slowAzure.emulator.issuePurchaseToken(sub.id)
    const before = slowAzure.emulator.callsTo('resolve').length
    const started = Date.now()
    const response = await land(scenario, token)
    const elapsed = Date.now() - started
    expect(response.status).toBe(502)
    // Deadline 2 × 150 ms for all calls (the token call included), plus our own overhead.
    expect(elapsed).toBeLessThan(1_500)
    expect(slowAzure.emulator.callsTo('resolve').length - before).toBeGreaterThanOrEqual(1)
    expect(slowAzure.emulator.callsTo('resolve').length - before).toBeLessThanOrEqual(3)
    expect(await entitlements(scenario)).toHaveLength(0)
  })

  test('Retry-After is honoured; client errors (bad token, 403) are never retried', async () => {
    const scenario = await createAzureScenario(azure)
    const sub = azure.emulator.addSubscription({ appId: azure.clientId })
    azure.emulator.failNext('resolve', 429, 1, { 'retry-after': '1' })
    const started = Date.now()
    expect((await land(scenario, azure.emulator.issuePurchaseToken(sub.id))).status).toBe(303)
    expect(Date.now() - started).toBeGreaterThanOrEqual(950)

    const before = azure.emulator.callsTo('resolve').length
    expect((await land(scenario, 'bm90LWEtdG9rZW4=')).status).toBe(400)
    const foreign = azure.emulator.addSubscription({ appId: 'another-app' })
    expect((await land(scenario, azure.emulator.issuePurchaseToken(foreign.id))).status).toBe(503)
    expect(azure.emulator.callsTo('resolve').length - before).toBe(2)
  })

  test('every attempt is one structured log line with attempt, status and latency', async () => {
    const scenario = await createAzureScenario(azure)
    const sub = azure.emulator.addSubscription({ appId: azure.clientId })
    azure.emulator.failNext('resolve', 503, 2)
    expect((await land(scenario, azure.emulator.issuePurchaseToken(sub.id))).status).toBe(303)
    const attempts = scenario.broker.logs.map((l) => JSON.parse(l)).filter((l) => l.call === 'azure.resolve')
    expect(attempts.map((l) => [l.attempt, l.status])).toEqual([
      [1, 503],
      [2, 503],
      [3, 200],
    ])
    expect(attempts.every((l) => typeof l.latencyMs === 'number' && l.requestId && l.orgId === scenario.org.id)).toBe(true)
    const request = scenario.broker.logs.map((l) => JSON.parse(l)).find((l) => l.msg === 'request' && l.route === '/public/signup/:partner/orgId/:orgId')
    expect(request).toMatchObject({ status: 303, orgId: scenario.org.id, partner: 'azure', outcome: 'redirect' })
    expect(typeof request.latencyMs).toBe('number')
  })
})
