import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { sleep } from './helpers'
import { type WorkerProcess, httpBroker, startWorker } from './worker-process'

/**
 * Rate limits on workerd + D1 (contract §13): the same counter statement and fields as on Node
 * (test/rate-limits.test.ts has the rest), over real HTTP to wrangler dev on the wall clock.
 */
let worker: WorkerProcess
let persistTo: string

beforeAll(async () => {
  persistTo = mkdtempSync(join(tmpdir(), 'marketbridge-rate-limits-worker-'))
  worker = await startWorker(persistTo, { RATE_LIMIT_PER_MINUTE: '4' })
}, 120_000)

afterAll(async () => {
  await worker?.stop()
  rmSync(persistTo, { recursive: true, force: true })
})

test('workerd + D1: exactly the limit answered with the fields counting down, then 429 RATE_LIMITED with Retry-After; the operator and /healthz unlimited', async () => {
  const broker = httpBroker(worker.url)
  const { org, apiKey } = await broker.createOrg()
  // The wall clock: start early in a minute so the whole run falls in one window.
  const intoMinute = () => Date.now() % 60_000
  if (intoMinute() > 40_000) await sleep(60_000 - intoMinute() + 200)
  const started = Date.now()

  const answers = []
  for (let i = 0; i < 6; i++) answers.push(await broker.request(`/api/v1/orgs/${org.id}`, { token: apiKey }))
  expect(Date.now() - (Date.now() % 60_000)).toBe(started - (started % 60_000))
  expect(answers.map((response) => response.status)).toEqual([200, 200, 200, 200, 429, 429])
  for (const response of answers) expect(response.headers.get('ratelimit-policy')).toBe('"default";q=4;w=60')
  const limits = answers.map((response) => /^"default";r=(\d+);t=(\d+)$/.exec(response.headers.get('ratelimit') ?? ''))
  expect(limits.map((match) => Number(match?.[1]))).toEqual([3, 2, 1, 0, 0, 0])
  // t is the whole seconds left in this minute, as the worker's clock (this machine's) sees it.
  const left = Math.ceil((60_000 - (started % 60_000)) / 1000)
  for (const match of limits) expect(Number(match?.[2])).toBeGreaterThanOrEqual(left - 2)
  for (const match of limits) expect(Number(match?.[2])).toBeLessThanOrEqual(left)
  expect(answers.slice(0, 4).map((response) => response.headers.get('retry-after'))).toEqual([null, null, null, null])
  for (const [i, response] of answers.slice(4).entries()) {
    expect(response.headers.get('retry-after')).toBe(limits[4 + i]![2])
    expect(await response.json()).toEqual({ error: { code: 'RATE_LIMITED', message: expect.any(String), requestId: expect.any(String) } })
  }

  for (let i = 0; i < 6; i++) {
    const admin = await broker.request(`/api/v1/orgs/${org.id}`)
    const health = await broker.request('/healthz', { token: apiKey })
    expect([admin.status, health.status]).toEqual([200, 200])
    for (const response of [admin, health]) expect([response.headers.get('ratelimit'), response.headers.get('ratelimit-policy')]).toEqual([null, null])
  }
}, 120_000)
