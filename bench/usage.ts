// `npm run bench:usage` (also part of `npm run bench`): usage metering.
// 1. Recording: POST …/entitlements/{id}/usage (a new idempotency key each) against reading one
//    entitlement (GET) and baseline A, on the same broker, interleaved, 3 runs each.
// 2. Reporting: BENCH_USAGE_RECORDS (100,000) records through the bulk route (1,000 per request)
//    for 1,000 Azure and 1,000 AWS entitlements, 2 dimensions each, in an hour that has ended; then
//    a fresh broker process whose first job run sums and reports them against the zero-latency
//    emulators (Azure batchUsageEvent, AWS BatchMeterUsage with SigV4). Timed until every record
//    is REPORTED; the broker's RSS before and its peak during reporting.
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import SQLite from 'better-sqlite3'
import { inPastHour, meteredOrg, startMarketplaces } from '../test/metering-setup'
import { httpBroker } from '../test/worker-process'
import { ADMIN_TOKEN } from '../test/helpers'
import { ENCRYPTION_KEY, type LoadResult, cleanup, load, median, memoryOf, nextPort, round, start, work } from './harness'

const DURATION = Number(process.env.BENCH_DURATION ?? 5)
const RECORDS = Number(process.env.BENCH_USAGE_RECORDS ?? 100_000)
const ENTITLEMENTS = 1_000
const RUNS = 3

export interface UsageBench {
  readRps: number
  recordRps: number
  baselineARps: number
  recordVsRead: number
  recordVsA: number
  bulk: { records: number; seconds: number; perSecond: number }
  reporting: { records: number; reports: number; seconds: number; rssBeforeMb: number; peakRssMb: number; met: boolean }
  runs: { read: LoadResult[]; record: LoadResult[]; baselineA: LoadResult[] }
}

export async function runUsageBench(): Promise<UsageBench> {
  const m = await startMarketplaces()
  const databaseUrl = `sqlite:${join(work, 'usage.db')}`
  const env = (jobMs: number, port: number) => ({ ADMIN_TOKEN, ENCRYPTION_KEY, DATABASE_URL: databaseUrl, HOST: '127.0.0.1', PORT: String(port), JOB_INTERVAL_MS: String(jobMs), ...m.env,
    // Every request is still counted; the default 1,200 a minute would make the load runs 429s.
    RATE_LIMIT_PER_MINUTE: '1000000000' })
  try {
    // A broker whose job does not run while records are written.
    const port = nextPort()
    const broker = await start('src/node.ts', [], { env: env(3_600_000, port), ready: /listening on/ })
    const url = `http://127.0.0.1:${port}`
    const client = httpBroker(url)
    const org = await meteredOrg(client, m, { name: 'bench' })
    const azure: string[] = []
    const aws: string[] = []
    for (let i = 0; i < ENTITLEMENTS; i += 50) {
      azure.push(...(await Promise.all(Array.from({ length: 50 }, () => org.buyAzure()))).map((p) => p.id))
      aws.push(...(await Promise.all(Array.from({ length: 50 }, () => org.buyAws()))).map((p) => p.id))
    }
    const auth = { authorization: `Bearer ${org.apiKey}` }

    // 1: recording vs reading one entitlement vs baseline A.
    const entitlementSize = (await (await fetch(`${url}/api/v1/orgs/${org.orgId}/entitlements/${azure[0]}`, { headers: auth })).text()).length
    const basePortA = nextPort()
    await start('bench/baseline-a.ts', [String(basePortA), String(entitlementSize)])
    let key = 0
    const recordJob = () => ({
      url,
      connections: 10,
      duration: DURATION,
      requests: Array.from({ length: 40_000 }, () => ({
        method: 'POST',
        path: `/api/v1/orgs/${org.orgId}/entitlements/${azure[Math.floor(Math.random() * azure.length)]}/usage`,
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({ dimension: 'api_calls', quantity: 1, idempotencyKey: `rec-${key++}` }),
      })),
    })
    const readJob = () => ({ url, connections: 10, duration: DURATION, headers: auth, paths: Array.from({ length: 20_000 }, () => `/api/v1/orgs/${org.orgId}/entitlements/${azure[Math.floor(Math.random() * azure.length)]}`) })
    const baselineJob = () => ({ url: `http://127.0.0.1:${basePortA}`, connections: 10, duration: DURATION, paths: ['/entitlement'] })
    const jobs = [baselineJob, readJob, recordJob]
    for (const job of jobs) await load({ ...job(), duration: 2 })
    const runs = { baselineA: [] as LoadResult[], read: [] as LoadResult[], record: [] as LoadResult[] }
    for (let i = 0; i < RUNS; i++) {
      runs.baselineA.push(await load(baselineJob()))
      runs.read.push(await load(readJob()))
      runs.record.push(await load(recordJob()))
    }
    const rps = (r: LoadResult[]) => median(r.map((x) => x.rps))

    // 2: 100,000 records through the bulk route, in an hour that has ended (recorded 2 h back).
    const at = inPastHour(2)
    const ids = [...azure, ...aws]
    const bulkStarted = performance.now()
    for (let sent = 0; sent < RECORDS; sent += 1_000) {
      const records = Array.from({ length: Math.min(1_000, RECORDS - sent) }, (_, i) => {
        const n = sent + i
        return { entitlementId: ids[n % ids.length], dimension: Math.floor(n / ids.length) % 2 ? 'calls' : 'storage', quantity: 1 + (n % 3), timestamp: at, idempotencyKey: `bulk-${n}` }
      })
      const response = await fetch(`${url}/api/v1/orgs/${org.orgId}/usage`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ records }) })
      const { results } = (await response.json()) as { results: Array<{ status: number }> }
      if (response.status !== 207 || results.some((r) => r.status !== 202)) throw new Error(`bulk: ${response.status} ${JSON.stringify(results.find((r) => r.status !== 202))}`)
    }
    const bulkSeconds = (performance.now() - bulkStarted) / 1000
    broker.child.kill('SIGTERM')
    await broker.exited

    // The reporter: a fresh process; its first job run starts at once.
    const db = new SQLite(join(work, 'usage.db'), { readonly: true })
    const pending = () => (db.prepare("SELECT count(*) AS n FROM usage_records WHERE status = 'PENDING' AND idempotency_key LIKE 'bulk-%'").get() as { n: number }).n
    const reporterPort = nextPort()
    const reportStarted = performance.now()
    const reporter = await start('src/node.ts', [], { env: env(200, reporterPort), ready: /listening on/ })
    const rssBeforeMb = memoryOf(reporter.child.pid!).rssMb
    while (pending() > 0 && performance.now() - reportStarted < 120_000) await new Promise((r) => setTimeout(r, 20))
    const seconds = (performance.now() - reportStarted) / 1000
    const peakRssMb = memoryOf(reporter.child.pid!).peakMb
    const left = pending()
    const rejected = (db.prepare("SELECT count(*) AS n FROM usage_records WHERE status = 'REJECTED' AND idempotency_key LIKE 'bulk-%'").get() as { n: number }).n
    const reports = (db.prepare("SELECT count(*) AS n FROM usage_reports WHERE hour = ?").get(new Date(Math.floor(Date.parse(at) / 3600_000) * 3600_000).toISOString()) as { n: number }).n
    db.close()
    reporter.child.kill('SIGTERM')
    await reporter.exited
    if (left || rejected) throw new Error(`reporter: ${left} records left PENDING, ${rejected} REJECTED`)

    return {
      readRps: round(rps(runs.read)),
      recordRps: round(rps(runs.record)),
      baselineARps: round(rps(runs.baselineA)),
      recordVsRead: round(rps(runs.record) / rps(runs.read), 2),
      recordVsA: round(rps(runs.record) / rps(runs.baselineA), 2),
      bulk: { records: RECORDS, seconds: round(bulkSeconds, 2), perSecond: round(RECORDS / bulkSeconds) },
      reporting: { records: RECORDS, reports, seconds: round(seconds, 2), rssBeforeMb: round(rssBeforeMb), peakRssMb: round(peakRssMb), met: seconds < 10 },
      runs,
    }
  } finally {
    await m.close()
  }
}

export function printUsage(u: UsageBench) {
  console.log('\nusage metering:')
  console.log(`  baseline A ${u.baselineARps} req/s; read one entitlement ${u.readRps} req/s; record usage ${u.recordRps} req/s`)
  console.log(`  recording = ${u.recordVsRead} × read (target ≥ 0.5: ${u.recordVsRead >= 0.5 ? 'met' : 'NOT met'}), ${u.recordVsA} × A`)
  console.log(`  bulk route: ${u.bulk.records.toLocaleString('en')} records in ${u.bulk.seconds} s (${u.bulk.perSecond} records/s, 1,000 per request)`)
  console.log(
    `  reporter: ${u.reporting.records.toLocaleString('en')} records (${u.reporting.reports} hour reports) summed and reported in ${u.reporting.seconds} s from process start (target < 10 s: ${u.reporting.met ? 'met' : 'NOT met'}); RSS ${u.reporting.rssBeforeMb} MB at start, peak ${u.reporting.peakRssMb} MB`,
  )
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) {
  try {
    printUsage(await runUsageBench())
  } finally {
    cleanup()
  }
}
