import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chownSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Kysely } from 'kysely'
import pg from 'pg'
import type { Database } from '../src/db/schema'
import { createPostgresDb } from '../src/node/postgres'
import { ADMIN_TOKEN, brokerClient, freePort } from './helpers'
import { type Running, startServer } from './node-process'

/**
 * Several brokers as an ISV runs them behind a load balancer: N real `npm start` processes on ONE
 * PostgreSQL database, with the same ADMIN_TOKEN and ENCRYPTION_KEY (contract §12: every instance
 * the same). Requests go round-robin or to a chosen instance; the test reads the database itself
 * to count what only the database knows (migrations, deliveries, leases).
 */

// ---- PostgreSQL for the tests ---------------------------------------------------------------
// TEMPORARY until pg-infra's test/postgres.ts is on main (then: createTestDatabase() and its
// private-cluster helpers replace this block).

/** The server the tests create their databases on (the machine's own, trust auth). */
const SERVER_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'

/** Whether a PostgreSQL server answers at `url` (within 3 s). */
export async function postgresAnswers(url = SERVER_URL): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 })
  try {
    await client.connect()
    await client.query('select 1')
    return true
  } catch {
    return false
  } finally {
    await client.end().catch(() => {})
  }
}

export interface TestDatabase {
  url: string
  drop: () => Promise<void>
}

/** A fresh, empty database `mb_test_<random>` on `serverUrl`; `drop()` removes it (connections and all). */
export async function createTestDatabase(serverUrl = SERVER_URL): Promise<TestDatabase> {
  const name = `mb_test_${randomBytes(6).toString('hex')}`
  const admin = async (statement: string) => {
    const client = new pg.Client({ connectionString: serverUrl })
    await client.connect()
    try {
      await client.query(statement)
    } finally {
      await client.end()
    }
  }
  await admin(`create database ${name}`)
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return { url: url.toString(), drop: () => admin(`drop database if exists ${name} with (force)`) }
}

export interface PrivateCluster {
  /** postgres://… of its `postgres` database. */
  url: string
  port: number
  stop: () => void
  start: () => void
  /** Stops it (if running) and removes its folder. */
  destroy: () => void
}

/**
 * A PostgreSQL cluster of this test alone, in a temp folder on a free port: the one a test may
 * stop and start (the shared server on 5432 is never stopped). initdb refuses to run as root, so
 * as root the cluster belongs to the `postgres` user.
 */
export async function startPrivateCluster(): Promise<PrivateCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'marketbridge-pg-'))
  const data = join(dir, 'data')
  const asRoot = process.getuid?.() === 0
  if (asRoot) {
    const { uid, gid } = userIds('postgres')
    chownSync(dir, uid, gid)
  }
  const run = (command: string, args: string[]) =>
    asRoot ? execFileSync('runuser', ['-u', 'postgres', '--', command, ...args], { stdio: 'pipe' }) : execFileSync(command, args, { stdio: 'pipe' })
  run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'])
  const port = await freePort()
  const log = join(dir, 'server.log')
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`
  const start = () => void run('pg_ctl', ['-D', data, '-o', options, '-l', log, '-w', 'start'])
  const stop = () => void run('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop'])
  start()
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    start,
    stop,
    destroy: () => {
      try {
        stop()
      } catch {
        // Already stopped.
      }
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

function userIds(name: string) {
  const [uid, gid] = execFileSync('id', ['-u', name]).toString().trim().split('\n').concat(execFileSync('id', ['-g', name]).toString().trim())
  return { uid: Number(uid), gid: Number(gid) }
}
// ---- end of the temporary block -------------------------------------------------------------

export interface Instances {
  /** The instances running now (a killed one is removed). */
  all: Running[]
  env: Record<string, string>
  /** The next instance, round-robin. */
  next: () => Running
  /** A client (brokerClient) for instance `i`, or round-robin when `i` is undefined. */
  client: (i?: number) => ReturnType<typeof brokerClient>
  /** Starts `n` more instances at once on the same database and settings. */
  add: (n: number, env?: Record<string, string>) => Promise<Running[]>
  /** SIGKILLs instance `instance` (nothing it holds is released: its leases must run out). */
  kill: (instance: Running) => Promise<void>
  /** Stops every instance (SIGKILL: the tests are over) and removes their scratch folders. */
  close: () => Promise<void>
}

/** The settings every instance of one broker shares; the test adds its marketplaces' URLs. */
export function instanceEnv(databaseUrl: string, env: Record<string, string> = {}) {
  return {
    ADMIN_TOKEN,
    // One key for all: a secret sealed by one instance is opened by another.
    ENCRYPTION_KEY: Buffer.alloc(32, 21).toString('base64'),
    DATABASE_URL: databaseUrl,
    // Short enough that a killed instance's leases run out within seconds (landing lease 3 s).
    UPSTREAM_TIMEOUT_MS: '500',
    JOB_INTERVAL_MS: '250',
    // The shared server takes 100 connections in all, other suites' included: five per instance
    // is plenty for these loads, and six instances at once stay well under it.
    DATABASE_POOL_MAX: '5',
    ...env,
  }
}

/** Starts `n` instances at once (they race on the migrations, as a rollout does) on `databaseUrl`. */
export async function startInstances(n: number, env: Record<string, string>): Promise<Instances> {
  const all: Running[] = []
  const everyone: Running[] = []
  const dirs: string[] = []
  let turn = 0
  const add = async (count: number, extra: Record<string, string> = {}) => {
    const started = await Promise.all(
      Array.from({ length: count }, async () => {
        // Each its own working folder: nothing of one instance may be shared through the disk.
        const dir = mkdtempSync(join(tmpdir(), 'marketbridge-instance-'))
        dirs.push(dir)
        return startServer(dir, { ...env, ...extra }, { startTimeoutMs: 60_000 })
      }),
    )
    all.push(...started)
    everyone.push(...started)
    return started
  }
  const next = () => all[turn++ % all.length]!
  const instances: Instances = {
    all,
    env,
    next,
    client: (i) => brokerClient('', (url, init) => fetch(`${(i === undefined ? next() : all[i]!).url}${url}`, init)),
    add,
    kill: async (instance) => {
      await instance.stop('SIGKILL')
      all.splice(all.indexOf(instance), 1)
    },
    close: async () => {
      await Promise.all(everyone.map((instance) => (instance.child.exitCode === null && instance.child.signalCode === null ? instance.stop('SIGKILL') : null)))
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
    },
  }
  try {
    await add(n)
  } catch (error) {
    await instances.close()
    throw error
  }
  return instances
}

/** The test's own read of the database (typed), for what the API does not show. */
export function openDatabase(url: string): Kysely<Database> {
  return createPostgresDb(url, { poolMax: 2 })
}
