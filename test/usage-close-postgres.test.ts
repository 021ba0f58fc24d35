import { sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { POSTGRES } from '../src/db/dialect'
import type { DB } from '../src/db/handle'
import { migrateToLatest } from '../src/db/migrate'
import * as entitlementsDb from '../src/db/entitlements'
import * as orgsDb from '../src/db/orgs'
import * as usageDb from '../src/db/usage'
import { entitlementJson } from '../src/domain/entitlements'
import { newId } from '../src/domain/ids'
import { createPostgresDb } from '../src/node/postgres'
import { waitFor } from './helpers'
import { createTestDatabase, postgresAvailable } from './postgres'

/**
 * Closing an hour on PostgreSQL while another instance stores a record of that hour. Under READ
 * COMMITTED each statement of the close sees what was committed before it began, so a record
 * committed between two of them must not be linked to a report whose sum was taken without it.
 * The interleaving is forced, not hoped for: the other session holds an uncommitted report row
 * with the id the close will insert, so the close's report insert waits on it; the other session
 * then commits its record (and removes that row) while the close is blocked there.
 */
describe.runIf(await postgresAvailable())('closing an hour on PostgreSQL', () => {
  let db: DB
  let other: pg.Client
  let drop: () => Promise<void>
  const hour = '2026-01-01T10:00:00.000Z'
  const at = '2026-01-01T11:10:00.000Z'

  beforeAll(async () => {
    const database = await createTestDatabase()
    drop = database.drop
    db = createPostgresDb(database.url, { poolMax: 4 })
    await migrateToLatest(db, POSTGRES)
    other = new pg.Client({ connectionString: database.url })
    await other.connect()
  })
  afterAll(async () => {
    await other?.end()
    await db?.destroy()
    await drop?.()
  })

  async function meteredEntitlement() {
    const orgId = newId('org')
    await orgsDb.insertOrgWithKey(
      db,
      { id: orgId, name: 'Acme', fulfillment_url: 'https://a.example/s', webhook_url: null, created_at: at, updated_at: at },
      { id: newId('key'), org_id: orgId, key_hash: `hash-${orgId}`, prefix: 'mbk_x', name: 'default', scope: 'full', created_at: at, revoked_at: null },
    )
    const { row } = await entitlementsDb.upsertEntitlement(db, {
      id: newId('ent'), org_id: orgId, partner: 'azure', partner_id: 'azure_x', external_id: newId('ext'), status: 'ACTIVE', offer_type: 'DEFAULT',
      product_id: 'offer', plan_id: 'plan', quantity: 1, buyer: '{}', term: '{}', is_free_trial: 0, is_test: 0, info: '{}', created_at: at, updated_at: at,
    }, entitlementJson)
    const record = (id: string, key: string, quantity: number) => ({
      id, org_id: orgId, entitlement_id: row.id, partner: 'azure', dimension: 'calls', quantity, timestamp: '2026-01-01T10:20:00.000Z', timestamp_given: 1,
      hour, idempotency_key: key, status: 'PENDING' as const, marketplace_status: null, error: null, reported_at: null, report_id: null, created_at: at,
    })
    return { orgId, row, record }
  }

  test('a sum keeps the precision SQLite gives it (rounded to 6 decimals from the double, not from 15 digits)', async () => {
    const { row, record } = await meteredEntitlement()
    await usageDb.insertRecords(db, [record(newId('use'), 'p1', 1234567890.1234567), record(newId('use'), 'p2', 123.456789123)])
    await usageDb.closeHour(db, hour, 'run-precision', at)
    const report = await db.selectFrom('usage_reports').select('quantity').where('entitlement_id', '=', row.id).executeTakeFirstOrThrow()
    // better-sqlite3's round(1234568013.5802461..., 6); a straight ::numeric cast gave 1234568013.58025.
    expect(report.quantity).toBe(1234568013.580246)
  })

  test('a record committed while the close runs is never linked to a sum taken without it; it joins the report at the next close', async () => {
    const { orgId, row, record } = await meteredEntitlement()
    // Ids fixed so the report's id (from the first record's) is known; the late record sorts last.
    await usageDb.insertRecords(db, [record('use_00000000000000000000000001', 'k1', 1), record('use_00000000000000000000000002', 'k2', 2)])
    const reportId = 'rpt_00000000000000000000000001'

    await other.query('begin')
    await other.query(
      `insert into usage_records (id, org_id, entitlement_id, partner, dimension, quantity, timestamp, timestamp_given, hour, idempotency_key, status, created_at)
       values ('use_00000000000000000000000003', $1, $2, 'azure', 'calls', 4, '2026-01-01T10:40:00.000Z', 1, $3, 'k3', 'PENDING', $4)`,
      [orgId, row.id, hour, at],
    )
    await other.query(
      `insert into usage_reports (id, org_id, entitlement_id, partner, dimension, hour, timestamp, quantity, records, late, status, attempts, next_attempt_at, close_run, created_at, updated_at)
       values ($1, $2, $3, 'azure', 'placeholder', $4, $4, 0, 0, 1, 'PENDING', 0, $5, 'other', $5, $5)`,
      [reportId, orgId, row.id, hour, at],
    )
    const closing = usageDb.closeHour(db, hour, 'run-1', at)
    // Polled from the pool, not from `other`: inside a transaction pg_stat_activity is a snapshot
    // taken at its first read (stats_fetch_consistency), so `other` would never see the wait.
    await waitFor('the close blocked on the uncommitted report row', async () => {
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query like 'insert into usage_reports%'`.execute(db)
      return rows[0]!.n > 0
    }, { timeoutMs: 10_000 })
    await other.query('delete from usage_reports where id = $1', [reportId])
    await other.query('commit')
    await closing

    const linked = async () => {
      const reports = await db.selectFrom('usage_reports').selectAll().where('entitlement_id', '=', row.id).execute()
      const records = await db.selectFrom('usage_records').select(['id', 'quantity', 'report_id']).where('entitlement_id', '=', row.id).orderBy('id').execute()
      // Every linked record's quantity is in its report's sum, and each report counts its records.
      for (const report of reports) {
        const mine = records.filter((r) => r.report_id === report.id)
        expect([report.quantity, report.records]).toEqual([mine.reduce((sum, r) => sum + r.quantity, 0), mine.length])
      }
      return { reports, records }
    }
    const first = await linked()
    expect(first.reports.map((r) => [r.id, r.quantity, r.records])).toEqual([[reportId, 3, 2]])
    expect(first.records.map((r) => r.report_id)).toEqual([reportId, reportId, null])

    await usageDb.closeHour(db, hour, 'run-2', at)
    const second = await linked()
    expect(second.reports.map((r) => [r.id, r.quantity, r.records])).toEqual([[reportId, 7, 3]])
    expect(second.records.every((r) => r.report_id === reportId)).toBe(true)
  })
})
