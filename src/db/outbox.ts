import { type SqlBool, sql } from 'kysely'
import type { DB } from './schema'

/**
 * What the broker's outboxes (notifications, webhook deliveries, emails, usage reports) and its
 * newest-first lists share: one way to say "nobody holds its lease", to find what is due, and to
 * page by (created_at, id).
 */

/** Nobody holds the row's lease: none taken, or the one taken has run out. */
export const notHeld = (now: string) => sql<SqlBool>`(${sql.ref('lease_until')} is null or ${sql.ref('lease_until')} < ${now})`

type Outbox = 'notifications' | 'webhook_deliveries' | 'emails'

/** PENDING rows whose next attempt is due and that nobody holds, oldest first. */
export function dueIds(db: DB, table: Outbox, now: string, limit: number): Promise<Array<{ id: string }>> {
  return db
    .selectFrom(table as 'emails')
    .select('id')
    .where('status', '=', 'PENDING')
    .where('next_attempt_at', '<=', now)
    .where(notHeld(now))
    .orderBy('next_attempt_at')
    .limit(limit)
    .execute()
}

/** Rows after the cursor's row in a newest-first list ordered by (created_at, id). */
export const olderThan = (cursor: { createdAt: string; id: string }) =>
  sql<SqlBool>`(${sql.ref('created_at')} < ${cursor.createdAt} or (${sql.ref('created_at')} = ${cursor.createdAt} and ${sql.ref('id')} < ${cursor.id}))`

/** A page of `limit` rows out of `limit + 1` fetched, and whether there are more. */
export function pageOf<T>(rows: T[], limit: number): { rows: T[]; hasMore: boolean } {
  return { rows: rows.slice(0, limit), hasMore: rows.length > limit }
}
