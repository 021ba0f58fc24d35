import type { Kysely } from 'kysely'
import type { ColumnTypes } from './dialect'

/**
 * Suger's usage-record groups (contract §15): `POST …/usageRecordGroup` remembers each group it
 * took, so a group id seen before is refused (409) and `GET …/usageRecordGroup` lists them.
 *
 * `suger_usage_groups`: one row per group, keyed by the org and the group's own id (the client's,
 * up to 36 characters, or one made up for it). `records` is the dimension → quantity object as it
 * was sent (zeros included), `timestamp` the usage time its records carry, `buyer_id` the `byr_…`
 * of its entitlement (the list filters on it), `seq` a time-sortable id (ids.ts) that orders the
 * groups of one millisecond, those of one batch in the batch's order. The index serves the list:
 * an org's groups of a date range, newest first.
 *
 * `suger_usage_group_records`: the group's usage records (contract §9), one row per record, so its
 * status is read from theirs (CREATED while one is pending, REPORTED, REPORT_FAILED).
 */
export async function up(db: Kysely<any>, { text }: ColumnTypes) {
  await db.schema
    .createTable('suger_usage_groups')
    .addColumn('org_id', text, (col) => col.notNull())
    .addColumn('id', text, (col) => col.notNull())
    .addColumn('entitlement_id', text, (col) => col.notNull())
    .addColumn('partner', text, (col) => col.notNull())
    .addColumn('buyer_id', text)
    .addColumn('records', text, (col) => col.notNull())
    .addColumn('timestamp', text, (col) => col.notNull())
    .addColumn('created_at', text, (col) => col.notNull())
    .addColumn('seq', text, (col) => col.notNull())
    .addPrimaryKeyConstraint('suger_usage_groups_pk', ['org_id', 'id'])
    .execute()
  await db.schema.createIndex('suger_usage_groups_org_created').on('suger_usage_groups').columns(['org_id', 'created_at', 'seq']).execute()
  await db.schema
    .createTable('suger_usage_group_records')
    .addColumn('org_id', text, (col) => col.notNull())
    .addColumn('group_id', text, (col) => col.notNull())
    .addColumn('record_id', text, (col) => col.notNull())
    .addPrimaryKeyConstraint('suger_usage_group_records_pk', ['org_id', 'group_id', 'record_id'])
    .execute()
}
