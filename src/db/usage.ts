import { type Compilable, type Insertable, type RawBuilder, type SqlBool, sql } from 'kysely'
import { atomically, atomicallyReturning, isD1 } from './batch'
import { type Placeholder, compiledQuery, placeholders } from './compiled'
import { notHeld, olderThan, pageOf } from './outbox'
import { ENTITLEMENT_COLUMNS } from './entitlements'
import type { DB, EntitlementRow, UsageRecordRow, UsageRecordsTable, UsageReportRow } from './schema'

/**
 * Usage records and the reports that carry them to the marketplaces (migration 0007). Lists of
 * ids are read in chunks: D1 binds at most 100 parameters per statement.
 */
const CHUNK = 90

/** A raw statement as a Compilable, for `atomically`. */
const compilable = (db: DB, query: RawBuilder<unknown>): Compilable => ({ compile: () => query.compile(db) })

export function chunks<T>(items: T[], size = CHUNK): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

export type UsageEntitlement = { id: string; status: string; partner: string }

/** The org's entitlements among `ids` (status and partner only). */
export async function findUsageEntitlements(db: DB, orgId: string, ids: string[]): Promise<Map<string, UsageEntitlement>> {
  const found = new Map<string, UsageEntitlement>()
  if (ids.length === 1) {
    // The single-record route's lookup, compiled once.
    const { rows } = await db.executeQuery(
      compiledQuery(db, 'findUsageEntitlement', (p) => db.selectFrom('entitlements').select(['id', 'status', 'partner']).where('org_id', '=', p('orgId')).where('id', '=', p('id')), { orgId, id: ids[0] }),
    )
    for (const row of rows) found.set(row.id, row)
    return found
  }
  for (const part of chunks([...new Set(ids)])) {
    const rows = await db.selectFrom('entitlements').select(['id', 'status', 'partner']).where('org_id', '=', orgId).where('id', 'in', part).execute()
    for (const row of rows) found.set(row.id, row)
  }
  return found
}

/** When each of `ids` last became CANCELLED (its latest CANCEL event), for those that did. */
export async function cancelledAt(db: DB, ids: string[]): Promise<Map<string, string>> {
  const found = new Map<string, string>()
  for (const part of chunks([...new Set(ids)])) {
    const rows = await db
      .selectFrom('entitlement_events')
      .select(['entitlement_id', (eb) => eb.fn.max('created_at').as('at')])
      .where('entitlement_id', 'in', part)
      .where('type', '=', 'CANCEL')
      .groupBy('entitlement_id')
      .execute()
    for (const row of rows) if (row.at) found.set(row.entitlement_id, row.at)
  }
  return found
}

/** Whole entitlement rows by id (the reporter's). */
export async function findEntitlementRows(db: DB, ids: string[]): Promise<Map<string, EntitlementRow>> {
  const found = new Map<string, EntitlementRow>()
  for (const part of chunks([...new Set(ids)])) {
    const rows = await db.selectFrom('entitlements').select(ENTITLEMENT_COLUMNS).where('id', 'in', part).execute()
    for (const row of rows) found.set(row.id, row)
  }
  return found
}

/** The org's records with these idempotency keys. */
export async function findRecordsByKey(db: DB, orgId: string, keys: string[]): Promise<Map<string, UsageRecordRow>> {
  const found = new Map<string, UsageRecordRow>()
  for (const part of chunks([...new Set(keys)])) {
    const rows = await db.selectFrom('usage_records').selectAll().where('org_id', '=', orgId).where('idempotency_key', 'in', part).execute()
    for (const row of rows) found.set(row.idempotency_key, row)
  }
  return found
}

/**
 * Inserts the records in one transaction (D1: one batch); a key that another request stored
 * first is left as it is. Answers the ids that were inserted. On SQLite, the inserts of requests
 * that arrive together share one transaction (a group commit: one WAL commit for all of them
 * instead of one each); every request still has its answer only once its rows are committed.
 */
export function insertRecords(db: DB, rows: Array<Insertable<UsageRecordsTable>>): Promise<Set<string>> {
  if (rows.length === 0) return Promise.resolve(new Set())
  if (isD1(db)) return insertNow(db, rows)
  let group = groups.get(db)
  if (!group) {
    const created: Group = { rows: [], done: [] }
    group = created
    groups.set(db, created)
    later(() => {
      groups.delete(db)
      void flush(db, created)
    })
  }
  const mine = group
  mine.rows.push(...rows)
  return new Promise((resolve, reject) => mine.done.push({ resolve, reject }))
}

interface Group {
  rows: Array<Insertable<UsageRecordsTable>>
  done: Array<{ resolve: (inserted: Set<string>) => void; reject: (error: unknown) => void }>
}
const groups = new WeakMap<DB, Group>()
/** After the I/O already waiting (the other requests that came in together) has been read. */
const later: (run: () => void) => void = (globalThis as { setImmediate?: (run: () => void) => void }).setImmediate ?? ((run) => setTimeout(run, 0))

async function flush(db: DB, group: Group) {
  try {
    const inserted = await insertNow(db, group.rows)
    for (const waiter of group.done) waiter.resolve(inserted)
  } catch (error) {
    for (const waiter of group.done) waiter.reject(error)
  }
}

const RECORD_COLUMNS = [
  'id', 'org_id', 'entitlement_id', 'partner', 'dimension', 'quantity', 'timestamp', 'timestamp_given', 'hour', 'idempotency_key',
  'status', 'marketplace_status', 'error', 'reported_at', 'report_id', 'created_at',
] as const

/** Rows per multi-row insert on D1 (16 columns: 80 bound parameters, under D1's 100). */
const D1_ROWS_PER_INSERT = 5
/** Statements per D1 batch. */
const D1_BATCH = 50

async function insertNow(db: DB, rows: Array<Insertable<UsageRecordsTable>>): Promise<Set<string>> {
  const insert = (values: Array<Insertable<UsageRecordsTable>>) =>
    db.insertInto('usage_records').values(values).onConflict((oc) => oc.columns(['org_id', 'idempotency_key']).doNothing()).returning('id')
  let results: unknown[][]
  if (isD1(db)) {
    // Few statements (D1 counts each one): a few rows each, a few batches for a whole bulk request.
    const statements = chunks(rows, D1_ROWS_PER_INSERT).map(insert)
    results = []
    for (const part of chunks(statements, D1_BATCH)) results.push(...(await atomicallyReturning(db, part)))
  } else {
    // Compiled once: a bulk request inserts a thousand of these, in one transaction.
    const build = (p: Placeholder) => insert([placeholders(p, RECORD_COLUMNS) as Insertable<UsageRecordsTable>])
    results = await atomicallyReturning(db, rows.map((row) => compiledQuery(db, 'insertUsageRecord', build, row)))
  }
  return new Set(results.flatMap((rows) => (rows as Array<{ id: string }>).map((row) => row.id)))
}

export async function listRecords(
  db: DB,
  query: { entitlementId: string; limit: number; before?: { createdAt: string; id: string } },
): Promise<{ rows: UsageRecordRow[]; hasMore: boolean }> {
  let select = db.selectFrom('usage_records').selectAll().where('entitlement_id', '=', query.entitlementId)
  if (query.before) select = select.where(olderThan(query.before))
  const rows = await select.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(query.limit + 1).execute()
  return pageOf(rows, query.limit)
}

// ---- the reporter ------------------------------------------------------------------------

/** Hours before `cutoff` that have records not yet in a report, oldest first. */
export async function closableHours(db: DB, cutoff: string, limit: number): Promise<string[]> {
  const rows = await db
    .selectFrom('usage_records')
    .select('hour')
    .distinct()
    .where('report_id', 'is', null)
    .where('hour', '<', cutoff)
    .orderBy('hour')
    .limit(limit)
    .execute()
  return rows.map((row) => row.hour)
}

/**
 * Closes one hour in one atomic write, entirely in SQL (no record is loaded): each entitlement
 * and dimension without a report for the hour gets one with the sum of its records, and those
 * records are linked to it; records for an hour whose report exists but was never tried are added
 * to it; every other record of the hour came after its hour's report was sent and gets a report
 * of its own (`late`). Report ids come from the first record they carry, so they are
 * the same whichever process closes the hour.
 */
export async function closeHour(db: DB, hour: string, run: string, now: string): Promise<void> {
  const main = sql<string>`(select m.id from usage_reports m where m.entitlement_id = usage_records.entitlement_id and m.dimension = usage_records.dimension and m.hour = usage_records.hour and m.late = 0 and m.close_run = ${run})`
  const statements = [
    sql`insert into usage_reports (id, org_id, entitlement_id, partner, dimension, hour, timestamp, quantity, records, late, status, attempts, next_attempt_at, close_run, created_at, updated_at)
        select 'rpt_' || substr(min(r.id), 5), r.org_id, r.entitlement_id, r.partner, r.dimension, r.hour, r.hour, round(sum(r.quantity), 6), count(*), 0, 'PENDING', 0, ${now}, ${run}, ${now}, ${now}
        from usage_records r
        where r.report_id is null and r.hour = ${hour}
          and not exists (select 1 from usage_reports m where m.entitlement_id = r.entitlement_id and m.dimension = r.dimension and m.hour = r.hour and m.late = 0)
        group by r.entitlement_id, r.dimension`,
    sql`update usage_records set report_id = ${main} where report_id is null and hour = ${hour} and ${main} is not null`,
    // Records after the close join their hour's report while nobody has tried to send it (a lease
    // counts an attempt in the same statement, so a report being sent is never changed).
    sql`update usage_reports set
          quantity = round(quantity + (select sum(r.quantity) from usage_records r where r.report_id is null and r.hour = usage_reports.hour and r.entitlement_id = usage_reports.entitlement_id and r.dimension = usage_reports.dimension), 6),
          records = records + (select count(*) from usage_records r where r.report_id is null and r.hour = usage_reports.hour and r.entitlement_id = usage_reports.entitlement_id and r.dimension = usage_reports.dimension),
          close_run = ${run}, updated_at = ${now}
        where hour = ${hour} and late = 0 and status = 'PENDING' and attempts = 0 and lease_until is null
          and exists (select 1 from usage_records r where r.report_id is null and r.hour = usage_reports.hour and r.entitlement_id = usage_reports.entitlement_id and r.dimension = usage_reports.dimension)`,
    sql`update usage_records set report_id = ${main} where report_id is null and hour = ${hour} and ${main} is not null`,
    sql`insert into usage_reports (id, org_id, entitlement_id, partner, dimension, hour, timestamp, quantity, records, late, status, attempts, next_attempt_at, close_run, created_at, updated_at)
        select 'rpt_' || substr(r.id, 5), r.org_id, r.entitlement_id, r.partner, r.dimension, r.hour, r.timestamp, r.quantity, 1, 1, 'PENDING', 0, ${now}, ${run}, ${now}, ${now}
        from usage_records r where r.report_id is null and r.hour = ${hour}`,
    sql`update usage_records set report_id = 'rpt_' || substr(id, 5) where report_id is null and hour = ${hour}`,
  ]
  await atomically(db, statements.map((statement) => compilable(db, statement)))
}

/** Reports due for an attempt that nobody holds, oldest first. */
export function dueReports(db: DB, now: string, limit: number): Promise<UsageReportRow[]> {
  return db
    .selectFrom('usage_reports')
    .selectAll()
    .where('status', '=', 'PENDING')
    .where('next_attempt_at', '<=', now)
    .where(notHeld(now))
    .orderBy('next_attempt_at')
    .orderBy('id')
    .limit(limit)
    .execute()
}

/**
 * Takes reports for one attempt: counted before the call, and their reporting time fixed at the
 * first one (`floor`: the earliest time the marketplace still takes, '' when it has no bound).
 */
export function leaseReports(db: DB, ids: string[], now: string, leaseUntil: string, floor: string, owner: string): Promise<UsageReportRow[]> {
  return db
    .updateTable('usage_reports')
    .set((eb) => ({
      lease_until: leaseUntil,
      lease_owner: owner,
      attempts: eb('attempts', '+', 1),
      send_timestamp: sql<string>`coalesce(send_timestamp, max(timestamp, ${floor}))`,
      updated_at: now,
    }))
    .where('id', 'in', ids)
    .where('status', '=', 'PENDING')
    .where(notHeld(now))
    .returningAll()
    .execute()
}

export type ReportSettlement = (
  | { id: string; status: 'REPORTED' | 'REJECTED'; marketplaceStatus: string | null; error: string | null }
  | { id: string; status: 'PENDING'; error: string; nextAttemptAt: string }
) & {
  /** The lease it was sent under; absent: settled without a call, only while nobody holds it. */
  owner?: string
}

/** Reports settled per atomic write (D1 counts every statement of a batch). */
const SETTLE_CHUNK = 25

/** Most record ids a usage.reported webhook lists (the count is always there). */
const WEBHOOK_RECORD_IDS = 1000

/**
 * The outcomes of one batch, in one atomic write: each settled report with its records and, when
 * the org has a webhookUrl, its `usage.reported` delivery (built here from the stored rows, so
 * the record ids are never loaded); a report still pending gets its next attempt. A report is
 * settled once: the statements only touch it while it is PENDING.
 */
export async function settleReports(db: DB, settlements: ReportSettlement[], now: string, ids: { eventId: () => string; deliveryId: () => string }): Promise<void> {
  for (const part of chunks(settlements, SETTLE_CHUNK)) await atomically(db, part.flatMap((s) => settleStatements(db, s, now, ids)))
}

function settleStatements(db: DB, s: ReportSettlement, now: string, ids: { eventId: () => string; deliveryId: () => string }): Compilable[] {
  // Only the holder of the lease settles (a lease that ran out may have passed to another process);
  // a report settled without a call only while nobody holds it.
  // (Only usage_reports has lease columns, so the condition reads the same in every statement below.)
  const mine = s.owner ? sql<SqlBool>`${sql.ref('lease_owner')} = ${s.owner}` : notHeld(now)
  if (s.status === 'PENDING') {
    return [
      db
        .updateTable('usage_reports')
        .set({ error: s.error, next_attempt_at: s.nextAttemptAt, lease_until: null, lease_owner: null, updated_at: now })
        .where('id', '=', s.id)
        .where('status', '=', 'PENDING')
        .where(mine),
    ]
  }
  const eventId = ids.eventId()
  const recordIds = sql`json((select json_group_array(id) from (select id from usage_records where report_id = r.id order by id limit ${WEBHOOK_RECORD_IDS})))`
  const reportedAt = s.status === 'REPORTED' ? now : null
  return [
    compilable(
      db,
      sql`insert into webhook_deliveries (id, org_id, event_id, type, payload, status, attempts, next_attempt_at, created_at, updated_at)
          select ${ids.deliveryId()}, r.org_id, ${eventId}, 'usage.reported',
            json_object('id', ${eventId}, 'type', 'usage.reported', 'createdAt', ${now}, 'orgId', r.org_id, 'entityType', 'ENTITLEMENT',
              'entityId', r.entitlement_id, 'action', 'USAGE', 'entityStatus', e.status, 'partner', r.partner,
              'data', json_object('entitlementId', r.entitlement_id, 'dimension', r.dimension, 'hour', r.hour, 'quantity', r.quantity,
                'status', ${s.status}, 'marketplaceStatus', ${s.marketplaceStatus}, 'error', ${s.error}, 'late', json(case when r.late = 1 then 'true' else 'false' end),
                'usageRecordIds', ${recordIds}, 'usageRecordCount', r.records)),
            'PENDING', 0, ${now}, ${now}, ${now}
          from usage_reports r join orgs o on o.id = r.org_id left join entitlements e on e.id = r.entitlement_id
          where r.id = ${s.id} and r.status = 'PENDING' and ${mine} and o.webhook_url is not null`,
    ),
    // The records first, while the report is still PENDING and held (the next statement settles it).
    db
      .updateTable('usage_records')
      .set({ status: s.status, marketplace_status: s.marketplaceStatus, error: s.error, reported_at: reportedAt })
      .where('report_id', '=', s.id)
      .where('status', '=', 'PENDING')
      .where((eb) => eb.exists(eb.selectFrom('usage_reports').select('usage_reports.id').where('usage_reports.id', '=', s.id).where('usage_reports.status', '=', 'PENDING').where(mine))),
    db
      .updateTable('usage_reports')
      .set({ status: s.status, marketplace_status: s.marketplaceStatus, error: s.error, reported_at: reportedAt, lease_until: null, lease_owner: null, updated_at: now })
      .where('id', '=', s.id)
      .where('status', '=', 'PENDING')
      .where(mine),
  ]
}
