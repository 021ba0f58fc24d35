import { type ChildProcess, spawn } from 'node:child_process'
import { createWriteStream, mkdirSync } from 'node:fs'
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

export interface RunningBroker {
  url: string
  runtime: 'node' | 'workers'
  /** Runs the background job now (Workers: the cron trigger; Node runs its own timer). */
  tick(): Promise<void>
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

export async function startBroker(options: { runtime: 'node' | 'workers'; dataDir: string; env: Record<string, string> }): Promise<RunningBroker> {
  const { runtime, dataDir } = options
  mkdirSync(dataDir, { recursive: true })
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const env = { ...options.env, PUBLIC_URL: url }
  const log = createWriteStream(join(dataDir, 'broker.log'), { flags: 'a' })
  const tsx = import.meta.resolve('tsx')

  let child: ChildProcess
  let ready: RegExp
  if (runtime === 'node') {
    child = spawn(process.execPath, ['--import', tsx, join(root, 'src/node.ts')], {
      cwd: dataDir,
      env: {
        PATH: process.env.PATH ?? '',
        ...env,
        PORT: String(port),
        HOST: '127.0.0.1',
        DATABASE_URL: `sqlite:${join(dataDir, 'marketbridge.db')}`,
        JOB_INTERVAL_MS: '1000',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    })
    ready = /listening on/
  } else {
    const inspectorPort = await freePort()
    child = spawn(
      process.execPath,
      [
        '--import', tsx, join(root, 'scripts/dev-worker.ts'),
        '--port', String(port),
        '--ip', '127.0.0.1',
        '--inspector-port', String(inspectorPort),
        '--persist-to', join(dataDir, 'wrangler'),
        // The job is the Worker's cron trigger; the sandbox fires it through /__scheduled.
        '--test-scheduled',
        ...Object.entries(env).flatMap(([name, value]) => ['--var', `${name}:${value}`]),
      ],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, CI: 'true', WRANGLER_SEND_METRICS: 'false' } },
    )
    ready = /Ready on http/
  }
  let output = ''
  const take = (chunk: Buffer) => {
    log.write(chunk)
    if (output.length < 200_000) output += chunk.toString()
  }
  child.stdout!.on('data', take)
  child.stderr!.on('data', take)
  const exited = new Promise<void>((done) => child.on('exit', () => done()))

  const killGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal)
    } catch {
      // already gone
    }
  }
  // Whatever ends the sandbox ends its broker (and wrangler's workerd) too.
  const onExit = () => killGroup('SIGKILL')
  process.on('exit', onExit)

  const deadline = Date.now() + (runtime === 'workers' ? 90_000 : 30_000)
  while (!ready.test(output)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      killGroup('SIGKILL')
      throw new Error(`the broker (${runtime}) did not start; its output:\n${output.slice(-4000)}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  // Ready to serve: wait for the first answer (wrangler prints "Ready" a moment before).
  for (let i = 0; i < 100; i++) {
    try {
      if ((await fetch(`${url}/healthz`)).ok) break
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 100))
  }

  return {
    url,
    runtime,
    async tick() {
      if (runtime !== 'workers') return
      const response = await fetch(`${url}/__scheduled?cron=${encodeURIComponent('* * * * *')}`)
      await response.body?.cancel()
    },
    async stop() {
      process.off('exit', onExit)
      killGroup('SIGTERM')
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))])
      killGroup('SIGKILL')
      log.end()
    },
  }
}
