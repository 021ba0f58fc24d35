import { type RawBuilder, sql } from 'kysely'
import type { DB } from './schema'

/**
 * The counts the console's Overview shows (contract §14). Each is one grouped query over an
 * index that holds only what it counts (migration 0014 for the deliveries and usage records;
 * entitlements by their (org, partner, status) index); PostgreSQL answers counts as text (bigint).
 */

/** The org's entitlements per marketplace and status. */
export async function entitlementCounts(db: DB, orgId: string): Promise<Array<{ partner: string; status: string; count: number }>> {
  const rows = await db
    .selectFrom('entitlements')
    .select(['partner', 'status', (eb) => eb.fn.countAll().as('count')])
    .where('org_id', '=', orgId)
    .groupBy(['partner', 'status'])
    .execute()
  return rows.map((row) => ({ partner: row.partner, status: row.status, count: Number(row.count) }))
}

/** The org's landings per UTC day (`YYYY-MM-DD`, `from` to `to` inclusive) and marketplace. */
export async function landingCounts(db: DB, orgId: string, from: string, to: string): Promise<Array<{ day: string; partner: string; landings: number }>> {
  const rows = await db
    .selectFrom('landing_counts')
    .select(['day', 'partner', 'landings'])
    .where('org_id', '=', orgId)
    .where('day', '>=', from)
    .where('day', '<=', to)
    .execute()
  return rows.map((row) => ({ day: row.day, partner: row.partner, landings: Number(row.landings) }))
}

/**
 * An org's rows of `table` per status, for the statuses `open` names: written exactly as the
 * table's partial index of migration 0014 is (`status in (…)`), which is what lets SQLite and
 * PostgreSQL count from that index alone.
 */
async function openCounts(db: DB, table: 'webhook_deliveries' | 'usage_records', open: RawBuilder<boolean>, orgId: string) {
  const rows = await db
    .selectFrom(table)
    .select(['status', (eb) => eb.fn.countAll().as('count')])
    .where('org_id', '=', orgId)
    .where(open)
    .groupBy('status')
    .execute()
  return rows.map((row) => ({ status: row.status as string, count: Number(row.count) }))
}

/** The org's webhook deliveries that are PENDING or FAILED, per status. */
export const openDeliveryCounts = (db: DB, orgId: string) => openCounts(db, 'webhook_deliveries', sql<boolean>`status in ('PENDING', 'FAILED')`, orgId)

/** The org's usage records that are PENDING or REJECTED, per status. */
export const openUsageCounts = (db: DB, orgId: string) => openCounts(db, 'usage_records', sql<boolean>`status in ('PENDING', 'REJECTED')`, orgId)
