import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { consoleUser } from './console'
import { ADMIN_TOKEN, type AzureSetup, createAzureScenario, startAzure } from './helpers'

/**
 * Hostile input, generated: random paths, query strings, form bodies, JSON and headers at
 * the landing and the API. Whatever arrives: never a 5xx, never a stack trace or internal
 * detail in the answer, and nothing stored changes.
 */
let azure: AzureSetup
let scenario: Awaited<ReturnType<typeof createAzureScenario>>
let otherKey: string
let otherOrgId: string

beforeAll(async () => {
  azure = await startAzure()
  scenario = await createAzureScenario(azure)
  ;({ apiKey: otherKey, org: { id: otherOrgId } } = await scenario.broker.createOrg({ name: 'Other' }))
  // One real purchase, so there is stored data that must not change.
  const sub = azure.emulator.addSubscription({ appId: azure.clientId })
  const response = await scenario.broker.request(scenario.landingPath(`?token=${encodeURIComponent(azure.emulator.issuePurchaseToken(sub.id))}`), { token: null })
  expect(response.status).toBe(303)
})
afterAll(async () => {
  await scenario.broker.close()
  await azure.close()
})

const TABLES = ['orgs', 'api_keys', 'integrations', 'entitlements', 'entitlement_events', 'landing_tokens', 'landing_claims', 'pending_activations'] as const

async function snapshot() {
  const db = scenario.broker.deps.db
  const parts = await Promise.all(TABLES.map((table) => db.selectFrom(table).selectAll().execute()))
  // A key that authenticates has its use recorded (lastUsedAt, at most once a minute): bookkeeping
  // of who called, not a change the request made.
  return JSON.stringify(parts, (field, value) => (field === 'last_used_at' ? undefined : value))
}

const STACK = /\bat [^\n]*:\d+:\d+|node_modules|\.tsx?:\d+|TypeError|ReferenceError|SQLITE_|kysely/i

async function expectHarmless(response: Response) {
  expect(response.status, `status ${response.status}`).toBeLessThan(500)
  const text = await response.text()
  expect(text).not.toMatch(STACK)
}

/** Any string, including control characters, percent signs, unicode, and long runs. */
const anyText = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom('%', '%%', '%E0%A4%A', '%00', '..', '../..', '+', '?token=', '&&', '=', '\u0000', '\uFFFD', 'a'.repeat(9000)),
)
const safeHeaderValue = fc.string({ maxLength: 60 }).map((value) => value.replace(/[^\x20-\x7e]/g, ''))
const headerName = fc.constantFrom('content-type', 'accept', 'x-request-id', 'cookie', 'x-forwarded-for', 'authorization', 'content-encoding', 'x-ms-marketplace-token', 'referer')
const contentType = fc.constantFrom(
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=xyz',
  'multipart/form-data',
  'application/json',
  'text/plain',
  'application/x-www-form-urlencoded; charset=utf-16',
  '',
)

function query(pairs: Array<[string, string]>, raw: boolean) {
  if (!pairs.length) return ''
  const encode = (text: string) => text.replace(/[^A-Za-z0-9\-_.~]/gu, pctEncode)
  return `?${pairs.map(([k, v]) => (raw ? `${k}=${v}` : `${encode(k)}=${encode(v)}`)).join('&')}`
}

/** Percent-encodes UTF-8 bytes; a lone surrogate (which encodeURIComponent refuses) becomes U+FFFD. */
function pctEncode(text: string) {
  return [...new TextEncoder().encode(text)].map((byte) => `%${byte.toString(16).toUpperCase().padStart(2, '0')}`).join('')
}

function safeUrlPart(text: string) {
  // Raw text may not even be a URL; keep what a browser would send by encoding what it would not.
  return text.replace(/[\s#\u0000-\u001f\u007f-\u{10ffff}]/gu, pctEncode)
}

describe('the landing under random input', () => {
  test('random partners, orgs, queries, forms and headers: no 5xx, no stack trace, nothing stored changes', async () => {
    const before = await snapshot()
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          partner: fc.oneof(fc.constantFrom('azure', 'aws', 'gcp'), anyText),
          org: fc.oneof(fc.constant(scenario.org.id), fc.constant(otherOrgId), anyText),
          pairs: fc.array(fc.tuple(fc.oneof(fc.constantFrom('token', 'partnerId', 'x-amzn-marketplace-token'), anyText), anyText), { maxLength: 4 }),
          raw: fc.boolean(),
          method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH'),
          type: contentType,
          body: fc.oneof(anyText, fc.constant('x-amzn-marketplace-token=abc&x-gcp-marketplace-token=a.b.c'), fc.constant('--xyz\r\nContent-Disposition: form-data; name="token"\r\n\r\nabc\r\n--xyz--')),
          headers: fc.array(fc.tuple(headerName, safeHeaderValue), { maxLength: 3 }),
        }),
        async (input) => {
          const path = `/public/signup/${safeUrlPart(input.partner).replace(/[/?%]/g, pctEncode)}/orgId/${safeUrlPart(input.org).replace(/[/?%]/g, pctEncode)}${safeUrlPart(query(input.pairs, input.raw))}`
          const headers = new Headers()
          for (const [name, value] of input.headers) headers.set(name, value)
          if (input.type) headers.set('content-type', input.type)
          const withBody = !['GET', 'HEAD'].includes(input.method)
          const response = await scenario.broker.request(path, { method: input.method, token: null, headers, body: withBody ? input.body : undefined })
          await expectHarmless(response)
        },
      ),
      { numRuns: 300 },
    )
    expect(await snapshot()).toBe(before)
  })

  test('random paths anywhere: no 5xx, no stack trace', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(anyText, { minLength: 1, maxLength: 5 }), fc.constantFrom('GET', 'POST', 'DELETE'), async (segments, method) => {
        const response = await scenario.broker.request(`/${segments.map((s) => s.replace(/[^A-Za-z0-9\-_.~]/gu, pctEncode)).join('/')}`, { method, token: null })
        await expectHarmless(response)
      }),
      { numRuns: 200 },
    )
  })
})

describe('the API under random input', () => {
  const routes = (org: string) => [
    ['POST', '/api/v1/orgs'],
    ['GET', `/api/v1/orgs/${org}`],
    ['PATCH', `/api/v1/orgs/${org}`],
    ['GET', `/api/v1/orgs/${org}/integrations`],
    ['PUT', `/api/v1/orgs/${org}/integrations/azure`],
    ['PUT', `/api/v1/orgs/${org}/integrations/aws`],
    ['PUT', `/api/v1/orgs/${org}/integrations/gcp`],
    ['GET', `/api/v1/orgs/${org}/entitlements`],
    ['GET', `/api/v1/orgs/${org}/entitlements/ent_x`],
    ['GET', `/api/v1/orgs/${org}/entitlements/ent_x/events`],
  ]

  test('random JSON, bodies, queries and keys (none of them the owner’s): errors in the contract shape, nothing stored changes', async () => {
    const before = await snapshot()
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          route: fc.nat({ max: routes('x').length - 1 }),
          org: fc.oneof(fc.constant(scenario.org.id), anyText),
          token: fc.oneof(fc.constant(null), fc.constant(otherKey), fc.constant('mbk_forged'), anyText.map((t) => t.replace(/[^\x21-\x7e]/g, 'x') || 'x')),
          body: fc.oneof(fc.jsonValue().map((v) => JSON.stringify(v)), anyText, fc.constant('{"name":"A","fulfillmentUrl":"https://a.example"}')),
          type: contentType,
          pairs: fc.array(fc.tuple(fc.constantFrom('limit', 'cursor', 'partner', 'status'), anyText), { maxLength: 3 }),
        }),
        async (input) => {
          const [method, path] = routes(input.org.replace(/[^A-Za-z0-9\-_.~]/gu, pctEncode))[input.route]!
          const headers = new Headers()
          if (input.type) headers.set('content-type', input.type)
          const response = await scenario.broker.request(`${path}${query(input.pairs, false)}`, {
            method,
            token: input.token,
            headers,
            body: method === 'GET' ? undefined : input.body,
          })
          expect(response.status).toBeLessThan(500)
          expect(response.status).toBeGreaterThanOrEqual(400)
          const body = (await response.json()) as { error: { code: string; message: string; requestId: string } }
          expect(body.error.code).toMatch(/^[A-Z_]+$/)
          expect(JSON.stringify(body)).not.toMatch(STACK)
        },
      ),
      { numRuns: 300 },
    )
    expect(await snapshot()).toBe(before)
  })

  test('the operator’s own random org bodies are validated: 400, never 5xx, nothing created', async () => {
    const before = await snapshot()
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.jsonValue(), fc.record({ name: fc.jsonValue(), fulfillmentUrl: fc.oneof(anyText, fc.jsonValue()) })), async (body) => {
        const response = await scenario.broker.request('/api/v1/orgs', { method: 'POST', json: body })
        expect([400, 413]).toContain(response.status)
      }),
      { numRuns: 200 },
    )
    expect(await snapshot()).toBe(before)
  })

  test('a string holding U+0000 is 400 on every database (PostgreSQL cannot store it); a backslash followed by u0000 is text like any other', async () => {
    const before = await snapshot()
    for (const body of [
      { name: 'a\u0000b', fulfillmentUrl: 'https://app.acme.example/signup' },
      { name: 'Acme', fulfillmentUrl: 'https://app.acme.example/signup', nested: { ['k\u0000']: 1 } },
      { name: 'Acme', fulfillmentUrl: 'https://app.acme.example/signup\u0000' },
    ]) {
      const response = await scenario.broker.request('/api/v1/orgs', { method: 'POST', json: body })
      expect(response.status).toBe(400)
      expect((await response.json()).error).toMatchObject({ code: 'VALIDATION_ERROR', message: expect.stringMatching(/NUL/) })
    }
    const patched = await scenario.broker.request(`/api/v1/orgs/${otherOrgId}`, { method: 'PATCH', json: { name: 'x\u0000' }, token: otherKey })
    expect(patched.status).toBe(400)
    expect(await snapshot()).toBe(before)
    const literal = await scenario.broker.request('/api/v1/orgs', { method: 'POST', json: { name: 'back\\u0000slash', fulfillmentUrl: 'https://app.acme.example/signup' } })
    expect(literal.status).toBe(201)
    expect((await literal.json()).org.name).toBe('back\\u0000slash')
  })

  test('U+0000 in a URL is 404 in the path and 400 in the query on every database (PostgreSQL was a 500), after the key is checked', async () => {
    const before = await snapshot()
    for (const path of [`/api/v1/orgs/${otherOrgId}/entitlements/ent_%00`, `/api/v1/orgs/${otherOrgId}/entitlements/a%00b/events`, `/api/v1/orgs/${otherOrgId}%00`]) {
      const response = await scenario.broker.request(path, { token: otherKey })
      expect(response.status, path).toBe(404)
      expect((await response.json()).error.code).toBe('NOT_FOUND')
    }
    for (const query of ['cursor=%00', 'status=ACTIVE%00', 'a%00=1']) {
      const response = await scenario.broker.request(`/api/v1/orgs/${otherOrgId}/entitlements?${query}`, { token: otherKey })
      expect(response.status, query).toBe(400)
      expect((await response.json()).error).toMatchObject({ code: 'VALIDATION_ERROR', message: expect.stringMatching(/NUL/) })
    }
    expect((await scenario.broker.request(`/api/v1/orgs/${otherOrgId}/entitlements/ent_%00`, { token: null })).status).toBe(401)
    expect(await snapshot()).toBe(before)
  })

  test('U+0000 in a console URL is a 404 page for the operator, who may open any org, and in a console form a 400 (PostgreSQL was a 500)', async () => {
    const operator = consoleUser((url, init) => scenario.broker.app.request(url, init))
    await operator.signIn(ADMIN_TOKEN)
    for (const path of [`/console/orgs/${otherOrgId}%00`, `/console/orgs/a%00b/entitlements`, `/console/orgs/${otherOrgId}/entitlements/ent_%00`]) {
      expect((await operator.get(path)).status, path).toBe(404)
    }
    // A console form field holding it: a 400 page, nothing changed (PostgreSQL was a 500).
    const before = await snapshot()
    const refused = await operator.submit('/console/orgs', '/console/orgs', { name: 'a\u0000b', fulfillmentUrl: 'https://app.acme.example/signup' })
    expect(refused.status).toBe(400)
    expect(refused.html).toMatch(/NUL character/)
    expect(await snapshot()).toBe(before)
  })
})
