import type { Kysely } from 'kysely'
import type { ColumnTypes } from './dialect'

/**
 * The audit log (contract §13): one row per change made through the API, written in the same
 * atomic write as the change. `actor` and `changes` are JSON text. The two indexes serve the
 * list (newest first per org, optionally one action) and its keyset cursor on (created_at, id);
 * retention deletes by created_at across orgs, which the first index's order does not serve, so
 * it has its own.
 */
export async function up(db: Kysely<any>, { text }: ColumnTypes) {
  await db.schema
    .createTable('audit_log')
    .addColumn('id', text, (col) => col.primaryKey())
    .addColumn('org_id', text, (col) => col.notNull())
    .addColumn('action', text, (col) => col.notNull())
    .addColumn('actor', text, (col) => col.notNull())
    .addColumn('target_type', text, (col) => col.notNull())
    .addColumn('target_id', text)
    .addColumn('request_id', text)
    .addColumn('changes', text, (col) => col.notNull())
    .addColumn('created_at', text, (col) => col.notNull())
    .execute()
  await db.schema.createIndex('audit_log_org_created').on('audit_log').columns(['org_id', 'created_at', 'id']).execute()
  await db.schema.createIndex('audit_log_org_action_created').on('audit_log').columns(['org_id', 'action', 'created_at', 'id']).execute()
  await db.schema.createIndex('audit_log_created').on('audit_log').column('created_at').execute()
}
