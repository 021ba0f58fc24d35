import type { Kysely } from 'kysely'

// Frozen: a migration never imports app code and is never edited once released.
// Timestamps are ISO-8601 UTC strings, which sort in time order as text on every dialect.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('orgs')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('name', 'text', (col) => col.notNull())
    .addColumn('fulfillment_url', 'text', (col) => col.notNull())
    .addColumn('webhook_url', 'text')
    .addColumn('created_at', 'text', (col) => col.notNull())
    .addColumn('updated_at', 'text', (col) => col.notNull())
    .execute()

  await db.schema
    .createTable('api_keys')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('org_id', 'text', (col) => col.notNull().references('orgs.id').onDelete('cascade'))
    .addColumn('key_hash', 'text', (col) => col.notNull().unique())
    .addColumn('prefix', 'text', (col) => col.notNull())
    .addColumn('created_at', 'text', (col) => col.notNull())
    .addColumn('revoked_at', 'text')
    .execute()

  await db.schema
    .createTable('integrations')
    .addColumn('org_id', 'text', (col) => col.notNull().references('orgs.id').onDelete('cascade'))
    .addColumn('partner', 'text', (col) => col.notNull())
    .addColumn('partner_id', 'text', (col) => col.notNull().unique())
    .addColumn('settings', 'text', (col) => col.notNull())
    .addColumn('secrets', 'text', (col) => col.notNull())
    .addColumn('created_at', 'text', (col) => col.notNull())
    .addColumn('updated_at', 'text', (col) => col.notNull())
    .addPrimaryKeyConstraint('integrations_pk', ['org_id', 'partner'])
    .execute()

  await db.schema
    .createTable('entitlements')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('org_id', 'text', (col) => col.notNull().references('orgs.id').onDelete('cascade'))
    .addColumn('partner', 'text', (col) => col.notNull())
    .addColumn('partner_id', 'text', (col) => col.notNull())
    .addColumn('external_id', 'text', (col) => col.notNull())
    .addColumn('status', 'text', (col) => col.notNull())
    .addColumn('offer_type', 'text', (col) => col.notNull())
    .addColumn('product_id', 'text')
    .addColumn('plan_id', 'text')
    .addColumn('quantity', 'integer')
    .addColumn('buyer', 'text', (col) => col.notNull())
    .addColumn('term', 'text', (col) => col.notNull())
    .addColumn('is_free_trial', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('is_test', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('info', 'text', (col) => col.notNull())
    .addColumn('created_at', 'text', (col) => col.notNull())
    .addColumn('updated_at', 'text', (col) => col.notNull())
    .addUniqueConstraint('entitlements_external_unique', ['org_id', 'partner', 'external_id'])
    .execute()
  // Keyset pagination: newest first by (created_at, id), optionally filtered.
  await db.schema.createIndex('entitlements_org_created').on('entitlements').columns(['org_id', 'created_at', 'id']).execute()
  await db.schema
    .createIndex('entitlements_org_partner_created')
    .on('entitlements')
    .columns(['org_id', 'partner', 'created_at', 'id'])
    .execute()
  await db.schema
    .createIndex('entitlements_org_status_created')
    .on('entitlements')
    .columns(['org_id', 'status', 'created_at', 'id'])
    .execute()

  await db.schema
    .createTable('entitlement_events')
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('entitlement_id', 'text', (col) => col.notNull().references('entitlements.id').onDelete('cascade'))
    .addColumn('org_id', 'text', (col) => col.notNull())
    .addColumn('type', 'text', (col) => col.notNull())
    .addColumn('source', 'text', (col) => col.notNull())
    .addColumn('data', 'text', (col) => col.notNull())
    .addColumn('created_at', 'text', (col) => col.notNull())
    .execute()
  await db.schema.createIndex('entitlement_events_entitlement').on('entitlement_events').columns(['entitlement_id', 'id']).execute()

  // A marketplace token, by hash only, -> the entitlement it produced: a refresh or a back
  // button presents the same token again and is answered from here, never by the marketplace.
  await db.schema
    .createTable('landing_tokens')
    .addColumn('token_hash', 'text', (col) => col.primaryKey())
    .addColumn('org_id', 'text', (col) => col.notNull())
    .addColumn('partner', 'text', (col) => col.notNull())
    .addColumn('entitlement_id', 'text', (col) => col.notNull().references('entitlements.id').onDelete('cascade'))
    .addColumn('expires_at', 'text', (col) => col.notNull())
    .addColumn('created_at', 'text', (col) => col.notNull())
    .execute()
  await db.schema.createIndex('landing_tokens_expires').on('landing_tokens').column('expires_at').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['landing_tokens', 'entitlement_events', 'entitlements', 'integrations', 'api_keys', 'orgs']) {
    await db.schema.dropTable(table).ifExists().execute()
  }
}
