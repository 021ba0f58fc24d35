import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { runJobs } from '../src/domain/jobs'
import { createLandingService } from '../src/domain/landing'
import { limitFor, sliceOf, takeRequest } from '../src/domain/rate-limits'
import { ADMIN_TOKEN, type TestBroker, createTestBroker } from './helpers'

/**
 * Rate limits per API key (contract §13) through the real app: the counter in the database (SQLite
 * here, PostgreSQL in the postgres project), an injected clock moved across one-minute windows,
 * and the answers' RateLimit-Policy / RateLimit / Retry-After fields as the IETF draft writes them.
 */

// A window starts on the clock's minute: 10:00:12.300 leaves 47.7 s, announced as 48.
const WINDOW_START = Date.parse('2026-03-02T10:00:00.000Z')
const POLICY = /^"default";q=(\d+);w=60$/
const LIMIT = /^"default";r=(\d+);t=(\d+)$/

function clockOf(broker: TestBroker, start = WINDOW_START + 12_300) {
  const clock = { ms: start }
  broker.deps.now = () => new Date(clock.ms)
  return clock
}

/** The two fields of a keyed answer, parsed; throws when either is missing or malformed. */
function fields(response: Response) {
  const policy = POLICY.exec(response.headers.get('ratelimit-policy') ?? '')
  const limit = LIMIT.exec(response.headers.get('ratelimit') ?? '')
  if (!policy || !limit) throw new Error(`no rate-limit fields on a ${response.status}: ${response.headers.get('ratelimit-policy')} / ${response.headers.get('ratelimit')}`)
  return { quota: Number(policy[1]), remaining: Number(limit[1]), reset: Number(limit[2]) }
}

const noFields = (response: Response) => ({ policy: response.headers.get('ratelimit-policy'), limit: response.headers.get('ratelimit'), retry: response.headers.get('retry-after') })

describe('a key at its limit', () => {
  let broker: TestBroker
  let orgId: string
  let apiKey: string
  let clock: { ms: number }

  beforeAll(async () => {
    broker = await createTestBroker({ RATE_LIMIT_PER_MINUTE: '5' })
    clock = clockOf(broker)
    ;({ org: { id: orgId }, apiKey } = await broker.createOrg({ webhookUrl: 'https://hooks.acme.example/marketbridge' }))
  })
  afterAll(() => broker?.close())

  test('the default limit: exactly N answered with the fields counting down, the N+1st 429 with Retry-After, the next window open again', async () => {
    const seen = []
    for (let i = 0; i < 5; i++) {
      const response = await broker.request(`/api/v1/orgs/${orgId}`, { token: apiKey })
      expect(response.status).toBe(200)
      seen.push(fields(response))
    }
    expect(seen).toEqual([4, 3, 2, 1, 0].map((remaining) => ({ quota: 5, remaining, reset: 48 })))

    clock.ms += 700 // 47 s left exactly
    const refused = await broker.request(`/api/v1/orgs/${orgId}`, { token: apiKey })
    expect(refused.status).toBe(429)
    const body = await refused.json()
    expect(body).toEqual({ error: { code: 'RATE_LIMITED', message: expect.any(String), requestId: expect.any(String) } })
    expect(refused.headers.get('retry-after')).toBe('47')
    expect(fields(refused)).toEqual({ quota: 5, remaining: 0, reset: 47 })

    // Still refused at the window's last moment, Retry-After 1 (rounded up, never 0).
    clock.ms = WINDOW_START + 59_999
    const last = await broker.request(`/api/v1/orgs/${orgId}`, { token: apiKey })
    expect([last.status, last.headers.get('retry-after'), fields(last).reset]).toEqual([429, '1', 1])

    clock.ms = WINDOW_START + 60_000
    const next = await broker.request(`/api/v1/orgs/${orgId}`, { token: apiKey })
    expect(next.status).toBe(200)
    expect(fields(next)).toEqual({ quota: 5, remaining: 4, reset: 60 })
    expect(next.headers.get('retry-after')).toBeNull()
  })

  test('every keyed answer carries the fields, errors too, and each counts: 200, 404, 400, 202, then 429', async () => {
    clock.ms = WINDOW_START + 5 * 60_000 + 30_000
    const answers = [
      await broker.request(`/api/v1/orgs/${orgId}`, { token: apiKey }),
      await broker.request(`/api/v1/orgs/${orgId}/entitlements/ent_missing`, { token: apiKey }),
      await broker.request(`/api/v1/orgs/${orgId}`, { method: 'PATCH', token: apiKey, json: { fulfillmentUrl: 'ftp://nope' } }),
      await broker.request(`/api/v1/orgs/${orgId}/webhooks/test`, { method: 'POST', token: apiKey }),
      await broker.request(`/api/v1/orgs/${orgId}/no-such-route`, { token: apiKey }),
      await broker.request(`/api/v1/orgs/${orgId}`, { token: apiKey }),
    ]
    expect(answers.map((response) => response.status)).toEqual([200, 404, 400, 202, 404, 429])
    expect(answers.map((response) => fields(response))).toEqual([4, 3, 2, 1, 0, 0].map((remaining) => ({ quota: 5, remaining, reset: 30 })))
  })

  test('a 429 POST does nothing: no delivery queued, the org unchanged', async () => {
    clock.ms = WINDOW_START + 10 * 60_000
    const deliveries = async () => (await broker.deps.db.selectFrom('webhook_deliveries').select('id').where('org_id', '=', orgId).execute()).length
    const before = await deliveries()
    for (let i = 0; i < 5; i++) expect((await broker.request(`/api/v1/orgs/${orgId}`, { token: apiKey })).status).toBe(200)
    const ping = await broker.request(`/api/v1/orgs/${orgId}/webhooks/test`, { method: 'POST', token: apiKey })
    const patch = await broker.request(`/api/v1/orgs/${orgId}`, { method: 'PATCH', token: apiKey, json: { name: 'Renamed while refused' } })
    expect([ping.status, patch.status]).toEqual([429, 429])
    expect(await deliveries()).toBe(before)
    expect((await (await broker.request(`/api/v1/orgs/${orgId}`)).json()).name).toBe('Acme')
    // The same POST a window later is answered and queues its ping: the refusal was the limit's.
    clock.ms += 60_000
    expect((await broker.request(`/api/v1/orgs/${orgId}/webhooks/test`, { method: 'POST', token: apiKey })).status).toBe(202)
    expect(await deliveries()).toBe(before + 1)
  })

  test('a refused request is not counted: the window holds N, not N + refusals', async () => {
    clock.ms = WINDOW_START + 20 * 60_000
    for (let i = 0; i < 8; i++) await broker.request(`/api/v1/orgs/${orgId}`, { token: apiKey })
    const rows = await broker.deps.db.selectFrom('rate_limits').select(['window', 'count']).where('window', '=', Math.floor(clock.ms / 60_000)).execute()
    expect(rows.map((row) => Number(row.count))).toEqual([5])
  })

  test('a bad key is refused (401) without counting against any key, and without the fields', async () => {
    clock.ms = WINDOW_START + 30 * 60_000
    for (const token of ['mbk_' + 'x'.repeat(40), `${apiKey}x`, 'not-a-key']) {
      const response = await broker.request(`/api/v1/orgs/${orgId}`, { token })
      expect(response.status).toBe(401)
      expect(noFields(response)).toEqual({ policy: null, limit: null, retry: null })
    }
    expect(fields(await broker.request(`/api/v1/orgs/${orgId}`, { token: apiKey })).remaining).toBe(4)
  })

  test('the admin token, /public/* and /healthz are never limited by key and carry no fields', async () => {
    clock.ms = WINDOW_START + 40 * 60_000
    for (let i = 0; i < 5; i++) await broker.request(`/api/v1/orgs/${orgId}`, { token: apiKey })
    expect((await broker.request(`/api/v1/orgs/${orgId}`, { token: apiKey })).status).toBe(429)
    for (let i = 0; i < 12; i++) {
      // The operator, even on the limited key's org; the key's own bearer on unkeyed paths.
      const answers = [
        await broker.request(`/api/v1/orgs/${orgId}`, { token: ADMIN_TOKEN }),
        await broker.request('/healthz', { token: apiKey }),
        await broker.request(`/public/signup/azure/orgId/${orgId}?token=nope`, { token: apiKey }),
        await broker.request('/api/openapi.json', { token: apiKey }),
      ]
      expect(answers.map((response) => response.status)).toEqual([200, 200, expect.any(Number), 200])
      expect(answers[2]!.status).not.toBe(429)
      for (const response of answers) expect(noFields(response)).toEqual({ policy: null, limit: null, retry: null })
    }
  })

  test('the finished windows are pruned by the background job; the current and the one before stay', async () => {
    clock.ms = WINDOW_START + 50 * 60_000
    await broker.request(`/api/v1/orgs/${orgId}`, { token: apiKey })
    clock.ms += 60_000
    await broker.request(`/api/v1/orgs/${orgId}`, { token: apiKey })
    const windows = async () => (await broker.deps.db.selectFrom('rate_limits').select('window').orderBy('window').execute()).map((row) => Number(row.window))
    expect((await windows()).length).toBeGreaterThan(2)
    await runJobs(broker.deps, createLandingService(broker.deps), broker.deps.logger)
    const now = Math.floor(clock.ms / 60_000)
    expect(await windows()).toEqual([now - 1, now])
  })
})

describe('a key with its own limit (rateLimitPerMinute)', () => {
  let broker: TestBroker
  let orgId: string
  let keyId: string

  beforeAll(async () => {
    broker = await createTestBroker({ RATE_LIMIT_PER_MINUTE: '5' })
    clockOf(broker)
    ;({ org: { id: orgId } } = await broker.createOrg())
    keyId = (await broker.deps.db.selectFrom('api_keys').select('id').where('org_id', '=', orgId).executeTakeFirstOrThrow()).id
  })
  afterAll(() => broker?.close())

  test('a key made through the API with rateLimitPerMinute 3: its 4th request in the minute is 429, with its own policy; the org’s default key keeps the default', async () => {
    const created = await broker.request(`/api/v1/orgs/${orgId}/api-keys`, { method: 'POST', token: ADMIN_TOKEN, json: { name: 'limited', rateLimitPerMinute: 3 } })
    expect(created.status).toBe(201)
    const { key } = (await created.json()) as { key: string }
    const statuses: number[] = []
    for (let i = 0; i < 4; i++) {
      const response = await broker.request(`/api/v1/orgs/${orgId}`, { token: key })
      statuses.push(response.status)
      expect(response.headers.get('ratelimit-policy')).toBe('"default";q=3;w=60')
    }
    expect(statuses).toEqual([200, 200, 200, 429])
  })

  test('its limit replaces the default: exactly 3 of 5, counted in the same table', async () => {
    const caller = { kind: 'org' as const, orgId, keyId, keyName: 'default', scope: 'full' as const, rateLimitPerMinute: 3 }
    const states = []
    for (let i = 0; i < 5; i++) states.push(await takeRequest(broker.deps, caller))
    expect(states.map((state) => [state?.allowed, state?.remaining, state?.limit])).toEqual([
      [true, 2, 3], [true, 1, 3], [true, 0, 3], [false, 0, 3], [false, 0, 3],
    ])
  })

  test('which limit applies: the key’s own, else RATE_LIMIT_PER_MINUTE; 0 turns off only the default', () => {
    const key = { kind: 'org' as const, orgId: 'org_x', keyId: 'key_x', keyName: 'default', scope: 'full' as const, rateLimitPerMinute: null }
    expect(limitFor(key, { RATE_LIMIT_PER_MINUTE: 1200 })).toBe(1200)
    expect(limitFor({ ...key, rateLimitPerMinute: null }, { RATE_LIMIT_PER_MINUTE: 1200 })).toBe(1200)
    expect(limitFor({ ...key, rateLimitPerMinute: 7 }, { RATE_LIMIT_PER_MINUTE: 1200 })).toBe(7)
    expect(limitFor(key, { RATE_LIMIT_PER_MINUTE: 0 })).toBeNull()
    expect(limitFor({ ...key, rateLimitPerMinute: 7 }, { RATE_LIMIT_PER_MINUTE: 0 })).toBe(7)
  })
})

describe('RATE_LIMIT_PER_MINUTE', () => {
  test('1200 by default; 0 turns the limit off: more than 1200 requests a minute, none counted, no fields', async () => {
    const defaults = await createTestBroker()
    try {
      expect(defaults.deps.config.RATE_LIMIT_PER_MINUTE).toBe(1200)
    } finally {
      await defaults.close()
    }
    const broker = await createTestBroker({ RATE_LIMIT_PER_MINUTE: '0' })
    try {
      clockOf(broker)
      const { org, apiKey } = await broker.createOrg()
      for (let i = 0; i < 1201; i++) {
        const response = await broker.request(`/api/v1/orgs/${org.id}`, { token: apiKey })
        if (response.status !== 200 || response.headers.has('ratelimit') || response.headers.has('ratelimit-policy')) throw new Error(`request ${i}: ${response.status}`)
      }
      expect(await broker.deps.db.selectFrom('rate_limits').selectAll().execute()).toEqual([])
    } finally {
      await broker.close()
    }
  })

  test.each(['-1', '1.5', 'many', '1000000001'])('%s is refused at start-up', async (value) => {
    await expect(createTestBroker({ RATE_LIMIT_PER_MINUTE: value })).rejects.toThrow(/RATE_LIMIT_PER_MINUTE: must be a whole number from 0 to 1000000000/)
  })
})

describe('two brokers on one database', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mb-rate-limits-'))
  let brokers: TestBroker[] = []
  afterAll(async () => {
    await Promise.all(brokers.map((broker) => broker.close()))
    rmSync(dir, { recursive: true, force: true })
  })

  test('share one budget: of 60 requests spread over both, exactly the limit is answered', async () => {
    const env = { RATE_LIMIT_PER_MINUTE: '20', DATABASE_URL: `sqlite:${join(dir, 'broker.db')}` }
    brokers = [await createTestBroker(env), await createTestBroker(env)]
    for (const broker of brokers) clockOf(broker)
    const { org, apiKey } = await brokers[0]!.createOrg()
    // All at once, alternating: on PostgreSQL the two pools race on the one counter row.
    const answers = await Promise.all(Array.from({ length: 60 }, (_, i) => brokers[i % 2]!.request(`/api/v1/orgs/${org.id}`, { token: apiKey })))
    const statuses = answers.map((response) => response.status)
    // The counter is one atomic statement, so the bound is exact (the contract allows 10 %).
    expect(statuses.filter((status) => status === 200)).toHaveLength(20)
    expect(statuses.filter((status) => status !== 200 && status !== 429)).toEqual([])
    // Each instance answered some of each: neither kept a budget of its own.
    for (const i of [0, 1]) expect(new Set(statuses.filter((_, j) => j % 2 === i))).toEqual(new Set([200, 429]))
    const remaining = answers.filter((response) => response.status === 200).map((response) => fields(response).remaining)
    expect(remaining.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i))
  })

  test('a high limit is handed out in slices: together they never pass it, and fall short by less than a slice each', async () => {
    const [a, b] = brokers as [TestBroker, TestBroker]
    const keyId = (await a.deps.db.selectFrom('api_keys').select('id').executeTakeFirstOrThrow()).id
    // Not a multiple of the slice: the last claim passes the limit and must be cut to what fits.
    const LIMIT = 3001
    const caller = { kind: 'org' as const, orgId: 'org_unused', keyId, keyName: 'default', scope: 'full' as const, rateLimitPerMinute: LIMIT }
    const slice = sliceOf(LIMIT)
    expect(slice).toBe(3)
    for (const broker of brokers) broker.deps.now = () => new Date(WINDOW_START + 7 * 60_000)
    // Ten callers on each instance, each taking until refused.
    const taken = await Promise.all(
      [a, b].flatMap((broker) =>
        Array.from({ length: 10 }, async () => {
          let allowed = 0
          while ((await takeRequest(broker.deps, caller))?.allowed) allowed++
          return allowed
        }),
      ),
    )
    const total = taken.reduce((sum, n) => sum + n, 0)
    expect(total).toBeLessThanOrEqual(LIMIT)
    expect(total).toBeGreaterThan(LIMIT - 2 * slice)
    // Both instances spent from the one budget, which the database handed out in slices.
    expect(taken.slice(0, 10).some((n) => n > 0) && taken.slice(10).some((n) => n > 0)).toBe(true)
    const row = await a.deps.db.selectFrom('rate_limits').select('count').where('key_id', '=', keyId).where('window', '=', Math.floor((WINDOW_START + 7 * 60_000) / 60_000)).executeTakeFirstOrThrow()
    expect(Number(row.count)).toBeGreaterThanOrEqual(LIMIT)
    expect(Number(row.count)).toBeLessThan(LIMIT + slice)
  })
})

describe('properties', () => {
  let broker: TestBroker
  let clock: { ms: number }
  let orgId: string
  let apiKey: string
  let window = 100

  beforeAll(async () => {
    broker = await createTestBroker()
    clock = clockOf(broker)
    ;({ org: { id: orgId }, apiKey } = await broker.createOrg())
  })
  afterAll(() => broker?.close())

  test('for any limit and requests in one window: the first min(n, limit) are answered, the rest 429, never a 5xx, the fields consistent, a refused change not made', async () => {
    await fc.assert(
      fc.asyncProperty(
        // Small limits (exact, a slice of one) and large ones (spent from slices of limit/1000).
        fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1000, max: 1_000_000 })),
        fc.array(fc.constantFrom('GET', 'PATCH'), { maxLength: 14 }),
        fc.integer({ min: 0, max: 59_999 }),
        async (limit, methods, offset) => {
          broker.deps.config.RATE_LIMIT_PER_MINUTE = limit
          const run = window++
          clock.ms = WINDOW_START + run * 60_000 + offset
          const nameOf = async () => (await broker.deps.db.selectFrom('orgs').select('name').where('id', '=', orgId).executeTakeFirstOrThrow()).name
          const before = await nameOf()
          const reset = Math.ceil((60_000 - offset) / 1000)
          let lastAnsweredName: string | undefined
          for (const [i, method] of methods.entries()) {
            const name = `Acme ${run}-${i}`
            const response = await broker.request(`/api/v1/orgs/${orgId}`, { method, token: apiKey, ...(method === 'PATCH' ? { json: { name } } : {}) })
            expect(response.status).toBeLessThan(500)
            expect(response.status).toBe(i < limit ? 200 : 429)
            expect(fields(response)).toEqual({ quota: limit, remaining: Math.max(0, limit - i - 1), reset })
            expect(response.headers.get('retry-after')).toBe(i < limit ? null : String(reset))
            if (response.status === 200 && method === 'PATCH') lastAnsweredName = name
          }
          expect(await nameOf()).toBe(lastAnsweredName ?? before)
        },
      ),
      { numRuns: 40 },
    )
  })
})
