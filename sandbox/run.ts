// `npm run sandbox [-- --workers] [-- --port N] [-- --host H]`: the marketplace emulators, the
// broker (Node + SQLite by default, Workers + D1 through wrangler dev with --workers), a demo org,
// an SMTP mailbox and the demo ISV app, on this machine, with no configuration and no network.
// Prints one URL. Each start is a fresh sandbox: its data lives in ./data/sandbox/ and is
// replaced (never the database `npm start` uses).
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { startSandbox } from './start'

const { values } = parseArgs({
  options: {
    workers: { type: 'boolean', default: false },
    port: { type: 'string', default: process.env.SANDBOX_PORT ?? '8790' },
    host: { type: 'string', default: '127.0.0.1' },
    'data-dir': { type: 'string', default: 'data/sandbox' },
  },
})
const port = Number(values.port)
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`sandbox: --port must be a port number, not "${values.port}"`)
  process.exit(2)
}
const runtime = values.workers ? 'workers' : 'node'
console.log(`Starting the marketbridge sandbox (broker on ${runtime === 'workers' ? 'Workers + D1, wrangler dev' : 'Node + SQLite'})…`)
try {
  const sandbox = await startSandbox({ runtime, port, host: values.host, dataDir: resolve(values['data-dir']) })
  console.log(`\nSandbox ready: ${sandbox.url}\n\nOpen it and buy on Azure, AWS or Google Cloud. Ctrl+C stops everything (broker log: ${values['data-dir']}/broker.log).`)
  let stopping = false
  const stop = () => {
    if (stopping) return
    stopping = true
    void sandbox.stop().finally(() => process.exit(0))
    setTimeout(() => process.exit(0), 8000).unref()
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
} catch (error) {
  const message = error instanceof Error ? error.message : String(error)
  console.error(/EADDRINUSE/.test(message) ? `sandbox: port ${port} is taken; pick another with npm run sandbox -- --port <n>` : `sandbox failed to start: ${message}`)
  process.exit(1)
}
