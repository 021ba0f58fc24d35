import type { Kysely } from 'kysely'
import type { ColumnTypes } from './dialect'

/**
 * Telemetry (contract §16).
 *
 * `webhook_deliveries.trace_parent`: the W3C `traceparent` of the span that wrote the delivery
 * (the landing, notification or API request, or the job's usage reporter), when tracing was on;
 * its attempts, sent whenever the job gets to them, are spans of that same trace, and the ISV
 * receives their `traceparent`. Null without tracing and for deliveries written before.
 *
 * `usage_records_pending`: the `/metrics` scrape reads the oldest PENDING usage record's time
 * (the marketplaces' reporting windows run from it) across all orgs; the (org_id, status) index
 * cannot serve that without an org.
 */
export async function up(db: Kysely<any>, { text }: ColumnTypes) {
  await db.schema.alterTable('webhook_deliveries').addColumn('trace_parent', text).execute()
  await db.schema.createIndex('usage_records_pending').on('usage_records').columns(['status', 'timestamp']).execute()
}

export async function down(db: Kysely<any>) {
  await db.schema.dropIndex('usage_records_pending').ifExists().execute()
  await db.schema.alterTable('webhook_deliveries').dropColumn('trace_parent').execute()
}
