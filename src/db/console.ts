import type { DB, UsageRecordsTable, WebhookDeliveriesTable } from './schema'

/**
 * The counts the console's Overview shows (contract §14). Each is one grouped query answered from
 * an index (migration 0014's (org_id, status) for deliveries and usage records, the entitlements'
 * (org_id, partner, status, …)); PostgreSQL answers counts as text (bigint).
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

/** An org's rows of `table` per status, for the given statuses (its (org_id, status) index of migration 0014). */
async function statusCounts<S extends WebhookDeliveriesTable['status'] | UsageRecordsTable['status']>(
  db: DB,
  table: 'webhook_deliveries' | 'usage_records',
  orgId: string,
  statuses: readonly S[],
) {
  const rows = await db
    .selectFrom(table)
    .select(['status', (eb) => eb.fn.countAll().as('count')])
    .where('org_id', '=', orgId)
    .where('status', 'in', statuses)
    .groupBy('status')
    .execute()
  return rows.map((row) => ({ status: row.status as S, count: Number(row.count) }))
}

/** The org's webhook deliveries that are PENDING or FAILED, per status. */
export const openDeliveryCounts = (db: DB, orgId: string) => statusCounts(db, 'webhook_deliveries', orgId, ['PENDING', 'FAILED'] as const)

/** The org's usage records that are PENDING or REJECTED, per status. */
export const openUsageCounts = (db: DB, orgId: string) => statusCounts(db, 'usage_records', orgId, ['PENDING', 'REJECTED'] as const)
