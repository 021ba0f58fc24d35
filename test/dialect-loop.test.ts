import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'kysely'
import pg from 'pg'
import { afterAll, expect, test } from 'vitest'
import { createTestBroker } from './helpers'
import { startServer } from './node-process'
import { POSTGRES_BASE_URL, TEST_DIALECT } from './postgres'

/**
 * The dialect loop itself (vitest.config.ts runs this file in both projects): each project's
 * brokers really are on its dialect, a SQLite file named twice is one database on PostgreSQL too
 * (a restart finds its data), and a broker's own PostgreSQL database is gone once it closes.
 */

const dir = mkdtempSync(join(tmpdir(), 'marketbridge-loop-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

async function databaseExists(name: string) {
  const client = new pg.Client(POSTGRES_BASE_URL)
  await client.connect()
  try {
    return (await client.query('select 1 from pg_database where datname = $1', [name])).rowCount === 1
  } finally {
    await client.end()
  }
}

test(`in-process brokers run on ${TEST_DIALECT}; a file named twice is one database; a memory one is dropped on close`, async () => {
  const broker = await createTestBroker()
  const probe = TEST_DIALECT === 'postgres' ? sql<{ name: string }>`select current_database() as name` : sql<{ name: string }>`select sqlite_version() as name`
  const { rows: [own] } = await probe.execute(broker.deps.db)
  if (TEST_DIALECT === 'postgres') expect(own!.name).toMatch(/^mb_test_[0-9a-f]{16}$/)
  await broker.close()
  if (TEST_DIALECT === 'postgres') expect(await databaseExists(own!.name)).toBe(false)

  const file = `sqlite:${join(dir, 'shared.db')}`
  const first = await createTestBroker({ DATABASE_URL: file })
  const { org } = await first.createOrg({ name: 'Shared' })
  const second = await createTestBroker({ DATABASE_URL: file })
  expect((await second.request(`/api/v1/orgs/${org.id}`)).status).toBe(200)
  await Promise.all([first.close(), second.close()])
})

test(`npm start runs on ${TEST_DIALECT}, and a restart in the same folder finds its data`, async () => {
  const cwd = mkdtempSync(join(dir, 'server-'))
  const env = { ADMIN_TOKEN: 'loop-admin-token-0123456789abc', DATABASE_URL: 'sqlite:./broker.db' }
  const admin = { authorization: `Bearer ${env.ADMIN_TOKEN}`, 'content-type': 'application/json' }
  const server = await startServer(cwd, env)
  const created = await fetch(`${server.url}/api/v1/orgs`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'Acme', fulfillmentUrl: 'https://a.example/s' }) })
  const { org } = (await created.json()) as { org: { id: string } }
  expect(await server.stop()).toBe(0)
  const again = await startServer(cwd, env)
  try {
    expect((await fetch(`${again.url}/api/v1/orgs/${org.id}`, { headers: admin })).status).toBe(200)
  } finally {
    await again.stop()
  }
})
