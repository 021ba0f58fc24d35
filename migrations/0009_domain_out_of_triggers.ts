import { type Kysely, sql } from 'kysely'

// SQLite and D1 only (PostgreSQL's history starts with its baseline, which never had triggers).
// Frozen once released. The broker writes each entitlement's API JSON and each webhook delivery
// itself, from TypeScript, in the same atomic write as the change (src/db/entitlements.ts
// writeEntitlementChange): the triggers of 0004 (the JSON) and 0006 (the delivery) would now
// only do that work twice, with a text that no other dialect can reproduce byte for byte.
const TRIGGERS = ['entitlements_json_insert', 'entitlements_json_update', 'entitlement_events_webhook']

export async function up(db: Kysely<any>): Promise<void> {
  for (const name of TRIGGERS) await sql`drop trigger if exists ${sql.id(name)}`.execute(db)
}

/** The triggers stay gone: the code that runs with this schema writes what they wrote. */
export async function down(): Promise<void> {}
