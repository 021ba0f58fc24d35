import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import { type TestBroker, createTestBroker, waitFor } from './helpers'
import { TEST_DIALECT } from './postgres'
import { type WorkerProcess, httpBroker, startWorker } from './worker-process'

/** Contract §13: API keys as rows of their own, their scopes, expiry, rotation and revocation. */

interface ApiKey {
  id: string
  name: string
  start: string
  scope: 'full' | 'read'
  rateLimitPerMinute: number | null
  createdAt: string
  expiresAt: string | null
  lastUsedAt: string | null
  revokedAt: string | null
  status: 'ACTIVE' | 'EXPIRED' | 'REVOKED'
}
type Created = { apiKey: ApiKey; key: string }
type Client = Pick<TestBroker, 'request' | 'createOrg'>

const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

/** A broker whose clock a test moves forward (`later(ms)`); the real clock still runs underneath. */
async function clockedBroker(env: Record<string, string> = {}) {
  const broker = await createTestBroker(env)
  let shift = 0
  broker.deps.now = () => new Date(Date.now() + shift)
  return Object.assign(broker, { later: (ms: number) => void (shift += ms), now: () => Date.now() + shift })
}
type Clocked = Awaited<ReturnType<typeof clockedBroker>>

function keyApi(broker: Client, orgId: string) {
  const base = `/api/v1/orgs/${orgId}/api-keys`
  return {
    create: (json: unknown, token?: string) => broker.request(base, { method: 'POST', json, ...(token ? { token } : {}) }),
    list: async (token?: string) => {
      const response = await broker.request(base, token ? { token } : {})
      expect(response.status).toBe(200)
      return ((await response.json()) as { items: ApiKey[] }).items
    },
    revoke: (id: string, token?: string) => broker.request(`${base}/${id}`, { method: 'DELETE', ...(token ? { token } : {}) }),
    rotate: (id: string, json?: unknown, token?: string) =>
      broker.request(`${base}/${id}/rotate`, { method: 'POST', ...(json === undefined ? {} : { json }), ...(token ? { token } : {}) }),
  }
}

/** What a key can do with the org: 200 while it works, 401 once refused. */
const statusWith = async (broker: Client, orgId: string, key: string) => (await broker.request(`/api/v1/orgs/${orgId}`, { token: key })).status

async function created(response: Response): Promise<Created> {
  expect(response.status).toBe(201)
  return (await response.json()) as Created
}

async function errorCode(response: Response, status: number) {
  expect(response.status).toBe(status)
  const body = (await response.json()) as { error: { code: string; message: string; requestId: string } }
  expect(body.error.message.length).toBeGreaterThan(0)
  expect(body.error.requestId.length).toBeGreaterThan(0)
  return body.error.code
}

describe('API keys on Node', () => {
  let broker: Clocked
  beforeEach(async () => {
    broker = await clockedBroker()
  })
  afterEach(async () => {
    await broker.close()
  })

  test("the org's first key is listed as its full `default` key, without its secret", async () => {
    const { org, apiKey } = await broker.createOrg()
    // The admin token first: the key's own request would record its use.
    const response = await broker.request(`/api/v1/orgs/${org.id}/api-keys`)
    const text = await response.text()
    expect(response.status).toBe(200)
    expect(text).not.toContain(apiKey)
    const { items } = JSON.parse(text) as { items: ApiKey[] }
    expect(items).toEqual([
      {
        id: expect.stringMatching(/^key_[0-9a-z]{26}$/),
        name: 'default',
        start: apiKey.slice(0, 8),
        scope: 'full',
        rateLimitPerMinute: null,
        createdAt: expect.stringMatching(ISO_MS),
        expiresAt: null,
        lastUsedAt: null,
        revokedAt: null,
        status: 'ACTIVE',
      },
    ])
    expect(items[0]!.start).toMatch(/^mbk_.{4}$/)
    const own = await keyApi(broker, org.id).list(apiKey)
    expect(own).toEqual([{ ...items[0], lastUsedAt: own[0]!.lastUsedAt }])
  })

  test('create: 201 with the secret shown once, only its hash stored; listed newest first', async () => {
    const { org, apiKey } = await broker.createOrg()
    const keys = keyApi(broker, org.id)
    const expiresAt = new Date(broker.now() + 3_600_000)
    const first = await created(await keys.create({ name: 'ci', scope: 'read', rateLimitPerMinute: 60, expiresAt: expiresAt.toISOString().replace('.000Z', 'Z') }, apiKey))
    expect(first.key).toMatch(/^mbk_[A-Za-z0-9_-]{40,}$/)
    expect(first.key).not.toBe(apiKey)
    expect(first.apiKey).toEqual({
      id: expect.stringMatching(/^key_/),
      name: 'ci',
      start: first.key.slice(0, 8),
      scope: 'read',
      rateLimitPerMinute: 60,
      createdAt: expect.stringMatching(ISO_MS),
      expiresAt: expiresAt.toISOString(),
      lastUsedAt: null,
      revokedAt: null,
      status: 'ACTIVE',
    })
    const second = await created(await keys.create({ name: 'deploy' }))
    expect(second.apiKey).toMatchObject({ name: 'deploy', scope: 'full', rateLimitPerMinute: null, expiresAt: null })
    expect((await keys.list()).map((key) => key.name)).toEqual(['deploy', 'ci', 'default'])
    expect(await statusWith(broker, org.id, first.key)).toBe(200)
    expect(await statusWith(broker, org.id, second.key)).toBe(200)
    const rows = JSON.stringify(await broker.deps.db.selectFrom('api_keys').selectAll().execute())
    for (const secret of [apiKey, first.key, second.key]) {
      expect(rows).not.toContain(secret)
      expect(rows).not.toContain(secret.slice(0, 12))
    }
  })

  test('rotate: a new key with the same name, scope and limit; the old one works for the grace period, then 401', async () => {
    const { org } = await broker.createOrg()
    const keys = keyApi(broker, org.id)
    const old = await created(await keys.create({ name: 'billing', scope: 'full', rateLimitPerMinute: 500 }))
    expect(await statusWith(broker, org.id, old.key)).toBe(200)
    const rotatedAt = broker.now()
    const rotated = await created(await keys.rotate(old.apiKey.id, { gracePeriodSeconds: 60 }, old.key))
    expect(rotated.apiKey).toMatchObject({ name: 'billing', scope: 'full', rateLimitPerMinute: 500, status: 'ACTIVE', expiresAt: null })
    expect(rotated.apiKey.id).not.toBe(old.apiKey.id)
    expect(rotated.key).not.toBe(old.key)
    const before = (await keys.list()).find((key) => key.id === old.apiKey.id)!
    expect(Date.parse(before.expiresAt!) - rotatedAt).toBeGreaterThanOrEqual(60_000)
    expect(Date.parse(before.expiresAt!) - rotatedAt).toBeLessThan(62_000)
    expect(before.status).toBe('ACTIVE')
    // During the grace period both work: consumers switch without downtime.
    broker.later(58_000)
    expect(await statusWith(broker, org.id, old.key)).toBe(200)
    expect(await statusWith(broker, org.id, rotated.key)).toBe(200)
    broker.later(3_000)
    expect(await statusWith(broker, org.id, old.key)).toBe(401)
    expect(await statusWith(broker, org.id, rotated.key)).toBe(200)
    expect((await keys.list()).find((key) => key.id === old.apiKey.id)!.status).toBe('EXPIRED')
  })

  test('rotate: a day by default, never later than an earlier expiry; grace 0 refuses the old key at once; only active keys rotate', async () => {
    const { org } = await broker.createOrg()
    const keys = keyApi(broker, org.id)
    const plain = await created(await keys.create({ name: 'a' }))
    const at = broker.now()
    await created(await keys.rotate(plain.apiKey.id))
    const expiry = Date.parse((await keys.list()).find((key) => key.id === plain.apiKey.id)!.expiresAt!)
    expect(expiry - at).toBeGreaterThanOrEqual(86_400_000)
    expect(expiry - at).toBeLessThan(86_402_000)

    const soon = new Date(broker.now() + 10_000).toISOString()
    const short = await created(await keys.create({ name: 'b', expiresAt: soon }))
    await created(await keys.rotate(short.apiKey.id, { gracePeriodSeconds: 3_600 }))
    expect((await keys.list()).find((key) => key.id === short.apiKey.id)!.expiresAt).toBe(soon)

    const now = await created(await keys.create({ name: 'c' }))
    expect(await statusWith(broker, org.id, now.key)).toBe(200)
    await created(await keys.rotate(now.apiKey.id, { gracePeriodSeconds: 0 }))
    expect(await statusWith(broker, org.id, now.key)).toBe(401)
    expect(await errorCode(await keys.rotate(now.apiKey.id), 409)).toBe('CONFLICT')
    await keys.revoke(plain.apiKey.id)
    expect(await errorCode(await keys.rotate(plain.apiKey.id), 409)).toBe('CONFLICT')
  })

  test('revoke: 200 REVOKED, refused at once; a second DELETE answers the same key; a key may revoke itself', async () => {
    const { org, apiKey } = await broker.createOrg()
    const keys = keyApi(broker, org.id)
    const other = await created(await keys.create({ name: 'laptop' }))
    expect(await statusWith(broker, org.id, other.key)).toBe(200)
    const response = await keys.revoke(other.apiKey.id, apiKey)
    expect(response.status).toBe(200)
    const { apiKey: revoked } = (await response.json()) as { apiKey: ApiKey }
    expect(revoked).toMatchObject({ id: other.apiKey.id, status: 'REVOKED', revokedAt: expect.stringMatching(ISO_MS) })
    expect(await statusWith(broker, org.id, other.key)).toBe(401)
    broker.later(5_000)
    const again = await keys.revoke(other.apiKey.id, apiKey)
    expect(again.status).toBe(200)
    expect(await again.json()).toEqual({ apiKey: revoked })
    // The calling key revokes itself: the answer is given, the next request is refused.
    const defaultId = (await keys.list()).find((key) => key.name === 'default')!.id
    expect((await keys.revoke(defaultId, apiKey)).status).toBe(200)
    expect(await statusWith(broker, org.id, apiKey)).toBe(401)
    expect((await keys.list()).map((key) => key.status)).toEqual(['REVOKED', 'REVOKED'])
  })

  test('an expired key is refused (401), by the clock on every request', async () => {
    const { org } = await broker.createOrg()
    const keys = keyApi(broker, org.id)
    const temporary = await created(await keys.create({ name: 'temp', expiresAt: new Date(broker.now() + 30_000).toISOString() }))
    expect(await statusWith(broker, org.id, temporary.key)).toBe(200)
    broker.later(29_000)
    expect(await statusWith(broker, org.id, temporary.key)).toBe(200)
    broker.later(2_000)
    expect(await errorCode(await broker.request(`/api/v1/orgs/${org.id}`, { token: temporary.key }), 401)).toBe('UNAUTHORIZED')
    expect((await keys.list())[0]).toMatchObject({ id: temporary.apiKey.id, status: 'EXPIRED' })
  })

  test('a read key: GET and HEAD routes (listing keys included) answer; anything else 403 FORBIDDEN, key management too', async () => {
    const { org, apiKey } = await broker.createOrg()
    const keys = keyApi(broker, org.id)
    const reader = await created(await keys.create({ name: 'dashboard', scope: 'read' }))
    const read = (path: string, init: RequestInit = {}) => broker.request(`/api/v1/orgs/${org.id}${path}`, { ...init, token: reader.key })
    expect((await read('')).status).toBe(200)
    expect((await read('/entitlements')).status).toBe(200)
    expect((await read('/integrations', { method: 'HEAD' })).status).toBe(200)
    expect((await keys.list(reader.key)).length).toBe(2)
    const defaultId = (await keys.list()).find((key) => key.name === 'default')!.id
    const refused = [
      await read('', { method: 'PATCH', body: JSON.stringify({ name: 'x' }), headers: { 'content-type': 'application/json' } }),
      await keys.create({ name: 'mine' }, reader.key),
      await keys.rotate(reader.apiKey.id, {}, reader.key),
      await keys.rotate(defaultId, {}, reader.key),
      await keys.revoke(defaultId, reader.key),
      await keys.revoke(reader.apiKey.id, reader.key),
    ]
    for (const response of refused) expect(await errorCode(response, 403)).toBe('FORBIDDEN')
    expect((await keys.list()).map((key) => [key.name, key.status])).toEqual([
      ['dashboard', 'ACTIVE'],
      ['default', 'ACTIVE'],
    ])
    expect((await broker.request(`/api/v1/orgs/${org.id}`, { token: apiKey })).status).toBe(200)
    expect(((await (await broker.request(`/api/v1/orgs/${org.id}`, { token: apiKey })).json()) as { name: string }).name).toBe('Acme')
  })

  test("another org's key id is 404, and another org's key list 404; the admin token manages any org's keys", async () => {
    const a = await broker.createOrg()
    const b = await broker.createOrg()
    const bKeys = keyApi(broker, b.org.id)
    const bKey = (await bKeys.list())[0]!
    const aKeys = keyApi(broker, a.org.id)
    expect(await errorCode(await aKeys.revoke(bKey.id, a.apiKey), 404)).toBe('NOT_FOUND')
    expect(await errorCode(await aKeys.rotate(bKey.id, {}, a.apiKey), 404)).toBe('NOT_FOUND')
    expect(await errorCode(await bKeys.revoke(bKey.id, a.apiKey), 404)).toBe('NOT_FOUND')
    expect(await errorCode(await broker.request(`/api/v1/orgs/${b.org.id}/api-keys`, { token: a.apiKey }), 404)).toBe('NOT_FOUND')
    expect(await errorCode(await aKeys.revoke('key_missing', a.apiKey), 404)).toBe('NOT_FOUND')
    expect(await errorCode(await keyApi(broker, 'org_missing').create({ name: 'x' }), 404)).toBe('NOT_FOUND')
    expect(await errorCode(await broker.request('/api/v1/orgs/org_missing/api-keys'), 404)).toBe('NOT_FOUND')
    expect(await statusWith(broker, b.org.id, b.apiKey)).toBe(200)
    expect((await bKeys.list())[0]!.status).toBe('ACTIVE')
    // The operator (ADMIN_TOKEN) may.
    expect((await bKeys.revoke(bKey.id)).status).toBe(200)
    expect(await statusWith(broker, b.org.id, b.apiKey)).toBe(401)
  })

  test('bodies outside the ranges are 400 and create or change nothing; the edges of the ranges are accepted', async () => {
    const { org } = await broker.createOrg()
    const keys = keyApi(broker, org.id)
    const target = await created(await keys.create({ name: 'target' }))
    const snapshot = async () => JSON.stringify(await keys.list())
    const before = await snapshot()
    const past = new Date(broker.now() - 1_000).toISOString()
    const badCreates: unknown[] = [
      {},
      { name: '' },
      { name: 'x'.repeat(101) },
      { name: 7 },
      { name: 'a', scope: 'admin' },
      { name: 'a', expiresAt: past },
      { name: 'a', expiresAt: new Date(broker.now()).toISOString() },
      { name: 'a', expiresAt: 'tomorrow' },
      { name: 'a', expiresAt: '2999-01-01' },
      { name: 'a', rateLimitPerMinute: 0 },
      { name: 'a', rateLimitPerMinute: 100_001 },
      { name: 'a', rateLimitPerMinute: 1.5 },
      { name: 'a', rateLimitPerMinute: '10' },
      { name: 'a', extra: true },
      [],
      'name',
      null,
    ]
    for (const body of badCreates) expect(await errorCode(await keys.create(body), 400), JSON.stringify(body)).toBe('VALIDATION_ERROR')
    for (const body of [{ gracePeriodSeconds: -1 }, { gracePeriodSeconds: 604_801 }, { gracePeriodSeconds: 1.5 }, { gracePeriodSeconds: '60' }, { grace: 60 }, [], null]) {
      expect(await errorCode(await keys.rotate(target.apiKey.id, body), 400), JSON.stringify(body)).toBe('VALIDATION_ERROR')
    }
    expect(await snapshot()).toBe(before)
    expect(await statusWith(broker, org.id, target.key)).toBe(200)

    await created(await keys.create({ name: 'x'.repeat(100), rateLimitPerMinute: 1 }))
    await created(await keys.create({ name: 'y', rateLimitPerMinute: 100_000, expiresAt: new Date(broker.now() + 60_000).toISOString() }))
    await created(await keys.rotate(target.apiKey.id, { gracePeriodSeconds: 604_800 }))
    const edge = await created(await keys.create({ name: 'z' }))
    await created(await keys.rotate(edge.apiKey.id, { gracePeriodSeconds: 0 }))
  })

  test('lastUsedAt is written at most once a minute per key, off the answer, and never on every request', async () => {
    const { org } = await broker.createOrg()
    const keys = keyApi(broker, org.id)
    const used = await created(await keys.create({ name: 'used' }))
    const lastUsed = async () => (await keys.list()).find((key) => key.id === used.apiKey.id)!.lastUsedAt
    // Every UPDATE of api_keys the broker makes from here on (the real handle, counted on the way through).
    const db = broker.deps.db
    const updateTable = db.updateTable.bind(db)
    let updates = 0
    db.updateTable = ((table: string) => {
      if (table === 'api_keys') updates++
      return updateTable(table as 'api_keys')
    }) as typeof db.updateTable
    expect(await lastUsed()).toBeNull()
    const firstUse = broker.now()
    expect(await statusWith(broker, org.id, used.key)).toBe(200)
    const first = await waitFor('lastUsedAt written', lastUsed)
    expect(Date.parse(first)).toBeGreaterThanOrEqual(firstUse)
    expect(Date.parse(first)).toBeLessThan(firstUse + 2_000)
    // Within the minute (across cache refreshes every 5 s), the value stays: no update was made.
    for (const step of [1_000, 5_000, 20_000, 30_000]) {
      broker.later(step)
      for (let i = 0; i < 5; i++) expect(await statusWith(broker, org.id, used.key)).toBe(200)
      expect(await lastUsed()).toBe(first)
    }
    expect(updates).toBe(1)
    broker.later(5_000)
    const secondUse = broker.now()
    expect(await statusWith(broker, org.id, used.key)).toBe(200)
    const second = await waitFor('lastUsedAt written again', async () => ((await lastUsed()) !== first ? lastUsed() : null))
    expect(Date.parse(second)).toBeGreaterThanOrEqual(secondUse)
    expect(Date.parse(second) - Date.parse(first)).toBeGreaterThan(60_000)
    expect(updates).toBe(2)
  })

  test('the routes are in the OpenAPI document shown at /api/docs', async () => {
    const doc = (await (await broker.request('/api/openapi.json')).json()) as { paths: Record<string, Record<string, unknown>> }
    expect(Object.keys(doc.paths['/api/v1/orgs/{orgId}/api-keys']!).sort()).toEqual(['get', 'post'])
    expect(Object.keys(doc.paths['/api/v1/orgs/{orgId}/api-keys/{id}']!)).toEqual(['delete'])
    expect(Object.keys(doc.paths['/api/v1/orgs/{orgId}/api-keys/{id}/rotate']!)).toEqual(['post'])
  })

  test('property: create and rotate bodies never answer 5xx; a refused one creates and changes nothing', async () => {
    const { org } = await broker.createOrg()
    const keys = keyApi(broker, org.id)
    const target = await created(await keys.create({ name: 'target' }))
    /** A 201 adds exactly one key; a 400 leaves the list as it was; nothing else is answered. */
    const createdOrNothing = async (send: () => Promise<Response>, check: (apiKey: ApiKey, after: ApiKey[]) => void) => {
      const before = await keys.list()
      const response = await send()
      expect([201, 400]).toContain(response.status)
      const after = await keys.list()
      if (response.status === 400) {
        expect(after).toEqual(before)
        return
      }
      const { apiKey } = (await response.json()) as Created
      expect(after.length).toBe(before.length + 1)
      check(apiKey, after)
    }
    const maybe = <T>(arbitrary: fc.Arbitrary<T>) => fc.option(arbitrary, { nil: undefined })
    const time = fc.oneof(
      // A minute or more either side of now: a key made to expire in a few ms could expire between
      // its 201 and the list that checks it (the edges themselves are the fixed cases above).
      fc
        .integer({ min: -86_400_000, max: 86_400_000 * 365 })
        .map((offset) => new Date(broker.now() + offset + Math.sign(offset || 1) * 60_000).toISOString()),
      fc.string({ maxLength: 30 }),
    )
    const createBody = fc.oneof(
      fc.record(
        {
          name: fc.oneof(fc.string({ minLength: 0, maxLength: 110 }), fc.integer()),
          scope: maybe(fc.oneof(fc.constantFrom('full', 'read'), fc.string({ maxLength: 6 }))),
          expiresAt: maybe(time),
          rateLimitPerMinute: maybe(fc.oneof(fc.integer({ min: -5, max: 100_005 }), fc.double(), fc.constant(null))),
        },
        { requiredKeys: [] },
      ),
      fc.anything(),
    )
    await fc.assert(
      fc.asyncProperty(createBody, (body) =>
        createdOrNothing(() => keys.create(body === undefined ? null : body), (apiKey, after) => {
          expect(after[0]).toEqual(apiKey)
          expect(apiKey.name).toBe((body as { name: string }).name)
        }),
      ),
      { numRuns: 60 },
    )
    const rotateBody = fc.oneof(
      fc.record({ gracePeriodSeconds: fc.oneof(fc.integer({ min: -10, max: 604_810 }), fc.double(), fc.string({ maxLength: 5 })) }, { requiredKeys: [] }),
      fc.anything(),
    )
    let current = target.apiKey.id
    await fc.assert(
      fc.asyncProperty(rotateBody, (body) =>
        createdOrNothing(() => keys.rotate(current, body === undefined ? null : body), (apiKey) => {
          expect(apiKey.name).toBe('target')
          current = apiKey.id
        }),
      ),
      { numRuns: 40 },
    )
  })
})

describe('API keys across two brokers on one database', () => {
  let dir: string
  let a: Clocked
  let b: Clocked
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'marketbridge-api-keys-'))
    const env = { DATABASE_URL: `sqlite:${join(dir, 'shared.db')}` }
    a = await clockedBroker(env)
    b = await clockedBroker(env)
  })
  afterAll(async () => {
    await a?.close()
    await b?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  test('a key revoked on one instance is refused there at once and on the other within 5 s', async () => {
    const { org } = await a.createOrg()
    const key = await created(await keyApi(a, org.id).create({ name: 'shared' }))
    expect(await statusWith(b, org.id, key.key)).toBe(200)
    expect(await statusWith(a, org.id, key.key)).toBe(200)
    const revokedAt = performance.now()
    expect((await keyApi(a, org.id).revoke(key.apiKey.id)).status).toBe(200)
    expect(await statusWith(a, org.id, key.key)).toBe(401)
    await waitFor('the other instance refuses the revoked key', async () => (await statusWith(b, org.id, key.key)) === 401, { timeoutMs: 6_000, everyMs: 100 })
    expect(performance.now() - revokedAt).toBeLessThan(5_500)
  }, 15_000)

  test('a rotation with no grace is seen by the other instance within 5 s; lastUsedAt is one write a minute across both', async () => {
    const { org } = await a.createOrg()
    const keys = keyApi(a, org.id)
    const key = await created(await keys.create({ name: 'rotating' }))
    const lastUsed = async () => (await keys.list()).find((row) => row.id === key.apiKey.id)!.lastUsedAt
    expect(await statusWith(a, org.id, key.key)).toBe(200)
    const first = await waitFor('lastUsedAt written', lastUsed)
    // The other instance sees the key's use recorded within the minute: it writes nothing.
    b.later(10_000)
    expect(await statusWith(b, org.id, key.key)).toBe(200)
    expect(await lastUsed()).toBe(first)
    const rotatedAt = performance.now()
    await created(await keys.rotate(key.apiKey.id, { gracePeriodSeconds: 0 }))
    expect(await statusWith(a, org.id, key.key)).toBe(401)
    await waitFor('the other instance refuses the rotated key', async () => (await statusWith(b, org.id, key.key)) === 401, { timeoutMs: 6_000, everyMs: 100 })
    expect(performance.now() - rotatedAt).toBeLessThan(5_500)
  }, 15_000)
})

// workerd + D1 (the file also runs in the postgres project, where there is nothing more to say about workerd).
describe.skipIf(TEST_DIALECT === 'postgres')('API keys on workerd + D1', () => {
  let worker: WorkerProcess
  let persistTo: string
  beforeAll(async () => {
    persistTo = mkdtempSync(join(tmpdir(), 'marketbridge-api-keys-worker-'))
    worker = await startWorker(persistTo, {})
  }, 120_000)
  afterAll(async () => {
    await worker?.stop()
    rmSync(persistTo, { recursive: true, force: true })
  })

  test('create, use, list, rotate, revoke -> 401; a read key is 403 on a POST', async () => {
    const broker = httpBroker(worker.url)
    const { org, apiKey } = await broker.createOrg()
    const keys = keyApi(broker, org.id)
    const key = await created(await keys.create({ name: 'edge', rateLimitPerMinute: 100 }, apiKey))
    expect(await statusWith(broker, org.id, key.key)).toBe(200)
    const listed = await waitFor('lastUsedAt written (waitUntil)', async () => {
      const found = (await keys.list()).find((row) => row.id === key.apiKey.id)!
      return found.lastUsedAt ? found : null
    })
    expect(listed).toMatchObject({ name: 'edge', scope: 'full', rateLimitPerMinute: 100, status: 'ACTIVE' })
    const rotated = await created(await keys.rotate(key.apiKey.id, { gracePeriodSeconds: 0 }, key.key))
    expect(await statusWith(broker, org.id, key.key)).toBe(401)
    expect(await statusWith(broker, org.id, rotated.key)).toBe(200)
    expect((await keys.revoke(rotated.apiKey.id, rotated.key)).status).toBe(200)
    expect(await errorCode(await broker.request(`/api/v1/orgs/${org.id}`, { token: rotated.key }), 401)).toBe('UNAUTHORIZED')
    const reader = await created(await keys.create({ name: 'reader', scope: 'read' }))
    expect(await statusWith(broker, org.id, reader.key)).toBe(200)
    expect(await errorCode(await keys.create({ name: 'x' }, reader.key), 403)).toBe('FORBIDDEN')
    expect(await errorCode(await keys.create({ name: 'x', rateLimitPerMinute: 0 }), 400)).toBe('VALIDATION_ERROR')
    expect((await keys.list()).map((row) => [row.name, row.status])).toEqual([
      ['reader', 'ACTIVE'],
      ['edge', 'REVOKED'],
      ['edge', 'EXPIRED'],
      ['default', 'ACTIVE'],
    ])
  }, 60_000)
})
