import { execFile, execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { freePort } from '../sandbox/broker'

/**
 * PostgreSQL for the tests: one server (MB_TEST_POSTGRES_URL, by default the development and CI
 * machines' own on 127.0.0.1:5432), a fresh `mb_test_<random>` database per broker or suite,
 * dropped afterwards; and, for the tests that stop or kill the server itself, a throw-away cluster
 * of their own in a temp folder, so the shared server is never stopped.
 */

export const POSTGRES_BASE_URL = process.env.MB_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres'

/** Databases of one `vitest run` carry its id (set by test/global-setup.ts), so its teardown drops what a crashed test left. */
const RUN = process.env.MB_TEST_RUN ?? 'none'
const PREFIX = 'mb_test_'
/** A database left by a run that never reached its teardown (killed) is dropped by a later run after this long. */
const LEFTOVER_AFTER_MS = 6 * 3_600_000

/** The URL of another database on the same server (its user, password, host and options kept). */
export function databaseUrl(base: string, database: string): string {
  const url = new URL(base)
  url.pathname = `/${database}`
  return url.toString()
}

/** `postgres://user:secret@host/db` -> `postgres://user:***@host/db`: what a message may show. */
export function redactUrl(value: string): string {
  try {
    const url = new URL(value)
    if (url.password) url.password = '***'
    return url.toString()
  } catch {
    return '(unparseable URL)'
  }
}

async function withClient<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 })
  // A server that goes away under an open client makes it emit 'error'; the awaited query fails anyway.
  client.on('error', () => {})
  await client.connect()
  try {
    return await work(client)
  } finally {
    await client.end().catch(() => {})
  }
}

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`

export interface TestDatabase {
  /** The database's URL (same server and user as the base URL). */
  url: string
  name: string
  /** Drops it, closing whatever connections are still open on it (a killed broker's pool, say). */
  drop: () => Promise<void>
}

/**
 * Creates `mb_test_<random>` on the test server; call `drop()` when done (afterAll / the broker's
 * close). `icuLocale` gives it that default collation (an ISV's database is often en-US, which
 * orders text case-insensitively), to show the schema's own collation decides instead.
 */
export async function createTestDatabase(options: { base?: string; icuLocale?: string } = {}): Promise<TestDatabase> {
  const base = options.base ?? POSTGRES_BASE_URL
  const name = `${PREFIX}${randomBytes(8).toString('hex')}`
  const locale = options.icuLocale ? ` template template0 locale_provider icu icu_locale ${pg.escapeLiteral(options.icuLocale)}` : ''
  await withClient(base, async (client) => {
    await client.query(`create database ${quote(name)}${locale}`)
    // Who made it and when, for the run's teardown and for a later run's leftover sweep.
    await client.query(`comment on database ${quote(name)} is ${pg.escapeLiteral(`marketbridge test run=${RUN} created=${new Date().toISOString()}`)}`)
  })
  let dropped: Promise<void> | undefined
  const drop = () => (dropped ??= withClient(base, async (client) => {
    await client.query(`drop database if exists ${quote(name)} with (force)`)
  }))
  return { url: databaseUrl(base, name), name, drop }
}

/**
 * Drops this run's databases (run = `run`) and any test database older than a few hours: what a
 * killed test or a killed run left behind. Databases of other runs still going are left alone.
 */
export async function dropTestDatabases(run: string, base = POSTGRES_BASE_URL): Promise<string[]> {
  return withClient(base, async (client) => {
    const { rows } = await client.query<{ datname: string; note: string | null }>(
      `select datname, shobj_description(oid, 'pg_database') as note from pg_database where datname like 'mb\\_test\\_%'`,
    )
    const doomed = rows.filter(({ note }) => {
      const made = /^marketbridge test run=(\S+) created=(\S+)$/.exec(note ?? '')
      if (!made) return false // someone else's database of that name: not ours to judge
      return made[1] === run || Date.now() - Date.parse(made[2]!) > LEFTOVER_AFTER_MS
    })
    for (const { datname } of doomed) await client.query(`drop database if exists ${quote(datname)} with (force)`)
    return doomed.map(({ datname }) => datname)
  })
}

/**
 * The dialect the behaviour suites run on: SQLite (the default project) or, in vitest's
 * `postgres` project (MB_TEST_DIALECT=postgres), PostgreSQL — the same test files, each broker
 * on a database of its own (kysely's test-setup.ts drives one suite over its dialects the same way).
 */
export const TEST_DIALECT: 'sqlite' | 'postgres' = process.env.MB_TEST_DIALECT === 'postgres' ? 'postgres' : 'sqlite'

const byFile = new Map<string, Promise<TestDatabase>>()

/**
 * Under the `postgres` project, the PostgreSQL database that stands in for a test's SQLite URL
 * (undefined otherwise, or when the test gave a PostgreSQL URL of its own). `sqlite::memory:` (or
 * none) is a fresh database, dropped by `release`; a file is the same database for every broker
 * and restart that names it (it outlives `release`, like the file: the run's teardown drops it).
 */
export async function substituteDatabase(sqliteUrl: string | undefined): Promise<{ url: string; release: () => Promise<void> } | undefined> {
  if (TEST_DIALECT !== 'postgres' || (sqliteUrl !== undefined && !sqliteUrl.startsWith('sqlite:'))) return undefined
  // Without a server: the clear message in CI; elsewhere the same, as a project of PostgreSQL
  // runs is no place to fall back to SQLite silently.
  if (!(await postgresAvailable())) throw new Error(`the postgres project needs a PostgreSQL server: ${await postgresProblem()}`)
  if (sqliteUrl === undefined || sqliteUrl === 'sqlite::memory:') {
    const database = await createTestDatabase()
    return { url: database.url, release: database.drop }
  }
  let database = byFile.get(sqliteUrl)
  if (!database) byFile.set(sqliteUrl, (database = createTestDatabase()))
  return { url: (await database).url, release: async () => {} }
}

/** Why the test server cannot be used (null when it answers). */
export async function postgresProblem(base = POSTGRES_BASE_URL): Promise<string | null> {
  try {
    await withClient(base, (client) => client.query('select 1'))
    return null
  } catch (error) {
    return `PostgreSQL at ${redactUrl(base)} is not reachable (${error instanceof Error ? error.message : String(error)})`
  }
}

let checked: Promise<boolean> | undefined

/**
 * Whether the PostgreSQL tests of this file run. Without a reachable server they fail in CI (`CI`
 * set: a CI machine must have one, `.ci/run` makes sure of it) and are skipped, with a notice,
 * on a developer's machine without one. Use at a test file's top level:
 * `describe.runIf(await postgresAvailable())(…)`.
 */
export function postgresAvailable(): Promise<boolean> {
  return (checked ??= postgresProblem().then((problem) => {
    if (!problem) return true
    const hint = 'start one (or set MB_TEST_POSTGRES_URL to a server whose user may create databases)'
    if (process.env.CI) throw new Error(`${problem}: the PostgreSQL tests cannot run; ${hint}`)
    console.warn(`SKIPPED: PostgreSQL tests; ${problem}. ${hint}; in CI (CI set) this fails.`)
    return false
  }))
}

// ---------------------------------------------------------------------------------------------
// A cluster of the test's own: initdb in a temp folder, a free port, the socket in that folder.
// Tests that stop, restart or freeze the server use it; the shared server stays up for everyone.

const run = promisify(execFile)

/** Debian's PostgreSQL binaries (initdb, pg_ctl), the newest installed version; PG_BIN overrides. */
export function postgresBinDir(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN
  const root = '/usr/lib/postgresql'
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb'))) : []
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0]
  if (!newest) throw new Error('no PostgreSQL binaries under /usr/lib/postgresql (apt-get install postgresql) and PG_BIN unset')
  return join(root, newest, 'bin')
}

/** initdb and postgres refuse to run as root: as root, run them as the `postgres` user. */
const asRoot = process.getuid?.() === 0
const command = (bin: string, args: string[]): [string, string[]] => (asRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args])

export interface Cluster {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  url: string
  port: number
  dir: string
  /** pg_ctl start (waits until it accepts connections). */
  start: () => Promise<void>
  /** pg_ctl stop -m fast: connections are cut, the data stays. */
  stop: () => Promise<void>
  /** SIGSTOP / SIGCONT of the postmaster and its backends: a server that accepts TCP connections and answers nothing. */
  freeze: () => void
  thaw: () => void
  /** Stops it (if running) and removes its folder. */
  destroy: () => Promise<void>
}

/**
 * A new, running cluster on a free port (trust auth for the `postgres` user, fsync off: it is thrown away).
 * `tls`: a server certificate and key (PEM) to serve TLS with (`ssl = on`).
 */
export async function startCluster(options: { tls?: { cert: string; key: string } } = {}): Promise<Cluster> {
  const bin = postgresBinDir()
  const dir = mkdtempSync(join(tmpdir(), 'mb-pg-'))
  const data = join(dir, 'data')
  if (asRoot) chownSync(dir, uid('postgres'), gid('postgres'))
  const [initdb, initArgs] = command(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale', 'C.UTF-8'])
  await run(initdb, initArgs)
  const port = await freePort()
  let settings = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off`
  if (options.tls) {
    // The key must belong to the server's user and be readable by it alone.
    for (const [name, pem] of [['server.crt', options.tls.cert], ['server.key', options.tls.key]] as const) {
      writeFileSync(join(dir, name), pem, { mode: 0o600 })
      if (asRoot) chownSync(join(dir, name), uid('postgres'), gid('postgres'))
    }
    settings += ` -c ssl=on -c ssl_cert_file=${join(dir, 'server.crt')} -c ssl_key_file=${join(dir, 'server.key')}`
  }
  const pgCtl = (...args: string[]) => {
    const [file, argv] = command(join(bin, 'pg_ctl'), ['-D', data, ...args])
    return run(file, argv).then(() => undefined)
  }
  const start = () => pgCtl('-o', settings, '-l', join(dir, 'server.log'), '-w', 'start')
  const stop = () => pgCtl('-m', 'fast', '-w', 'stop')
  const postmaster = () => Number(execFileSync('head', ['-1', join(data, 'postmaster.pid')], { encoding: 'utf8' }).trim())
  await start()
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    start,
    stop,
    freeze: () => signalAll(postmaster(), 'SIGSTOP'),
    thaw: () => signalAll(postmaster(), 'SIGCONT'),
    destroy: async () => {
      if (existsSync(join(data, 'postmaster.pid'))) {
        signalAll(postmaster(), 'SIGCONT')
        await stop().catch(() => {})
      }
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** The postmaster and every process it started (backends keep the connections a pool already holds). */
function signalAll(postmaster: number, signal: NodeJS.Signals) {
  const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(postmaster)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number)
  for (const pid of [postmaster, ...children]) {
    try {
      process.kill(pid, signal)
    } catch {}
  }
}

const uid = (user: string) => Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim())
const gid = (user: string) => Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim())
