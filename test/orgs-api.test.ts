import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { ADMIN_TOKEN, type TestBroker, createTestBroker } from './helpers'

let broker: TestBroker
beforeEach(async () => {
  broker = await createTestBroker()
})
afterEach(async () => {
  await broker.close()
})

async function expectError(response: Response, status: number, code: string) {
  expect(response.status).toBe(status)
  expect(response.headers.get('content-type')).toMatch(/application\/json/)
  const body = (await response.json()) as { error: { code: string; message: string; requestId: string } }
  expect(Object.keys(body)).toEqual(['error'])
  expect(body.error.code).toBe(code)
  expect(body.error.message.length).toBeGreaterThan(0)
  expect(body.error.requestId.length).toBeGreaterThan(0)
  expect(JSON.stringify(body)).not.toMatch(/\bat .*\.(ts|js):\d+/)
  return body
}

describe('POST /api/v1/orgs', () => {
  test('the admin token creates an org and a prefixed API key that works', async () => {
    const response = await broker.request('/api/v1/orgs', {
      method: 'POST',
      json: { name: 'Acme', fulfillmentUrl: 'https://app.acme.example/signup', webhookUrl: 'https://hooks.acme.example/mb' },
    })
    expect(response.status).toBe(201)
    const body = (await response.json()) as { org: Record<string, unknown>; apiKey: string }
    expect(body.apiKey).toMatch(/^mbk_[A-Za-z0-9_-]{40,}$/)
    expect(body.org).toEqual({
      id: expect.stringMatching(/^org_[0-9a-z]{26}$/),
      name: 'Acme',
      fulfillmentUrl: 'https://app.acme.example/signup',
      webhookUrl: 'https://hooks.acme.example/mb',
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    })
    const get = await broker.request(`/api/v1/orgs/${body.org.id}`, { token: body.apiKey })
    expect(get.status).toBe(200)
    expect(await get.json()).toEqual(body.org)
  })

  test('webhookUrl defaults to null', async () => {
    const { org } = await broker.createOrg({ webhookUrl: undefined })
    expect((org as Record<string, unknown>).webhookUrl).toBeNull()
  })

  test('without the admin token: 401', async () => {
    const json = { name: 'Acme', fulfillmentUrl: 'https://app.acme.example/signup' }
    await expectError(await broker.request('/api/v1/orgs', { method: 'POST', json, token: null }), 401, 'UNAUTHORIZED')
    await expectError(await broker.request('/api/v1/orgs', { method: 'POST', json, token: 'wrong-token' }), 401, 'UNAUTHORIZED')
    await expectError(await broker.request('/api/v1/orgs', { method: 'POST', json, token: `${ADMIN_TOKEN}x` }), 401, 'UNAUTHORIZED')
    await expectError(await broker.request('/api/v1/orgs', { method: 'POST', json, token: ADMIN_TOKEN.slice(0, -1) }), 401, 'UNAUTHORIZED')
    const lastChanged = `${ADMIN_TOKEN.slice(0, -1)}${ADMIN_TOKEN.endsWith('a') ? 'b' : 'a'}`
    await expectError(await broker.request('/api/v1/orgs', { method: 'POST', json, token: lastChanged }), 401, 'UNAUTHORIZED')
    const { apiKey } = await broker.createOrg()
    await expectError(await broker.request('/api/v1/orgs', { method: 'POST', json, token: apiKey }), 401, 'UNAUTHORIZED')
  })

  test.each([
    ['javascript: URL', 'javascript:alert(1)'],
    ['data: URL', 'data:text/html,<script>alert(1)</script>'],
    ['plain http to another host', 'http://app.acme.example/signup'],
    ['credentials in the URL', 'https://user:pass@app.acme.example/signup'],
    ['a username alone', 'https://user@app.acme.example/signup'],
    ['a relative URL', '/signup'],
    ['not a URL', 'not a url'],
    ['ftp', 'ftp://app.acme.example/signup'],
    ['empty', ''],
  ])('rejects a fulfillment URL that is %s', async (_, fulfillmentUrl) => {
    const response = await broker.request('/api/v1/orgs', { method: 'POST', json: { name: 'Acme', fulfillmentUrl } })
    await expectError(response, 400, 'VALIDATION_ERROR')
  })

  test.each(['http://localhost:3000/signup', 'http://127.0.0.1:8080/cb?x=1', 'https://app.acme.example/signup?ref=mp#top'])(
    'accepts %s',
    async (fulfillmentUrl) => {
      const response = await broker.request('/api/v1/orgs', { method: 'POST', json: { name: 'Acme', fulfillmentUrl } })
      expect(response.status).toBe(201)
    },
  )

  test('rejects bad bodies with the contract error shape', async () => {
    const post = (init: { json?: unknown; body?: string; headers?: Record<string, string> }) =>
      broker.request('/api/v1/orgs', { method: 'POST', ...init })
    await expectError(await post({ json: { fulfillmentUrl: 'https://a.example' } }), 400, 'VALIDATION_ERROR')
    await expectError(await post({ json: { name: '', fulfillmentUrl: 'https://a.example' } }), 400, 'VALIDATION_ERROR')
    await expectError(await post({ json: { name: 'x'.repeat(201), fulfillmentUrl: 'https://a.example' } }), 400, 'VALIDATION_ERROR')
    await expectError(await post({ json: { name: 42, fulfillmentUrl: 'https://a.example' } }), 400, 'VALIDATION_ERROR')
    await expectError(await post({ json: { name: 'A', fulfillmentUrl: 'https://a.example', extra: true } }), 400, 'VALIDATION_ERROR')
    await expectError(await post({ json: { name: 'A', fulfillmentUrl: 'https://a.example', webhookUrl: 'javascript:x' } }), 400, 'VALIDATION_ERROR')
    await expectError(await post({ json: [] }), 400, 'VALIDATION_ERROR')
    await expectError(await post({ body: '{"name": "A",', headers: { 'content-type': 'application/json' } }), 400, 'VALIDATION_ERROR')
    await expectError(await post({ body: 'name=A', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 400, 'VALIDATION_ERROR')
  })

  test('a body over 1 MiB is 413', async () => {
    const response = await broker.request('/api/v1/orgs', {
      method: 'POST',
      json: { name: 'A', fulfillmentUrl: 'https://a.example', padding: 'x'.repeat(1024 * 1024 + 10) },
    })
    await expectError(response, 413, 'PAYLOAD_TOO_LARGE')
  })
})

describe('org get/patch and key isolation', () => {
  test('PATCH updates the given fields with the same URL rules', async () => {
    const { org, apiKey } = await broker.createOrg()
    const patch = (json: unknown) => broker.request(`/api/v1/orgs/${org.id}`, { method: 'PATCH', token: apiKey, json })
    const ok = await patch({ name: 'Acme Corp', fulfillmentUrl: 'https://new.acme.example/start', webhookUrl: 'https://h.acme.example' })
    expect(ok.status).toBe(200)
    expect(await ok.json()).toMatchObject({ id: org.id, name: 'Acme Corp', fulfillmentUrl: 'https://new.acme.example/start', webhookUrl: 'https://h.acme.example/' })
    const cleared = await patch({ webhookUrl: null })
    expect(((await cleared.json()) as { webhookUrl: null }).webhookUrl).toBeNull()
    await expectError(await patch({ fulfillmentUrl: 'http://evil.example' }), 400, 'VALIDATION_ERROR')
    await expectError(await patch({ fulfillmentUrl: 'javascript:alert(1)' }), 400, 'VALIDATION_ERROR')
    const after = await broker.request(`/api/v1/orgs/${org.id}`, { token: apiKey })
    expect(((await after.json()) as { fulfillmentUrl: string }).fulfillmentUrl).toBe('https://new.acme.example/start')
  })

  test("another org's key gets 404 on every org route, as for a missing org", async () => {
    const a = await broker.createOrg({ name: 'A' })
    const b = await broker.createOrg({ name: 'B' })
    const paths: Array<[string, string, unknown?]> = [
      ['GET', `/api/v1/orgs/${a.org.id}`],
      ['PATCH', `/api/v1/orgs/${a.org.id}`, { name: 'stolen' }],
      ['GET', `/api/v1/orgs/${a.org.id}/integrations`],
      ['PUT', `/api/v1/orgs/${a.org.id}/integrations/azure`, { tenantId: 't', clientId: 'c', clientSecret: 's' }],
      ['GET', `/api/v1/orgs/${a.org.id}/entitlements`],
      ['GET', `/api/v1/orgs/${a.org.id}/entitlements/ent_x`],
      ['GET', `/api/v1/orgs/${a.org.id}/entitlements/ent_x/events`],
    ]
    for (const [method, path, json] of paths) {
      await expectError(await broker.request(path, { method, json, token: b.apiKey }), 404, 'NOT_FOUND')
    }
    const still = await broker.request(`/api/v1/orgs/${a.org.id}`, { token: a.apiKey })
    expect(((await still.json()) as { name: string }).name).toBe('A')
    await expectError(await broker.request(`/api/v1/orgs/org_missing`, { token: ADMIN_TOKEN }), 404, 'NOT_FOUND')
  })

  test('no key or an unknown key is 401', async () => {
    const { org, apiKey } = await broker.createOrg()
    await expectError(await broker.request(`/api/v1/orgs/${org.id}`, { token: null }), 401, 'UNAUTHORIZED')
    await expectError(await broker.request(`/api/v1/orgs/${org.id}`, { token: `${apiKey.slice(0, -2)}zz` }), 401, 'UNAUTHORIZED')
    await expectError(await broker.request(`/api/v1/orgs/${org.id}`, { token: null, headers: { authorization: `Basic ${btoa('a:b')}` } }), 401, 'UNAUTHORIZED')
  })

  test('the operator (admin token) can read any org', async () => {
    const { org } = await broker.createOrg()
    expect((await broker.request(`/api/v1/orgs/${org.id}`)).status).toBe(200)
  })

  test('only a hash of the API key is stored', async () => {
    const { apiKey } = await broker.createOrg()
    const rows = await broker.deps.db.selectFrom('api_keys').selectAll().execute()
    expect(JSON.stringify(rows)).not.toContain(apiKey)
    expect(JSON.stringify(rows)).not.toContain(apiKey.slice(4))
  })
})

describe('unknown routes', () => {
  test('an unknown /api route is a JSON 404; an unknown page is HTML', async () => {
    await expectError(await broker.request('/api/v2/nothing'), 404, 'NOT_FOUND')
    const page = await broker.request('/nothing', { token: null })
    expect(page.status).toBe(404)
    expect(page.headers.get('content-type')).toMatch(/text\/html/)
  })
})
