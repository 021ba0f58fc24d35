import type { Kysely } from 'kysely'
import type { ColumnTypes } from './dialect'

/**
 * What the console's Overview (contract §14) counts.
 *
 * `landing_counts`: the buyers' successful landings, one counter per org, UTC day and
 * marketplace, added to in the landing's own last write (db/entitlements.ts
 * landingCountStatement). Nothing else records every landing for long: `landing_tokens` are
 * forgotten after 24 h, and an entitlement's CREATE event is its first sighting only (not an
 * Azure "Manage account" re-entry, nor a buyer who only got through once a failed activation
 * went through). At most three rows per org and day; they are kept.
 *
 * Two indexes on (org_id, status) let the Overview count an org's deliveries that are PENDING or
 * FAILED and its usage records that are PENDING or REJECTED from the index alone, instead of
 * reading every delivery or record the org ever had (the existing indexes lead with other columns
 * or leave the status out).
 */
export async function up(db: Kysely<any>, { text, integer }: ColumnTypes) {
  await db.schema
    .createTable('landing_counts')
    .addColumn('org_id', text, (col) => col.notNull())
    .addColumn('day', text, (col) => col.notNull())
    .addColumn('partner', text, (col) => col.notNull())
    .addColumn('landings', integer, (col) => col.notNull())
    .addPrimaryKeyConstraint('landing_counts_pkey', ['org_id', 'day', 'partner'])
    .execute()
  await db.schema.createIndex('webhook_deliveries_org_status').on('webhook_deliveries').columns(['org_id', 'status']).execute()
  await db.schema.createIndex('usage_records_org_status').on('usage_records').columns(['org_id', 'status']).execute()
}

export async function down(db: Kysely<any>) {
  await db.schema.dropIndex('usage_records_org_status').ifExists().execute()
  await db.schema.dropIndex('webhook_deliveries_org_status').ifExists().execute()
  await db.schema.dropTable('landing_counts').ifExists().execute()
}
