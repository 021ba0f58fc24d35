// `npm run sandbox [-- --workers] [-- --port N] [-- --data-dir D]`: the marketplace emulators, the
// broker (Node + SQLite by default, Workers + D1 through wrangler dev with --workers), a demo org,
// an SMTP mailbox and the demo ISV app, on this machine (127.0.0.1), with no configuration and no
// network. Prints one URL. Each start is a fresh sandbox: its data lives in ./data/sandbox/ and is
// replaced (never the database `npm start` uses).
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { killBrokers } from './broker'

// Whatever ends the sandbox (Ctrl+C even while it starts, a closed terminal) ends its broker too:
// the broker runs in its own process group, which a terminal's signal does not reach.
let sandbox: { stop(): Promise<void> } | null = null
let stopping = false
const stop = (signal: NodeJS.Signals) => {
  if (stopping) return
  stopping = true
  const code = signal === 'SIGINT' ? 130 : signal === 'SIGHUP' ? 129 : 143
  if (!sandbox) {
    killBrokers()
    process.exit(code)
  }
  void sandbox.stop().finally(() => process.exit(0))
  setTimeout(() => {
    killBrokers()
    process.exit(code)
  }, 8000).unref()
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => stop(signal))

let values: { workers: boolean; port: string; 'data-dir': string }
try {
  ;({ values } = parseArgs({
    options: {
      workers: { type: 'boolean', default: false },
      port: { type: 'string', default: process.env.SANDBOX_PORT ?? '8790' },
      'data-dir': { type: 'string', default: 'data/sandbox' },
    },
  }))
} catch (error) {
  console.error(`sandbox: ${error instanceof Error ? error.message : String(error)} (options: --workers, --port N, --data-dir D)`)
  process.exit(2)
}
const port = Number(values.port)
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`sandbox: --port must be a port number, not "${values.port}"`)
  process.exit(2)
}
const runtime = values.workers ? 'workers' : 'node'
console.log(`Starting the marketbridge sandbox (broker on ${runtime === 'workers' ? 'Workers + D1, wrangler dev' : 'Node + SQLite'})…`)
try {
  // Loaded here: without the dev dependencies (npm ci --omit=dev) this says so instead of a stack trace.
  const { startSandbox } = await import('./start')
  const logFile = `${values['data-dir']}/broker.log`
  const started = await startSandbox({
    runtime,
    port,
    dataDir: resolve(values['data-dir']),
    onBrokerExit: (how) => console.error(`\nThe broker stopped (${how}); its log: ${logFile}. Restart the sandbox.`),
  })
  sandbox = started
  if (stopping) await started.stop()
  else
    console.log(
      `\nSandbox ready: ${started.url}\n\nOpen it and buy on Azure, AWS or Google Cloud; the broker's console, signed in as the demo org: ${started.url}/console\nCtrl+C stops everything (broker log: ${logFile}).`,
    )
} catch (error) {
  const message = error instanceof Error ? error.message : String(error)
  if ((error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') {
    console.error(`sandbox: a package is missing (${message.split('\n')[0]}). The sandbox uses the dev dependencies: run npm ci (without --omit=dev).`)
  } else {
    console.error(error instanceof Error && error.name === 'PortTakenError' ? `sandbox: ${message}` : `sandbox failed to start: ${message}`)
  }
  killBrokers()
  process.exit(1)
}
