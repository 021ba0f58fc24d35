// `npm run dev:worker [-- wrangler flags]`: the broker on the Workers runtime (wrangler dev)
// with a local D1 database, migrated with the app's own migration list before wrangler
// starts serving. Flags after `--` (--port, --ip, --persist-to, --var NAME:VALUE, ...) go to
// wrangler unchanged; a --persist-to folder is where the migrated database is written.
//
// Like `npm start`, it needs no configuration: ADMIN_TOKEN and ENCRYPTION_KEY not given with
// --var are generated once into .dev.vars (mode 0600, git-ignored; --var wins over it) and
// the admin token is printed that once.
//
// Unlike plain `wrangler dev`, it fires the Worker's cron trigger itself, as Cloudflare does in
// production (wrangler.toml `[triggers]`): every minute, or every JOB_INTERVAL_MS when that is
// given (--var JOB_INTERVAL_MS:…, the environment, or .dev.vars). One run at a time: the next
// timer starts when a run has finished. Each run prints one line ("background job #n: …").
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { D1Database } from '@cloudflare/workers-types'
import { getPlatformProxy } from 'wrangler'
import { configSchema } from '../src/config'
import { createD1Db } from '../src/db/d1'
import { D1 } from '../src/db/dialect'
import { migrateToLatest } from '../src/db/migrate'
import { wranglerBin } from './wrangler-bin'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const args = process.argv.slice(2)
const devVars = join(root, '.dev.vars')

/** The values of `--name value` or `--name=value` among the wrangler flags. */
function flag(name: string): string[] {
  return args.flatMap((arg, i) => (arg === name ? [args[i + 1] ?? ''] : arg.startsWith(`${name}=`) ? [arg.slice(name.length + 1)] : []))
}

/** The value of a variable given with --var (the last one wins, as in wrangler). */
function varFlag(name: string): string | undefined {
  return flag('--var')
    .filter((pair) => pair.startsWith(`${name}:`))
    .at(-1)
    ?.slice(name.length + 1)
}

function ensureDevSecrets() {
  const given = new Set(flag('--var').map((pair) => pair.split(':')[0]))
  const existing = existsSync(devVars) ? readFileSync(devVars, 'utf8') : ''
  const has = (name: string) => new RegExp(`^${name}=`, 'm').test(existing)
  const additions: Array<[string, string]> = []
  if (!given.has('ADMIN_TOKEN') && !has('ADMIN_TOKEN')) additions.push(['ADMIN_TOKEN', `mba_${randomBytes(32).toString('base64url')}`])
  if (!given.has('ENCRYPTION_KEY') && !has('ENCRYPTION_KEY')) additions.push(['ENCRYPTION_KEY', randomBytes(32).toString('base64')])
  if (!additions.length) return
  const text = existing + (existing && !existing.endsWith('\n') ? '\n' : '') + additions.map(([k, v]) => `${k}=${v}\n`).join('')
  writeFileSync(devVars, text, { mode: 0o600 })
  const admin = additions.find(([k]) => k === 'ADMIN_TOKEN')
  if (admin) {
    // The same two lines as `npm start` prints on a first start.
    const host = flag('--ip').at(-1) ?? 'localhost'
    const base = `http://${host === '0.0.0.0' ? 'localhost' : host}:${flag('--port').at(-1) ?? 8787}`
    console.log(`\nGenerated an admin token (kept in ${devVars}, shown only this once):\n  ${admin[1]}\n`)
    console.log('Register an org:')
    console.log(
      `  curl -sS -X POST ${base}/api/v1/orgs -H "Authorization: Bearer ${admin[1]}" -H "Content-Type: application/json" -d '{"name":"Acme","fulfillmentUrl":"https://app.acme.example/signup"}'\n`,
    )
  }
}

/** wrangler dev keeps local D1 under <persist-to>/v3; migrate that very database first. */
async function migrateLocalD1() {
  const persistTo = resolve(root, flag('--persist-to').at(-1) ?? '.wrangler/state')
  const { env, dispose } = await getPlatformProxy<{ DB: D1Database }>({
    configPath: join(root, 'wrangler.toml'),
    persist: { path: join(persistTo, 'v3') },
    remoteBindings: false,
  })
  try {
    await migrateToLatest(createD1Db(env.DB), D1)
    console.log(`Local D1 migrated (${join(persistTo, 'v3')}).`)
  } finally {
    await dispose()
  }
}

/**
 * How often the cron trigger fires: JOB_INTERVAL_MS from --var, else the environment, else
 * .dev.vars (the Node server's variable, with the same bounds), else every minute as the
 * `* * * * *` cron does on Cloudflare.
 */
function jobInterval(): number {
  const dotDevVars = existsSync(devVars) ? /^JOB_INTERVAL_MS=(.*)$/m.exec(readFileSync(devVars, 'utf8'))?.[1]?.trim() : undefined
  const given = varFlag('JOB_INTERVAL_MS') ?? process.env.JOB_INTERVAL_MS ?? dotDevVars
  if (given === undefined || given === '') return 60_000
  const parsed = configSchema.shape.JOB_INTERVAL_MS.safeParse(given)
  if (!parsed.success) {
    console.error(`dev:worker: JOB_INTERVAL_MS must be a whole number of milliseconds from 100 to 3600000 (got "${given}").`)
    process.exit(1)
  }
  return parsed.data
}

/**
 * Where the local server answers, from the flags wrangler gets: --ip (0.0.0.0 and :: are
 * reached on loopback) and --port. Without --port wrangler takes 8787, or any free port when
 * 8787 is taken: this script then picks the port itself the same way and passes it on, so that
 * it knows where to fire the trigger and wrangler keeps the terminal (its keys, its colours).
 */
async function serverAddress(): Promise<{ origin: string; extra: string[] }> {
  const ip = flag('--ip').at(-1) ?? 'localhost'
  const host = ip === '0.0.0.0' ? '127.0.0.1' : ip === '::' ? '[::1]' : ip.includes(':') ? `[${ip}]` : ip
  const given = flag('--port').at(-1)
  if (given !== undefined && given !== '0') return { origin: `http://${host}:${given}`, extra: [] }
  const port = (given === undefined ? await listenable(8787, ip) : null) ?? (await listenable(0, ip))
  if (port === null) throw new Error(`dev:worker: cannot listen on ${ip}`)
  return { origin: `http://${host}:${port}`, extra: ['--port', String(port)] }
}

/** The port a server gets when it asks for `port` on `ip` (0: any free one), or null. */
function listenable(port: number, ip: string): Promise<number | null> {
  return new Promise((done) => {
    const server = createServer()
    server.once('error', () => done(null))
    server.listen(port, ip, () => {
      const { port: got } = server.address() as { port: number }
      server.close(() => done(got))
    })
  })
}

/**
 * The cron trigger, fired through miniflare's own endpoint for it (wrangler dev always has
 * `/cdn-cgi/local/scheduled`): the Worker's `scheduled` handler runs with a real
 * ScheduledController, and the answer comes once the handler has finished ("ok", or 500).
 * Never two runs at once: the next timer is set when a run is over, and a run that fails is
 * reported and tried again at the next one. Until wrangler first answers, nothing is printed.
 */
function fireCronTrigger(origin: string, intervalMs: number) {
  const url = `${origin}/cdn-cgi/local/scheduled?cron=${encodeURIComponent('* * * * *')}`
  const abort = new AbortController()
  let timer: NodeJS.Timeout | undefined
  let runs = 0
  let answered = false
  const run = async () => {
    // Numbered as it starts: were two runs ever at once, their lines would come out of order.
    const n = ++runs
    const started = Date.now()
    let outcome: string
    try {
      const response = await fetch(url, { signal: abort.signal })
      const text = (await response.text()).trim().slice(0, 200)
      outcome = response.ok ? text : `failed (${response.status} ${text})`
      // Wrangler printed that scheduled Workers are not triggered locally: here they are.
      if (!answered) console.log(`[dev:worker] This script fires the cron trigger (the background job) itself, every ${intervalMs / 1000} s (JOB_INTERVAL_MS), one run at a time.`)
      answered = true
    } catch (error) {
      if (abort.signal.aborted) return
      // Not listening yet (still starting): the next timer tries again.
      if (!answered) {
        runs--
        return void (timer = setTimeout(run, intervalMs))
      }
      outcome = `failed (${error instanceof Error ? error.message : String(error)})`
    }
    console.log(`[dev:worker] background job #${n}: ${outcome} in ${Date.now() - started} ms`)
    if (!abort.signal.aborted) timer = setTimeout(run, intervalMs)
  }
  timer = setTimeout(run, intervalMs)
  return () => {
    clearTimeout(timer)
    abort.abort()
  }
}

const intervalMs = jobInterval()
ensureDevSecrets()
await migrateLocalD1()
const { origin, extra } = await serverAddress()

const wrangler = wranglerBin()
const child = spawn(process.execPath, [wrangler, 'dev', ...args, ...extra], {
  cwd: root,
  stdio: 'inherit',
  env: { WRANGLER_SEND_METRICS: 'false', ...process.env },
})
const stopTrigger = fireCronTrigger(origin, intervalMs)
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.on(signal, () => {
    stopTrigger()
    child.kill(signal)
  })
child.on('exit', (code, signal) => {
  stopTrigger()
  process.exit(code ?? (signal ? 1 : 0))
})
