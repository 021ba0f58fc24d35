import { type ChildProcess, spawn } from 'node:child_process'
import { resolve } from 'node:path'
import { ADMIN_TOKEN, brokerClient, freePort } from './helpers'

/**
 * `npm run dev:worker` as a child process: the dev script (which migrates the local D1 first),
 * wrangler dev, workerd. Tests talk to it over HTTP on loopback exactly as they talk to the
 * in-process Node app.
 */
const script = resolve(import.meta.dirname, '../scripts/dev-worker.ts')

export interface WorkerProcess {
  url: string
  output: () => string
  stop: () => Promise<void>
}

export async function startWorker(persistTo: string, vars: Record<string, string>): Promise<WorkerProcess> {
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
      '--test-scheduled',
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
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`wrangler dev did not start:\n${output}`)
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    stop: async () => {
      const exited = new Promise((done) => child.on('exit', done))
      process.kill(-child.pid!, 'SIGTERM')
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))])
      try {
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
