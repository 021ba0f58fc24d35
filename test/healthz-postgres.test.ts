import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type TestBroker, createTestBroker, waitFor } from './helpers'
import { type Cluster, createTestDatabase, postgresAvailable, startCluster } from './postgres'

/**
 * GET /healthz on PostgreSQL while the server goes away: 503 promptly (a load balancer takes the
 * instance out of rotation), 200 again once it is back, without restarting the broker. On a
 * cluster of the test's own, so stopping it disturbs nobody.
 */

const PASSWORD = 'hz-secret-4471'

describe.runIf(await postgresAvailable())('/healthz on PostgreSQL', () => {
  let cluster: Cluster
  let broker: TestBroker

  beforeAll(async () => {
    cluster = await startCluster()
    const database = await createTestDatabase({ base: cluster.url })
    const url = new URL(database.url)
    url.password = PASSWORD // trust auth ignores it; the logs must not show it
    broker = await createTestBroker({ DATABASE_URL: url.toString(), DATABASE_POOL_MAX: '4' })
  })
  afterAll(async () => {
    await broker?.close()
    await cluster?.destroy()
  })

  const health = async () => {
    const started = Date.now()
    const response = await broker.request('/healthz', { token: null })
    return { status: response.status, ms: Date.now() - started }
  }
  const createOrg = () => broker.createOrg().then(() => true)

  test('a stopped server: 503 at once; started again: 200 and writes work, same broker', async () => {
    expect((await health()).status).toBe(200)
    await cluster.stop()
    const down = await health()
    expect(down.status).toBe(503)
    expect(down.ms).toBeLessThan(2_500)
    await expect(createOrg()).rejects.toThrow()
    await cluster.start()
    await waitFor('healthz 200 after the restart', async () => (await health()).status === 200, { timeoutMs: 10_000 })
    expect(await createOrg()).toBe(true)
  })

  test('a server stopped while a transaction holds a connection: the transaction fails, the process lives on', async () => {
    // pg emits 'error' on a checked-out client whose connection dies; with no listener that is an
    // uncaught exception, which ends the process (vitest reports it as an unhandled error).
    const outcome = broker.deps.db.transaction().execute(async (trx) => {
      await sql`select 1`.execute(trx)
      await cluster.stop()
      await new Promise((resolve) => setTimeout(resolve, 300))
      await sql`select 1`.execute(trx)
    })
    await expect(outcome).rejects.toThrow()
    await cluster.start()
    await waitFor('healthz 200 after the restart', async () => (await health()).status === 200, { timeoutMs: 10_000 })
    expect(await createOrg()).toBe(true)
  })

  test('a server that accepts connections and answers nothing: 503 within the health timeout, 200 once it answers', async () => {
    // Pooled connections hang on their frozen backends, new ones on the frozen postmaster.
    cluster.freeze()
    try {
      const results = await Promise.all([health(), health(), health()])
      for (const result of results) {
        expect(result.status).toBe(503)
        expect(result.ms).toBeLessThan(3_000)
      }
    } finally {
      cluster.thaw()
    }
    await waitFor('healthz 200 after the server answers again', async () => (await health()).status === 200, { timeoutMs: 15_000 })
    expect(await createOrg()).toBe(true)
    expect(broker.logs.join('\n')).toContain('health check: database unavailable')
    expect(broker.logs.join('\n')).not.toContain(PASSWORD)
  })
})
