import type { Kysely } from 'kysely'

// Frozen. The inbox of marketplace notifications (contract §7): every authenticated message is
// stored here before it is answered, keyed by the marketplace's own id so a redelivery is one
// row, then applied at once or by the job. And when each entitlement was last re-read from its
// marketplace (reconciliation), kept apart so the entitlement row and its JSON are not touched.
// (Not yet released when the two columns below were added to it.)

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('notifications')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('org_id', 'text', (col) => col.notNull())
    .addColumn('partner', 'text', (col) => col.notNull())
    // Azure operation id, SNS MessageId, EventBridge id, Pub/Sub messageId.
    .addColumn('message_id', 'text', (col) => col.notNull())
    // What the message is about, in the entitlement's terms (Azure: the subscription id).
    .addColumn('subject', 'text', (col) => col.notNull())
    .addColumn('action', 'text', (col) => col.notNull())
    // When the marketplace says it happened (operation timeStamp, SNS Timestamp, event time):
    // an older message applied late must not move a status backwards.
    .addColumn('occurred_at', 'text')
    // JSON: how else to find the entitlement (buyer and product) when `subject` is not its externalId.
    .addColumn('lookup', 'text')
    // The message as the marketplace sent it (it carries no token or secret).
    .addColumn('payload', 'text', (col) => col.notNull())
    // PENDING (to apply), WAITING (its entitlement does not exist yet), APPLIED, IGNORED.
    .addColumn('status', 'text', (col) => col.notNull())
    .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'text', (col) => col.notNull())
    .addColumn('lease_until', 'text')
    .addColumn('last_error', 'text')
    .addColumn('created_at', 'text', (col) => col.notNull())
    .addColumn('updated_at', 'text', (col) => col.notNull())
    .execute()
  await db.schema.createIndex('notifications_message').on('notifications').columns(['org_id', 'partner', 'message_id']).unique().execute()
  await db.schema.createIndex('notifications_due').on('notifications').columns(['status', 'next_attempt_at']).execute()
  await db.schema.createIndex('notifications_subject').on('notifications').columns(['org_id', 'partner', 'subject', 'status']).execute()

  // AWS EventBridge API destinations authenticate with a bearer secret the broker issues; only
  // its SHA-256 is kept, beside (not inside) the sealed secrets a PUT replaces.
  await db.schema.alterTable('integrations').addColumn('notification_secret_hash', 'text').execute()

  await db.schema
    .createTable('reconciliations')
    .addColumn('entitlement_id', 'text', (col) => col.primaryKey().references('entitlements.id').onDelete('cascade'))
    .addColumn('checked_at', 'text', (col) => col.notNull())
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('reconciliations').ifExists().execute()
  await db.schema.alterTable('integrations').dropColumn('notification_secret_hash').execute()
  await db.schema.dropTable('notifications').ifExists().execute()
}
