import { type Expression, type Insertable, type SqlBool, sql } from 'kysely'
import type { AuditLogRow, AuditLogTable, DB, Executor } from './schema'
import { olderThan, pageOf } from './outbox'

/** The audit log (migration 0012). Entries are only ever inserted (with their change) and pruned. */

/**
 * The insert of one entry, to put in the same atomic write as the change it records
 * (`atomically(db, [change, insertAuditEntry(db, entry)])`, see src/db/batch.ts): built, not run.
 * `when`: written only if this holds once the statements before it have run (what a D1 batch,
 * which cannot look at their answers, says instead of an `if`). Every column is text, so the
 * SELECT's untyped parameters need no cast on PostgreSQL.
 */
export function insertAuditEntry(db: Executor, row: Insertable<AuditLogTable>, when?: Expression<SqlBool>) {
  if (!when) return db.insertInto('audit_log').values(row)
  const columns = Object.keys(row) as Array<keyof AuditLogTable & string>
  const values = db.selectNoFrom(columns.map((column) => sql<string>`${row[column] ?? null}`.as(column))).where(when)
  return db.insertInto('audit_log').columns(columns).expression(values as never)
}

export async function listAuditEntries(
  db: DB,
  query: { orgId: string; action?: string; limit: number; before?: { createdAt: string; id: string } },
): Promise<{ rows: AuditLogRow[]; hasMore: boolean }> {
  let select = db.selectFrom('audit_log').selectAll().where('org_id', '=', query.orgId)
  if (query.action) select = select.where('action', '=', query.action)
  if (query.before) select = select.where(olderThan(query.before))
  const rows = await select.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(query.limit + 1).execute()
  return pageOf(rows, query.limit)
}

/**
 * Deletes up to `limit` entries created before `before`, oldest first; answers how many. Bounded,
 * so a first run over years of entries does not hold the write lock (or a D1 statement) for long.
 */
export async function deleteAuditEntriesBefore(db: DB, before: string, limit: number): Promise<number> {
  const result = await db
    .deleteFrom('audit_log')
    .where('id', 'in', db.selectFrom('audit_log').select('id').where('created_at', '<', before).orderBy('created_at').limit(limit))
    .executeTakeFirst()
  return Number(result.numDeletedRows)
}
