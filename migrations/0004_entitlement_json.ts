import { type Kysely, sql } from 'kysely'

// Frozen. Each entitlement's API JSON, kept by the database itself: reading one stored string
// per row is several times cheaper than reading seventeen columns and serializing them (a list
// page of 100 spent most of its time there). Triggers rewrite it whenever a column it shows
// changes, whoever writes the row, so it cannot go stale. The text is exactly what
// entitlementJson() in src/domain/entitlements.ts builds from the columns.
const json = (row: string) =>
  sql.raw(
    [
      `'{"id":' || json_quote(${row}.id)`,
      `',"orgId":' || json_quote(${row}.org_id)`,
      `',"partner":' || json_quote(${row}.partner)`,
      `',"partnerId":' || json_quote(${row}.partner_id)`,
      `',"status":' || json_quote(${row}.status)`,
      `',"offerType":' || json_quote(${row}.offer_type)`,
      `',"externalId":' || json_quote(${row}.external_id)`,
      `',"productId":' || json_quote(${row}.product_id)`,
      `',"planId":' || json_quote(${row}.plan_id)`,
      `',"quantity":' || json_quote(${row}.quantity)`,
      `',"buyer":' || ${row}.buyer`,
      `',"term":' || ${row}.term`,
      `',"isFreeTrial":' || (case when ${row}.is_free_trial = 1 then 'true' else 'false' end)`,
      `',"isTest":' || (case when ${row}.is_test = 1 then 'true' else 'false' end)`,
      `',"info":' || ${row}.info`,
      `',"createdAt":' || json_quote(${row}.created_at)`,
      `',"updatedAt":' || json_quote(${row}.updated_at) || '}'`,
    ].join(' || '),
  )

const SHOWN = 'id, org_id, partner, partner_id, external_id, status, offer_type, product_id, plan_id, quantity, buyer, term, is_free_trial, is_test, info, created_at, updated_at'

/** Neither SQLite nor D1 runs a migration in one transaction: every step here can run again after a crash. */
export async function up(db: Kysely<any>): Promise<void> {
  const hasColumn = await sql`select json from entitlements limit 0`.execute(db).then(
    () => true,
    () => false,
  )
  if (!hasColumn) await db.schema.alterTable('entitlements').addColumn('json', 'text').execute()
  // An insert that brings its JSON (the broker's own) is left as it is.
  await sql`create trigger if not exists entitlements_json_insert after insert on entitlements when new.json is null begin
    update entitlements set json = ${json('new')} where rowid = new.rowid;
  end`.execute(db)
  await sql`create trigger if not exists entitlements_json_update after update of ${sql.raw(SHOWN)} on entitlements begin
    update entitlements set json = ${json('new')} where rowid = new.rowid;
  end`.execute(db)
  // After the triggers, so a row written meanwhile (another process) is covered either way.
  await sql`update entitlements set json = ${json('entitlements')}`.execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop trigger if exists entitlements_json_update`.execute(db)
  await sql`drop trigger if exists entitlements_json_insert`.execute(db)
  await db.schema.alterTable('entitlements').dropColumn('json').execute()
}
