import type { Kysely } from 'kysely'
import type { ColumnTypes } from './dialect'

/**
 * The console's server-side sessions (contract §14).
 *
 * `console_sessions`: one row per signed-in browser, keyed by the SHA-256 of the cookie's value
 * (the value itself is never stored). `org_id` and `key_id` are null for an operator (signed in
 * with the admin token); `credential_hash` is the SHA-256 of that token, so changing ADMIN_TOKEN
 * ends every operator session. A key's sessions end with the key: they are read joined to it.
 * `expires_at` moves with use (12 h idle); the job deletes expired rows.
 * (Wrong sign-ins are counted in `rate_limits`, under `console-sign-in:<address>`.)
 */
export async function up(db: Kysely<any>, { text }: ColumnTypes) {
  await db.schema
    .createTable('console_sessions')
    .addColumn('id_hash', text, (col) => col.primaryKey())
    .addColumn('org_id', text)
    .addColumn('key_id', text)
    .addColumn('credential_hash', text)
    .addColumn('csrf_token', text, (col) => col.notNull())
    .addColumn('created_at', text, (col) => col.notNull())
    .addColumn('last_seen_at', text, (col) => col.notNull())
    .addColumn('expires_at', text, (col) => col.notNull())
    .execute()
  await db.schema.createIndex('console_sessions_key').on('console_sessions').column('key_id').execute()
  await db.schema.createIndex('console_sessions_expires').on('console_sessions').column('expires_at').execute()
}
