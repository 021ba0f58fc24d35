import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose'
import { X509Certificate, createPublicKey } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type AzureEmulator, MARKETPLACE_RESOURCE, createAzureEmulator } from '../../sandbox/emulators/azure'

/** The Azure emulator's Entra keys, operations API and webhook sender, through real HTTP. */

const app = { tenantId: '72f988bf-86f1-41af-91ab-2d7cd011db47', clientId: 'isv-app-1', clientSecret: 'isv~secret' }
let emulator: AzureEmulator
let url: string
let close: () => Promise<void>
let bearer: string

beforeAll(async () => {
  emulator = createAzureEmulator()
  ;({ url, close } = await emulator.listen())
  emulator.registerApp(app)
  emulator.registerApp({ tenantId: 'other-tenant', clientId: 'other-app', clientSecret: 'other~secret' })
  bearer = await accessToken(app.clientId, app.clientSecret, app.tenantId)
})
afterAll(async () => {
  await close()
})

async function accessToken(clientId: string, clientSecret: string, tenantId: string) {
  const response = await fetch(`${url}/${tenantId}/oauth2/v2.0/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret, scope: `${MARKETPLACE_RESOURCE}/.default` }),
  })
  expect(response.status).toBe(200)
  return ((await response.json()) as { access_token: string }).access_token
}

function api(path: string, init: RequestInit & { token?: string } = {}) {
  const { token = bearer, ...rest } = init
  return fetch(`${url}/api/saas${path}${path.includes('?') ? '&' : '?'}api-version=2018-08-31`, {
    ...rest,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...rest.headers },
  })
}
const patch = (subscriptionId: string, operationId: string, status: string) =>
  api(`/subscriptions/${subscriptionId}/operations/${operationId}`, { method: 'PATCH', body: JSON.stringify({ status }) })
const getSubscription = async (id: string) => (await (await api(`/subscriptions/${id}`)).json()) as Record<string, any>
const activeSubscription = () =>
  emulator.addSubscription({ appId: app.clientId, planId: 'silver', quantity: 10, saasSubscriptionStatus: 'Subscribed', term: { termUnit: 'P1M', startDate: '2026-01-05T00:00:00.000Z', endDate: '2026-02-05T00:00:00.000Z' } })

describe('Entra signing keys and webhook tokens', () => {
  test('the JWKS verifies a minted v1 and v2 token; forged ones fail', async () => {
    const jwksBefore = emulator.callsTo('jwks').length
    const keys = createRemoteJWKSet(new URL(`${url}/${app.tenantId}/discovery/v2.0/keys`))
    const v1 = await emulator.mintWebhookToken({ tenantId: app.tenantId, clientId: app.clientId })
    const { payload, protectedHeader } = await jwtVerify(v1, keys, {
      issuer: `https://sts.windows.net/${app.tenantId}/`,
      audience: app.clientId,
      algorithms: ['RS256'],
    })
    expect(protectedHeader.kid).toBe(await emulator.currentKid())
    expect(payload).toMatchObject({ tid: app.tenantId, appid: MARKETPLACE_RESOURCE, ver: '1.0' })

    const v2 = await emulator.mintWebhookToken({ tenantId: app.tenantId, clientId: app.clientId, issuer: 'v2' })
    const verified = await jwtVerify(v2, keys, { issuer: `https://login.microsoftonline.com/${app.tenantId}/v2.0`, audience: app.clientId })
    expect(verified.payload).toMatchObject({ azp: MARKETPLACE_RESOURCE, ver: '2.0' })
    expect(verified.payload.appid).toBeUndefined()
    expect(emulator.callsTo('jwks').length).toBeGreaterThan(jwksBefore)

    const stranger = await emulator.mintWebhookToken({ ...app, key: await emulator.strangerKey() })
    await expect(jwtVerify(stranger, keys)).rejects.toThrow()
    const wrongKid = await emulator.mintWebhookToken({ ...app, kid: 'not-a-key-entra-published' })
    await expect(jwtVerify(wrongKid, keys)).rejects.toThrow()
    const expired = await emulator.mintWebhookToken({ ...app, expiresInSeconds: -120 })
    await expect(jwtVerify(expired, keys)).rejects.toThrow(/exp/)
    const noAlg = await emulator.mintWebhookToken({ ...app, alg: 'none' })
    await expect(jwtVerify(noAlg, keys)).rejects.toThrow()
    const otherApp = await emulator.mintWebhookToken({ ...app, appid: 'some-other-app', tid: 'other-tenant', audience: 'api://other' })
    const forged = await jwtVerify(otherApp, keys) // signature fine: the claims are what a broker must check
    expect(forged.payload).toMatchObject({ appid: 'some-other-app', tid: 'other-tenant', aud: 'api://other' })
  })

  test("Entra's JWKS shape: kid = x5t = the x5c certificate's SHA-1 thumbprint, the cert holds the key", async () => {
    const response = await fetch(`${url}/${app.tenantId}/discovery/v2.0/keys`)
    const { keys } = (await response.json()) as { keys: Array<Record<string, any>> }
    const key = keys[0]!
    expect(key).toMatchObject({ kty: 'RSA', use: 'sig', e: 'AQAB', issuer: `https://login.microsoftonline.com/${app.tenantId}/v2.0` })
    const cert = new X509Certificate(Buffer.from(key.x5c[0], 'base64'))
    expect(Buffer.from(cert.fingerprint.replaceAll(':', ''), 'hex').toString('base64url')).toBe(key.kid)
    expect(key.x5t).toBe(key.kid)
    expect(cert.publicKey.export({ format: 'jwk' }).n).toBe(key.n)
    expect(cert.verify(createPublicKey({ key: { kty: 'RSA', n: key.n, e: key.e }, format: 'jwk' }))).toBe(true)
  })

  test('rotation: a new kid signs; the old key stays published unless told', async () => {
    const oldKid = await emulator.currentKid()
    const newKid = await emulator.rotateSigningKey()
    const token = await emulator.mintWebhookToken(app)
    expect(decodeProtectedHeader(token).kid).toBe(newKid)
    const kids = ((await (await fetch(`${url}/common/discovery/v2.0/keys`)).json()) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid)
    expect(kids).toEqual([newKid, oldKid])
  })
})

describe('operations API', () => {
  test('ChangePlan: GET still shows the old plan; PATCH Success applies it; a second PATCH is 409', async () => {
    const sub = activeSubscription()
    const { operation, webhookBody } = emulator.startOperation(sub.id, 'ChangePlan', { planId: 'gold' })
    expect(webhookBody).toMatchObject({ id: operation.id, subscriptionId: sub.id, planId: 'gold', action: 'ChangePlan', status: 'InProgress', operationRequestSource: 'Azure' })
    expect('quantity' in webhookBody).toBe(false)
    expect((await getSubscription(sub.id)).planId).toBe('silver')

    const got = await api(`/subscriptions/${sub.id}/operations/${operation.id}`)
    expect(got.status).toBe(200)
    expect(await got.json()).toMatchObject({ id: operation.id, action: 'ChangePlan', planId: 'gold', status: 'InProgress', errorStatusCode: '', errorMessage: '' })
    const listed = (await (await api(`/subscriptions/${sub.id}/operations`)).json()) as { operations: Array<{ id: string }> }
    expect(listed.operations.map((op) => op.id)).toEqual([operation.id])

    expect((await patch(sub.id, operation.id, 'Success')).status).toBe(200)
    expect((await getSubscription(sub.id)).planId).toBe('gold')
    expect(operation.status).toBe('Succeeded')
    expect((await patch(sub.id, operation.id, 'Success')).status).toBe(409)
    expect(((await (await api(`/subscriptions/${sub.id}/operations`)).json()) as { operations: unknown[] }).operations).toEqual([])
  })

  test('PATCH Failure leaves the subscription; bad status is 400', async () => {
    const sub = activeSubscription()
    const { operation } = emulator.startOperation(sub.id, 'ChangeQuantity', { quantity: 25, webhookQuantity: 'padded' })
    expect((await patch(sub.id, operation.id, 'Done')).status).toBe(400)
    expect((await patch(sub.id, operation.id, 'Failure')).status).toBe(200)
    expect(operation.status).toBe('Failed')
    expect((await getSubscription(sub.id)).quantity).toBe(10)
  })

  test('auto-accept applies the change and a late PATCH gets 409', async () => {
    const sub = activeSubscription()
    const { operation, webhookBody } = emulator.startOperation(sub.id, 'ChangeQuantity', { quantity: 25, autoAcceptMs: 50 })
    expect(webhookBody.quantity).toBe('25')
    await new Promise((resolve) => setTimeout(resolve, 150))
    expect(operation.status).toBe('Succeeded')
    expect((await getSubscription(sub.id)).quantity).toBe(25)
    expect((await patch(sub.id, operation.id, 'Success')).status).toBe(409)
  })

  test('Reinstate stays Suspended until PATCH Success', async () => {
    const sub = activeSubscription()
    sub.saasSubscriptionStatus = 'Suspended'
    const { operation } = emulator.startOperation(sub.id, 'Reinstate')
    expect((await getSubscription(sub.id)).saasSubscriptionStatus).toBe('Suspended')
    expect((await patch(sub.id, operation.id, 'Success')).status).toBe(200)
    expect((await getSubscription(sub.id)).saasSubscriptionStatus).toBe('Subscribed')
  })

  test('Suspend, Unsubscribe and Renew have already happened; the operation is Succeeded', async () => {
    const sub = activeSubscription()
    const suspend = emulator.startOperation(sub.id, 'Suspend')
    expect(suspend.webhookBody.status).toBe('Succeeded')
    expect((await getSubscription(sub.id)).saasSubscriptionStatus).toBe('Suspended')
    expect((await patch(sub.id, suspend.operation.id, 'Success')).status).toBe(409)

    const renewed = activeSubscription()
    emulator.startOperation(renewed.id, 'Renew')
    expect((await getSubscription(renewed.id)).term).toMatchObject({ startDate: '2026-02-05T00:00:00.000Z', endDate: '2026-03-05T00:00:00.000Z' })

    emulator.startOperation(sub.id, 'Unsubscribe')
    expect((await getSubscription(sub.id)).saasSubscriptionStatus).toBe('Unsubscribed')
  })

  test('404 for a forgotten operation or another subscription’s; 403 for another app’s subscription; failNext', async () => {
    const sub = activeSubscription()
    const other = activeSubscription()
    const { operation } = emulator.startOperation(sub.id, 'ChangePlan', { planId: 'gold' })
    expect((await api(`/subscriptions/${other.id}/operations/${operation.id}`)).status).toBe(404)
    const otherAppToken = await accessToken('other-app', 'other~secret', 'other-tenant')
    expect((await api(`/subscriptions/${sub.id}/operations/${operation.id}`, { token: otherAppToken })).status).toBe(403)
    expect((await api(`/subscriptions/${sub.id}/operations/${operation.id}`, { token: 'made-up' })).status).toBe(403)

    emulator.failNext('getOperation', 503)
    expect((await api(`/subscriptions/${sub.id}/operations/${operation.id}`)).status).toBe(503)
    expect((await api(`/subscriptions/${sub.id}/operations/${operation.id}`)).status).toBe(200)
    expect(emulator.callsTo('getOperation').length).toBeGreaterThanOrEqual(2)

    emulator.forgetOperation(operation.id)
    expect((await api(`/subscriptions/${sub.id}/operations/${operation.id}`)).status).toBe(404)
    expect((await patch(sub.id, operation.id, 'Success')).status).toBe(404)
    expect(emulator.callsTo('patchOperation').length).toBeGreaterThan(0)
  })
})

describe('webhook sender', () => {
  test('POSTs JSON with an Entra bearer token the JWKS verifies; token null sends no header', async () => {
    const received: Array<{ auth: string | undefined; type: string | undefined; body: Record<string, any> }> = []
    const receiver = new Hono()
    receiver.post('/hook', async (c) => {
      received.push({ auth: c.req.header('authorization'), type: c.req.header('content-type'), body: await c.req.json() })
      return c.body(null, 200)
    })
    const server = await new Promise<{ url: string; close: () => Promise<void> }>((resolve) => {
      const s = serve({ fetch: receiver.fetch, hostname: '127.0.0.1', port: 0 }, (info: AddressInfo) =>
        resolve({ url: `http://127.0.0.1:${info.port}`, close: () => new Promise<void>((done) => s.close(() => done())) }),
      )
    })
    try {
      const sub = activeSubscription()
      const { webhookBody } = emulator.startOperation(sub.id, 'ChangeQuantity', { quantity: 25, webhookQuantity: 'padded', includeSubscription: true })
      expect((await emulator.sendWebhook(`${server.url}/hook`, webhookBody, { tenantId: app.tenantId, clientId: app.clientId })).status).toBe(200)
      expect((await emulator.sendWebhook(`${server.url}/hook`, webhookBody, { token: null })).status).toBe(200)

      expect(received[0]!.type).toBe('application/json')
      expect(received[0]!.body).toMatchObject({ quantity: ' 25', action: 'ChangeQuantity', subscription: { quantity: 10 }, purchaseToken: null })
      const token = /^Bearer (.+)$/.exec(received[0]!.auth ?? '')![1]!
      const keys = createRemoteJWKSet(new URL(`${url}/${app.tenantId}/discovery/v2.0/keys`))
      await expect(jwtVerify(token, keys, { audience: app.clientId, issuer: `https://sts.windows.net/${app.tenantId}/` })).resolves.toBeTruthy()
      expect(received[1]!.auth).toBeUndefined()
    } finally {
      await server.close()
    }
  })
})
