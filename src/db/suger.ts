import { type Insertable, type SqlBool, sql } from 'kysely'
import { type Statement, atomically } from './batch'
import { ENTITLEMENT_COLUMNS } from './entitlements'
import { jsonText } from './functions'
import { pageOf } from './outbox'
import type { DB, EntitlementRow, SugerUsageGroupRecordsTable, SugerUsageGroupRow, SugerUsageGroupsTable, UsageRecordsTable } from './schema'
import { chunks, recordInsertStatements } from './usage'

/**
 * The Suger-compatible API's reads and writes (contract §15): entitlement lists with Suger's
 * filters and offset paging, a buyer's entitlements, and the usage-record groups of migration 0015.
 */

/** A buyer as the `byr_…` id names one: the marketplace and the account key (account id, else customer id). */
export interface BuyerKey {
  partner: string
  key: string
}

/** The buyer's key as SQL: `buyer.accountId`, else `buyer.customerId` (the entitlement's externalBuyerID). */
const buyerKeyOf = (db: DB) => sql<string | null>`coalesce(${jsonText(db, 'buyer', 'accountId')}, ${jsonText(db, 'buyer', 'customerId')})`

export interface SugerEntitlementQuery {
  orgId: string
  partner?: string
  productId?: string
  planId?: string
  externalId?: string
  /** `buyer.accountId` (Suger: the AWS account; any marketplace's account here). */
  buyerAccountId?: string
  buyer?: BuyerKey
  limit: number
  offset: number
}

/** The org's entitlements that match every filter given, newest first, one page by offset. */
export function listEntitlements(db: DB, query: SugerEntitlementQuery): Promise<EntitlementRow[]> {
  let select = db.selectFrom('entitlements').select(ENTITLEMENT_COLUMNS).where('org_id', '=', query.orgId)
  if (query.partner !== undefined) select = select.where('partner', '=', query.partner)
  if (query.productId !== undefined) select = select.where('product_id', '=', query.productId)
  if (query.planId !== undefined) select = select.where('plan_id', '=', query.planId)
  if (query.externalId !== undefined) select = select.where('external_id', '=', query.externalId)
  if (query.buyerAccountId !== undefined) select = select.where(jsonText(db, 'buyer', 'accountId'), '=', query.buyerAccountId)
  if (query.buyer !== undefined) select = select.where('partner', '=', query.buyer.partner).where(buyerKeyOf(db), '=', query.buyer.key)
  return select.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(query.limit).offset(query.offset).execute() as Promise<EntitlementRow[]>
}

/** The org's entitlements among `ids`, by id. */
export async function findEntitlements(db: DB, orgId: string, ids: string[]): Promise<Map<string, EntitlementRow>> {
  const found = new Map<string, EntitlementRow>()
  for (const part of chunks([...new Set(ids)])) {
    const rows = await db.selectFrom('entitlements').select(ENTITLEMENT_COLUMNS).where('org_id', '=', orgId).where('id', 'in', part).execute()
    for (const row of rows) found.set(row.id, row as EntitlementRow)
  }
  return found
}

// ---- usage-record groups -------------------------------------------------------------------

/** Which of `ids` the org has a usage-record group of. */
export async function findGroupIds(db: DB, orgId: string, ids: string[]): Promise<Set<string>> {
  const found = new Set<string>()
  for (const part of chunks([...new Set(ids)])) {
    const rows = await db.selectFrom('suger_usage_groups').select('id').where('org_id', '=', orgId).where('id', 'in', part).execute()
    for (const row of rows) found.add(row.id)
  }
  return found
}

/**
 * Stores groups with their usage records and the links between them in one atomic write. Nothing
 * is skipped: a group id or a record's idempotency key that is taken (another request stored it
 * first) fails the write, and then none of it is stored.
 */
export async function insertGroups(
  db: DB,
  groups: Array<Insertable<SugerUsageGroupsTable>>,
  links: Array<Insertable<SugerUsageGroupRecordsTable>>,
  records: Array<Insertable<UsageRecordsTable>>,
): Promise<void> {
  // As many rows per statement as the dialect binds (D1: 100 parameters).
  const per = (columns: number) => Math.min(500, Math.floor(db.dialect.maxParameters / columns))
  const statements: Statement[] = [
    ...chunks(groups, per(9)).map((values) => db.insertInto('suger_usage_groups').values(values)),
    ...recordInsertStatements(db, records),
    ...chunks(links, per(3)).map((values) => db.insertInto('suger_usage_group_records').values(values)),
  ]
  await atomically(db, statements)
}

export type GroupStatus = 'CREATED' | 'REPORTED' | 'REPORT_FAILED'

export interface GroupQuery {
  orgId: string
  /** created_at >= from and < until (ISO times). */
  from: string
  until: string
  partner?: string
  entitlementId?: string
  buyerId?: string
  status?: GroupStatus
  limit: number
  offset: number
}

/** A record of the group (`g`) in this status exists. */
function groupHas(status: 'PENDING' | 'REJECTED') {
  return sql<SqlBool>`exists (select 1 from suger_usage_group_records l inner join usage_records u on u.id = l.record_id
    where l.org_id = g.org_id and l.group_id = g.id and u.status = ${status})`
}

/** The org's groups of a creation-time range that match the filters, newest first, one page by offset. */
export async function listGroups(db: DB, query: GroupQuery): Promise<{ rows: SugerUsageGroupRow[]; hasMore: boolean }> {
  let select = db
    .selectFrom('suger_usage_groups as g')
    .selectAll('g')
    .where('g.org_id', '=', query.orgId)
    .where('g.created_at', '>=', query.from)
    .where('g.created_at', '<', query.until)
  if (query.partner !== undefined) select = select.where('g.partner', '=', query.partner)
  if (query.entitlementId !== undefined) select = select.where('g.entitlement_id', '=', query.entitlementId)
  if (query.buyerId !== undefined) select = select.where('g.buyer_id', '=', query.buyerId)
  // The status is its records': REPORT_FAILED once one was rejected, else CREATED while one is pending, else REPORTED.
  if (query.status === 'REPORT_FAILED') select = select.where(groupHas('REJECTED'))
  if (query.status === 'CREATED') select = select.where(sql<SqlBool>`not ${groupHas('REJECTED')} and ${groupHas('PENDING')}`)
  if (query.status === 'REPORTED') select = select.where(sql<SqlBool>`not ${groupHas('REJECTED')} and not ${groupHas('PENDING')}`)
  const rows = await select.orderBy('g.created_at', 'desc').orderBy('g.seq', 'desc').limit(query.limit + 1).offset(query.offset).execute()
  return pageOf(rows, query.limit)
}

/** What a group's records say about it. */
export interface GroupState {
  pending: number
  rejected: number
  /** When its last record was reported, if one was. */
  reportedAt: string | null
  /** When its last record was settled (reported or rejected), if one was. */
  settledAt: string | null
}

/** The state of each of the org's groups among `ids`, from its records (and the reports that settled them). */
export async function groupStates(db: DB, orgId: string, ids: string[]): Promise<Map<string, GroupState>> {
  const found = new Map<string, GroupState>()
  for (const part of chunks([...new Set(ids)])) {
    const { rows } = await sql<{ group_id: string; pending: number | string; rejected: number | string; reported_at: string | null; settled_at: string | null }>`
      select l.group_id,
        sum(case when u.status = 'PENDING' then 1 else 0 end) as pending,
        sum(case when u.status = 'REJECTED' then 1 else 0 end) as rejected,
        max(u.reported_at) as reported_at,
        max(case when u.status <> 'PENDING' then coalesce(u.reported_at, r.updated_at) end) as settled_at
      from suger_usage_group_records l
      inner join usage_records u on u.id = l.record_id
      left join usage_reports r on r.id = u.report_id
      where l.org_id = ${orgId} and l.group_id in (${sql.join(part)})
      group by l.group_id`.execute(db)
    // PostgreSQL's sum() is a bigint, which pg answers as text.
    for (const row of rows) found.set(row.group_id, { pending: Number(row.pending), rejected: Number(row.rejected), reportedAt: row.reported_at, settledAt: row.settled_at })
  }
  return found
}
