import { type Kysely, sql } from 'kysely'

// Frozen. Usage metering (contract §9).
//
// usage_records: what the ISV recorded, one row per idempotency key (unique per org). A record
// is linked to the report that carries it (`report_id`) when its hour is closed.
//
// usage_reports: what is sent to the marketplace: an entitlement's sum for one dimension and one
// UTC hour (`late` = 0, at most one per hour), or a single record that arrived after its hour had
// been closed (`late` = 1). Its id is stable and written before the first call, so a crash
// between the call and its answer re-sends the same report (Google dedupes the operationId,
// Azure and AWS answer that they have the hour already). `send_timestamp` is the time it is
// reported at, fixed at the first attempt (AWS needs a time inside its 6-hour window). A record that
// comes after its hour was closed joins the hour's report while that has not been tried yet.

/** Neither SQLite nor D1 runs a migration in one transaction: every step here can run again after a crash. */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('usage_records')
    .ifNotExists()
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('org_id', 'text', (col) => col.notNull())
    .addColumn('entitlement_id', 'text', (col) => col.notNull())
    .addColumn('partner', 'text', (col) => col.notNull())
    .addColumn('dimension', 'text', (col) => col.notNull())
    .addColumn('quantity', 'real', (col) => col.notNull())
    .addColumn('timestamp', 'text', (col) => col.notNull())
    // Whether the ISV gave the timestamp (a replay without one is the same body).
    .addColumn('timestamp_given', 'integer', (col) => col.notNull())
    // The UTC hour the record counts in, ISO 8601.
    .addColumn('hour', 'text', (col) => col.notNull())
    .addColumn('idempotency_key', 'text', (col) => col.notNull())
    .addColumn('status', 'text', (col) => col.notNull())
    .addColumn('marketplace_status', 'text')
    .addColumn('error', 'text')
    .addColumn('reported_at', 'text')
    .addColumn('report_id', 'text')
    .addColumn('created_at', 'text', (col) => col.notNull())
    .execute()
  await db.schema.createIndex('usage_records_key').ifNotExists().on('usage_records').columns(['org_id', 'idempotency_key']).unique().execute()
  await db.schema.createIndex('usage_records_entitlement').ifNotExists().on('usage_records').columns(['entitlement_id', 'created_at', 'id']).execute()
  await db.schema.createIndex('usage_records_report').ifNotExists().on('usage_records').column('report_id').execute()
  // The reporter's work list: records not yet in a report, by hour (a partial index stays small).
  await db.schema
    .createIndex('usage_records_unreported')
    .ifNotExists()
    .on('usage_records')
    .columns(['hour', 'entitlement_id', 'dimension'])
    .where(sql.ref('report_id'), 'is', null)
    .execute()

  await db.schema
    .createTable('usage_reports')
    .ifNotExists()
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('org_id', 'text', (col) => col.notNull())
    .addColumn('entitlement_id', 'text', (col) => col.notNull())
    .addColumn('partner', 'text', (col) => col.notNull())
    .addColumn('dimension', 'text', (col) => col.notNull())
    .addColumn('hour', 'text', (col) => col.notNull())
    // The hour's start for an hour's sum, the record's own time for a late record.
    .addColumn('timestamp', 'text', (col) => col.notNull())
    .addColumn('quantity', 'real', (col) => col.notNull())
    .addColumn('records', 'integer', (col) => col.notNull())
    .addColumn('late', 'integer', (col) => col.notNull())
    .addColumn('status', 'text', (col) => col.notNull())
    .addColumn('marketplace_status', 'text')
    .addColumn('error', 'text')
    .addColumn('send_timestamp', 'text')
    .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'text', (col) => col.notNull())
    .addColumn('lease_until', 'text')
    // Who holds the lease: only its holder may settle the report.
    .addColumn('lease_owner', 'text')
    // Which run of the reporter closed it (links its records in the same write).
    .addColumn('close_run', 'text', (col) => col.notNull())
    .addColumn('reported_at', 'text')
    .addColumn('created_at', 'text', (col) => col.notNull())
    .addColumn('updated_at', 'text', (col) => col.notNull())
    .execute()
  await db.schema
    .createIndex('usage_reports_hour')
    .ifNotExists()
    .on('usage_reports')
    .columns(['entitlement_id', 'dimension', 'hour'])
    .where(sql.ref('late'), '=', 0)
    .unique()
    .execute()
  await db.schema.createIndex('usage_reports_due').ifNotExists().on('usage_reports').columns(['status', 'next_attempt_at']).execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('usage_reports').ifExists().execute()
  await db.schema.dropTable('usage_records').ifExists().execute()
}
