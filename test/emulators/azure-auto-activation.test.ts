import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { createRemoteJWKSet, jwtVerify } from 'jose'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { MARKETPLACE_RESOURCE, type AzureEmulator, createAzureEmulator } from '../../sandbox/emulators/azure'
import { type AzureAutoActivation, createAzureAutoActivation } from '../../sandbox/emulators/azure-auto-activation'

/** The Azure emulator's auto-activated plans: Subscribed on purchase, Subscribe sent to the Connection webhook, activate refused. */

const app = { tenantId: '72f988bf-86f1-41af-91ab-2d7cd011db47', clientId: 'isv-auto-app', clientSecret: 'isv~auto' }
let emulator: AzureEmulator
let auto: AzureAutoActivation
let url: string
let close: () => Promise<void>
let bearer: string
const received: Array<{ auth?: string; body: Record<string, any> }> = []
let hookUrl: string
let closeHook: () => Promise<void>

beforeAll(async () => {
  emulator = createAzureEmulator()
  ;({ url, close } = await emulator.listen())
  emulator.registerApp(app)
  auto = createAzureAutoActivation(emulator)
  const receiver = new Hono().post('/hook', async (c) => {
    received.push({ auth: c.req.header('authorization'), body: await c.req.json() })
    return c.body(null, 200)
  })
  await new Promise<void>((resolve) => {
    const server = serve({ fetch: receiver.fetch, hostname: '127.0.0.1', port: 0 }, (info: AddressInfo) => {
      hookUrl = `http://127.0.0.1:${info.port}/hook`
      closeHook = () => new Promise<void>((done) => server.close(() => done()))
      resolve()
    })
  })
  const token = await fetch(`${url}/${app.tenantId}/oauth2/v2.0/token`, {
    method: 'POST',
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: app.clientId, client_secret: app.clientSecret, scope: `${MARKETPLACE_RESOURCE}/.default` }),
  })
  bearer = ((await token.json()) as { access_token: string }).access_token
  auto.configureOffer('auto-offer', { webhookUrl: hookUrl, tenantId: app.tenantId, clientId: app.clientId, autoActivatedPlans: ['auto'] })
})
afterAll(async () => {
  await closeHook()
  await close()
})

const api = (path: string, init: RequestInit = {}) =>
  fetch(`${url}/api/saas${path}?api-version=2018-08-31`, { ...init, headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' } })

test('an auto-activated plan: Subscribed at once, its Succeeded Subscribe operation, the webhook with an Entra token; activate answers 400', async () => {
  const bought = await auto.purchase({ appId: app.clientId, offerId: 'auto-offer', planId: 'auto', quantity: 5 })
  expect(bought.delivery).toEqual({ status: 200 })
  const sub = bought.subscription

  const current = (await (await api(`/subscriptions/${sub.id}`)).json()) as Record<string, any>
  expect(current).toMatchObject({ id: sub.id, saasSubscriptionStatus: 'Subscribed', planId: 'auto', quantity: 5 })
  expect(current.term.startDate).toEqual(expect.any(String))

  const operation = (await (await api(`/subscriptions/${sub.id}/operations/${bought.operation!.id}`)).json()) as Record<string, any>
  expect(operation).toMatchObject({ id: bought.operation!.id, subscriptionId: sub.id, action: 'Subscribe', status: 'Succeeded' })

  expect(received).toHaveLength(1)
  expect(received[0]!.body).toMatchObject({ id: operation.id, subscriptionId: sub.id, offerId: 'auto-offer', planId: 'auto', action: 'Subscribe', subscription: { id: sub.id, saasSubscriptionStatus: 'Subscribed' } })
  expect(received[0]!.body.subscription.appId).toBeUndefined()
  const token = /^Bearer (.+)$/.exec(received[0]!.auth ?? '')![1]!
  const keys = createRemoteJWKSet(new URL(`${url}/${app.tenantId}/discovery/v2.0/keys`))
  const { payload } = await jwtVerify(token, keys, { audience: app.clientId, issuer: `https://sts.windows.net/${app.tenantId}/` })
  expect(payload).toMatchObject({ tid: app.tenantId, appid: MARKETPLACE_RESOURCE })

  // Microsoft answers activate of a Subscribed subscription 400, as for any other.
  const activate = await api(`/subscriptions/${sub.id}/activate`, { method: 'POST', body: JSON.stringify({ planId: 'auto', quantity: 5 }) })
  expect(activate.status).toBe(400)

  expect(await auto.redeliver(bought.webhookBody!)).toEqual({ status: 200 })
  expect(received).toHaveLength(2)
  expect(received[1]!.body.id).toBe(operation.id)
})

test('another plan of the offer, or an offer with no Connection webhook: Resolve + Activate as before, nothing sent', async () => {
  const before = received.length
  const manual = await auto.purchase({ appId: app.clientId, offerId: 'auto-offer', planId: 'manual' })
  expect(manual).toEqual({ subscription: manual.subscription })
  expect(manual.subscription.saasSubscriptionStatus).toBe('PendingFulfillmentStart')
  auto.configureOffer('silent-offer', { webhookUrl: null, tenantId: app.tenantId, clientId: app.clientId, autoActivatedPlans: ['auto'] })
  const silent = await auto.purchase({ appId: app.clientId, offerId: 'silent-offer', planId: 'auto' })
  expect(silent.subscription.saasSubscriptionStatus).toBe('Subscribed')
  expect(silent.delivery).toMatchObject({ error: expect.stringMatching(/no Connection webhook/) })
  expect(received).toHaveLength(before)
  const activate = await api(`/subscriptions/${manual.subscription.id}/activate`, { method: 'POST', body: JSON.stringify({ planId: 'manual' }) })
  expect(activate.status).toBe(200)
})
