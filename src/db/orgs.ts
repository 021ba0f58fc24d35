import type { Insertable, Updateable } from 'kysely'
import { runCompiled } from './compiled'
import type { ApiKeysTable, DB, OrgRow, OrgsTable } from './schema'

/** Inserts an org and its first API key. D1 has no interactive transactions, so a failed key insert removes the org again. */
export async function insertOrgWithKey(db: DB, org: Insertable<OrgsTable>, key: Insertable<ApiKeysTable>): Promise<OrgRow> {
  const row = await db.insertInto('orgs').values(org).returningAll().executeTakeFirstOrThrow()
  try {
    await db.insertInto('api_keys').values(key).execute()
  } catch (error) {
    await db.deleteFrom('orgs').where('id', '=', org.id).execute()
    throw error
  }
  return row
}

export async function findOrg(db: DB, id: string): Promise<OrgRow | undefined> {
  const result = await runCompiled(db, 'findOrg', (p) => db.selectFrom('orgs').selectAll().where('id', '=', p('id')), { id })
  return result.rows[0]
}

export function updateOrg(db: DB, id: string, patch: Updateable<OrgsTable>): Promise<OrgRow | undefined> {
  return db.updateTable('orgs').set(patch).where('id', '=', id).returningAll().executeTakeFirst()
}

export async function findOrgIdByKeyHash(db: DB, keyHash: string): Promise<string | undefined> {
  const row = await db
    .selectFrom('api_keys')
    .select('org_id')
    .where('key_hash', '=', keyHash)
    .where('revoked_at', 'is', null)
    .executeTakeFirst()
  return row?.org_id
}

export async function updateWebhookSecret(
  db: DB,
  orgId: string,
  secrets: { webhook_secret: string; webhook_secret_previous: string | null; webhook_secret_previous_until: string | null; updated_at: string },
): Promise<void> {
  await db.updateTable('orgs').set(secrets).where('id', '=', orgId).execute()
}
