import { type Kysely, sql } from 'kysely'
import { columnTypes } from './dialect'

// Frozen once released. PostgreSQL's first migration: in one step, the schema SQLite and D1 have
// after 0001–0008 and the migration that drops their triggers (the entitlement JSON and webhook
// deliveries are written by the broker itself since then). Those eight are SQLite-only (triggers,
// `rowid`, `real`, columns probed with failing statements) and never run here. Every table,
// column (in SQLite's order), default, not-null, key, unique and partial index, and foreign key
// is theirs; test/migrations-postgres.test.ts compares the two schemas.
// PostgreSQL runs this in one transaction under Kysely's migration lock: all of it or nothing.

const { text, integer, double } = columnTypes('postgres')

export async function up(db: Kysely<any>): Promise<void> {
  // 0001, with the columns 0006 added to orgs.
  await db.schema
    .createTable('orgs')
    .addColumn('id', text, (col) => col.primaryKey())
    .addColumn('name', text, (col) => col.notNull())
    .addColumn('fulfillment_url', text, (col) => col.notNull())
    .addColumn('webhook_url', text)
    .addColumn('created_at', text, (col) => col.notNull())
    .addColumn('updated_at', text, (col) => col.notNull())
    .addColumn('webhook_secret', text)
    .addColumn('webhook_secret_previous', text)
    .addColumn('webhook_secret_previous_until', text)
    .execute()

  await db.schema
    .createTable('api_keys')
    .addColumn('id', text, (col) => col.primaryKey())
    .addColumn('org_id', text, (col) => col.notNull().references('orgs.id').onDelete('cascade'))
    .addColumn('key_hash', text, (col) => col.notNull().unique())
    .addColumn('prefix', text, (col) => col.notNull())
    .addColumn('created_at', text, (col) => col.notNull())
    .addColumn('revoked_at', text)
    .execute()

  // With 0005's notification_secret_hash.
  await db.schema
    .createTable('integrations')
    .addColumn('org_id', text, (col) => col.notNull().references('orgs.id').onDelete('cascade'))
    .addColumn('partner', text, (col) => col.notNull())
    .addColumn('partner_id', text, (col) => col.notNull().unique())
    .addColumn('settings', text, (col) => col.notNull())
    .addColumn('secrets', text, (col) => col.notNull())
    .addColumn('created_at', text, (col) => col.notNull())
    .addColumn('updated_at', text, (col) => col.notNull())
    .addColumn('notification_secret_hash', text)
    .addPrimaryKeyConstraint('integrations_pk', ['org_id', 'partner'])
    .execute()

  // With 0004's stored API JSON (last, as ALTER TABLE put it on SQLite).
  await db.schema
    .createTable('entitlements')
    .addColumn('id', text, (col) => col.primaryKey())
    .addColumn('org_id', text, (col) => col.notNull().references('orgs.id').onDelete('cascade'))
    .addColumn('partner', text, (col) => col.notNull())
    .addColumn('partner_id', text, (col) => col.notNull())
    .addColumn('external_id', text, (col) => col.notNull())
    .addColumn('status', text, (col) => col.notNull())
    .addColumn('offer_type', text, (col) => col.notNull())
    .addColumn('product_id', text)
    .addColumn('plan_id', text)
    .addColumn('quantity', integer)
    .addColumn('buyer', text, (col) => col.notNull())
    .addColumn('term', text, (col) => col.notNull())
    .addColumn('is_free_trial', integer, (col) => col.notNull().defaultTo(0))
    .addColumn('is_test', integer, (col) => col.notNull().defaultTo(0))
    .addColumn('info', text, (col) => col.notNull())
    .addColumn('created_at', text, (col) => col.notNull())
    .addColumn('updated_at', text, (col) => col.notNull())
    .addColumn('json', text)
    .addUniqueConstraint('entitlements_external_unique', ['org_id', 'partner', 'external_id'])
    .execute()
  await db.schema.createIndex('entitlements_org_created').on('entitlements').columns(['org_id', 'created_at', 'id']).execute()
  await db.schema.createIndex('entitlements_org_partner_created').on('entitlements').columns(['org_id', 'partner', 'created_at', 'id']).execute()
  await db.schema.createIndex('entitlements_org_status_created').on('entitlements').columns(['org_id', 'status', 'created_at', 'id']).execute()
  // 0003.
  await db.schema
    .createIndex('entitlements_org_partner_status_created')
    .on('entitlements')
    .columns(['org_id', 'partner', 'status', 'created_at', 'id'])
    .execute()

  await db.schema
    .createTable('entitlement_events')
    .addColumn('id', text, (col) => col.primaryKey())
    .addColumn('entitlement_id', text, (col) => col.notNull().references('entitlements.id').onDelete('cascade'))
    .addColumn('org_id', text, (col) => col.notNull())
    .addColumn('type', text, (col) => col.notNull())
    .addColumn('source', text, (col) => col.notNull())
    .addColumn('data', text, (col) => col.notNull())
    .addColumn('created_at', text, (col) => col.notNull())
    .execute()
  await db.schema.createIndex('entitlement_events_entitlement').on('entitlement_events').columns(['entitlement_id', 'id']).execute()

  await db.schema
    .createTable('landing_tokens')
    .addColumn('token_hash', text, (col) => col.primaryKey())
    .addColumn('org_id', text, (col) => col.notNull())
    .addColumn('partner', text, (col) => col.notNull())
    .addColumn('entitlement_id', text, (col) => col.notNull().references('entitlements.id').onDelete('cascade'))
    .addColumn('expires_at', text, (col) => col.notNull())
    .addColumn('created_at', text, (col) => col.notNull())
    .execute()
  await db.schema.createIndex('landing_tokens_expires').on('landing_tokens').column('expires_at').execute()

  // 0002.
  await db.schema
    .createTable('landing_claims')
    .addColumn('token_hash', text, (col) => col.primaryKey())
    .addColumn('org_id', text, (col) => col.notNull())
    .addColumn('partner', text, (col) => col.notNull())
    .addColumn('partner_id', text)
    .addColumn('sealed_token', text, (col) => col.notNull())
    .addColumn('lease_until', text, (col) => col.notNull())
    .addColumn('attempts', integer, (col) => col.notNull().defaultTo(0))
    .addColumn('created_at', text, (col) => col.notNull())
    .execute()
  await db.schema.createIndex('landing_claims_lease').on('landing_claims').column('lease_until').execute()

  await db.schema
    .createTable('pending_activations')
    .addColumn('entitlement_id', text, (col) => col.primaryKey().references('entitlements.id').onDelete('cascade'))
    .addColumn('org_id', text, (col) => col.notNull())
    .addColumn('partner', text, (col) => col.notNull())
    .addColumn('attempts', integer, (col) => col.notNull().defaultTo(0))
    .addColumn('next_attempt_at', text, (col) => col.notNull())
    .addColumn('lease_until', text, (col) => col.notNull())
    .addColumn('last_error', text)
    .addColumn('created_at', text, (col) => col.notNull())
    .execute()
  await db.schema.createIndex('pending_activations_due').on('pending_activations').column('next_attempt_at').execute()

  // 0005.
  await db.schema
    .createTable('notifications')
    .addColumn('id', text, (col) => col.primaryKey())
    .addColumn('org_id', text, (col) => col.notNull())
    .addColumn('partner', text, (col) => col.notNull())
    .addColumn('message_id', text, (col) => col.notNull())
    .addColumn('subject', text, (col) => col.notNull())
    .addColumn('action', text, (col) => col.notNull())
    .addColumn('occurred_at', text)
    .addColumn('lookup', text)
    .addColumn('payload', text, (col) => col.notNull())
    .addColumn('status', text, (col) => col.notNull())
    .addColumn('attempts', integer, (col) => col.notNull().defaultTo(0))
    .addColumn('next_attempt_at', text, (col) => col.notNull())
    .addColumn('lease_until', text)
    .addColumn('last_error', text)
    .addColumn('created_at', text, (col) => col.notNull())
    .addColumn('updated_at', text, (col) => col.notNull())
    .execute()
  await db.schema.createIndex('notifications_message').on('notifications').columns(['org_id', 'partner', 'message_id']).unique().execute()
  await db.schema.createIndex('notifications_due').on('notifications').columns(['status', 'next_attempt_at']).execute()
  await db.schema.createIndex('notifications_subject').on('notifications').columns(['org_id', 'partner', 'subject', 'status']).execute()

  await db.schema
    .createTable('reconciliations')
    .addColumn('entitlement_id', text, (col) => col.primaryKey().references('entitlements.id').onDelete('cascade'))
    .addColumn('checked_at', text, (col) => col.notNull())
    .execute()

  // 0006 (without its trigger).
  await db.schema
    .createTable('webhook_deliveries')
    .addColumn('id', text, (col) => col.primaryKey())
    .addColumn('org_id', text, (col) => col.notNull())
    .addColumn('event_id', text)
    .addColumn('type', text, (col) => col.notNull())
    .addColumn('payload', text, (col) => col.notNull())
    .addColumn('status', text, (col) => col.notNull())
    .addColumn('attempts', integer, (col) => col.notNull().defaultTo(0))
    .addColumn('last_status_code', integer)
    .addColumn('last_error', text)
    .addColumn('next_attempt_at', text)
    .addColumn('lease_until', text)
    .addColumn('created_at', text, (col) => col.notNull())
    .addColumn('updated_at', text, (col) => col.notNull())
    .execute()
  await db.schema.createIndex('webhook_deliveries_due').on('webhook_deliveries').columns(['status', 'next_attempt_at']).execute()
  await db.schema.createIndex('webhook_deliveries_org').on('webhook_deliveries').columns(['org_id', 'created_at', 'id']).execute()
  await db.schema.createIndex('webhook_deliveries_event').on('webhook_deliveries').column('event_id').unique().execute()

  // 0007, quantities in double precision.
  await db.schema
    .createTable('usage_records')
    .addColumn('id', text, (col) => col.primaryKey())
    .addColumn('org_id', text, (col) => col.notNull())
    .addColumn('entitlement_id', text, (col) => col.notNull())
    .addColumn('partner', text, (col) => col.notNull())
    .addColumn('dimension', text, (col) => col.notNull())
    .addColumn('quantity', double, (col) => col.notNull())
    .addColumn('timestamp', text, (col) => col.notNull())
    .addColumn('timestamp_given', integer, (col) => col.notNull())
    .addColumn('hour', text, (col) => col.notNull())
    .addColumn('idempotency_key', text, (col) => col.notNull())
    .addColumn('status', text, (col) => col.notNull())
    .addColumn('marketplace_status', text)
    .addColumn('error', text)
    .addColumn('reported_at', text)
    .addColumn('report_id', text)
    .addColumn('created_at', text, (col) => col.notNull())
    .execute()
  await db.schema.createIndex('usage_records_key').on('usage_records').columns(['org_id', 'idempotency_key']).unique().execute()
  await db.schema.createIndex('usage_records_entitlement').on('usage_records').columns(['entitlement_id', 'created_at', 'id']).execute()
  await db.schema.createIndex('usage_records_report').on('usage_records').column('report_id').execute()
  await db.schema
    .createIndex('usage_records_unreported')
    .on('usage_records')
    .columns(['hour', 'entitlement_id', 'dimension'])
    .where(sql.ref('report_id'), 'is', null)
    .execute()

  await db.schema
    .createTable('usage_reports')
    .addColumn('id', text, (col) => col.primaryKey())
    .addColumn('org_id', text, (col) => col.notNull())
    .addColumn('entitlement_id', text, (col) => col.notNull())
    .addColumn('partner', text, (col) => col.notNull())
    .addColumn('dimension', text, (col) => col.notNull())
    .addColumn('hour', text, (col) => col.notNull())
    .addColumn('timestamp', text, (col) => col.notNull())
    .addColumn('quantity', double, (col) => col.notNull())
    .addColumn('records', integer, (col) => col.notNull())
    .addColumn('late', integer, (col) => col.notNull())
    .addColumn('status', text, (col) => col.notNull())
    .addColumn('marketplace_status', text)
    .addColumn('error', text)
    .addColumn('send_timestamp', text)
    .addColumn('attempts', integer, (col) => col.notNull().defaultTo(0))
    .addColumn('next_attempt_at', text, (col) => col.notNull())
    .addColumn('lease_until', text)
    .addColumn('lease_owner', text)
    .addColumn('close_run', text, (col) => col.notNull())
    .addColumn('reported_at', text)
    .addColumn('created_at', text, (col) => col.notNull())
    .addColumn('updated_at', text, (col) => col.notNull())
    .execute()
  await db.schema
    .createIndex('usage_reports_hour')
    .on('usage_reports')
    .columns(['entitlement_id', 'dimension', 'hour'])
    .where(sql.ref('late'), '=', 0)
    .unique()
    .execute()
  await db.schema.createIndex('usage_reports_due').on('usage_reports').columns(['status', 'next_attempt_at']).execute()

  // 0008.
  await db.schema
    .createTable('signup_forms')
    .addColumn('org_id', text, (col) => col.primaryKey())
    .addColumn('signup_id', text, (col) => col.notNull().unique())
    .addColumn('company_name', text, (col) => col.notNull())
    .addColumn('logo_url', text)
    .addColumn('public_notes', text)
    .addColumn('cc_emails', text, (col) => col.notNull())
    .addColumn('fields', text, (col) => col.notNull())
    .addColumn('created_at', text, (col) => col.notNull())
    .addColumn('updated_at', text, (col) => col.notNull())
    .execute()

  await db.schema
    .createTable('signups')
    .addColumn('id', text, (col) => col.primaryKey())
    .addColumn('org_id', text, (col) => col.notNull())
    .addColumn('entitlement_id', text, (col) => col.notNull().unique())
    .addColumn('name', text, (col) => col.notNull())
    .addColumn('email', text, (col) => col.notNull())
    .addColumn('company', text)
    .addColumn('phone', text)
    .addColumn('notes', text)
    .addColumn('email_status', text, (col) => col.notNull())
    .addColumn('created_at', text, (col) => col.notNull())
    .addColumn('updated_at', text, (col) => col.notNull())
    .execute()
  await db.schema.createIndex('signups_org').on('signups').columns(['org_id', 'created_at', 'id']).execute()

  await db.schema
    .createTable('signup_tokens')
    .addColumn('nonce', text, (col) => col.primaryKey())
    .addColumn('expires_at', text, (col) => col.notNull())
    .execute()

  await db.schema
    .createTable('emails')
    .addColumn('id', text, (col) => col.primaryKey())
    .addColumn('org_id', text, (col) => col.notNull())
    .addColumn('signup_id', text, (col) => col.notNull())
    .addColumn('to_address', text, (col) => col.notNull())
    .addColumn('cc', text, (col) => col.notNull())
    .addColumn('subject', text, (col) => col.notNull())
    .addColumn('text', text, (col) => col.notNull())
    .addColumn('html', text, (col) => col.notNull())
    .addColumn('status', text, (col) => col.notNull())
    .addColumn('attempts', integer, (col) => col.notNull().defaultTo(0))
    .addColumn('next_attempt_at', text, (col) => col.notNull())
    .addColumn('lease_until', text)
    .addColumn('last_error', text)
    .addColumn('created_at', text, (col) => col.notNull())
    .addColumn('updated_at', text, (col) => col.notNull())
    .execute()
  await db.schema.createIndex('emails_due').on('emails').columns(['status', 'next_attempt_at']).execute()
}

const TABLES = [
  'emails', 'signup_tokens', 'signups', 'signup_forms', 'usage_reports', 'usage_records', 'webhook_deliveries', 'reconciliations',
  'notifications', 'pending_activations', 'landing_claims', 'landing_tokens', 'entitlement_events', 'entitlements', 'integrations',
  'api_keys', 'orgs',
]

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of TABLES) await db.schema.dropTable(table).ifExists().execute()
}
