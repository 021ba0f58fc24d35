import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type TestBroker, createTestBroker } from './helpers'
import { type Arrival, type ProviderHarness, awsHarness, azureHarness, gcpHarness, landingRequest } from './provider-harnesses'
import { type WorkerProcess, httpBroker, startWorker } from './worker-process'

/**
 * The same behavioural cases against every marketplace plugin, each with its emulator:
 * happy path, refresh, missing and bad tokens, a marketplace 5xx then success, double click,
 * and the completeness of the normalized Entitlement — on both runtimes: the Node app
 * (in process, SQLite) and the Worker (`npm run dev:worker`: workerd, D1), from one case list.
 */
const harnesses = [azureHarness(), awsHarness(), gcpHarness()]
let node: TestBroker
let worker: WorkerProcess
let persistTo: string

beforeAll(async () => {
  for (const harness of harnesses) await harness.start()
  const env = Object.assign({}, ...harnesses.map((harness) => harness.env())) as Record<string, string>
  node = await createTestBroker(env)
  persistTo = mkdtempSync(join(tmpdir(), 'marketbridge-contract-'))
  worker = await startWorker(persistTo, env)
}, 120_000)

afterAll(async () => {
  await worker?.stop()
  await node?.close()
  for (const harness of harnesses) await harness.stop()
  rmSync(persistTo, { recursive: true, force: true })
})

type Client = Pick<TestBroker, 'request' | 'createOrg'>
const runtimes: Array<[string, () => Client]> = [
  ['node + SQLite', () => node],
  ['workerd + D1', () => httpBroker(worker.url)],
]

describe.each(runtimes)('%s', (_runtime, client) =>
describe.each(harnesses.map((harness) => [harness.partner, harness] as const))(
  'provider contract: %s',
  (partner, harness: ProviderHarness) => {
    let broker: Client
    let orgId: string
    let apiKey: string
    let partnerId: string

    beforeAll(async () => {
      broker = client()
      ;({ org: { id: orgId }, apiKey } = await broker.createOrg())
      const put = await broker.request(`/api/v1/orgs/${orgId}/integrations/${partner}`, { method: 'PUT', token: apiKey, json: await harness.integration() })
      expect(put.status).toBe(200)
      ;({ integration: { partnerId } } = (await put.json()) as { integration: { partnerId: string } })
    })

    const land = (arrival: Arrival) => {
      const [path, init] = landingRequest(arrival, `/public/signup/${partner}/orgId/${orgId}`)
      return broker.request(path, { ...init, token: null })
    }
    const entitlementCount = async () =>
      ((await (await broker.request(`/api/v1/orgs/${orgId}/entitlements?limit=1000`, { token: apiKey })).json()) as { items: unknown[] }).items.length

    test('happy path: 303 to the fulfillment URL, and a complete normalized Entitlement', async () => {
      const { arrival, expected } = await harness.purchase()
      const response = await land(arrival)
      expect(response.status).toBe(303)
      expect(response.headers.get('cache-control')).toBe('no-store')
      const location = new URL(response.headers.get('location')!)
      expect(`${location.origin}${location.pathname}`).toBe('https://app.acme.example/signup')
      expect(location.searchParams.get('source')).toBe('marketplace')
      expect(location.searchParams.get('partner')).toBe(partner)
      expect(location.searchParams.get('offerType')).toBe(expected.offerType)
      const id = location.searchParams.get('sugerEntitlementId')!
      const entitlement = (await (await broker.request(`/api/v1/orgs/${orgId}/entitlements/${id}`, { token: apiKey })).json()) as Record<string, any>
      expect(entitlement).toMatchObject({ id, orgId, partner, partnerId, ...expected })
      for (const field of ['externalId', 'productId', 'status', 'offerType', 'createdAt', 'updatedAt']) expect(entitlement[field], field).toBeTruthy()
      expect(entitlement.buyer.accountId).toBeTruthy()
      expect(entitlement.buyer.customerId).toBeTruthy()
      expect(Object.keys(entitlement.info).length).toBeGreaterThan(0)
      expect(Object.keys(entitlement.term).sort()).toEqual(['autoRenew', 'end', 'start', 'unit'])
    })

    test('refresh: the same token gives the same 303 without calling the marketplace again', async () => {
      const { arrival } = await harness.purchase()
      const first = await land(arrival)
      const calls = harness.upstreamCalls()
      const again = await land(arrival)
      expect(again.status).toBe(303)
      expect(again.headers.get('location')).toBe(first.headers.get('location'))
      expect(harness.upstreamCalls()).toBe(calls)
    })

    test('a missing token is a 400 page and no marketplace call', async () => {
      const calls = harness.upstreamCalls()
      const response = await land({ method: 'POST', form: {} })
      expect(response.status).toBe(400)
      expect(response.headers.get('content-type')).toMatch(/text\/html/)
      expect(harness.upstreamCalls()).toBe(calls)
    })

    test('a bad token is a 400 page and stores nothing', async () => {
      const before = await entitlementCount()
      const response = await land(await harness.badToken())
      expect(response.status).toBe(400)
      expect(response.headers.get('cache-control')).toBe('no-store')
      expect(await response.text()).not.toMatch(/stack|Error:/)
      expect(await entitlementCount()).toBe(before)
    })

    test('a marketplace 5xx is retried and the buyer still lands', async () => {
      const { arrival } = await harness.purchase()
      harness.failOnce()
      const response = await land(arrival)
      expect(response.status).toBe(303)
    })

    test('a double click (8 concurrent landings with one token): one entitlement, one activation, the same 303', async () => {
      const { arrival, expected } = await harness.purchase()
      const before = await entitlementCount()
      const responses = await Promise.all(Array.from({ length: 8 }, () => land(arrival)))
      expect(responses.map((r) => r.status)).toEqual(Array(8).fill(303))
      expect(new Set(responses.map((r) => r.headers.get('location'))).size).toBe(1)
      expect(await entitlementCount()).toBe(before + 1)
      expect(harness.activations(expected.externalId)).toBe(partner === 'azure' ? 1 : 0)
      const list = (await (await broker.request(`/api/v1/orgs/${orgId}/entitlements?partner=${partner}&limit=1000`, { token: apiKey })).json()) as {
        items: Array<{ externalId: string }>
      }
      expect(list.items.filter((item) => item.externalId === expected.externalId)).toHaveLength(1)
    })
  },
))
