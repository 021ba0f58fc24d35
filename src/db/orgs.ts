import type { Insertable, Updateable } from 'kysely'
import { type Statement, atomically, atomicallyReturning, returningWith } from './batch'
import { runCompiled } from './compiled'
import { olderThan, pageOf } from './outbox'
import type { ApiKeysTable, DB, OrgRow, OrgsTable } from './schema'

/** Inserts an org, its first API key and `also` (its audit entry) in one atomic write. */
export async function insertOrgWithKey(db: DB, org: Insertable<OrgsTable>, key: Insertable<ApiKeysTable>, also: Statement[] = []): Promise<OrgRow> {
  const [rows] = await atomicallyReturning(db, [db.insertInto('orgs').values(org).returningAll(), db.insertInto('api_keys').values(key), ...also])
  return rows![0] as OrgRow
}

export async function findOrg(db: DB, id: string): Promise<OrgRow | undefined> {
  const result = await runCompiled(db, 'findOrg', (p) => db.selectFrom('orgs').selectAll().where('id', '=', p('id')), { id })
  return result.rows[0]
}

/** Updates an org, with `also` (its audit entry) in the same atomic write. */
export async function updateOrg(db: DB, id: string, patch: Updateable<OrgsTable>, also: Statement[] = []): Promise<OrgRow | undefined> {
  return (await returningWith<OrgRow>(db, db.updateTable('orgs').set(patch).where('id', '=', id).returningAll(), also))[0]
}

export async function updateWebhookSecret(
  db: DB,
  orgId: string,
  secrets: { webhook_secret: string; webhook_secret_previous: string | null; webhook_secret_previous_until: string | null; updated_at: string },
  also: Statement[] = [],
): Promise<void> {
  await atomically(db, [db.updateTable('orgs').set(secrets).where('id', '=', orgId), ...also])
}

/** A page of every org, newest first (the operator's list): `limit` rows and whether there are more. */
export async function listOrgs(db: DB, query: { limit: number; before?: { createdAt: string; id: string } }): Promise<{ rows: OrgRow[]; hasMore: boolean }> {
  let select = db.selectFrom('orgs').selectAll()
  if (query.before) select = select.where(olderThan(query.before))
  const rows = await select.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(query.limit + 1).execute()
  return pageOf(rows, query.limit)
}
