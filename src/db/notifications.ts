import type { Insertable } from 'kysely'
import type { DB, NotificationRow, NotificationsTable } from './schema'
import { claimDue, dueIds, notHeld } from './outbox'

/**
 * The notification inbox. Each hand-over is one statement (D1 has no interactive
 * transactions): the insert that dedupes by the marketplace's message id, the lease that lets
 * one worker apply a row, and the update that settles it.
 */

/** Stores a notification unless its message id is already there. True when this call stored it. */
export async function insertNotification(db: DB, row: Insertable<NotificationsTable>): Promise<boolean> {
  const inserted = await db
    .insertInto('notifications')
    .values(row)
    .onConflict((oc) => oc.columns(['org_id', 'partner', 'message_id']).doNothing())
    .returning('id')
    .executeTakeFirst()
  return inserted !== undefined
}

export function findNotificationByMessage(db: DB, orgId: string, partner: string, messageId: string): Promise<NotificationRow | undefined> {
  return db
    .selectFrom('notifications')
    .selectAll()
    .where('org_id', '=', orgId)
    .where('partner', '=', partner)
    .where('message_id', '=', messageId)
    .executeTakeFirst()
}

/** Leases the oldest due notification nobody holds, if any (see claimDue). */
export async function claimDueNotification(db: DB, now: string, leaseUntil: string): Promise<NotificationRow | undefined> {
  return (await claimDue(db, 'notifications', now, leaseUntil, 1, true))[0]
}

/** Leases a PENDING notification that is due and that nobody holds. */
export function leaseNotification(db: DB, id: string, now: string, leaseUntil: string): Promise<NotificationRow | undefined> {
  return db
    .updateTable('notifications')
    .set((eb) => ({ lease_until: leaseUntil, attempts: eb('attempts', '+', 1), updated_at: now }))
    .where('id', '=', id)
    .where('status', '=', 'PENDING')
    .where(notHeld(now))
    .where('next_attempt_at', '<=', now)
    .returningAll()
    .executeTakeFirst()
}

/** Settles a notification; a WAITING one may be re-keyed to the externalId its landing will store (`subject`). */
export async function settleNotification(
  db: DB,
  id: string,
  status: 'APPLIED' | 'IGNORED' | 'WAITING',
  now: string,
  note: string | null = null,
  subject?: string,
): Promise<void> {
  await db
    .updateTable('notifications')
    .set({ status, lease_until: null, last_error: note, updated_at: now, ...(subject ? { subject } : {}) })
    .where('id', '=', id)
    .execute()
}

export async function retryNotificationLater(db: DB, id: string, nextAttemptAt: string, error: string, now: string): Promise<void> {
  await db
    .updateTable('notifications')
    .set({ lease_until: null, next_attempt_at: nextAttemptAt, last_error: error, updated_at: now })
    .where('id', '=', id)
    .execute()
}

/** PENDING notifications whose backoff is over and that nobody holds, oldest first. */
export function dueNotifications(db: DB, now: string, limit: number): Promise<Array<Pick<NotificationRow, 'id'>>> {
  return dueIds(db, 'notifications', now, limit)
}

/** Notifications that waited for their entitlement to exist: due again now. Returns their ids. */
export async function wakeWaiting(db: DB, orgId: string, partner: string, subject: string, now: string): Promise<string[]> {
  // Most purchases have nothing waiting for them: a read says so without a write (every landing asks).
  const waiting = await db
    .selectFrom('notifications')
    .select('id')
    .where('org_id', '=', orgId)
    .where('partner', '=', partner)
    .where('subject', '=', subject)
    .where('status', '=', 'WAITING')
    .limit(1)
    .executeTakeFirst()
  if (!waiting) return []
  const rows = await db
    .updateTable('notifications')
    .set({ status: 'PENDING', next_attempt_at: now, updated_at: now })
    .where('org_id', '=', orgId)
    .where('partner', '=', partner)
    .where('subject', '=', subject)
    .where('status', '=', 'WAITING')
    .returning('id')
    .execute()
  return rows.map((row) => row.id)
}

/** Entitlements not cancelled whose last re-read (else their creation) is older than `before`, oldest first. */
export async function dueReconciliations(db: DB, before: string, limit: number): Promise<Array<{ id: string; org_id: string; partner: string; checked_at: string | null }>> {
  return db
    .selectFrom('entitlements')
    .leftJoin('reconciliations', 'reconciliations.entitlement_id', 'entitlements.id')
    .select(['entitlements.id', 'entitlements.org_id', 'entitlements.partner', 'reconciliations.checked_at'])
    .where('entitlements.status', '!=', 'CANCELLED')
    // A new entitlement was read from its marketplace when it was created: its first re-read is due a period later.
    .where((eb) => eb.fn.coalesce('reconciliations.checked_at', 'entitlements.created_at'), '<', before)
    .orderBy((eb) => eb.fn.coalesce('reconciliations.checked_at', 'entitlements.created_at'))
    .limit(limit)
    .execute()
}

/**
 * Takes a due re-read for this caller: its time moves to `claimAt` (due again then, should the
 * caller die) only if it is still what the caller read (`seen`, null when never re-read), so of
 * several instances reading the same due row one re-reads it. True when this caller got it.
 */
export async function claimReconciliation(db: DB, entitlementId: string, seen: string | null, claimAt: string): Promise<boolean> {
  const rows = seen === null
    ? await db.insertInto('reconciliations').values({ entitlement_id: entitlementId, checked_at: claimAt }).onConflict((oc) => oc.doNothing()).returning('entitlement_id').execute()
    : await db.updateTable('reconciliations').set({ checked_at: claimAt }).where('entitlement_id', '=', entitlementId).where('checked_at', '=', seen).returning('entitlement_id').execute()
  return rows.length === 1
}

export async function markReconciled(db: DB, entitlementId: string, at: string): Promise<void> {
  await db
    .insertInto('reconciliations')
    .values({ entitlement_id: entitlementId, checked_at: at })
    .onConflict((oc) => oc.column('entitlement_id').doUpdateSet({ checked_at: at }))
    .execute()
}

/** Whether a notification about the same subject that happened after `occurredAt` was already applied. */
export async function newerApplied(db: DB, row: Pick<NotificationRow, 'org_id' | 'partner' | 'subject' | 'occurred_at' | 'id'>): Promise<boolean> {
  if (!row.occurred_at) return false
  const newer = await db
    .selectFrom('notifications')
    .select('id')
    .where('org_id', '=', row.org_id)
    .where('partner', '=', row.partner)
    .where('subject', '=', row.subject)
    .where('status', '=', 'APPLIED')
    .where('occurred_at', '>', row.occurred_at)
    .where('id', '!=', row.id)
    .limit(1)
    .executeTakeFirst()
  return newer !== undefined
}

/** Forgets settled notifications (APPLIED, IGNORED) last touched before `before`; WAITING and PENDING ones stay. */
export async function pruneSettled(db: DB, before: string): Promise<void> {
  await db.deleteFrom('notifications').where('status', 'in', ['APPLIED', 'IGNORED']).where('updated_at', '<', before).execute()
}
