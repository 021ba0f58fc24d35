import { type Compilable, type Insertable, type RawBuilder, type SqlBool, sql } from 'kysely'
import { type Statement, atomically, atomicallyReturning } from './batch'
import { type Placeholder, compiledQuery, placeholders } from './compiled'
import { round6 } from './functions'
import { notHeld, olderThan, pageOf } from './outbox'
import { ENTITLEMENT_COLUMNS } from './entitlements'
import type { DB, EntitlementRow, UsageRecordRow, UsageRecordsTable, UsageReportRow } from './schema'
import { type NewDelivery, deliveryIfHooked } from './webhooks'

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
  // D1's calls belong to the request that makes them: no other request's write may share one.
  if (db.dialect.requestScoped) return insertNow(db, rows)
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

/** Statements per D1 batch. */
const D1_BATCH = 50
/** Rows per multi-row insert where each statement is a round trip (PostgreSQL). */
const ROWS_PER_INSERT = 500

async function insertNow(db: DB, rows: Array<Insertable<UsageRecordsTable>>): Promise<Set<string>> {
  const insert = (values: Array<Insertable<UsageRecordsTable>>) =>
    db.insertInto('usage_records').values(values).onConflict((oc) => oc.columns(['org_id', 'idempotency_key']).doNothing()).returning('id')
  // As many rows per statement as the dialect binds parameters for (D1: 100, so 6 rows of 16).
  const perInsert = Math.min(ROWS_PER_INSERT, Math.floor(db.dialect.maxParameters / RECORD_COLUMNS.length))
  let results: unknown[][]
  if (db.dialect.atomicity === 'batch') {
    // Few statements (D1 counts each one): a few rows each, a few batches for a whole bulk request.
    const statements = chunks(rows, perInsert).map(insert)
    results = []
    for (const part of chunks(statements, D1_BATCH)) results.push(...(await atomicallyReturning(db, part)))
  } else if (db.dialect.name === 'sqlite') {
    // In-process: one compiled statement per row costs less than building a multi-row one.
    const build = (p: Placeholder) => insert([placeholders(p, RECORD_COLUMNS) as Insertable<UsageRecordsTable>])
    results = await atomicallyReturning(db, rows.map((row) => compiledQuery(db, 'insertUsageRecord', build, row)))
  } else {
    // Over the network: few round trips, in one transaction.
    results = await atomicallyReturning(db, chunks(rows, perInsert).map(insert))
  }
  return new Set(results.flatMap((rows) => (rows as Array<{ id: string }>).map((row) => row.id)))
}

/**
 * The inserts of `rows` as statements to make part of a caller's atomic write (db/batch.ts), as
 * many rows per statement as the dialect binds. Unlike `insertRecords` a key that is taken is not
 * skipped: the statement fails and with it the whole write.
 */
export function recordInsertStatements(db: DB, rows: Array<Insertable<UsageRecordsTable>>): Statement[] {
  const perInsert = Math.min(ROWS_PER_INSERT, Math.floor(db.dialect.maxParameters / RECORD_COLUMNS.length))
  return chunks(rows, perInsert).map((values) => db.insertInto('usage_records').values(values))
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
 * the same whichever process closes the hour. Two instances closing one hour at once
 * (PostgreSQL): the second's inserts wait for the first's to commit and then do nothing (`on
 * conflict`), and its later statements see the first's links, so it adds nothing.
 */
export async function closeHour(db: DB, hour: string, run: string, now: string): Promise<void> {
  const rounded = (value: RawBuilder<unknown>) => round6(db, value)
  const main = sql<string>`(select m.id from usage_reports m where m.entitlement_id = usage_records.entitlement_id and m.dimension = usage_records.dimension and m.hour = usage_records.hour and m.late = 0 and m.close_run = ${run})`
  // The hour's unreported records are claimed first, in the first statement, and every later one
  // works on that claim only. On PostgreSQL (READ COMMITTED) each statement sees what others
  // committed before it began: a record another instance stored meanwhile would otherwise be
  // linked to a report whose sum was taken without it (or to no report at all). A record stored
  // after the claim waits for the next close and joins its hour's report then. The claim never
  // outlives the write: the last statement links every claimed record.
  const claim = `closing:${run}`
  const statements = [
    sql`update usage_records set report_id = ${claim} where report_id is null and hour = ${hour}`,
    sql`insert into usage_reports (id, org_id, entitlement_id, partner, dimension, hour, timestamp, quantity, records, late, status, attempts, next_attempt_at, close_run, created_at, updated_at)
        select 'rpt_' || substr(min(r.id), 5), r.org_id, r.entitlement_id, r.partner, r.dimension, r.hour, r.hour, ${rounded(sql`sum(r.quantity)`)}, count(*), 0, 'PENDING', 0, ${now}, ${run}, ${now}, ${now}
        from usage_records r
        where r.report_id = ${claim} and r.hour = ${hour}
          and not exists (select 1 from usage_reports m where m.entitlement_id = r.entitlement_id and m.dimension = r.dimension and m.hour = r.hour and m.late = 0)
        group by r.entitlement_id, r.dimension, r.org_id, r.partner, r.hour
        on conflict do nothing`,
    sql`update usage_records set report_id = ${main} where report_id = ${claim} and ${main} is not null`,
    // Records after the close join their hour's report while nobody has tried to send it (a lease
    // for an attempt counts it in the same statement, so a report being sent is never changed;
    // one only claimed by a run that is planning its batches still takes them, see claimDueReports).
    sql`update usage_reports set
          quantity = ${rounded(sql`quantity + (select sum(r.quantity) from usage_records r where r.report_id = ${claim} and r.hour = usage_reports.hour and r.entitlement_id = usage_reports.entitlement_id and r.dimension = usage_reports.dimension)`)},
          records = records + (select count(*) from usage_records r where r.report_id = ${claim} and r.hour = usage_reports.hour and r.entitlement_id = usage_reports.entitlement_id and r.dimension = usage_reports.dimension),
          close_run = ${run}, updated_at = ${now}
        where hour = ${hour} and late = 0 and status = 'PENDING' and attempts = 0
          and exists (select 1 from usage_records r where r.report_id = ${claim} and r.hour = usage_reports.hour and r.entitlement_id = usage_reports.entitlement_id and r.dimension = usage_reports.dimension)`,
    sql`update usage_records set report_id = ${main} where report_id = ${claim} and ${main} is not null`,
    sql`insert into usage_reports (id, org_id, entitlement_id, partner, dimension, hour, timestamp, quantity, records, late, status, attempts, next_attempt_at, close_run, created_at, updated_at)
        select 'rpt_' || substr(r.id, 5), r.org_id, r.entitlement_id, r.partner, r.dimension, r.hour, r.timestamp, r.quantity, 1, 1, 'PENDING', 0, ${now}, ${run}, ${now}, ${now}
        from usage_records r where r.report_id = ${claim} and r.hour = ${hour}
        on conflict do nothing`,
    sql`update usage_records set report_id = 'rpt_' || substr(id, 5) where report_id = ${claim}`,
  ]
  await atomically(db, statements.map((statement) => compilable(db, statement)))
}

/** Reports due for an attempt that nobody holds, oldest first (the caller says what to select). */
function due(db: DB, now: string, limit: number) {
  return db
    .selectFrom('usage_reports')
    .where('status', '=', 'PENDING')
    .where('next_attempt_at', '<=', now)
    .where(notHeld(now))
    .orderBy('next_attempt_at')
    .orderBy('id')
    .limit(limit)
}

/** Reports due for an attempt that nobody holds, oldest first. */
export function dueReports(db: DB, now: string, limit: number): Promise<UsageReportRow[]> {
  return due(db, now, limit).selectAll().execute()
}

/**
 * Claims up to `limit` due reports for one run of the reporter (`owner`), oldest first, in one
 * statement that re-checks the lease as it writes: each report is planned and sent by one run
 * (on PostgreSQL SKIP LOCKED: instances claiming at once take different reports). The run then
 * leases each batch for its attempt (`leaseReports` with `claimedBy`); what it does not get to
 * is free again when this lease runs out. No attempt is counted here.
 */
export async function claimDueReports(db: DB, now: string, leaseUntil: string, owner: string, limit: number): Promise<UsageReportRow[]> {
  const chosen = due(db, now, limit).select('id')
  // Usually there is none: a read says so without a write.
  if (!(await chosen.executeTakeFirst())) return []
  const rows = await db
    .updateTable('usage_reports')
    .set({ lease_until: leaseUntil, lease_owner: owner })
    .where('id', 'in', db.dialect.skipLocked ? chosen.forUpdate().skipLocked() : chosen)
    .where('status', '=', 'PENDING')
    .where('next_attempt_at', '<=', now)
    .where(notHeld(now))
    .returningAll()
    .execute()
  // RETURNING keeps no order.
  return rows.sort((a, b) => (a.next_attempt_at === b.next_attempt_at ? (a.id < b.id ? -1 : 1) : a.next_attempt_at < b.next_attempt_at ? -1 : 1))
}

/**
 * Takes reports for one attempt: counted before the call, and their reporting time fixed at the
 * first one (`floor`: the earliest time the marketplace still takes, '' when it has no bound).
 * Only reports nobody holds, or held by the run that claimed them (`claimedBy`).
 */
export function leaseReports(db: DB, ids: string[], now: string, leaseUntil: string, floor: string, owner: string, claimedBy?: string): Promise<UsageReportRow[]> {
  return db
    .updateTable('usage_reports')
    .set((eb) => ({
      lease_until: leaseUntil,
      lease_owner: owner,
      attempts: eb('attempts', '+', 1),
      // The later of the two (ISO texts compare as times); SQLite's scalar max() is not PostgreSQL's.
      send_timestamp: sql<string>`coalesce(send_timestamp, case when ${sql.ref('timestamp')} > ${floor} then ${sql.ref('timestamp')} else ${floor} end)`,
      updated_at: now,
    }))
    .where('id', 'in', ids)
    .where('status', '=', 'PENDING')
    .where(claimedBy ? sql<SqlBool>`(${notHeld(now)} or ${sql.ref('lease_owner')} = ${claimedBy})` : notHeld(now))
    .returningAll()
    .execute()
}

export type ReportSettlement = (
  | { id: string; status: 'REPORTED' | 'REJECTED'; marketplaceStatus: string | null; error: string | null }
  | { id: string; status: 'PENDING'; error: string; nextAttemptAt: string }
) & {
  /** The lease it was sent under; absent: settled without a call, only while nobody holds it. */
  owner?: string
  /**
   * Its `usage.reported` delivery (built from `reportsToAnnounce`), and the record count it was
   * built for: the settlement is made only while the report still carries that many records.
   */
  announce?: { delivery: NewDelivery; records: number }
}

/** Reports settled per atomic write (D1 counts every statement of a batch). */
const SETTLE_CHUNK = 25

/** Most record ids a usage.reported webhook lists (the count is always there). */
export const WEBHOOK_RECORD_IDS = 1000

/** What a `usage.reported` webhook shows of a report. */
export interface ReportToAnnounce {
  report: UsageReportRow
  /** Its entitlement's status (null if the entitlement is gone). */
  entitlementStatus: string | null
  /** The ids of its first WEBHOOK_RECORD_IDS records, in order. */
  recordIds: string[]
}

/** The reports among `ids` whose org has a webhookUrl, with what their `usage.reported` shows. */
export async function reportsToAnnounce(db: DB, ids: string[]): Promise<Map<string, ReportToAnnounce>> {
  const found = new Map<string, ReportToAnnounce>()
  for (const part of chunks([...new Set(ids)])) {
    const rows = await db
      .selectFrom('usage_reports as r')
      .innerJoin('orgs as o', 'o.id', 'r.org_id')
      .leftJoin('entitlements as e', 'e.id', 'r.entitlement_id')
      .selectAll('r')
      .select('e.status as entitlement_status')
      .where('r.id', 'in', part)
      .where('o.webhook_url', 'is not', null)
      .execute()
    for (const { entitlement_status, ...report } of rows) found.set(report.id, { report, entitlementStatus: entitlement_status, recordIds: [] })
  }
  for (const part of chunks([...found.keys()])) {
    const { rows } = await sql<{ report_id: string; id: string }>`
      select report_id, id from (
        select report_id, id, row_number() over (partition by report_id order by id) as n from usage_records where report_id in (${sql.join(part)})
      ) ranked where n <= ${WEBHOOK_RECORD_IDS} order by report_id, id`.execute(db)
    for (const row of rows) found.get(row.report_id)!.recordIds.push(row.id)
  }
  return found
}

/**
 * The outcomes of one batch, in one atomic write: each settled report with its records and its
 * `usage.reported` delivery (when it has one and its org still has a webhookUrl); a report still
 * pending gets its next attempt. A report is settled once: the statements only touch it while it
 * is PENDING and this caller may settle it.
 */
export async function settleReports(db: DB, settlements: ReportSettlement[], now: string): Promise<void> {
  for (const part of chunks(settlements, SETTLE_CHUNK)) await atomically(db, part.flatMap((s) => settleStatements(db, s, now)))
}

function settleStatements(db: DB, s: ReportSettlement, now: string): Statement[] {
  // Only the holder of the lease settles (a lease that ran out may have passed to another process);
  // a report settled without a call only while nobody holds it; an announced one only while it
  // carries the records its webhook counts.
  // (Only usage_reports has lease columns, so the condition reads the same in every statement below.)
  const condition = (p: Placeholder) =>
    sql<SqlBool>`${s.owner ? sql`${sql.ref('lease_owner')} = ${p('owner')}` : notHeld(p('now'))}${s.announce ? sql` and ${sql.ref('records')} = ${p('records')}` : sql``}`
  const key = `${s.owner ? 'owner' : 'free'}${s.announce ? ':records' : ''}`
  const values = { owner: s.owner, now, records: s.announce?.records }
  const mine = condition((name) => values[name as keyof typeof values] as never)
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
  const reportedAt = s.status === 'REPORTED' ? now : null
  return [
    // The delivery first, while the report is still PENDING and held (the last statement settles it).
    ...(s.announce
      ? [
          deliveryIfHooked(db, s.announce.delivery, {
            key: `usageSettled:${key}`,
            where: (p) => sql<SqlBool>`exists (select 1 from usage_reports where id = ${p('reportId')} and status = 'PENDING' and ${condition(p)})`,
            values: { ...values, reportId: s.id },
          }),
        ]
      : []),
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
