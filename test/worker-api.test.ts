import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type TestBroker, createTestBroker } from './helpers'
import { type WorkerProcess, httpBroker, startWorker } from './worker-process'

/**
 * The JSON API's edges on both runtimes: the places where workerd and Node could part ways
 * (body parsing and limits, content types, URL handling, error shapes) answered the same.
 */
let node: TestBroker
let worker: WorkerProcess
let persistTo: string

beforeAll(async () => {
  node = await createTestBroker()
  persistTo = mkdtempSync(join(tmpdir(), 'marketbridge-worker-api-'))
  worker = await startWorker(persistTo, {})
}, 120_000)

afterAll(async () => {
  await worker?.stop()
  await node?.close()
  rmSync(persistTo, { recursive: true, force: true })
})

type Client = Pick<TestBroker, 'request' | 'createOrg'>
const runtimes: Array<[string, () => Client]> = [
  ['node + SQLite', () => node],
  ['workerd + D1', () => httpBroker(worker.url)],
]

async function errorCode(response: Response) {
  expect(response.headers.get('content-type')).toMatch(/application\/json/)
  const body = (await response.json()) as { error: { code: string; message: string; requestId: string } }
  expect(body.error.requestId).toBeTruthy()
  return body.error.code
}

describe.each(runtimes)('%s', (_runtime, client) => {
  test('org creation: validation, auth and body errors in the contract shape', async () => {
    const broker = client()
    const post = (init: RequestInit & { json?: unknown; token?: string | null }) => broker.request('/api/v1/orgs', { method: 'POST', ...init })
    expect(await errorCode(await post({ json: { name: 'A', fulfillmentUrl: 'javascript:alert(1)' } }))).toBe('VALIDATION_ERROR')
    expect(await errorCode(await post({ json: { name: 'A', fulfillmentUrl: 'https://u:p@a.example' } }))).toBe('VALIDATION_ERROR')
    expect(await errorCode(await post({ body: '{"name":', headers: { 'content-type': 'application/json' } }))).toBe('VALIDATION_ERROR')
    expect(await errorCode(await post({ body: 'name=A', headers: { 'content-type': 'application/x-www-form-urlencoded' } }))).toBe('VALIDATION_ERROR')
    const big = await post({ json: { name: 'A', fulfillmentUrl: 'https://a.example', pad: 'x'.repeat(1024 * 1024 + 1) } })
    expect(big.status).toBe(413)
    expect(await errorCode(big)).toBe('PAYLOAD_TOO_LARGE')
    const anonymous = await post({ json: { name: 'A', fulfillmentUrl: 'https://a.example' }, token: null })
    expect(anonymous.status).toBe(401)
    expect(await errorCode(anonymous)).toBe('UNAUTHORIZED')
  })

  test("key isolation, org updates and the entitlement list's edges", async () => {
    const broker = client()
    const a = await broker.createOrg({ name: 'A' })
    const b = await broker.createOrg({ name: 'B' })
    const stolen = await broker.request(`/api/v1/orgs/${a.org.id}/entitlements`, { token: b.apiKey })
    expect(stolen.status).toBe(404)
    expect(await errorCode(stolen)).toBe('NOT_FOUND')
    const patched = await broker.request(`/api/v1/orgs/${a.org.id}`, { method: 'PATCH', token: a.apiKey, json: { name: 'A2' } })
    expect(((await patched.json()) as { name: string }).name).toBe('A2')
    const list = await broker.request(`/api/v1/orgs/${a.org.id}/entitlements?limit=10`, { token: a.apiKey })
    expect(await list.json()).toEqual({ items: [], nextCursor: null })
    for (const query of ['?limit=0', '?cursor=%%%', '?status=nope']) {
      const bad = await broker.request(`/api/v1/orgs/${a.org.id}/entitlements${query}`, { token: a.apiKey })
      expect(bad.status, query).toBe(400)
    }
  })

  test('health, OpenAPI, docs and unknown routes', async () => {
    const broker = client()
    expect(await (await broker.request('/healthz', { token: null })).json()).toEqual({ status: 'ok' })
    const doc = (await (await broker.request('/api/openapi.json', { token: null })).json()) as { openapi: string; paths: Record<string, unknown> }
    expect(doc.openapi).toMatch(/^3\.1/)
    // 18 paths before wave 3's keys (api-keys ×3), audit log and credentials check; 8 of the Suger-compatible API.
    expect(Object.keys(doc.paths)).toHaveLength(31)
    expect(Object.keys(doc.paths).filter((path) => path.startsWith('/suger/'))).toHaveLength(8)
    const docs = await broker.request('/api/docs', { token: null })
    expect(docs.headers.get('content-type')).toMatch(/text\/html/)
    expect(docs.headers.get('content-security-policy')).toContain("script-src 'self'")
    expect(await docs.text()).toContain('src="/api/docs/assets/swagger-ui-bundle.js"')
    const api404 = await broker.request('/api/v1/nothing')
    expect(api404.status).toBe(404)
    expect(await errorCode(api404)).toBe('NOT_FOUND')
    expect((await broker.request('/nothing', { token: null })).headers.get('content-type')).toMatch(/text\/html/)
  })

  test('the docs page files: swagger-ui-dist from the runtime (Node: node_modules; Workers: the assets binding), allow-listed', async () => {
    const broker = client()
    const files: Array<[string, RegExp, number]> = [
      ['swagger-ui-bundle.js', /^text\/javascript/, 1_000_000],
      ['swagger-ui.css', /^text\/css/, 100_000],
      ['favicon-32x32.png', /^image\/png$/, 100],
      ['docs.js', /^text\/javascript/, 100],
    ]
    for (const [file, type, minBytes] of files) {
      const response = await broker.request(`/api/docs/assets/${file}`, { token: null })
      expect(response.status, file).toBe(200)
      expect(response.headers.get('content-type'), file).toMatch(type)
      expect(response.headers.get('cache-control'), file).toBe('public, max-age=86400')
      expect((await response.arrayBuffer()).byteLength, file).toBeGreaterThan(minBytes)
      const etag = response.headers.get('etag')
      expect(etag, file).toBeTruthy()
      expect((await broker.request(`/api/docs/assets/${file}`, { token: null, headers: { 'if-none-match': etag! } })).status, file).toBe(304)
    }
    // The rest of the package is not served (on Workers it is uploaded as assets, but
    // run_worker_first keeps every path the app's, at the root too).
    for (const path of ['/api/docs/assets/index.html', '/api/docs/assets/swagger-initializer.js', '/api/docs/assets/swagger-ui-bundle.js.map', '/api/docs/assets/package.json', '/swagger-ui-bundle.js', '/index.html', '/package.json']) {
      const response = await broker.request(path, { token: null })
      expect(response.status, path).toBe(404)
      await response.body?.cancel()
    }
  })

  test('landing edges: an oversized form is 413, a missing org 404, neither a 5xx', async () => {
    const broker = client()
    const { org } = await broker.createOrg()
    const big = await broker.request(`/public/signup/aws/orgId/${org.id}`, {
      method: 'POST',
      token: null,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `x-amzn-marketplace-token=${'a'.repeat(70 * 1024)}`,
    })
    expect(big.status).toBe(413)
    expect(big.headers.get('content-type')).toMatch(/text\/html/)
    const missing = await broker.request('/public/signup/azure/orgId/org_nope?token=abc', { token: null })
    expect(missing.status).toBe(404)
    expect(missing.headers.get('cache-control')).toBe('no-store')
  })
})

describe('workerd + D1 under random input', () => {
  /** Row counts and contents of the Worker's persisted D1 database, read from its file. */
  function d1Snapshot() {
    const dir = join(persistTo, 'v3', 'd1', 'miniflare-D1DatabaseObject')
    const file = readdirSync(dir).find((name) => name.endsWith('.sqlite') && name !== 'metadata.sqlite')!
    const db = new Database(join(dir, file), { readonly: true })
    const tables = ['orgs', 'api_keys', 'integrations', 'entitlements', 'entitlement_events', 'landing_tokens', 'landing_claims', 'pending_activations']
    // A key's lastUsedAt is written after a request it authenticated (at most once a minute): use, not a change.
    const snapshot = JSON.stringify(tables.map((table) => db.prepare(`select * from ${table} order by 1`).all()), (field, value) => (field === 'last_used_at' ? undefined : value))
    db.close()
    return snapshot
  }
  const text = fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('%', '%E0%A4%A', '..', '+', '\u0000', 'a'.repeat(9000)))
  const encode = (value: string) => [...new TextEncoder().encode(value)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')

  test('random landings and API calls: no 5xx, no stack trace, nothing stored changes', async () => {
    const broker = httpBroker(worker.url)
    const { org } = await broker.createOrg({ name: 'Fuzzed' })
    const { apiKey: otherKey } = await broker.createOrg({ name: 'Other' })
    const before = d1Snapshot()
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('azure', 'aws', 'gcp', 'x'),
        fc.oneof(fc.constant(org.id), text),
        fc.array(fc.tuple(fc.constantFrom('token', 'partnerId', 'limit', 'cursor', 'status'), text), { maxLength: 3 }),
        fc.oneof(fc.jsonValue().map((v) => JSON.stringify(v)), text),
        fc.constantFrom('GET', 'POST', 'PATCH', 'PUT'),
        fc.constantFrom('application/json', 'application/x-www-form-urlencoded', 'multipart/form-data', 'text/plain'),
        async (partner, orgId, pairs, body, method, type) => {
          const query = pairs.length ? `?${pairs.map(([k, v]) => `${k}=${encode(v)}`).join('&')}` : ''
          const id = encode(orgId)
          for (const path of [`/public/signup/${partner}/orgId/${id}${query}`, `/api/v1/orgs/${id}${method === 'GET' ? '/entitlements' : ''}${query}`]) {
            const response = await broker.request(path, {
              method,
              token: path.startsWith('/api') ? otherKey : null,
              headers: { 'content-type': type },
              body: method === 'GET' ? undefined : body,
            })
            expect(response.status, path).toBeLessThan(500)
            expect(await response.text()).not.toMatch(/\bat [^\n]*:\d+:\d+|node_modules|\.tsx?:\d+|SQLITE_|D1_ERROR/)
          }
        },
      ),
      { numRuns: 100 },
    )
    expect(d1Snapshot()).toBe(before)
  }, 120_000)
})
