import { randomBytes } from 'node:crypto'
import { createApp } from '../src/app'
import { parseConfig } from '../src/config'
import { createLogger } from '../src/logger'
import { createNodeDeps } from '../src/node/deps'
import { type AzureEmulator, createAzureEmulator } from '../sandbox/emulators/azure'
import { substituteDatabase } from './postgres'

export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef'
export const PUBLIC_URL = 'http://broker.test'

export function testEnv(overrides: Record<string, string> = {}) {
  return {
    ADMIN_TOKEN,
    ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    DATABASE_URL: 'sqlite::memory:',
    PUBLIC_URL,
    ...overrides,
  }
}

export type RequestInitWithJson = RequestInit & { json?: unknown; token?: string | null }

/**
 * What tests call a broker with, whichever runtime answers: `request` adds the bearer (the
 * admin token unless told otherwise; `token: null` for none) and a JSON body; `createOrg`
 * registers an org. `send` is the in-process app or fetch to a running server.
 */
export function brokerClient(baseUrl: string, send: (url: string, init: RequestInit) => Response | Promise<Response>) {
  const request = async (path: string, init: RequestInitWithJson = {}) => {
    const headers = new Headers(init.headers)
    if (init.token !== null) headers.set('authorization', `Bearer ${init.token ?? ADMIN_TOKEN}`)
    if (init.json !== undefined) headers.set('content-type', 'application/json')
    const url = path.startsWith('http') ? path.replace(PUBLIC_URL, baseUrl) : `${baseUrl}${path}`
    const { json: _json, token: _token, ...rest } = init
    return send(url, { ...rest, headers, redirect: 'manual', body: init.json !== undefined ? JSON.stringify(init.json) : init.body })
  }
  async function createOrg(body: Record<string, unknown> = {}) {
    const response = await request('/api/v1/orgs', {
      method: 'POST',
      json: { name: 'Acme', fulfillmentUrl: 'https://app.acme.example/signup?source=marketplace', ...body },
    })
    if (response.status !== 201) throw new Error(`createOrg: ${response.status} ${await response.text()}`)
    return (await response.json()) as { org: { id: string; fulfillmentUrl: string }; apiKey: string }
  }
  return { request, createOrg }
}

/**
 * An in-process broker (SQLite in memory unless told otherwise; under the `postgres` project a
 * fresh PostgreSQL database instead, see substituteDatabase) with its log lines captured.
 */
export async function createTestBroker(env: Record<string, string> = {}) {
  const logs: string[] = []
  const merged = testEnv(env)
  const substitute = await substituteDatabase(merged.DATABASE_URL)
  const config = parseConfig(substitute ? { ...merged, DATABASE_URL: substitute.url } : merged)
  const deps = await createNodeDeps(config, { logger: createLogger({ sink: (line) => logs.push(line) }) })
  const app = createApp(deps)

  const { request, createOrg } = brokerClient(PUBLIC_URL, (url, init) => app.request(url, init))
  let closed: Promise<void> | undefined
  const close = () => (closed ??= deps.db.destroy().then(() => substitute?.release()))
  return { app, deps, logs, request, createOrg, close }
}

export type TestBroker = Awaited<ReturnType<typeof createTestBroker>>

export interface AzureSetup {
  emulator: AzureEmulator
  url: string
  close: () => Promise<void>
  tenantId: string
  clientId: string
  clientSecret: string
}

/** A running Azure emulator with one registered publisher app. */
export async function startAzure(options: { latencyMs?: number; meteringAnswerDelayMs?: number } = {}): Promise<AzureSetup> {
  const emulator = createAzureEmulator(options)
  const server = await emulator.listen()
  const app = { tenantId: 'publisher-tenant', clientId: `app-${randomBytes(4).toString('hex')}`, clientSecret: `sec~${randomBytes(12).toString('base64url')}` }
  emulator.registerApp(app)
  return { emulator, url: server.url, close: server.close, ...app }
}

/** A broker with one org whose Azure integration points at the emulator. */
export async function createAzureScenario(azure: AzureSetup, integration: Record<string, unknown> = {}, env: Record<string, string> = {}) {
  const broker = await createTestBroker({ AZURE_MARKETPLACE_API_URL: azure.url, AZURE_LOGIN_URL: azure.url, ...env })
  const { org, apiKey } = await broker.createOrg()
  const put = await broker.request(`/api/v1/orgs/${org.id}/integrations/azure`, {
    method: 'PUT',
    token: apiKey,
    json: { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret, ...integration },
  })
  if (put.status !== 200) throw new Error(`put integration: ${put.status} ${await put.text()}`)
  const { integration: saved } = (await put.json()) as { integration: { partnerId: string; signupUrl: string; notificationUrl: string } }
  const landingPath = (query: string) => `/public/signup/azure/orgId/${org.id}${query}`
  return { broker, org, apiKey, integration: saved, landingPath }
}

/** Over the REST API of a running broker: an org sending webhooks to `webhookUrl`, with an Azure integration on the emulator; its id. */
export async function createAzureOrg(baseUrl: string, adminToken: string, azure: AzureSetup, webhookUrl: string): Promise<string> {
  const admin = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }
  const created = await fetch(`${baseUrl}/api/v1/orgs`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'Acme', fulfillmentUrl: 'https://app.acme.example/signup', webhookUrl }) })
  if (created.status !== 201) throw new Error(`creating the org: ${created.status} ${await created.text()}`)
  const { org } = (await created.json()) as { org: { id: string } }
  const put = await fetch(`${baseUrl}/api/v1/orgs/${org.id}/integrations/azure`, {
    method: 'PUT',
    headers: admin,
    body: JSON.stringify({ tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret }),
  })
  if (put.status !== 200) throw new Error(`the Azure integration: ${put.status} ${await put.text()}`)
  return org.id
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Polls `check` until it answers something truthy and returns it; throws after `timeoutMs`. The
 * positive signal a test waits for (the request was handled, the job ran, the row exists) before
 * it asserts that something else did not happen, or before it kills a process.
 */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, options: { timeoutMs?: number; everyMs?: number } = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000)
  for (;;) {
    const value = await check()
    if (value) return value as NonNullable<T>
    if (Date.now() > deadline) throw new Error(`waited in vain for ${what}`)
    await sleep(options.everyMs ?? 20)
  }
}

/**
 * A buyer through the hosted form as a browser goes: an org with the Azure integration and its
 * signup form (the fulfillmentUrl), the Azure landing, the form page, the submission (200).
 */
export async function submitSignupForm(
  broker: Pick<TestBroker, 'request' | 'createOrg'>,
  azure: AzureSetup,
  options: { companyName: string; ccEmails?: string[]; webhookUrl?: string },
) {
  const created = (await broker.createOrg(options.webhookUrl ? { webhookUrl: options.webhookUrl } : {})) as unknown as { org: { id: string }; apiKey: string; webhookSecret?: string }
  const { org, apiKey } = created
  await broker.request(`/api/v1/orgs/${org.id}/integrations/azure`, { method: 'PUT', token: apiKey, json: { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret } })
  const put = await broker.request(`/api/v1/orgs/${org.id}/signup-form`, { method: 'PUT', token: apiKey, json: { companyName: options.companyName, ...(options.ccEmails ? { ccEmails: options.ccEmails } : {}) } })
  const { signupForm } = (await put.json()) as { signupForm: { url: string } }
  await broker.request(`/api/v1/orgs/${org.id}`, { method: 'PATCH', token: apiKey, json: { fulfillmentUrl: signupForm.url.replace(/^http:\/\/[^/]+/, 'http://localhost') } })
  const sub = azure.emulator.addSubscription({ appId: azure.clientId })
  const landing = await broker.request(`/public/signup/azure/orgId/${org.id}?token=${encodeURIComponent(azure.emulator.issuePurchaseToken(sub.id))}`, { token: null })
  if (landing.status !== 303) throw new Error(`Azure landing answered ${landing.status}`)
  const location = new URL(landing.headers.get('location')!)
  const path = location.pathname + location.search
  const html = await (await broker.request(path, { token: null })).text()
  const csrf = /name="csrf" value="([^"]+)"/.exec(html)![1]!
  const buyer = `buyer-${org.id.slice(-8)}@buyer.example`
  const done = await broker.request(path, { method: 'POST', token: null, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ csrf, name: 'Grace Hopper', email: buyer }).toString() })
  if (done.status !== 200) throw new Error(`form submission answered ${done.status}`)
  /** The signup's emailStatus, as the ISV reads it. */
  const emailStatus = async () => ((await (await broker.request(`/api/v1/orgs/${org.id}/signups`, { token: apiKey })).json()) as { items: Array<{ emailStatus: string }> }).items[0]!.emailStatus
  return { ...created, html, buyer, emailStatus }
}

/** A buyer arriving from AWS Marketplace (its form POST with the registration token); answers the entitlement id of the 303. */
export async function landAwsBuyer(broker: Pick<TestBroker, 'request'>, orgId: string, token: string): Promise<string> {
  const landing = await broker.request(`/public/signup/aws/orgId/${orgId}`, {
    method: 'POST',
    token: null,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ 'x-amzn-marketplace-token': token }).toString(),
  })
  if (landing.status !== 303) throw new Error(`AWS landing answered ${landing.status}: ${await landing.text()}`)
  return new URL(landing.headers.get('location')!).searchParams.get('sugerEntitlementId')!
}

/** A port nobody listens on right now, for a server a test spawns (the sandbox's own helper). */
export { freePort } from '../sandbox/broker'

export interface EntitlementView {
  id: string
  status: string
  planId: string | null
  quantity: number | null
  externalId: string
  term: { start: string | null; end: string | null }
  info: Record<string, unknown>
}

/**
 * What the lifecycle tests look at for one org of an in-process broker: an entitlement as the API
 * shows it, its marketplace events, and the notification inbox (`settled` waits until nothing in
 * it is left PENDING: the route applies right after it answers).
 */
export function lifecycleProbe(broker: Pick<TestBroker, 'request' | 'deps'>, orgId: string, apiKey: string) {
  const read = async (id: string) => (await (await broker.request(`/api/v1/orgs/${orgId}/entitlements/${id}`, { token: apiKey })).json()) as EntitlementView
  const events = async (id: string) =>
    ((await (await broker.request(`/api/v1/orgs/${orgId}/entitlements/${id}/events`, { token: apiKey })).json()) as {
      items: Array<{ type: string; source: string; data: Record<string, unknown> }>
    }).items.filter((event) => event.source === 'marketplace')
  const rows = () => broker.deps.db.selectFrom('notifications').selectAll().orderBy('created_at').execute()
  const settled = async () => {
    for (let i = 0; i < 100; i++) {
      const all = await rows()
      if (all.every((row) => row.status !== 'PENDING' || (row.lease_until === null && row.attempts > 0))) return all
      await sleep(20)
    }
    throw new Error('notifications did not settle')
  }
  return { read, events, rows, settled }
}

export interface ReceivedHook {
  headers: Record<string, string>
  body: string
}

/**
 * An ISV's webhook endpoint on loopback: records what it is sent and answers 200, or 503 while
 * `accepting` says no (then nothing is recorded).
 */
export async function startHookReceiver(accepting: () => boolean = () => true) {
  const { createServer: createHttpServer } = await import('node:http')
  const received: ReceivedHook[] = []
  const server = createHttpServer((req, res) => {
    let body = ''
    req.on('data', (chunk) => (body += chunk))
    req.on('end', () => {
      if (!accepting()) return void res.writeHead(503).end('down for maintenance')
      received.push({ headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)])), body })
      res.writeHead(200).end('ok')
    })
  })
  const url = await new Promise<string>((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as { port: number }).port}/hooks`)))
  return {
    url,
    received,
    close: () => {
      server.closeAllConnections()
      return new Promise<void>((done) => server.close(() => done()))
    },
  }
}
