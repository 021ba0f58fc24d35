import { type Selectable, type SqlBool, sql } from 'kysely'
import type { DB, Database } from './schema'

/**
 * What the broker's outboxes (notifications, webhook deliveries, emails, usage reports) and its
 * newest-first lists share: one way to say "nobody holds its lease", to find what is due, and to
 * page by (created_at, id).
 */

/** Nobody holds the row's lease: none taken, or the one taken has run out. */
export const notHeld = (now: string) => sql<SqlBool>`(${sql.ref('lease_until')} is null or ${sql.ref('lease_until')} < ${now})`

type Outbox = 'notifications' | 'webhook_deliveries' | 'emails'

/** PENDING rows whose next attempt is due and that nobody holds, oldest first. */
function due(db: DB, table: Outbox, now: string, limit: number) {
  return db
    .selectFrom(table as 'emails')
    .select('id')
    .where('status', '=', 'PENDING')
    .where('next_attempt_at', '<=', now)
    .where(notHeld(now))
    .orderBy('next_attempt_at')
    .limit(limit)
}

export function dueIds(db: DB, table: Outbox, now: string, limit: number): Promise<Array<{ id: string }>> {
  return due(db, table, now, limit).execute()
}

/**
 * Leases up to `limit` due rows for one attempt each, in one statement, and answers them as
 * leased (`countAttempt`: the attempt is counted now, before it is made). The statement re-checks
 * the lease as it writes, so each row goes to one caller: SQLite and D1 run one writer at a
 * time; on PostgreSQL the due rows are locked FOR UPDATE SKIP LOCKED, so instances claiming at
 * once take different rows instead of queueing behind each other's.
 */
export async function claimDue<T extends Outbox>(
  db: DB,
  table: T,
  now: string,
  leaseUntil: string,
  limit: number,
  countAttempt: boolean,
): Promise<Array<Selectable<Database[T]>>> {
  // Most calls find nothing due (every write request kicks the webhook outbox): a read says so
  // without taking the database's write lock.
  if ((await dueIds(db, table, now, 1)).length === 0) return []
  const chosen = db.dialect.skipLocked ? due(db, table, now, limit).forUpdate().skipLocked() : due(db, table, now, limit)
  return (await db
    .updateTable(table as 'emails')
    .set((eb) => ({ lease_until: leaseUntil, updated_at: now, ...(countAttempt ? { attempts: eb('attempts', '+', 1) } : {}) }))
    .where('id', 'in', chosen)
    .where('status', '=', 'PENDING')
    .where('next_attempt_at', '<=', now)
    .where(notHeld(now))
    .returningAll()
    .execute()) as Array<Selectable<Database[T]>>
}

/** Rows after the cursor's row in a newest-first list ordered by (created_at, id). */
export const olderThan = (cursor: { createdAt: string; id: string }) =>
  sql<SqlBool>`(${sql.ref('created_at')} < ${cursor.createdAt} or (${sql.ref('created_at')} = ${cursor.createdAt} and ${sql.ref('id')} < ${cursor.id}))`

/** A page of `limit` rows out of `limit + 1` fetched, and whether there are more. */
export function pageOf<T>(rows: T[], limit: number): { rows: T[]; hasMore: boolean } {
  return { rows: rows.slice(0, limit), hasMore: rows.length > limit }
}
