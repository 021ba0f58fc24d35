import type { Kysely } from 'kysely'

// Frozen. The hosted new-client signup form (contract §10): each org's form settings, the
// signups buyers submit (one per entitlement), the single-use tokens of the form (CSRF), and the
// outbox of confirmation emails.

/** Neither SQLite nor D1 runs a migration in one transaction: every step here can run again after a crash. */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('signup_forms')
    .ifNotExists()
    .addColumn('org_id', 'text', (col) => col.primaryKey())
    .addColumn('signup_id', 'text', (col) => col.notNull().unique())
    .addColumn('company_name', 'text', (col) => col.notNull())
    .addColumn('logo_url', 'text')
    .addColumn('public_notes', 'text')
    .addColumn('cc_emails', 'text', (col) => col.notNull())
    .addColumn('fields', 'text', (col) => col.notNull())
    .addColumn('created_at', 'text', (col) => col.notNull())
    .addColumn('updated_at', 'text', (col) => col.notNull())
    .execute()

  await db.schema
    .createTable('signups')
    .ifNotExists()
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('org_id', 'text', (col) => col.notNull())
    .addColumn('entitlement_id', 'text', (col) => col.notNull().unique())
    .addColumn('name', 'text', (col) => col.notNull())
    .addColumn('email', 'text', (col) => col.notNull())
    .addColumn('company', 'text')
    .addColumn('phone', 'text')
    .addColumn('notes', 'text')
    .addColumn('email_status', 'text', (col) => col.notNull())
    .addColumn('created_at', 'text', (col) => col.notNull())
    .addColumn('updated_at', 'text', (col) => col.notNull())
    .execute()
  await db.schema.createIndex('signups_org').ifNotExists().on('signups').columns(['org_id', 'created_at', 'id']).execute()

  // A form token is spent by the submission that uses it; a replay finds it here.
  await db.schema
    .createTable('signup_tokens')
    .ifNotExists()
    .addColumn('nonce', 'text', (col) => col.primaryKey())
    .addColumn('expires_at', 'text', (col) => col.notNull())
    .execute()

  await db.schema
    .createTable('emails')
    .ifNotExists()
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('org_id', 'text', (col) => col.notNull())
    .addColumn('signup_id', 'text', (col) => col.notNull())
    .addColumn('to_address', 'text', (col) => col.notNull())
    .addColumn('cc', 'text', (col) => col.notNull())
    .addColumn('subject', 'text', (col) => col.notNull())
    .addColumn('text', 'text', (col) => col.notNull())
    .addColumn('html', 'text', (col) => col.notNull())
    .addColumn('status', 'text', (col) => col.notNull())
    .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'text', (col) => col.notNull())
    .addColumn('lease_until', 'text')
    .addColumn('last_error', 'text')
    .addColumn('created_at', 'text', (col) => col.notNull())
    .addColumn('updated_at', 'text', (col) => col.notNull())
    .execute()
  await db.schema.createIndex('emails_due').ifNotExists().on('emails').columns(['status', 'next_attempt_at']).execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['emails', 'signup_tokens', 'signups', 'signup_forms']) await db.schema.dropTable(table).ifExists().execute()
}
