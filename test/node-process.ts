import { type ChildProcess, spawn } from 'node:child_process'
import { resolve } from 'node:path'
import { ADMIN_TOKEN, freePort } from './helpers'
import { substituteDatabase } from './postgres'

/** One key for every server the `postgres` project starts: a restart must open what the last run sealed. */
const TEST_ENCRYPTION_KEY = Buffer.alloc(32, 1).toString('base64')

/**
 * The real server, as `npm start` runs it: a child process, a SQLite file, no configuration
 * but what the test passes. Run from a scratch folder so `./data` is the scratch one.
 * `options.node` runs it on another Node binary than the suite's own (the Node 22 smoke run);
 * `options.startTimeoutMs` (30 s) is longer where several start at once on a shared machine.
 */
export const entry = resolve(import.meta.dirname, '../src/node.ts')
export const tsx = import.meta.resolve('tsx')

export interface Running {
  child: ChildProcess
  url: string
  output: () => string
  stop: (signal?: NodeJS.Signals) => Promise<number | null>
}

export async function startServer(cwd: string, env: Record<string, string> = {}, options: { node?: string; startTimeoutMs?: number } = {}): Promise<Running> {
  const port = await freePort()
  let output = ''
  // Under the `postgres` project: the database that stands in for this SQLite file (the same on
  // a restart in the same folder), and the keys PostgreSQL needs given.
  const sqliteUrl = env.DATABASE_URL ?? 'sqlite:./data/marketbridge.db'
  const substitute = await substituteDatabase(sqliteUrl === 'sqlite::memory:' || !sqliteUrl.startsWith('sqlite:') ? sqliteUrl : `sqlite:${resolve(cwd, sqliteUrl.slice('sqlite:'.length))}`)
  const dialectEnv = substitute ? { ADMIN_TOKEN, ENCRYPTION_KEY: TEST_ENCRYPTION_KEY, ...env, DATABASE_URL: substitute.url } : env
  const child = spawn(options.node ?? process.execPath, ['--import', tsx, entry], {
    cwd,
    env: { PATH: process.env.PATH ?? '', PORT: String(port), HOST: '127.0.0.1', ...dialectEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  child.stdout!.on('data', (chunk) => (output += chunk))
  child.stderr!.on('data', (chunk) => (output += chunk))
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)))
  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000)
  while (!output.includes('listening on')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      // Not left running behind a failed start: nobody else holds its handle.
      child.kill('SIGKILL')
      throw new Error(`server did not start:\n${output}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    stop: async (signal = 'SIGTERM') => {
      child.kill(signal)
      const code = await exited
      await substitute?.release()
      return code
    },
  }
}

