import { type ChildProcess, spawn } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import Database from 'better-sqlite3'
import { ADMIN_TOKEN, brokerClient, freePort } from './helpers'

/**
 * `npm run dev:worker` as a child process: the dev script (which migrates the local D1 first),
 * wrangler dev, workerd. Tests talk to it over HTTP on loopback exactly as they talk to the
 * in-process Node app. The background job is the dev script's own cron trigger, every
 * JOB_INTERVAL_MS (short here unless `vars` say otherwise): tests never fire it themselves.
 */
const script = resolve(import.meta.dirname, '../scripts/dev-worker.ts')

export interface WorkerProcess {
  url: string
  /** The dev script's process (wrangler is its child, workerd wrangler's). */
  pid: number
  output: () => string
  stop: () => Promise<void>
  /** The runs of the background job so far, as the dev script printed them. */
  jobRuns: () => JobRun[]
  /** Resolves once a whole run of the background job has happened after the call (or throws). */
  jobRan: (timeoutMs?: number) => Promise<JobRun>
}

export interface JobRun {
  n: number
  outcome: string
  ms: number
}

/** The job's interval the tests' workers run with unless told otherwise. */
export const WORKER_JOB_INTERVAL_MS = 300

export async function startWorker(persistTo: string, vars: Record<string, string>): Promise<WorkerProcess> {
  // A free port is only free when it was looked at: a suite running beside this one can bind it
  // before workerd does ("Address already in use"). Such a start is tried again on new ports.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startWorkerOnce(persistTo, vars)
    } catch (error) {
      if (!(error instanceof PortTaken) || attempt === 3) throw error
    }
  }
}

class PortTaken extends Error {}

async function startWorkerOnce(persistTo: string, vars: Record<string, string>): Promise<WorkerProcess> {
  const port = await freePort()
  // Its own devtools port too: wrangler takes 9229 when it looks free, and two suites starting
  // wrangler at the same moment both saw it free and one of them died binding it.
  const inspectorPort = await freePort()
  const child: ChildProcess = spawn(
    process.execPath,
    [
      '--import',
      import.meta.resolve('tsx'),
      script,
      '--port', String(port),
      '--ip', '127.0.0.1',
      '--inspector-port', String(inspectorPort),
      '--persist-to', persistTo,
      '--var', `JOB_INTERVAL_MS:${WORKER_JOB_INTERVAL_MS}`,
      '--var', `ADMIN_TOKEN:${ADMIN_TOKEN}`,
      '--var', `ENCRYPTION_KEY:${Buffer.alloc(32, 7).toString('base64')}`,
      ...Object.entries(vars).flatMap(([name, value]) => ['--var', `${name}:${value}`]),
    ],
    // Its own process group, so stopping it takes wrangler and workerd down too.
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, CI: 'true' } },
  )
  let output = ''
  child.stdout!.on('data', (chunk) => (output += chunk))
  child.stderr!.on('data', (chunk) => (output += chunk))
  const deadline = Date.now() + 60_000
  while (!/Ready on http/.test(output)) {
    if (/Address already in use/.test(output)) {
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        // already gone
      }
      throw new PortTaken(`wrangler dev found its port taken:\n${output}`)
    }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`wrangler dev did not start:\n${output}`)
    await new Promise((r) => setTimeout(r, 100))
  }
  const jobRuns = () =>
    [...output.matchAll(/^\[dev:worker\] background job #(\d+): (.*) in (\d+) ms$/gm)].map(([, n, outcome, ms]) => ({ n: Number(n), outcome: outcome!, ms: Number(ms) }))
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    output: () => output,
    jobRuns,
    async jobRan(timeoutMs = 30_000) {
      // Runs never overlap: the one after the next to finish began after this call.
      const target = (jobRuns().at(-1)?.n ?? 0) + 2
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const run = jobRuns().find((r) => r.n === target)
        if (run) {
          if (run.outcome !== 'ok') throw new Error(`the background job failed: ${run.outcome}\n${output.slice(-3000)}`)
          return run
        }
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`no run of the background job:\n${output.slice(-3000)}`)
        await new Promise((r) => setTimeout(r, 50))
      }
    },
    stop: async () => {
      try {
        const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((done) => child.on('exit', done))
        process.kill(-child.pid!, 'SIGTERM')
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))])
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        // already gone
      }
    },
  }
}

/** The same client surface as createTestBroker(), over HTTP to a running broker. */
export function httpBroker(baseUrl: string) {
  return brokerClient(baseUrl, (url, init) => fetch(url, init))
}

/** The persisted local D1 file that wrangler dev (and the dev script's migration) use under `persistTo`. */
export function openPersistedD1(persistTo: string, readonly = true) {
  const dir = join(persistTo, 'v3', 'd1', 'miniflare-D1DatabaseObject')
  const file = readdirSync(dir).find((name) => name.endsWith('.sqlite') && name !== 'metadata.sqlite')!
  return new Database(join(dir, file), { readonly })
}
