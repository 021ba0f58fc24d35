import type { Kysely } from 'kysely'

// Frozen. Listing with both partner and status filters, newest first, reads this index in order.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createIndex('entitlements_org_partner_status_created')
    .on('entitlements')
    .columns(['org_id', 'partner', 'status', 'created_at', 'id'])
    .execute()
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('entitlements_org_partner_status_created').ifExists().execute()
}
