import { type ChildProcess, spawn } from 'node:child_process'
import { resolve } from 'node:path'
import { freePort } from './helpers'

/**
 * The real server, as `npm start` runs it: a child process, a SQLite file, no configuration
 * but what the test passes. Run from a scratch folder so `./data` is the scratch one.
 * `options.node` runs it on another Node binary than the suite's own (the Node 22 smoke run).
 */
export const entry = resolve(import.meta.dirname, '../src/node.ts')
export const tsx = import.meta.resolve('tsx')

export interface Running {
  child: ChildProcess
  url: string
  output: () => string
  stop: (signal?: NodeJS.Signals) => Promise<number | null>
}

export async function startServer(cwd: string, env: Record<string, string> = {}, options: { node?: string } = {}): Promise<Running> {
  const port = await freePort()
  let output = ''
  const child = spawn(options.node ?? process.execPath, ['--import', tsx, entry], {
    cwd,
    env: { PATH: process.env.PATH ?? '', PORT: String(port), HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  child.stdout!.on('data', (chunk) => (output += chunk))
  child.stderr!.on('data', (chunk) => (output += chunk))
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)))
  const deadline = Date.now() + 30_000
  while (!output.includes('listening on')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`server did not start:\n${output}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    stop: async (signal = 'SIGTERM') => {
      child.kill(signal)
      return exited
    },
  }
}

