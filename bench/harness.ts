// What the benchmarks share: their processes (each server and the load generator its own),
// the load generator's results, memory readings, the Azure emulator's purchase tokens, and the
// bench org. Everything started here is killed, and the scratch folder removed, by cleanup().
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, isAbsolute, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { Kysely } from 'kysely'
import { parseConfig } from '../src/config'
import type { Database } from '../src/db/schema'
import type { AuditContext } from '../src/domain/audit'
import { entitlementJson } from '../src/domain/entitlements'
import { configureIntegration } from '../src/domain/integrations'
import { createOrg } from '../src/domain/orgs'
import { createLogger } from '../src/logger'
import { createNodeDeps } from '../src/node/deps'
import { benchEntitlementRow } from './rows'

export const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const tsx = import.meta.resolve('tsx')
/** The bench sets its org up in-process, as the operator would with the ADMIN_TOKEN. */
const BENCH_AUDIT: AuditContext = { actor: { type: 'admin', id: null, name: null }, requestId: null }
export const work = mkdtempSync(join(tmpdir(), 'marketbridge-bench-'))
const children: ChildProcess[] = []
export const app = { tenantId: 'bench-tenant', clientId: 'bench-client', clientSecret: 'bench~secret' }
export const ADMIN_TOKEN = `bench-admin-${randomBytes(8).toString('hex')}`
export const ENCRYPTION_KEY = randomBytes(32).toString('base64')

let port = 19_000 + Math.floor(Math.random() * 2_000)
export const nextPort = () => port++

export interface Started {
  child: ChildProcess
  first: string
  /** Its stderr so far (stdout is drained once it is ready: the broker logs a line per request). */
  errors: () => string
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** Starts `node [--import tsx] file args` (file relative to the project, or absolute) and resolves with its first JSON line of stdout (or a line matching `ready`). */
export async function start(file: string, args: string[], options: { env?: Record<string, string>; ts?: boolean; ready?: RegExp } = {}): Promise<Started> {
  const child = spawn(process.execPath, [...(options.ts === false ? [] : ['--import', tsx]), isAbsolute(file) ? file : join(root, file), ...args], {
    cwd: root,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.push(child)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  let buffer = ''
  let errors = ''
  const first = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      buffer += chunk
      const line = buffer.split('\n').find((l) => (options.ready ? options.ready.test(l) : l.startsWith('{')))
      if (line) resolve(line)
    }
    child.stdout!.on('data', onData)
    child.stderr!.on('data', (chunk) => {
      buffer += chunk
      errors += chunk
    })
    child.on('exit', (code) => reject(new Error(`${file} exited (${code}):\n${buffer}`)))
  })
  // Keep draining its output so it never blocks on a pipe.
  child.stdout!.removeAllListeners('data')
  child.stdout!.on('data', () => {})
  return { child, first, errors: () => errors, exited }
}

export function memoryOf(pid: number) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0)
  return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 }
}

export interface LoadResult {
  rps: number
  total: number
  /** Seconds from the first request sent to the last response received. */
  duration: number
  p50: number
  p99: number
  statuses: Record<string, number>
}

/** Runs the load generator (bench/load.ts) on `job` in its own process. */
export async function load(job: Record<string, unknown>): Promise<LoadResult> {
  const file = join(work, `job-${randomBytes(4).toString('hex')}.json`)
  writeFileSync(file, JSON.stringify(job))
  const child = spawn(process.execPath, ['--import', tsx, join(root, 'bench/load.ts'), file], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (chunk) => (out += chunk))
  await new Promise((resolve) => child.on('exit', resolve))
  rmSync(file)
  return JSON.parse(out.trim().split('\n').at(-1)!) as LoadResult
}

/** Measured runs of each scenario (BENCH_RUNS, default 3). */
export const RUNS = Math.max(1, Number(process.env.BENCH_RUNS ?? 3) || 3)

type Job = () => Record<string, unknown> | Promise<Record<string, unknown>>

/** Warms every job up (2 s each), then measures them RUNS times, interleaved, so they share the machine's drift. */
export function interleave(...jobs: Job[]): Promise<LoadResult[][]> {
  return interleaveRuns({ runs: RUNS, warmSeconds: 2 }, ...jobs)
}

/** interleave with its own number of runs and warm-up seconds per job (a warm-up by duration: a job by amount keeps its amount). */
export async function interleaveRuns(options: { runs: number; warmSeconds: number }, ...jobs: Job[]): Promise<LoadResult[][]> {
  for (const job of jobs) {
    const warm = await job()
    await load(warm.amount ? warm : { ...warm, duration: options.warmSeconds })
  }
  const results = jobs.map((): LoadResult[] => [])
  for (let i = 0; i < options.runs; i++) for (const [n, job] of jobs.entries()) results[n]!.push(await load(await job()))
  return results
}

/** `count` fresh Azure purchase tokens from the emulator at `emulatorUrl`, for the bench app. */
export async function purchaseTokens(emulatorUrl: string, count: number): Promise<string[]> {
  const all: string[] = []
  while (all.length < count) {
    const n = Math.min(5_000, count - all.length)
    const response = await fetch(`${emulatorUrl}/_emulator/purchases`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ appId: app.clientId, count: n, planId: 'bench', quantity: 1 }),
    })
    all.push(...((await response.json()) as { tokens: string[] }).tokens)
  }
  return all
}

/** An Azure emulator in its own process, adding `latencyMs` to Resolve and Activate, that knows the bench app. */
export async function startEmulator(latencyMs: number) {
  const { url } = JSON.parse((await start('bench/emulator.ts', [String(latencyMs)])).first) as { url: string }
  await fetch(`${url}/_emulator/apps`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(app) })
  return url
}

/** The broker's environment for a database file, with Azure at `emulatorUrl`. */
export function brokerEnv(databaseUrl: string, emulatorUrl: string) {
  // The rate limit on but out of reach: every keyed request is counted (its cost is measured),
  // none is refused (the default 1200 a minute would turn the read rows into 429s within a second).
  return { ADMIN_TOKEN, ENCRYPTION_KEY, DATABASE_URL: databaseUrl, HOST: '127.0.0.1', JOB_INTERVAL_MS: '60000', AZURE_MARKETPLACE_API_URL: emulatorUrl, AZURE_LOGIN_URL: emulatorUrl, RATE_LIMIT_PER_MINUTE: '1000000000' }
}

/**
 * Opens the database through the data layer and registers the bench org with its Azure
 * integration. The plan's offer type is mapped, so a landing makes the same two calls as
 * baseline B (no plan lookup). The caller closes `deps.db`.
 */
export async function createBenchOrg(databaseUrl: string, emulatorUrl: string, options: { webhookUrl?: string } = {}) {
  const deps = await createNodeDeps(parseConfig(brokerEnv(databaseUrl, emulatorUrl)), { logger: createLogger({ silent: true }) })
  const { org, apiKey } = await createOrg(deps, { name: 'Bench', fulfillmentUrl: 'https://app.example/signup', webhookUrl: options.webhookUrl }, BENCH_AUDIT)
  await configureIntegration(deps, org.id, 'azure', { ...app, offerTypes: { bench: 'DEFAULT' } }, BENCH_AUDIT)
  return { deps, org, apiKey }
}

export { partners, statuses } from './rows'

/** `count` entitlements of `orgId` written through the data layer in one transaction (every partner and status); answers their ids. */
export async function seedEntitlements(db: Kysely<Database>, orgId: string, count: number): Promise<string[]> {
  const ids: string[] = []
  await db.transaction().execute(async (trx) => {
    for (let i = 0; i < count; i++) {
      const row = benchEntitlementRow(orgId, i)
      // New rows of a fresh database: inserted as they are, with the JSON every write stores.
      await trx.insertInto('entitlements').values({ ...row, json: entitlementJson(row) }).execute()
      ids.push(row.id)
    }
  })
  return ids
}

/** A load-generator job: `amount` landings on `url`, each with a fresh purchase token from the emulator at `marketplace`. */
export async function landingJob(url: string, orgId: string, marketplace: string, amount: number, connections: number) {
  return {
    url,
    connections,
    amount,
    pick: 'sequential',
    paths: (await purchaseTokens(marketplace, amount)).map((t) => `/public/signup/azure/orgId/${orgId}?token=${encodeURIComponent(t)}`),
  }
}

/** A bench org seeded by some revision's own code (its schema, its key format, its encryption key). */
export interface SeededRevision {
  orgId: string
  apiKey: string
  encryptionKey: string
  ids: string[]
}

/**
 * The code at git revision `rev` in `<work>/rev-<rev>`, sharing this checkout's node_modules (the
 * revisions compared keep the versions of the dependencies they share), or why it cannot be had
 * (no git, a shallow clone without it).
 */
export function unpackRevision(rev: string): { dir: string } | { missing: string } {
  const dir = join(work, `rev-${rev.replace(/[^\w.-]/g, '_')}`)
  if (existsSync(dir)) return { dir }
  try {
    const tar = execFileSync('git', ['-C', root, 'archive', '--format=tar', rev], { maxBuffer: 512 * 2 ** 20, stdio: ['ignore', 'pipe', 'pipe'] })
    mkdirSync(dir)
    execFileSync('tar', ['-x', '-C', dir], { input: tar })
    symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'))
    return { dir }
  } catch (error) {
    return { missing: `revision ${rev} not available (${error instanceof Error ? error.message.split('\n')[0] : String(error)})` }
  }
}

/**
 * Seeds `databaseUrl` with the code in `dir` (an unpacked revision), in its own process: that
 * code's migrations, its createBenchOrg and its seedEntitlements — or, for a revision from before
 * the harness had seedEntitlements, the same rows through its data layer's upsertEntitlement, as
 * that revision's bench/run.ts seeded them.
 */
export async function seedWithRevision(dir: string, databaseUrl: string, emulatorUrl: string, count: number): Promise<SeededRevision> {
  const ownSeed = /export async function seedEntitlements/.test(readFileSync(join(dir, 'bench/harness.ts'), 'utf8'))
  const seedFile = join(dir, 'bench/seed-revision.ts')
  writeFileSync(
    seedFile,
    [
      `import { ENCRYPTION_KEY, cleanup, createBenchOrg${ownSeed ? ', seedEntitlements' : ''} } from './harness'`,
      "import { writeFileSync } from 'node:fs'",
      ...(ownSeed
        ? []
        : ["import { upsertEntitlement } from '../src/db/entitlements'", `import { benchEntitlementRow } from ${JSON.stringify(pathToFileURL(join(root, 'bench/rows.ts')).href)}`]),
      'const [databaseUrl, emulatorUrl, count, idsFile] = process.argv.slice(2) as [string, string, string, string]',
      'const { deps, org, apiKey } = await createBenchOrg(databaseUrl, emulatorUrl)',
      ...(ownSeed
        ? ['writeFileSync(idsFile, JSON.stringify(await seedEntitlements(deps.db, org.id, Number(count))))']
        : [
            // This checkout's rows through that revision's data layer (its triggers wrote the JSON).
            'const ids: string[] = []',
            'await deps.db.transaction().execute(async (trx) => {',
            '  for (let i = 0; i < Number(count); i++) {',
            '    const row = benchEntitlementRow(org.id, i)',
            '    await upsertEntitlement(trx, row as never)',
            '    ids.push(row.id)',
            '  }',
            '})',
            'writeFileSync(idsFile, JSON.stringify(ids))',
          ]),
      'await deps.db.destroy()',
      'console.log(JSON.stringify({ orgId: org.id, apiKey, encryptionKey: ENCRYPTION_KEY }))',
      'cleanup()',
    ].join('\n'),
  )
  const idsFile = join(work, `ids-${randomBytes(4).toString('hex')}.json`)
  const seed = await start(seedFile, [databaseUrl, emulatorUrl, String(count), idsFile])
  const exit = await seed.exited
  if (exit.code !== 0) throw new Error(`seeding with ${dir} failed (${exit.code ?? exit.signal}):\n${seed.errors()}`)
  return { ...(JSON.parse(seed.first) as Omit<SeededRevision, 'ids'>), ids: JSON.parse(readFileSync(idsFile, 'utf8')) as string[] }
}

export const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
export const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits

export function cleanup() {
  for (const child of children) child.kill('SIGKILL')
  rmSync(work, { recursive: true, force: true })
}
