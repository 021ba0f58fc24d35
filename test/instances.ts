import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Kysely } from 'kysely'
import type { Database } from '../src/db/schema'
import { createPostgresDb } from '../src/node/postgres'
import { ADMIN_TOKEN, brokerClient } from './helpers'
import { type Running, startServer } from './node-process'

/**
 * Several brokers as an ISV runs them behind a load balancer: N real `npm start` processes on ONE
 * PostgreSQL database, with the same ADMIN_TOKEN and ENCRYPTION_KEY (contract §12: every instance
 * the same). Requests go round-robin or to a chosen instance; the test reads the database itself
 * to count what only the database knows (migrations, deliveries, leases).
 */

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
    const outcomes = await Promise.allSettled(
      Array.from({ length: count }, async () => {
        // Each its own working folder: nothing of one instance may be shared through the disk.
        const dir = mkdtempSync(join(tmpdir(), 'marketbridge-instance-'))
        dirs.push(dir)
        return startServer(dir, { ...env, ...extra }, { startTimeoutMs: 60_000 })
      }),
    )
    // Those that did start are ours to stop even when another failed (close() kills them).
    const started = outcomes.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []))
    all.push(...started)
    everyone.push(...started)
    const failed = outcomes.find((outcome) => outcome.status === 'rejected')
    if (failed) throw (failed as PromiseRejectedResult).reason
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
