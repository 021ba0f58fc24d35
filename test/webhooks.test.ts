import { webcrypto } from 'node:crypto'
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http'
import { createServer as createTlsServer } from 'node:https'
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import type { AddressInfo } from 'node:net'
import { Webhook } from 'standardwebhooks'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { runJobs } from '../src/domain/jobs'
import { createLandingService } from '../src/domain/landing'
import { type AzureSetup, type TestBroker, createTestBroker, sleep, startAzure } from './helpers'

/**
 * Webhooks to the ISV (contract §8) through the real app, received by a real HTTP server on
 * loopback and verified with the `standardwebhooks` package (not with our own signing code).
 */
interface Received {
  headers: Record<string, string>
  body: string
}

type Behaviour = 'ok' | 'fail' | 'redirect' | 'close' | 'huge' | 'hang'

function receiver() {
  const received: Received[] = []
  let behaviour: Behaviour = 'ok'
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = ''
    req.on('data', (chunk) => (body += chunk))
    req.on('end', () => {
      received.push({ headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)])), body })
      switch (behaviour) {
        case 'ok':
          return res.writeHead(204).end()
        case 'fail':
          return res.writeHead(500, { 'content-type': 'text/plain' }).end(`boom ${'x'.repeat(10_000)}`)
        case 'redirect':
          return res.writeHead(301, { location: 'http://127.0.0.1:9/elsewhere' }).end()
        case 'close':
          return req.socket.destroy()
        case 'huge': {
          res.writeHead(500, { 'content-type': 'application/octet-stream' })
          const chunk = Buffer.alloc(1024 * 1024, 120)
          let sent = 0
          const pump = () => {
            while (sent < 50 && res.write(chunk)) sent++
            if (sent >= 50) res.end()
            else res.once('drain', pump)
          }
          res.on('close', () => (sent = 50))
          return pump()
        }
        case 'hang':
          return // never answers
      }
    })
  })
  return {
    received,
    setBehaviour: (next: Behaviour) => (behaviour = next),
    listen: () =>
      new Promise<string>((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/marketbridge`))),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    server,
  }
}

let azure: AzureSetup
const hooks = receiver()
let hookUrl: string
let broker: TestBroker

beforeAll(async () => {
  azure = await startAzure()
  hookUrl = await hooks.listen()
  broker = await createTestBroker({ AZURE_MARKETPLACE_API_URL: azure.url, AZURE_LOGIN_URL: azure.url })
})
afterAll(async () => {
  hooks.server.closeAllConnections()
  await hooks.close()
  await azure.close()
  await broker.close()
})

async function orgWithHooks() {
  hooks.setBehaviour('ok')
  const created = await broker.request('/api/v1/orgs', { method: 'POST', json: { name: 'Hooked', fulfillmentUrl: 'https://hooked.example/s', webhookUrl: hookUrl } })
  expect(created.status).toBe(201)
  const body = (await created.json()) as { org: { id: string }; apiKey: string; webhookSecret: string }
  const put = await broker.request(`/api/v1/orgs/${body.org.id}/integrations/azure`, {
    method: 'PUT',
    token: body.apiKey,
    json: { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret },
  })
  expect(put.status).toBe(200)
  const land = async () => {
    const sub = azure.emulator.addSubscription({ appId: azure.clientId })
    const landing = await broker.request(`/public/signup/azure/orgId/${body.org.id}?token=${encodeURIComponent(azure.emulator.issuePurchaseToken(sub.id))}`, { token: null })
    expect(landing.status).toBe(303)
    return new URL(landing.headers.get('location')!).searchParams.get('sugerEntitlementId')!
  }
  const forOrg = () => hooks.received.filter((r) => JSON.parse(r.body).orgId === body.org.id)
  const deliveries = async (query = '') =>
    (await (await broker.request(`/api/v1/orgs/${body.org.id}/webhook-deliveries${query}`, { token: body.apiKey })).json()) as {
      items: Array<{ id: string; eventId: string | null; type: string; status: string; attempts: number; lastStatusCode: number | null; lastError: string | null; nextAttemptAt: string | null }>
      nextCursor: string | null
    }
  const until = async (check: () => boolean | Promise<boolean>) => {
    for (let i = 0; i < 150 && !(await check()); i++) await sleep(20)
    expect(await check()).toBe(true)
  }
  return { ...body, land, forOrg, deliveries, until }
}

const jobs = () => runJobs(broker.deps, createLandingService(broker.deps), broker.deps.logger)
/** Makes every pending delivery due now (the schedule's waits are seconds to hours). */
const makeDue = () => broker.deps.db.updateTable('webhook_deliveries').set({ next_attempt_at: '2000-01-01T00:00:00.000Z' }).where('status', '=', 'PENDING').execute()

describe('webhooks', () => {
  test('a landing sends entitlement.created and entitlement.activated, signed per Standard Webhooks, with the entitlement as GET showed it then', async () => {
    const s = await orgWithHooks()
    expect(s.webhookSecret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/)
    const id = await s.land()
    await s.until(() => s.forOrg().length === 2)
    const verifier = new Webhook(s.webhookSecret)
    const bodies = s.forOrg().map((r) => {
      expect(r.headers['content-type']).toBe('application/json')
      expect(r.headers['webhook-id']).toMatch(/^msg_/)
      return verifier.verify(r.body, r.headers) as Record<string, any>
    })
    const byType = Object.fromEntries(bodies.map((b) => [b.type, b]))
    expect(Object.keys(byType).sort()).toEqual(['entitlement.activated', 'entitlement.created'])
    expect(byType['entitlement.created']).toMatchObject({ orgId: s.org.id, entityType: 'ENTITLEMENT', entityId: id, action: 'CREATE', entityStatus: 'PENDING_START', partner: 'azure' })
    expect(byType['entitlement.created']!.id).toMatch(/^evt_/)
    expect(byType['entitlement.created']!.data.entitlement).toMatchObject({ id, status: 'PENDING_START' })
    expect(byType['entitlement.activated']).toMatchObject({ action: 'ACTIVATE', entityStatus: 'ACTIVE' })
    const current = await (await broker.request(`/api/v1/orgs/${s.org.id}/entitlements/${id}`, { token: s.apiKey })).json()
    expect(byType['entitlement.activated']!.data.entitlement).toEqual(current)
    const events = (await (await broker.request(`/api/v1/orgs/${s.org.id}/entitlements/${id}/events`, { token: s.apiKey })).json()) as { items: Array<{ id: string }> }
    expect(byType['entitlement.activated']!.data.event.id).toBe(events.items[1]!.id)
    // A forged or altered body does not verify.
    const one = s.forOrg()[0]!
    expect(() => verifier.verify(one.body.replace('"ENTITLEMENT"', '"SIGNUP"'), one.headers)).toThrow()
    // The receiver has them; the broker records each attempt right after the answer.
    await s.until(async () => (await s.deliveries()).items.every((d) => d.status === 'SUCCEEDED'))
    const listed = await s.deliveries()
    expect(listed.items.map((d) => d.status)).toEqual(['SUCCEEDED', 'SUCCEEDED'])
    expect(listed.items.every((d) => d.attempts === 1 && d.lastStatusCode === 204 && d.nextAttemptAt === null)).toBe(true)
  })

  test('a receiver that answers 500, then works again: retried with the same webhook-id, lastError truncated, then SUCCEEDED', async () => {
    const s = await orgWithHooks()
    hooks.setBehaviour('fail')
    await s.land()
    await s.until(async () => (await s.deliveries()).items.every((d) => d.attempts === 1))
    const failed = (await s.deliveries()).items
    expect(failed.every((d) => d.status === 'PENDING' && d.lastStatusCode === 500)).toBe(true)
    expect(failed[0]!.lastError!.length).toBeLessThanOrEqual(4096)
    expect(failed[0]!.lastError).toMatch(/^HTTP 500: boom/)
    const waitMs = Date.parse(failed[0]!.nextAttemptAt!) - Date.now()
    expect(waitMs).toBeGreaterThan(2_000)
    expect(waitMs).toBeLessThan(8_000)
    hooks.setBehaviour('ok')
    await makeDue()
    await jobs()
    const done = (await s.deliveries()).items
    expect(done.every((d) => d.status === 'SUCCEEDED' && d.attempts === 2)).toBe(true)
    const ids = s.forOrg().map((r) => r.headers['webhook-id'])
    expect(new Set(ids).size).toBe(2)
    expect(ids).toHaveLength(4)
  })

  test('a redirect is not followed, a closed connection and a 50 MB answer are failed attempts, never a crash', async () => {
    const s = await orgWithHooks()
    for (const behaviour of ['redirect', 'close', 'huge'] as const) {
      hooks.setBehaviour(behaviour)
      const ping = (await (await broker.request(`/api/v1/orgs/${s.org.id}/webhooks/test`, { method: 'POST', token: s.apiKey })).json()) as { id: string }
      // The first attempt goes at once; then a manual retry is a second one.
      await s.until(async () => (await s.deliveries()).items.some((d) => d.id === ping.id && d.attempts === 1))
      const retried = (await (await broker.request(`/api/v1/orgs/${s.org.id}/webhook-deliveries/${ping.id}/retry`, { method: 'POST', token: s.apiKey })).json()) as {
        status: string
        attempts: number
        lastStatusCode: number | null
        lastError: string
      }
      expect(retried.attempts).toBe(2)
      expect(retried.status, behaviour).toBe('PENDING')
      if (behaviour === 'redirect') expect(retried.lastStatusCode).toBe(301)
      if (behaviour === 'close') expect(retried.lastStatusCode).toBeNull()
      if (behaviour === 'huge') expect(retried.lastError.length).toBeLessThanOrEqual(4096)
    }
  })

  test('a receiver whose TLS certificate has expired: a failed attempt, recorded and retried, no request body delivered', async () => {
    x509.cryptoProvider.set(webcrypto as unknown as Crypto)
    const keys = (await webcrypto.subtle.generateKey(
      { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 },
      true,
      ['sign', 'verify'],
    )) as unknown as CryptoKeyPair
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=localhost',
      notBefore: new Date(Date.now() - 30 * 24 * 3600_000),
      notAfter: new Date(Date.now() - 24 * 3600_000),
      signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      keys,
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'localhost' }])],
    })
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey as never)).toString('base64')
    const key = `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`
    let reached = 0
    const tls = createTlsServer({ key, cert: cert.toString('pem') }, (_req, res) => {
      reached++
      res.writeHead(204).end()
    })
    const port = await new Promise<number>((resolve) => tls.listen(0, '127.0.0.1', () => resolve((tls.address() as AddressInfo).port)))
    try {
      const s = await orgWithHooks()
      await broker.request(`/api/v1/orgs/${s.org.id}`, { method: 'PATCH', token: s.apiKey, json: { webhookUrl: `https://localhost:${port}/hooks` } })
      const ping = (await (await broker.request(`/api/v1/orgs/${s.org.id}/webhooks/test`, { method: 'POST', token: s.apiKey })).json()) as { id: string }
      await s.until(async () => (await s.deliveries()).items.some((d) => d.id === ping.id && d.attempts === 1))
      const attempted = (await s.deliveries()).items.find((d) => d.id === ping.id)!
      expect(attempted.status).toBe('PENDING')
      expect(attempted.lastStatusCode).toBeNull()
      expect(attempted.lastError).toMatch(/CERT_HAS_EXPIRED/)
      expect(reached).toBe(0)
    } finally {
      tls.closeAllConnections()
      await new Promise<void>((resolve) => tls.close(() => resolve()))
    }
  })

  test('a receiver that never answers: the attempt ends after 10 s and is retried later', async () => {
    const s = await orgWithHooks()
    hooks.setBehaviour('hang')
    const started = Date.now()
    const ping = (await (await broker.request(`/api/v1/orgs/${s.org.id}/webhooks/test`, { method: 'POST', token: s.apiKey })).json()) as { id: string }
    for (let i = 0; i < 300 && !(await s.deliveries()).items.some((d) => d.id === ping.id && d.attempts === 1); i++) await sleep(100)
    const [attempted] = (await s.deliveries()).items
    expect(Date.now() - started).toBeGreaterThanOrEqual(9_500)
    expect(Date.now() - started).toBeLessThan(25_000)
    expect(attempted!.status).toBe('PENDING')
    expect(attempted!.lastError).toMatch(/no answer within 10 s/)
    hooks.server.closeAllConnections()
  }, 40_000)

  test('after 3 days of failures a delivery is FAILED; the delivery log filters by status and pages with a cursor; another org gets 404', async () => {
    const s = await orgWithHooks()
    hooks.setBehaviour('fail')
    for (let i = 0; i < 3; i++) await broker.request(`/api/v1/orgs/${s.org.id}/webhooks/test`, { method: 'POST', token: s.apiKey })
    await s.until(async () => (await s.deliveries()).items.every((d) => d.attempts >= 1))
    await broker.deps.db.updateTable('webhook_deliveries').set({ created_at: new Date(Date.now() - 4 * 24 * 3600_000).toISOString() }).where('org_id', '=', s.org.id).execute()
    await makeDue()
    await jobs()
    const all = await s.deliveries()
    expect(all.items.map((d) => [d.status, d.nextAttemptAt])).toEqual([
      ['FAILED', null],
      ['FAILED', null],
      ['FAILED', null],
    ])
    const page = await s.deliveries('?status=FAILED&limit=2')
    expect(page.items).toHaveLength(2)
    const rest = await s.deliveries(`?status=FAILED&limit=2&cursor=${page.nextCursor}`)
    expect([...page.items, ...rest.items].map((d) => d.id)).toEqual(all.items.map((d) => d.id))
    expect((await s.deliveries('?status=SUCCEEDED')).items).toEqual([])
    expect((await broker.request(`/api/v1/orgs/${s.org.id}/webhook-deliveries?status=NOPE`, { token: s.apiKey })).status).toBe(400)
    const other = await broker.createOrg({ name: 'Other' })
    expect((await broker.request(`/api/v1/orgs/${s.org.id}/webhook-deliveries`, { token: other.apiKey })).status).toBe(404)
    expect((await broker.request(`/api/v1/orgs/${s.org.id}/webhook-deliveries/${all.items[0]!.id}/retry`, { method: 'POST', token: other.apiKey })).status).toBe(404)
    expect((await broker.request(`/api/v1/orgs/${other.org.id}/webhook-deliveries/${all.items[0]!.id}/retry`, { method: 'POST', token: other.apiKey })).status).toBe(404)
  })

  test('rotation: for 24 h deliveries carry the old and the new signature, and either secret verifies', async () => {
    const s = await orgWithHooks()
    const rotated = (await (await broker.request(`/api/v1/orgs/${s.org.id}/webhook-secret`, { method: 'POST', token: s.apiKey })).json()) as { webhookSecret: string }
    expect(rotated.webhookSecret).not.toBe(s.webhookSecret)
    const ping = await broker.request(`/api/v1/orgs/${s.org.id}/webhooks/test`, { method: 'POST', token: s.apiKey })
    expect(ping.status).toBe(202)
    await s.until(() => s.forOrg().length === 1)
    const [received] = s.forOrg()
    expect(received!.headers['webhook-signature']!.split(' ')).toHaveLength(2)
    expect(new Webhook(s.webhookSecret).verify(received!.body, received!.headers)).toMatchObject({ type: 'ping', entityType: null, entityId: null })
    expect(new Webhook(rotated.webhookSecret).verify(received!.body, received!.headers)).toMatchObject({ type: 'ping' })
    // A day later the old one is gone.
    await broker.deps.db.updateTable('orgs').set({ webhook_secret_previous_until: new Date(Date.now() - 1000).toISOString() }).where('id', '=', s.org.id).execute()
    await broker.request(`/api/v1/orgs/${s.org.id}/webhooks/test`, { method: 'POST', token: s.apiKey })
    await s.until(() => s.forOrg().length === 2)
    const later = s.forOrg()[1]!
    expect(later.headers['webhook-signature']!.split(' ')).toHaveLength(1)
    expect(() => new Webhook(s.webhookSecret).verify(later.body, later.headers)).toThrow()
  })

  test('a webhookUrl first set by PATCH brings a secret once; the org answer never shows it; no webhookUrl means no delivery', async () => {
    const plain = await broker.createOrg({ name: 'Plain' })
    expect((plain as { webhookSecret?: string }).webhookSecret).toBeUndefined()
    expect((await broker.request(`/api/v1/orgs/${plain.org.id}/webhooks/test`, { method: 'POST', token: plain.apiKey })).status).toBe(400)
    const first = (await (await broker.request(`/api/v1/orgs/${plain.org.id}`, { method: 'PATCH', token: plain.apiKey, json: { webhookUrl: hookUrl } })).json()) as { webhookSecret?: string }
    expect(first.webhookSecret).toMatch(/^whsec_/)
    const second = (await (await broker.request(`/api/v1/orgs/${plain.org.id}`, { method: 'PATCH', token: plain.apiKey, json: { webhookUrl: hookUrl } })).json()) as { webhookSecret?: string }
    expect(second.webhookSecret).toBeUndefined()
    const read = await (await broker.request(`/api/v1/orgs/${plain.org.id}`, { token: plain.apiKey })).text()
    expect(read).not.toContain('whsec_')
    const raw = await broker.deps.db.selectFrom('orgs').select('webhook_secret').where('id', '=', plain.org.id).executeTakeFirstOrThrow()
    expect(raw.webhook_secret).not.toContain(first.webhookSecret!.slice(6, 20))
  })

  test('the address guard: a webhookUrl on a private address is refused at send time, without a request', async () => {
    const s = await orgWithHooks()
    // https:// is a valid webhookUrl by the URL rules; its address is private, which only the send-time check sees.
    await broker.request(`/api/v1/orgs/${s.org.id}`, { method: 'PATCH', token: s.apiKey, json: { webhookUrl: 'https://10.0.0.1/hooks' } })
    const ping = (await (await broker.request(`/api/v1/orgs/${s.org.id}/webhooks/test`, { method: 'POST', token: s.apiKey })).json()) as { id: string }
    await s.until(async () => (await s.deliveries()).items.some((d) => d.id === ping.id && d.attempts === 1))
    const attempted = (await s.deliveries()).items.find((d) => d.id === ping.id)!
    expect(attempted.lastError).toMatch(/refused: .*private/)
    expect(s.forOrg()).toEqual([])
  })
})
