import { serve } from '@hono/node-server'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type AzureAutoActivation, createAzureAutoActivation } from '../sandbox/emulators/azure-auto-activation'
import { type AzureSetup, type ReceivedHook, type TestBroker, createTestBroker, sleep, startAzure, startHookReceiver } from './helpers'
import { type WorkerProcess, httpBroker, startWorker } from './worker-process'

/**
 * Azure auto-activation (contract §17): Microsoft activates the purchase itself and POSTs
 * `Subscribe` to the Connection webhook; the broker confirms it with Microsoft and creates the
 * entitlement ACTIVE, never calling activate. On both runtimes, through real HTTP only: the
 * emulator delivers the webhook to the broker's notification URL as Microsoft would.
 */
let azure: AzureSetup
let auto: AzureAutoActivation
const closers: Array<() => Promise<void>> = []
let received: ReceivedHook[]
let hookUrl: string
let node: TestBroker
let nodeUrl: string
let worker: WorkerProcess
let persistTo: string

beforeAll(async () => {
  const receiver = await startHookReceiver()
  ;({ url: hookUrl, received } = receiver)
  closers.push(receiver.close)
  azure = await startAzure()
  closers.push(azure.close)
  auto = createAzureAutoActivation(azure.emulator)
  const upstream = { AZURE_MARKETPLACE_API_URL: azure.url, AZURE_LOGIN_URL: azure.url }
  node = await createTestBroker(upstream)
  // The in-process app on a port of its own, so Microsoft (the emulator) can call it.
  nodeUrl = await new Promise<string>((resolve) => {
    const server = serve({ fetch: node.app.fetch, hostname: '127.0.0.1', port: 0 }, (info: AddressInfo) => resolve(`http://127.0.0.1:${info.port}`))
    closers.push(() => new Promise<void>((done) => server.close(() => done())))
  })
  persistTo = mkdtempSync(join(tmpdir(), 'marketbridge-auto-activation-'))
  worker = await startWorker(persistTo, upstream)
}, 120_000)

afterAll(async () => {
  await worker?.stop()
  for (const close of closers.reverse()) await close()
  await node?.close()
  rmSync(persistTo, { recursive: true, force: true })
})

type Client = Pick<TestBroker, 'request' | 'createOrg'>
const runtimes: Array<[string, () => { client: Client; url: string }]> = [
  ['node + SQLite', () => ({ client: node, url: nodeUrl })],
  ['workerd + D1', () => ({ client: httpBroker(worker.url), url: worker.url })],
]

interface Entitlement {
  id: string
  status: string
  externalId: string
  planId: string | null
  createdAt: string
  updatedAt: string
}

async function until<T>(what: string, probe: () => Promise<T | undefined | null | false>): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const value = await probe()
    if (value) return value
    await sleep(25)
  }
  throw new Error(`never happened: ${what}`)
}

const activations = (subscriptionId: string) => azure.emulator.callsTo('activate').filter((call) => call.path.includes(subscriptionId)).length
const served = (route: 'getOperation' | 'get' | 'plans', id: string) => azure.emulator.callsTo(route).filter((call) => call.path.includes(id)).length

describe.each(runtimes)('%s', (_runtime, runtime) => {
  async function setup() {
    const { client: broker, url } = runtime()
    const { org, apiKey } = await broker.createOrg({ webhookUrl: hookUrl })
    const put = await broker.request(`/api/v1/orgs/${org.id}/integrations/azure`, {
      method: 'PUT',
      token: apiKey,
      json: { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret },
    })
    const { integration } = (await put.json()) as { integration: { notificationUrl: string } }
    const notification = new URL(integration.notificationUrl)
    const webhookUrl = `${url}${notification.pathname}${notification.search}`
    // An offer of its own per test: its Connection webhook is this org's notification URL.
    const offerId = `offer-${randomUUID().slice(0, 8)}`
    const offer = (url: string | null) => auto.configureOffer(offerId, { webhookUrl: url, tenantId: azure.tenantId, clientId: azure.clientId, autoActivatedPlans: ['auto'] })
    // Its plan `auto` auto-activates; the Connection webhook is set by `connect`.
    offer(null)
    const connect = () => offer(webhookUrl)
    const buy = () => auto.purchase({ appId: azure.clientId, offerId, planId: 'auto' })
    const list = async () => ((await (await broker.request(`/api/v1/orgs/${org.id}/entitlements`, { token: apiKey })).json()) as { items: Entitlement[] }).items
    const events = async (id: string) =>
      ((await (await broker.request(`/api/v1/orgs/${org.id}/entitlements/${id}/events`, { token: apiKey })).json()) as {
        items: Array<{ type: string; source: string; data: Record<string, unknown> }>
      }).items
    const land = (subscriptionId: string) => broker.request(`/public/signup/azure/orgId/${org.id}?token=${encodeURIComponent(azure.emulator.issuePurchaseToken(subscriptionId))}`, { token: null })
    const entitlementOf = (location: string | null) => new URL(location!).searchParams.get('sugerEntitlementId')!
    const notify = async (body: unknown) =>
      broker.request(`${notification.pathname}${notification.search}`, {
        method: 'POST',
        token: null,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${await azure.emulator.mintWebhookToken({ tenantId: azure.tenantId, clientId: azure.clientId })}` },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      })
    /** The ISV's webhooks, once every delivery of the org succeeded. */
    const hooks = async (entitlementId: string) => {
      await until('every webhook delivered', async () => {
        const { items } = (await (await broker.request(`/api/v1/orgs/${org.id}/webhook-deliveries`, { token: apiKey })).json()) as { items: Array<{ status: string }> }
        return items.length > 0 && items.every((item) => item.status === 'SUCCEEDED')
      })
      return received.map((hook) => JSON.parse(hook.body) as { type: string; entityId: string }).filter((hook) => hook.entityId === entitlementId).map((hook) => hook.type)
        // Deliveries are sent concurrently: their arrival order is not part of the contract, their count is.
        .sort()
    }
    return { broker, org, apiKey, offerId, connect, buy, list, events, land, entitlementOf, notify, hooks }
  }

  test('Subscribe: confirmed, answered 200, ACTIVE with CREATE + ACTIVATE, no activate call; a redelivery applies once; the later landing redirects to it', async () => {
    const s = await setup()
    s.connect()
    const bought = await s.buy()
    expect(bought.delivery).toEqual({ status: 200 })
    const sub = bought.subscription
    const [entitlement] = await until('the entitlement', async () => (await s.list()).filter((e) => e.externalId === sub.id && e.status === 'ACTIVE').length === 1 && s.list())
    expect(entitlement).toMatchObject({ externalId: sub.id, status: 'ACTIVE', planId: 'auto' })
    // Confirmed with Microsoft (the operation and the subscription), never activated.
    expect(served('getOperation', bought.operation!.id)).toBe(1)
    expect(served('get', sub.id)).toBeGreaterThan(0)
    expect(activations(sub.id)).toBe(0)
    const events = await s.events(entitlement!.id)
    expect(events.map((e) => [e.type, e.source, e.data.action])).toEqual([
      ['CREATE', 'marketplace', 'Subscribe'],
      ['ACTIVATE', 'marketplace', 'Subscribe'],
    ])

    // Microsoft retries: the same operation again is the same notification, applied once.
    expect(await auto.redeliver(bought.webhookBody!)).toEqual({ status: 200 })
    // The buyer's "Configure account": the same entitlement, still not activated.
    const landing = await s.land(sub.id)
    expect(landing.status).toBe(303)
    expect(s.entitlementOf(landing.headers.get('location'))).toBe(entitlement!.id)
    expect(activations(sub.id)).toBe(0)
    expect(await s.list()).toHaveLength(1)
    expect((await s.events(entitlement!.id)).map((e) => e.type)).toEqual(['CREATE', 'ACTIVATE'])
    expect(await s.hooks(entitlement!.id)).toEqual(['entitlement.activated', 'entitlement.created'])
  })

  test('landing first, then Subscribe: one entitlement, created and activated once, no activate call', async () => {
    const s = await setup()
    // Microsoft's Subscribe is late (the Connection webhook is not set up yet): the buyer lands first.
    const bought = await s.buy()
    expect(bought.delivery).toMatchObject({ error: expect.any(String) })
    const sub = bought.subscription
    expect(sub.saasSubscriptionStatus).toBe('Subscribed')
    const landing = await s.land(sub.id)
    expect(landing.status).toBe(303)
    const id = s.entitlementOf(landing.headers.get('location'))
    const [landed] = await s.list()
    expect(landed).toMatchObject({ id, status: 'ACTIVE' })
    s.connect()
    expect(await auto.redeliver(bought.webhookBody!)).toEqual({ status: 200 })
    // Positively applied: the Subscribe re-stored the purchase as Microsoft has it (a later write).
    const [after] = await until('the Subscribe applied', async () => {
      const items = await s.list()
      return items[0]!.updatedAt > landed!.updatedAt && items
    })
    expect(after).toMatchObject({ id, status: 'ACTIVE' })
    expect(await s.list()).toHaveLength(1)
    expect(activations(sub.id)).toBe(0)
    expect((await s.events(id)).map((e) => [e.type, e.source])).toEqual([
      ['CREATE', 'signup'],
      ['ACTIVATE', 'signup'],
    ])
    expect(await s.hooks(id)).toEqual(['entitlement.activated', 'entitlement.created'])
  })

  test('Subscribe and landing at once: one entitlement, created and activated once, no activate call', async () => {
    const s = await setup()
    const bought = await s.buy()
    const sub = bought.subscription
    s.connect()
    const [landing, delivery] = await Promise.all([s.land(sub.id), auto.redeliver(bought.webhookBody!)])
    expect(landing.status).toBe(303)
    expect(delivery).toEqual({ status: 200 })
    const id = s.entitlementOf(landing.headers.get('location'))
    // Both have asked Microsoft all they ask (the landing's and the Subscribe's plan lookups) and stored.
    await until('both confirmed at Microsoft', async () => served('plans', sub.id) >= 2)
    await azure.emulator.idle()
    const hooks = await s.hooks(id)
    expect(await s.list()).toMatchObject([{ id, status: 'ACTIVE' }])
    expect(activations(sub.id)).toBe(0)
    expect((await s.events(id)).map((e) => e.type)).toEqual(['CREATE', 'ACTIVATE'])
    expect(hooks).toEqual(['entitlement.activated', 'entitlement.created'])
    if (_runtime.startsWith('node')) {
      // The Subscribe itself was applied (not still on its way).
      await until('the Subscribe settled', async () =>
        (await node.deps.db.selectFrom('notifications').select('status').where('org_id', '=', s.org.id).executeTakeFirst())?.status === 'APPLIED',
      )
      expect((await s.events(id)).map((e) => e.type)).toEqual(['CREATE', 'ACTIVATE'])
    }
  })

  test('a Subscribe Microsoft does not know (its operation, or its subscription): 200, nothing created', async () => {
    const s = await setup()
    s.connect()
    const bought = await s.buy()
    await until('the real one', async () => (await s.list()).length === 1)

    // An operation Microsoft has no record of, for a subscription it has.
    const other = azure.emulator.addSubscription({ appId: azure.clientId, offerId: s.offerId, planId: 'auto', saasSubscriptionStatus: 'Subscribed' })
    const operationId = randomUUID()
    expect((await s.notify({ ...bought.webhookBody, id: operationId, subscriptionId: other.id, subscription: undefined })).status).toBe(200)
    await until('the operation asked for', async () => served('getOperation', operationId) === 1)
    // A subscription Microsoft does not have, with no operation named.
    const unknown = randomUUID()
    expect((await s.notify({ action: 'Subscribe', subscription: { id: unknown, saasSubscriptionStatus: 'Subscribed', planId: 'auto' } })).status).toBe(200)
    await until('the subscription asked for', async () => served('get', unknown) === 1)
    await azure.emulator.idle()

    // The unknown operation went no further than Microsoft's 404; neither created anything.
    expect(served('get', other.id)).toBe(0)
    expect((await s.list()).map((e) => e.externalId)).toEqual([bought.subscription.id])
  })

  test('random Subscribe bodies: never a 5xx; only what Microsoft confirms is created', async () => {
    const s = await setup()
    const known = azure.emulator.addSubscription({ appId: azure.clientId, offerId: s.offerId, planId: 'auto' })
    const text = fc.oneof(fc.string({ maxLength: 60 }), fc.uuid(), fc.constant(''), fc.constant(' '.repeat(3)))
    const anything = fc.oneof(text, fc.integer(), fc.constant(null), fc.boolean(), fc.jsonValue())
    const body = fc.record(
      {
        id: fc.oneof(text, anything, fc.string({ minLength: 201, maxLength: 260 })),
        // A subscription Microsoft has, but not activated, and no operation for it: not created by a Subscribe.
        subscriptionId: fc.oneof(text, anything, fc.constant(known.id)),
        action: fc.oneof(fc.constant('Subscribe'), fc.constant(' Subscribe'), fc.constant('subscribe')),
        subscription: fc.oneof(anything, fc.record({ id: fc.oneof(text, fc.constant(known.id)), saasSubscriptionStatus: fc.constantFrom('Subscribed', 'PendingFulfillmentStart', 7) }, { requiredKeys: [] })),
        quantity: anything,
        planId: anything,
        status: anything,
        purchaseToken: anything,
      },
      { requiredKeys: ['action'] },
    )
    await fc.assert(
      fc.asyncProperty(fc.oneof(body.map((b) => JSON.stringify(b)), fc.string({ maxLength: 300 }), fc.json()), async (raw) => {
        const response = await s.notify(raw)
        const answer = await response.text()
        expect(response.status, answer.slice(0, 200)).toBeLessThan(500)
        expect([200, 400]).toContain(response.status)
      }),
      { numRuns: 60 },
    )
    // Positively: after every confirmation Microsoft was asked for, a real purchase is created
    // through the same route; none of the random ones was.
    await azure.emulator.idle()
    s.connect()
    const bought = await s.buy()
    await until('the real one', async () => (await s.list()).some((e) => e.externalId === bought.subscription.id))
    await azure.emulator.idle()
    expect((await s.list()).map((e) => e.externalId)).toEqual([bought.subscription.id])
    expect(activations(known.id)).toBe(0)
  })
})
