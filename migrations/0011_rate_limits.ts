import type { Kysely } from 'kysely'
import type { ColumnTypes } from './dialect'

// Frozen once released. One counter per API key and fixed one-minute window (contract §13): every
// instance and Workers isolate counts in this one row, so the limit is one budget whatever serves
// the request. `window` is the window's number (epoch minutes), not a time: the counter's key
// must be the same integer on every instance, and pruning compares it as a number. No foreign key
// to api_keys: the row is a counter, not data about the key, and it is pruned within minutes.
export async function up(db: Kysely<any>, { text, integer }: ColumnTypes): Promise<void> {
  await db.schema
    .createTable('rate_limits')
    .addColumn('key_id', text, (col) => col.notNull())
    .addColumn('window', integer, (col) => col.notNull())
    .addColumn('count', integer, (col) => col.notNull())
    .addPrimaryKeyConstraint('rate_limits_pkey', ['key_id', 'window'])
    .execute()
  // Pruning deletes by window alone; the primary key leads with key_id.
  await db.schema.createIndex('rate_limits_window').on('rate_limits').column('window').execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('rate_limits').ifExists().execute()
}
