import type { Kysely } from 'kysely'
import type { ColumnTypes } from './dialect'

// Frozen once released. Keys become rows of their own (contract §13): a name, a scope, an
// optional expiry and limit, and when the key was last used. The org's existing key (the only one
// it had) becomes its full-scope key named `default`: the column defaults say so for the rows that
// exist, and inserts from now on always give both.

export async function up(db: Kysely<any>, { text, integer }: ColumnTypes): Promise<void> {
  await db.schema.alterTable('api_keys').addColumn('name', text, (col) => col.notNull().defaultTo('default')).execute()
  await db.schema.alterTable('api_keys').addColumn('scope', text, (col) => col.notNull().defaultTo('full')).execute()
  await db.schema.alterTable('api_keys').addColumn('expires_at', text).execute()
  await db.schema.alterTable('api_keys').addColumn('rate_limit_per_minute', integer).execute()
  // Written at most once a minute per key (see touchKey in src/db/orgs.ts), never on every request.
  await db.schema.alterTable('api_keys').addColumn('last_used_at', text).execute()
  // GET …/api-keys: the org's keys newest first.
  await db.schema.createIndex('api_keys_org_created').on('api_keys').columns(['org_id', 'created_at', 'id']).execute()
}
