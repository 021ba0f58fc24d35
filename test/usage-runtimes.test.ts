import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { Webhook } from 'standardwebhooks'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { runJobs } from '../src/domain/jobs'
import { createLandingService } from '../src/domain/landing'
import { type TestBroker, createTestBroker, sleep, startHookReceiver } from './helpers'
import { GCP_PRODUCT, GCP_SERVICE, type Marketplaces, awsHours, hourStart, inPastHour, meteredOrg, startMarketplaces } from './metering-setup'
import { type WorkerProcess, httpBroker, startWorker } from './worker-process'

/**
 * Usage metering on both runtimes through the real routes: the in-process Node app on SQLite,
 * and `npm run dev:worker` (workerd + D1) whose job is the cron trigger the dev script fires. Real
 * clocks on both, so the usage is recorded in hours that have already ended.
 */
let m: Marketplaces
let hooks: Awaited<ReturnType<typeof startHookReceiver>>
let node: TestBroker
let worker: WorkerProcess
let persistTo: string

beforeAll(async () => {
  m = await startMarketplaces()
  hooks = await startHookReceiver()
  node = await createTestBroker(m.env)
  persistTo = mkdtempSync(join(tmpdir(), 'marketbridge-usage-'))
  // The job runs when the test says, as on Node: records of one hour sent in separate requests
  // must all be stored before the hour is reported (a run between them makes the later one a
  // late report that Azure refuses as a Duplicate). dev:worker's own timer is tested in dev-worker-job.
  worker = await startWorker(persistTo, { ...m.env, JOB_INTERVAL_MS: '3600000' })
}, 120_000)

afterAll(async () => {
  await worker?.stop()
  await node?.close()
  await hooks?.close()
  await m?.close()
  rmSync(persistTo, { recursive: true, force: true })
})

type Client = Pick<TestBroker, 'request' | 'createOrg'>
const runtimes: Array<[string, () => Client, () => Promise<void>]> = [
  ['node + SQLite', () => node, async () => void (await runJobs(node.deps, createLandingService(node.deps), node.deps.logger))],
  [
    'workerd + D1',
    () => httpBroker(worker.url),
    // The same cron trigger dev:worker fires (wrangler's local endpoint answers once the run ended).
    async () => {
      const run = await fetch(`${worker.url}/cdn-cgi/local/scheduled?cron=${encodeURIComponent('* * * * *')}`)
      if (!run.ok) throw new Error(`the scheduled run answered ${run.status}: ${await run.text()}`)
    },
  ],
]

/**
 * A time in an hour that has ended and that Google still takes (it takes usage up to an hour
 * back): just before the current hour began, once the broker's 60 s grace after it has passed.
 */
async function googleTime(): Promise<string> {
  const into = Date.now() % 3600_000
  if (into < 90_000) await sleep(90_000 - into)
  else if (into > 3540_000) await sleep(3600_000 - into + 90_000)
  return new Date(Math.floor(Date.now() / 3600_000) * 3600_000 - 10_000).toISOString()
}

let n = 0
const key = (name: string) => `${name}-${Date.now()}-${n++}`

describe.each(runtimes)('%s', (_name, client, job) => {
  test('each marketplace: recorded through the API, reported once its hour has ended, usage.reported signed', async () => {
    // First, so that the hour does not turn while the test runs.
    const googleAt = await googleTime()
    const org = await meteredOrg(client(), m, { webhookUrl: hooks.url, name: 'rt' })
    const azure = await org.buyAzure()
    const aws = await org.buyAws()
    const gcp = await org.buyGcp()
    const past = inPastHour(2)
    const body = { dimension: 'calls', quantity: 10, timestamp: past, idempotencyKey: key('a') }
    expect((await org.record(azure.id, body)).status).toBe(202)
    expect((await org.record(azure.id, body)).status).toBe(200)
    expect((await org.record(azure.id, { ...body, quantity: 11 })).status).toBe(409)
    expect((await org.record(azure.id, { dimension: 'calls', quantity: 5, timestamp: past, idempotencyKey: key('a') })).status).toBe(202)
    expect((await org.record(azure.id, { dimension: 'calls', quantity: 1, idempotencyKey: key('now') })).status).toBe(202)
    const bulk = await client().request(`/api/v1/orgs/${org.orgId}/usage`, {
      method: 'POST',
      token: org.apiKey,
      json: { records: [
        { entitlementId: aws.id, dimension: 'requests', quantity: 3, timestamp: past, idempotencyKey: key('w') },
        { entitlementId: aws.id, dimension: 'requests', quantity: 0.5, timestamp: past, idempotencyKey: key('w') },
      ] },
    })
    expect(bulk.status).toBe(207)
    expect(((await bulk.json()) as { results: Array<{ status: number }> }).results.map((r) => r.status)).toEqual([202, 400])
    expect((await org.record(gcp.id, { dimension: 'storage', quantity: 42, timestamp: googleAt, idempotencyKey: key('g') })).status).toBe(202)

    await job()
    let records: Awaited<ReturnType<typeof org.usage>> = []
    for (let i = 0; i < 50; i++) {
      records = [...(await org.usage(azure.id)), ...(await org.usage(aws.id)), ...(await org.usage(gcp.id))]
      if (records.filter((r) => r.status === 'REPORTED').length === 4) break
      await sleep(100)
    }
    expect(records.map((r) => [r.dimension, r.quantity, r.status, r.marketplaceStatus])).toEqual([
      ['calls', 1, 'PENDING', null],
      ['calls', 5, 'REPORTED', 'Accepted'],
      ['calls', 10, 'REPORTED', 'Accepted'],
      ['requests', 3, 'REPORTED', 'Success'],
      ['storage', 42, 'REPORTED', 'OK'],
    ])
    expect(m.azure.emulator.usageEventsFor(azure.subscriptionId).map((e) => [e.quantity, Date.parse(e.effectiveStartTime)])).toEqual([[15, Date.parse(hourStart(past))]])
    expect(m.aws.meteringRecords.filter((r) => r.LicenseArn === aws.licenseArn).map((r) => r.Quantity)).toEqual([3])
    expect(m.serviceControl.usageFor(GCP_SERVICE, gcp.usageReportingId, `${GCP_PRODUCT}/storage`)).toBe(42)

    // Nothing is reported twice by another run.
    await job()
    expect(m.azure.emulator.usageEventsFor(azure.subscriptionId)).toHaveLength(1)

    const wh = new Webhook(org.webhookSecret!)
    let usageHooks: Array<{ data: { entitlementId: string; quantity: number; status: string } }> = []
    for (let i = 0; i < 50 && usageHooks.length < 3; i++) {
      usageHooks = hooks.received
        .map((r) => ({ r, payload: JSON.parse(r.body) }))
        .filter(({ payload }) => payload.type === 'usage.reported' && payload.orgId === org.orgId)
        .map(({ r, payload }) => (wh.verify(r.body, r.headers), payload))
      await sleep(100)
    }
    expect(usageHooks.map((h) => [h.data.entitlementId, h.data.quantity, h.data.status]).sort()).toEqual(
      [[azure.id, 15, 'REPORTED'], [aws.id, 3, 'REPORTED'], [gcp.id, 42, 'REPORTED']].sort(),
    )
  }, 300_000)

  test('AWS: entitlements with a license are metered in the license form only (every hour, dimension and split), two agreements of one account apart', async () => {
    const org = await meteredOrg(client(), m, { name: 'forms' })
    const a = await org.buyAws({ concurrent: true })
    const b = await org.buyAws({ concurrent: true, accountId: a.accountId })
    const c = await org.buyAws({ license: true })
    // A dimension AWS does not know fails the whole batch, which is then sent record by record.
    m.aws.addProduct(c.productCode, ['requests', 'storage'])
    const two = inPastHour(2)
    const one = inPastHour(1)
    const records = [
      [a.id, 'requests', 4, two], [a.id, 'storage', 1, two], [a.id, 'requests', 2, one],
      [b.id, 'requests', 10, two],
      [c.id, 'requests', 5, two], [c.id, 'storage', 6, two], [c.id, 'requests', 7, one], [c.id, 'bogus', 1, two],
    ] as const
    const bulk = await client().request(`/api/v1/orgs/${org.orgId}/usage`, {
      method: 'POST',
      token: org.apiKey,
      json: { records: records.map(([entitlementId, dimension, quantity, timestamp]) => ({ entitlementId, dimension, quantity, timestamp, idempotencyKey: key('f') })) },
    })
    expect(((await bulk.json()) as { results: Array<{ status: number }> }).results.every((r) => r.status === 202)).toBe(true)
    await job()
    let settled: Awaited<ReturnType<typeof org.usage>> = []
    for (let i = 0; i < 50; i++) {
      settled = [...(await org.usage(a.id)), ...(await org.usage(b.id)), ...(await org.usage(c.id))]
      if (settled.every((r) => r.status !== 'PENDING')) break
      await sleep(100)
    }
    expect(settled.filter((r) => r.status === 'REPORTED')).toHaveLength(7)
    expect(settled.find((r) => r.dimension === 'bogus')).toMatchObject({ status: 'REJECTED', marketplaceStatus: 'InvalidUsageDimensionException' })
    const hours = awsHours(m.aws, [a.accountId, c.accountId])
    expect(hours).toHaveLength(4)
    for (const hour of hours) expect([...hour.forms]).toEqual(['license'])
    const byLicense = (arn: string | undefined) => m.aws.meteringRecords.filter((r) => r.LicenseArn === arn).map((r) => [r.Dimension, r.Quantity]).sort()
    expect(byLicense(a.licenseArn)).toEqual([['requests', 2], ['requests', 4], ['storage', 1]])
    expect(byLicense(b.licenseArn)).toEqual([['requests', 10]])
    for (const call of m.aws.callsTo('BatchMeterUsage').filter((call) => [a, b, c].some((x) => call.body.includes(x.licenseArn!)))) {
      expect(JSON.parse(call.body)).not.toHaveProperty('ProductCode')
    }
  }, 120_000)

  test('property: any body to the usage routes is a 2xx/4xx in the error shape, never a 5xx, and a refused record stores nothing', async () => {
    const broker = client()
    const org = await meteredOrg(broker, m, { name: 'fuzz' })
    const { id } = await org.buyAzure()
    const other = await broker.createOrg()
    const stored = async () => (await org.usage(id)).length
    const before = await stored()
    let accepted = 0
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('single', 'bulk'),
        fc.oneof(fc.constant(id), fc.string({ maxLength: 80 })),
        fc.record(
          {
            dimension: fc.oneof(fc.string({ maxLength: 20 }), fc.constant('x'.repeat(10_000)), fc.integer()),
            quantity: fc.oneof(fc.double(), fc.integer(), fc.constantFrom(1e308, -1, 0, 5), fc.string({ maxLength: 5 })),
            timestamp: fc.oneof(fc.constantFrom('9999-12-31T23:59:59Z', '2026-11-22', 'now', new Date().toISOString()), fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), fc.string({ maxLength: 30 })),
            idempotencyKey: fc.oneof(fc.string({ maxLength: 20 }), fc.constant('k'.repeat(300))),
            extra: fc.jsonValue(),
          },
          { requiredKeys: [] },
        ),
        fc.constantFrom(org.apiKey, other.apiKey),
        async (route, entitlementId, body, token) => {
          const path = route === 'single' ? `/api/v1/orgs/${org.orgId}/entitlements/${encodeURIComponent(entitlementId)}/usage` : `/api/v1/orgs/${org.orgId}/usage`
          const json = route === 'single' ? body : { records: [{ entitlementId, ...body }] }
          const response = await broker.request(path, { method: 'POST', token, json })
          expect([200, 202, 207, 400, 404, 409, 413]).toContain(response.status)
          const text = await response.text()
          expect(text).not.toMatch(/at .+\.(ts|js):\d+/)
          if (response.status >= 400) expect(JSON.parse(text).error.code).toMatch(/^[A-Z_]+$/)
          if (response.status === 202) accepted++
          if (route === 'bulk' && response.status === 207) {
            const [result] = JSON.parse(text).results
            if (result.status === 202) accepted++
            if (result.status >= 400) expect(result.error.code).toMatch(/^[A-Z_]+$/)
          }
        },
      ),
      { numRuns: 60 },
    )
    expect(await stored()).toBe(before + accepted)
  }, 120_000)
})
