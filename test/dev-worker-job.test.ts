import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { sleep } from './helpers'
import { type Marketplaces, hourStart, inPastHour, meteredOrg, startMarketplaces } from './metering-setup'
import { type WorkerProcess, httpBroker, startWorker } from './worker-process'

/**
 * `npm run dev:worker` runs the background job by itself, as Cloudflare fires the cron trigger in
 * production: nobody here calls /__scheduled or /cdn-cgi/local/scheduled. Azure's metering API
 * answers slowly, so the run that reports takes far longer than JOB_INTERVAL_MS: were runs
 * started on a plain timer, they would overlap.
 */
const AZURE_DELAY_MS = 1500
let m: Marketplaces
const scratch: string[] = []
const workers: WorkerProcess[] = []
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'marketbridge-devjob-'))
  scratch.push(dir)
  return dir
}

beforeAll(async () => {
  m = await startMarketplaces({ azureMeteringDelayMs: AZURE_DELAY_MS })
})
afterAll(async () => {
  for (const worker of workers) await worker.stop()
  await m?.close()
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true })
})

/** The processes whose parent is `pid`, with their command lines (Linux `ps`). */
function childrenOf(pid: number): Array<{ pid: number; args: string }> {
  try {
    return execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map((line) => ({ pid: Number(line.trim().split(' ')[0]), args: line.trim().split(' ').slice(1).join(' ') }))
  } catch {
    return []
  }
}
const descendantsOf = (pid: number): number[] => childrenOf(pid).flatMap((c) => [c.pid, ...descendantsOf(c.pid)])
const wranglerOf = (pid: number) => childrenOf(pid).find((c) => /wrangler\S* dev/.test(c.args))
/** Running, not gone and not a zombie waiting for a parent to reap it. */
const alive = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]![0] !== 'Z'
  } catch {
    return false
  }
}

describe('npm run dev:worker fires the cron trigger itself', () => {
  test('usage recorded through the API is reported to Azure with nobody firing the trigger, one run at a time', async () => {
    const worker = await startWorker(tempDir(), { ...m.env, JOB_INTERVAL_MS: '100' })
    workers.push(worker)
    const client = httpBroker(worker.url)
    const org = await meteredOrg(client, m, { name: 'devjob' })
    const azure = await org.buyAzure()
    const past = inPastHour(1)
    expect((await org.record(azure.id, { dimension: 'calls', quantity: 7, timestamp: past, idempotencyKey: `devjob-${Date.now()}` })).status).toBe(202)

    let records = await org.usage(azure.id)
    for (let i = 0; i < 300 && records[0]?.status !== 'REPORTED'; i++) {
      await sleep(100)
      records = await org.usage(azure.id)
    }
    expect(records.map((r) => [r.quantity, r.status, r.marketplaceStatus])).toEqual([[7, 'REPORTED', 'Accepted']])
    expect(m.azure.emulator.usageEventsFor(azure.subscriptionId).map((e) => [e.quantity, Date.parse(e.effectiveStartTime)])).toEqual([[7, Date.parse(hourStart(past))]])

    // A few more runs after the slow one, then: every run printed in the order it started, each
    // finished before the next began, and the one that reported waited for Azure.
    await worker.jobRan()
    const runs = worker.jobRuns()
    expect(runs.map((r) => r.n)).toEqual(runs.map((_, i) => i + 1))
    expect(runs.every((r) => r.outcome === 'ok')).toBe(true)
    expect(Math.max(...runs.map((r) => r.ms))).toBeGreaterThanOrEqual(AZURE_DELAY_MS)
  }, 180_000)

  test('the trigger stops with wrangler: SIGTERM to the dev script ends wrangler, and wrangler ending ends the dev script', async () => {
    // SIGTERM to the dev script alone (not its process group): wrangler and workerd go with it.
    const first = await startWorker(tempDir(), { JOB_INTERVAL_MS: '100' })
    workers.push(first)
    await first.jobRan()
    expect(wranglerOf(first.pid)).toBeTruthy()
    const descendants = descendantsOf(first.pid)
    process.kill(first.pid, 'SIGTERM')
    for (let i = 0; i < 100 && [first.pid, ...descendants].some(alive); i++) await sleep(100)
    expect([first.pid, ...descendants].filter(alive)).toEqual([])

    // Wrangler killed outright: the dev script exits too and fires nothing more.
    const second = await startWorker(tempDir(), { JOB_INTERVAL_MS: '100' })
    workers.push(second)
    await second.jobRan()
    process.kill(wranglerOf(second.pid)!.pid, 'SIGKILL')
    for (let i = 0; i < 100 && alive(second.pid); i++) await sleep(100)
    expect(alive(second.pid)).toBe(false)
  }, 180_000)
})
