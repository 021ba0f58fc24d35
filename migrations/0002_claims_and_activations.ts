import type { Kysely } from 'kysely'

// Frozen. Two small tables that make the landing durable without interactive transactions:
// every hand-over below is one INSERT … ON CONFLICT or UPDATE … WHERE, which D1 runs atomically.

export async function up(db: Kysely<any>): Promise<void> {
  // One row per marketplace token being worked on: whoever inserts it (or takes over an
  // expired lease) runs Resolve/Activate; concurrent requests wait for the outcome. The token
  // itself is kept sealed (AES-GCM) so that a crash after Resolve can be finished by the job.
  await db.schema
    .createTable('landing_claims')
    .addColumn('token_hash', 'text', (col) => col.primaryKey())
    .addColumn('org_id', 'text', (col) => col.notNull())
    .addColumn('partner', 'text', (col) => col.notNull())
    .addColumn('partner_id', 'text')
    .addColumn('sealed_token', 'text', (col) => col.notNull())
    .addColumn('lease_until', 'text', (col) => col.notNull())
    .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('created_at', 'text', (col) => col.notNull())
    .execute()
  await db.schema.createIndex('landing_claims_lease').on('landing_claims').column('lease_until').execute()

  // A stored purchase still waiting for the marketplace to confirm activation. lease_until
  // guards against two activators; next_attempt_at is the job's backoff (a buyer's revisit
  // ignores it and retries at once).
  await db.schema
    .createTable('pending_activations')
    .addColumn('entitlement_id', 'text', (col) => col.primaryKey().references('entitlements.id').onDelete('cascade'))
    .addColumn('org_id', 'text', (col) => col.notNull())
    .addColumn('partner', 'text', (col) => col.notNull())
    .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'text', (col) => col.notNull())
    .addColumn('lease_until', 'text', (col) => col.notNull())
    .addColumn('last_error', 'text')
    .addColumn('created_at', 'text', (col) => col.notNull())
    .execute()
  await db.schema.createIndex('pending_activations_due').on('pending_activations').column('next_attempt_at').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('pending_activations').ifExists().execute()
  await db.schema.dropTable('landing_claims').ifExists().execute()
}
