// The PostgreSQL column of `npm run bench`: the broker's read, list page and Azure landing with
// DATABASE_URL=postgres://… (one instance, its default pool of 10), measured interleaved with the
// same baselines A and B as the SQLite rows, and the landing with three instances on one
// PostgreSQL database (contract §12), the load split over them. Needs a PostgreSQL server at
// BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres); without one the column
// says so and the rest of the bench runs as before. The database it creates (mb_test_<random>) is
// dropped at the end.
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { type LoadResult, brokerEnv, createBenchOrg, landingJob, load, nextPort, partners, seedEntitlements, start, statuses } from './harness'

const SERVER_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'

export interface PostgresRuns {
  read: LoadResult[]
  baselineA: LoadResult[]
  list: LoadResult[]
  landing: LoadResult[]
  baselineB: LoadResult[]
  /** Three instances on one database, the landings split over them. */
  landing3: LoadResult[]
}

export type PostgresBench = { available: false; reason: string } | ({ available: true; seedSeconds: number } & PostgresRuns)

export interface PostgresBenchOptions {
  emulatorUrl: string
  baselineAUrl: string
  baselineBUrl: string
  entitlements: number
  duration: number
  landingRun: number
  /** run.ts's warm-up-then-measure, interleaved with the other jobs. */
  interleave: (...jobs: Array<() => Record<string, unknown> | Promise<Record<string, unknown>>>) => Promise<LoadResult[][]>
}

async function admin(statement: string): Promise<void> {
  const client = new pg.Client({ connectionString: SERVER_URL, connectionTimeoutMillis: 3_000 })
  await client.connect()
  try {
    await client.query(statement)
  } finally {
    await client.end()
  }
}

export async function runPostgresBench(o: PostgresBenchOptions): Promise<PostgresBench> {
  const name = `mb_test_${randomBytes(6).toString('hex')}`
  try {
    await admin(`create database ${name}`)
  } catch (error) {
    return { available: false, reason: `no PostgreSQL at ${new URL(SERVER_URL).host} (${error instanceof Error ? error.message : String(error)})` }
  }
  const url = new URL(SERVER_URL)
  url.pathname = `/${name}`
  const databaseUrl = url.toString()
  const servers: Array<Awaited<ReturnType<typeof start>>> = []
  try {
    const seedStarted = Date.now()
    const { deps, org, apiKey } = await createBenchOrg(databaseUrl, o.emulatorUrl)
    const ids = await seedEntitlements(deps.db, org.id, o.entitlements)
    await deps.db.destroy()
    const seedSeconds = (Date.now() - seedStarted) / 1000
    console.log(`PostgreSQL: seeded ${o.entitlements} entitlements through the data layer in ${Math.round(seedSeconds * 10) / 10} s`)

    const startBroker = async () => {
      const port = nextPort()
      servers.push(await start('src/node.ts', [], { env: { ...brokerEnv(databaseUrl, o.emulatorUrl), PORT: String(port) }, ready: /listening on/ }))
      return `http://127.0.0.1:${port}`
    }
    const brokerUrl = await startBroker()
    const auth = { authorization: `Bearer ${apiKey}` }

    const readPaths = Array.from({ length: 20_000 }, () => `/api/v1/orgs/${org.id}/entitlements/${ids[Math.floor(Math.random() * ids.length)]}`)
    const [baselineA, read] = await o.interleave(
      () => ({ url: o.baselineAUrl, connections: 10, duration: o.duration, paths: ['/entitlement'] }),
      () => ({ url: brokerUrl, connections: 10, duration: o.duration, paths: readPaths, headers: auth }),
    )
    const listPaths = partners.flatMap((p) => statuses.map((s) => `/api/v1/orgs/${org.id}/entitlements?limit=100&partner=${p}&status=${s}`))
    const [list] = await o.interleave(() => ({ url: brokerUrl, connections: 10, duration: o.duration, paths: listPaths, headers: auth }))
    const [baselineB, landing] = await o.interleave(
      () => landingJob(o.baselineBUrl, org.id, o.emulatorUrl, o.landingRun, 10),
      () => landingJob(brokerUrl, org.id, o.emulatorUrl, o.landingRun, 10),
    )

    // Two more instances beside the first, on the same database: the same landings, the same 10
    // connections in all, split over the three (as a round-robin load balancer would).
    const urls = [brokerUrl, await startBroker(), await startBroker()]
    const [landing3] = await o.interleave(async () => ({ ...(await landingJob(brokerUrl, org.id, o.emulatorUrl, o.landingRun, 10)), urls }))
    return { available: true, seedSeconds, read: read!, baselineA: baselineA!, list: list!, landing: landing!, baselineB: baselineB!, landing3: landing3! }
  } finally {
    for (const server of servers) server.child.kill('SIGTERM')
    await Promise.all(servers.map((server) => server.exited))
    await admin(`drop database if exists ${name} with (force)`)
  }
}
