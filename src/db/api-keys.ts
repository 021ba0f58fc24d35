import { type Expression, type Insertable, type SqlBool, sql } from 'kysely'
import { type Statement, atomically, returningWith } from './batch'
import type { ApiKeyRow, ApiKeysTable, DB } from './schema'

/** The columns authentication needs: everything but the hash and the prefix. */
export type KeyForAuth = Pick<ApiKeyRow, 'id' | 'org_id' | 'name' | 'scope' | 'rate_limit_per_minute' | 'expires_at' | 'last_used_at'>

/** The unrevoked key with this hash (expiry is the caller's to check against its clock). */
export function findKeyByHash(db: DB, keyHash: string): Promise<KeyForAuth | undefined> {
  return db
    .selectFrom('api_keys')
    .select(['id', 'org_id', 'name', 'scope', 'rate_limit_per_minute', 'expires_at', 'last_used_at'])
    .where('key_hash', '=', keyHash)
    .where('revoked_at', 'is', null)
    .executeTakeFirst()
}

/** Inserts a key, with `also` (its audit entry) in the same atomic write. */
export async function insertKey(db: DB, key: Insertable<ApiKeysTable>, also: Statement[] = []): Promise<ApiKeyRow> {
  const [row] = await returningWith<ApiKeyRow>(db, db.insertInto('api_keys').values(key).returningAll(), also)
  return row!
}

/** An org's keys, newest first. */
export function listKeys(db: DB, orgId: string): Promise<ApiKeyRow[]> {
  return db.selectFrom('api_keys').selectAll().where('org_id', '=', orgId).orderBy('created_at', 'desc').orderBy('id', 'desc').execute()
}

export function findKey(db: DB, orgId: string, id: string): Promise<ApiKeyRow | undefined> {
  return db.selectFrom('api_keys').selectAll().where('org_id', '=', orgId).where('id', '=', id).executeTakeFirst()
}

/**
 * Revokes the key unless it is revoked already (a second revocation keeps the first time), and
 * answers it. `audit(when)` builds the entry written in the same atomic write, guarded by `when`:
 * true only when this call is the one that revoked it.
 */
export async function revokeKey(db: DB, orgId: string, id: string, now: string, audit?: (when: Expression<SqlBool>) => Statement): Promise<ApiKeyRow | undefined> {
  const revoke = db.updateTable('api_keys').set({ revoked_at: now }).where('org_id', '=', orgId).where('id', '=', id).where('revoked_at', 'is', null)
  const revokedNow = sql<SqlBool>`exists (select 1 from api_keys where id = ${id} and revoked_at = ${now})`
  await atomically(db, [revoke, ...(audit ? [audit(revokedNow)] : [])])
  return findKey(db, orgId, id)
}

/**
 * A rotation in one atomic write: the new key, and the old one expiring at `oldExpiresAt` — or
 * at its own expiry when that comes sooner (a grace period never lengthens a key's life).
 */
export async function rotateKey(db: DB, old: { org_id: string; id: string }, oldExpiresAt: string, key: Insertable<ApiKeysTable>, also: Statement[] = []): Promise<void> {
  await atomically(db, [
    ...also,
    db.insertInto('api_keys').values(key),
    db
      .updateTable('api_keys')
      .set({ expires_at: oldExpiresAt })
      .where('org_id', '=', old.org_id)
      .where('id', '=', old.id)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', oldExpiresAt)])),
  ])
}

/**
 * Records that the key was used at `now` unless that was recorded since `staleBefore`: of the
 * instances that see a key within the same minute, one writes (`true`), the others change nothing.
 */
export async function touchKey(db: DB, id: string, now: string, staleBefore: string): Promise<boolean> {
  const result = await db
    .updateTable('api_keys')
    .set({ last_used_at: now })
    .where('id', '=', id)
    .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', staleBefore)]))
    .executeTakeFirst()
  return Number(result.numUpdatedRows) > 0
}
