import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { ADMIN_TOKEN, sleep } from './helpers'
import { GCP_PRODUCT, GCP_SERVICE, type Marketplaces, hourStart, inPastHour, meteredOrg, startMarketplaces } from './metering-setup'
import { startServer } from './node-process'
import { httpBroker } from './worker-process'

/**
 * SIGKILL during reporting: the real Node server reports usage to a slow Azure (it takes the
 * events at once and answers 400 ms later) and is killed while batches are in flight, so calls reach the
 * marketplaces whose answers the broker never reads. After a restart on the same database every
 * hour is reported exactly once: one Azure event per subscription, dimension and hour, one AWS
 * metered record per customer, dimension and hour, Google counting each operation once; every
 * record REPORTED.
 */
let m: Marketplaces
let dir: string

beforeAll(async () => {
  m = await startMarketplaces({ azureMeteringDelayMs: 400 })
  dir = mkdtempSync(join(tmpdir(), 'marketbridge-crash-usage-'))
})
afterAll(async () => {
  await m?.close()
  rmSync(dir, { recursive: true, force: true })
})

test('SIGKILL while reports are in flight, restart: every hour reported exactly once', async () => {
  const env = {
    ADMIN_TOKEN,
    DATABASE_URL: `sqlite:${join(dir, 'broker.db')}`,
    ...m.env,
    UPSTREAM_TIMEOUT_MS: '1000',
    JOB_INTERVAL_MS: '100',
  }
  const first = await startServer(dir, env)
  const org = await meteredOrg(httpBroker(first.url), m, { name: 'crash' })
  const past = inPastHour(2)
  const azure = await Promise.all(Array.from({ length: 30 }, () => org.buyAzure()))
  const aws = await Promise.all(Array.from({ length: 10 }, () => org.buyAws()))
  const gcp = await Promise.all(Array.from({ length: 5 }, () => org.buyGcp()))
  // Google takes usage up to an hour back: the last minute of an hour that ended is used when the current one is far enough along.
  const into = Date.now() % 3600_000
  const googleAt = into > 90_000 && into < 3540_000 ? new Date(Date.now() - into - 10_000).toISOString() : null
  let n = 0
  const records: Array<Promise<Response>> = []
  for (const { id } of azure) for (const dimension of ['calls', 'gb']) records.push(org.record(id, { dimension, quantity: 2.5, timestamp: past, idempotencyKey: `c-${n++}` }))
  for (const { id } of aws) records.push(org.record(id, { dimension: 'requests', quantity: 4, timestamp: past, idempotencyKey: `c-${n++}` }))
  if (googleAt) for (const { id } of gcp) records.push(org.record(id, { dimension: 'storage', quantity: 3, timestamp: googleAt, idempotencyKey: `c-${n++}` }))
  expect((await Promise.all(records)).map((r) => r.status).every((s) => s === 202)).toBe(true)

  const db = new Database(join(dir, 'broker.db'), { readonly: true })
  const count = (sql: string) => (db.prepare(sql).get() as { n: number }).n
  const deadline = Date.now() + 20_000
  // Azure has taken the events of a batch and not answered yet (it answers 400 ms later): kill now.
  while (m.azure.emulator.usageEvents.length === 0) {
    if (Date.now() > deadline) throw new Error(`Azure took nothing:\n${first.output().slice(-2000)}`)
    await sleep(5)
  }
  await first.stop('SIGKILL')
  const taken = m.azure.emulator.usageEvents.length
  const inFlight = count("select count(*) as n from usage_reports where partner = 'azure' and status = 'PENDING' and attempts > 0")
  expect(inFlight, 'Azure reports in flight at the kill').toBeGreaterThan(0)
  expect(taken, 'events Azure took from the batches in flight').toBeGreaterThan(0)
  await sleep(600)

  const second = await startServer(dir, env)
  try {
    const until = Date.now() + 60_000
    while (count("select count(*) as n from usage_records where status != 'REPORTED'") > 0) {
      if (Date.now() > until) throw new Error(`records not reported:\n${second.output().slice(-3000)}`)
      await sleep(250)
    }
  } finally {
    await second.stop()
  }
  expect(count('select count(*) as n from usage_records')).toBe(records.length)
  expect(count("select count(*) as n from usage_reports where status = 'REPORTED'")).toBe(records.length)
  db.close()

  for (const { subscriptionId } of azure) {
    const events = m.azure.emulator.usageEventsFor(subscriptionId)
    expect(events.map((e) => [e.dimension, e.quantity, Date.parse(e.effectiveStartTime)]).sort()).toEqual([['calls', 2.5, Date.parse(hourStart(past))], ['gb', 2.5, Date.parse(hourStart(past))]])
  }
  for (const { licenseArn } of aws) expect(m.aws.meteringRecords.filter((r) => r.LicenseArn === licenseArn).map((r) => r.Quantity)).toEqual([4])
  if (googleAt) for (const { usageReportingId } of gcp) expect(m.serviceControl.usageFor(GCP_SERVICE, usageReportingId, `${GCP_PRODUCT}/storage`)).toBe(3)
}, 120_000)
