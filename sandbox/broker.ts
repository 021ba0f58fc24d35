import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { createWriteStream, mkdirSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * The broker the sandbox talks to, started the way a user starts it: `src/node.ts` (what `npm
 * start` runs) on its own SQLite file, or `scripts/dev-worker.ts` (what `npm run dev:worker` runs:
 * wrangler dev, workerd, a local D1) with its own persisted state. Configuration goes in as
 * environment variables (Node) or `--var` flags (Workers), never into the user's files. Its log
 * goes to `<dataDir>/broker.log`, not to the terminal.
 */
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/** Every broker this process started and has not stopped: killed on whatever ends the process. */
const live = new Set<() => void>()
/** Kills every broker this process started (their whole process trees). Synchronous: safe in 'exit'. */
export function killBrokers() {
  for (const kill of [...live]) kill()
}
process.on('exit', killBrokers)

const isWindows = process.platform === 'win32'

export interface RunningBroker {
  url: string
  runtime: 'node' | 'workers'
  stop(): Promise<void>
}

export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer()
    server.on('error', fail)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => done(port))
    })
  })
}

export async function startBroker(options: {
  runtime: 'node' | 'workers'
  dataDir: string
  env: Record<string, string>
  /** Called if the broker exits by itself after it started. */
  onExit?: (how: string) => void
}): Promise<RunningBroker> {
  const { runtime, dataDir } = options
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  // The background job every second on both runtimes (Node: its timer; Workers: the dev
  // script's cron trigger), so that what the sandbox does shows up quickly.
  const env = { ...options.env, PUBLIC_URL: url, JOB_INTERVAL_MS: '1000' }
  const log = createWriteStream(join(dataDir, 'broker.log'), { flags: 'a', mode: 0o600 })
  const tsx = import.meta.resolve('tsx')
  const watchParent = import.meta.resolve('./exit-with-parent.ts')

  let child: ChildProcess
  let ready: RegExp
  if (runtime === 'node') {
    child = spawn(process.execPath, ['--import', tsx, '--import', watchParent, join(root, 'src/node.ts')], {
      cwd: dataDir,
      env: {
        PATH: process.env.PATH ?? '',
        ...env,
        PORT: String(port),
        HOST: '127.0.0.1',
        DATABASE_URL: `sqlite:${join(dataDir, 'marketbridge.db')}`,
      },
      // stdin: a pipe the broker watches (exit-with-parent.ts), so it stops when the sandbox dies.
      stdio: ['pipe', 'pipe', 'pipe'],
      // Its own process group, so that stopping it stops everything it started (Windows: taskkill /T).
      detached: !isWindows,
      windowsHide: true,
    })
    ready = /listening on/
  } else {
    const inspectorPort = await freePort()
    child = spawn(
      process.execPath,
      [
        '--import', tsx, '--import', watchParent, join(root, 'scripts/dev-worker.ts'),
        '--port', String(port),
        '--ip', '127.0.0.1',
        '--inspector-port', String(inspectorPort),
        '--persist-to', join(dataDir, 'wrangler'),
        ...Object.entries(env).flatMap(([name, value]) => ['--var', `${name}:${value}`]),
      ],
      {
        cwd: root,
        stdio: ['pipe', 'pipe', 'pipe'],
        detached: !isWindows,
        windowsHide: true,
        // No network: no metrics, no update check (the banner), no Request.cf download.
        env: { ...process.env, CI: 'true', WRANGLER_SEND_METRICS: 'false', WRANGLER_HIDE_BANNER: 'true', CLOUDFLARE_CF_FETCH_ENABLED: 'false' },
      },
    )
    ready = /Ready on http/
  }
  // For whoever needs to know what runs (and the tests that check nothing is left behind).
  if (child.pid !== undefined) writeFileSync(join(dataDir, 'broker.pid'), String(child.pid), { mode: 0o600 })
  let output = ''
  const take = (chunk: Buffer) => {
    log.write(chunk)
    if (output.length < 200_000) output += chunk.toString()
  }
  child.stdout!.on('data', take)
  child.stderr!.on('data', take)
  let started = false
  let ended: string | null = null
  const exited = new Promise<void>((done) =>
    child.on('exit', (code, signal) => {
      ended = signal ? `killed by ${signal}` : `exit code ${code}`
      if (started) options.onExit?.(ended)
      done()
    }),
  )
  child.on('error', (error) => {
    ended ??= `could not be started: ${error.message}`
  })

  // The whole group, even after its leader exited: wrangler's workerd may outlive dev-worker.ts.
  function killGroup() {
    if (child.pid === undefined) return
    try {
      if (isWindows) spawnSync('taskkill', ['/pid', String(child.pid), '/T', '/F'], { stdio: 'ignore' })
      else process.kill(-child.pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
  live.add(killGroup)

  const fail = (why: string) => {
    killGroup()
    live.delete(killGroup)
    log.end()
    return new Error(`the broker (${runtime}) ${why}; the end of its output (all of it in ${join(dataDir, 'broker.log')}):\n${output.slice(-3000)}`)
  }
  const deadline = Date.now() + (runtime === 'workers' ? 90_000 : 30_000)
  while (!ready.test(output)) {
    if (ended !== null) throw fail(`stopped while starting (${ended})`)
    if (Date.now() > deadline) throw fail('did not start in time')
    await new Promise((r) => setTimeout(r, 100))
  }
  // Ready to serve: wait for the first answer (wrangler prints "Ready" a moment before).
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) break
    } catch {
      // not yet
    }
    if (ended !== null) throw fail(`stopped while starting (${ended})`)
    if (i > 150) throw fail('does not answer /healthz')
    await new Promise((r) => setTimeout(r, 100))
  }
  started = true

  return {
    url,
    runtime,
    async stop() {
      started = false
      if (ended === null && child.pid !== undefined) {
        try {
          if (isWindows) spawnSync('taskkill', ['/pid', String(child.pid), '/T'], { stdio: 'ignore' })
          else process.kill(-child.pid, 'SIGTERM')
        } catch {
          // already gone
        }
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))])
      }
      killGroup()
      live.delete(killGroup)
      log.end()
    },
  }
}
