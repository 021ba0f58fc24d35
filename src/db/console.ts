import { sql } from 'kysely'
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

// The `status in (…)` conditions below are written exactly as the partial indexes' (migration 0014).

/** The org's webhook deliveries that are PENDING or FAILED, per status. */
export async function openDeliveryCounts(db: DB, orgId: string): Promise<Array<{ status: string; count: number }>> {
  const rows = await db
    .selectFrom('webhook_deliveries')
    .select(['status', (eb) => eb.fn.countAll().as('count')])
    .where('org_id', '=', orgId)
    .where(sql<boolean>`status in ('PENDING', 'FAILED')`)
    .groupBy('status')
    .execute()
  return rows.map((row) => ({ status: row.status, count: Number(row.count) }))
}

/** The org's usage records that are PENDING or REJECTED, per status. */
export async function openUsageCounts(db: DB, orgId: string): Promise<Array<{ status: string; count: number }>> {
  const rows = await db
    .selectFrom('usage_records')
    .select(['status', (eb) => eb.fn.countAll().as('count')])
    .where('org_id', '=', orgId)
    .where(sql<boolean>`status in ('PENDING', 'REJECTED')`)
    .groupBy('status')
    .execute()
  return rows.map((row) => ({ status: row.status, count: Number(row.count) }))
}
