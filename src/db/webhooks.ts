import { type CompiledQuery, type Insertable, type RawBuilder, type SqlBool, sql } from 'kysely'
import { type Statement, insertWhere, returningWith } from './batch'
import { compiledQuery } from './compiled'
import type { DB, Executor, WebhookDeliveriesTable, WebhookDeliveryRow } from './schema'
import { claimDue, notHeld, olderThan, pageOf } from './outbox'

/** The webhook outbox (migration 0006): each hand-over one statement, as D1 needs. */

/** Inserts a delivery, with `also` (its audit entry) in the same atomic write. */
export async function insertDelivery(db: DB, row: Insertable<WebhookDeliveriesTable>, also: Statement[] = []): Promise<WebhookDeliveryRow> {
  return (await returningWith<WebhookDeliveryRow>(db, db.insertInto('webhook_deliveries').values(row).returningAll(), also))[0]!
}

/** What a delivery built by the domain (src/domain/envelopes.ts) sets; the rest are the table's defaults. */
const DELIVERY_COLUMNS = ['id', 'org_id', 'event_id', 'type', 'payload', 'status', 'next_attempt_at', 'created_at', 'updated_at', 'trace_parent'] as const
export type NewDelivery = Pick<Insertable<WebhookDeliveriesTable>, (typeof DELIVERY_COLUMNS)[number]>

/**
 * The insert of a delivery, made only while its org has a webhookUrl (the org's setting at the
 * moment of the write decides, as it does for the event the delivery is written with), and only
 * when `condition` holds (compiled once per `key`: the condition's text must be the same for one
 * key; its values are parameters). Every column is text, so the SELECT's untyped parameters
 * need no cast on PostgreSQL.
 */
export function deliveryIfHooked(
  db: Executor,
  row: NewDelivery,
  condition?: { key: string; where: (p: <T>(name: string) => T) => RawBuilder<SqlBool>; values: Record<string, unknown> },
): CompiledQuery {
  return compiledQuery(
    db,
    `deliveryIfHooked${condition ? `:${condition.key}` : ''}`,
    (p) => {
      const hooked = sql<SqlBool>`exists (select 1 from orgs where id = ${p('org_id')} and webhook_url is not null)`
      return insertWhere(db, 'webhook_deliveries', DELIVERY_COLUMNS, p, condition ? sql<SqlBool>`${hooked} and ${condition.where(p)}` : hooked)
    },
    { event_id: null, ...row, ...condition?.values },
  )
}

export function findDelivery(db: DB, orgId: string, id: string): Promise<WebhookDeliveryRow | undefined> {
  return db.selectFrom('webhook_deliveries').selectAll().where('org_id', '=', orgId).where('id', '=', id).executeTakeFirst()
}

/** Leases up to `limit` due deliveries for one attempt each (see claimDue). */
export function claimDueDeliveries(db: DB, now: string, leaseUntil: string, limit: number): Promise<WebhookDeliveryRow[]> {
  return claimDue(db, 'webhook_deliveries', now, leaseUntil, limit, false)
}

/** The delivery holds the lease `leaseUntil` (the one a statement before in the same atomic write took). */
export const leasedAs = (id: string, leaseUntil: string) =>
  sql<SqlBool>`exists (select 1 from webhook_deliveries where id = ${id} and lease_until = ${leaseUntil})`

/**
 * Leases a delivery for one attempt: a PENDING one that is due, or (`force`: a manual retry) any
 * one nobody holds; `also` (a retry's audit entry, conditioned on leasedAs) in the same atomic write.
 */
export async function leaseDelivery(db: DB, id: string, now: string, leaseUntil: string, force = false, also: Statement[] = []): Promise<WebhookDeliveryRow | undefined> {
  let query = db
    .updateTable('webhook_deliveries')
    .set({ lease_until: leaseUntil, updated_at: now })
    .where('id', '=', id)
    .where(notHeld(now))
  query = force ? query : query.where('status', '=', 'PENDING').where('next_attempt_at', '<=', now)
  return (await returningWith<WebhookDeliveryRow>(db, query.returningAll(), also))[0]
}

export async function recordAttempt(
  db: DB,
  id: string,
  outcome: { status: WebhookDeliveryRow['status']; statusCode: number | null; error: string | null; nextAttemptAt: string | null; now: string },
): Promise<WebhookDeliveryRow | undefined> {
  return db
    .updateTable('webhook_deliveries')
    .set((eb) => ({
      status: outcome.status,
      attempts: eb('attempts', '+', 1),
      last_status_code: outcome.statusCode,
      last_error: outcome.error,
      next_attempt_at: outcome.nextAttemptAt,
      lease_until: null,
      updated_at: outcome.now,
    }))
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst()
}

export async function listDeliveries(
  db: DB,
  query: { orgId: string; status?: string; limit: number; before?: { createdAt: string; id: string } },
): Promise<{ rows: WebhookDeliveryRow[]; hasMore: boolean }> {
  let select = db.selectFrom('webhook_deliveries').selectAll().where('org_id', '=', query.orgId)
  if (query.status) select = select.where('status', '=', query.status as WebhookDeliveryRow['status'])
  if (query.before) select = select.where(olderThan(query.before))
  const rows = await select.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(query.limit + 1).execute()
  return pageOf(rows, query.limit)
}

/** The deliveries of one entitlement's events (joined by event id), newest first, at most `limit`. */
export function listEventDeliveries(db: DB, orgId: string, entitlementId: string, limit: number): Promise<WebhookDeliveryRow[]> {
  return db
    .selectFrom('webhook_deliveries')
    .innerJoin('entitlement_events', 'entitlement_events.id', 'webhook_deliveries.event_id')
    .selectAll('webhook_deliveries')
    .where('entitlement_events.entitlement_id', '=', entitlementId)
    .where('webhook_deliveries.org_id', '=', orgId)
    .orderBy('webhook_deliveries.created_at', 'desc')
    .orderBy('webhook_deliveries.id', 'desc')
    .limit(limit)
    .execute()
}
