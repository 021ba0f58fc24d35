import type { Insertable } from 'kysely'
import { claimRequests } from './rate-limits'
import type { ConsoleSessionsTable, DB } from './schema'

/** A session as the console reads it: the row, with its key's name, scope and state when it has one. */
export interface SessionWithKey {
  id_hash: string
  org_id: string | null
  key_id: string | null
  credential_hash: string | null
  csrf_token: string
  last_seen_at: string
  expires_at: string
  key_name: string | null
  key_scope: string | null
  key_revoked_at: string | null
  key_expires_at: string | null
}

export async function insertSession(db: DB, row: Insertable<ConsoleSessionsTable>): Promise<void> {
  await db.insertInto('console_sessions').values(row).execute()
}

/** The session with this hash joined to its key (none for an operator's), or undefined. */
export function findSession(db: DB, idHash: string): Promise<SessionWithKey | undefined> {
  return db
    .selectFrom('console_sessions as s')
    .leftJoin('api_keys as k', 'k.id', 's.key_id')
    .select([
      's.id_hash',
      's.org_id',
      's.key_id',
      's.credential_hash',
      's.csrf_token',
      's.last_seen_at',
      's.expires_at',
      'k.name as key_name',
      'k.scope as key_scope',
      'k.revoked_at as key_revoked_at',
      'k.expires_at as key_expires_at',
    ])
    .where('s.id_hash', '=', idHash)
    .executeTakeFirst()
}

/** Moves the idle expiry on (a session in use stays signed in). */
export async function touchSession(db: DB, idHash: string, lastSeenAt: string, expiresAt: string): Promise<void> {
  await db.updateTable('console_sessions').set({ last_seen_at: lastSeenAt, expires_at: expiresAt }).where('id_hash', '=', idHash).execute()
}

export async function deleteSession(db: DB, idHash: string): Promise<void> {
  await db.deleteFrom('console_sessions').where('id_hash', '=', idHash).execute()
}

/** The job's pruning: sessions idle past their expiry. */
export async function deleteExpiredSessions(db: DB, now: string): Promise<void> {
  await db.deleteFrom('console_sessions').where('expires_at', '<=', now).execute()
}

/**
 * Takes one of the `limit` sign-in attempts `address` may make unchecked in `window` (counted in
 * rate_limits under `console-sign-in:`): one UPSERT, so instances and parallel requests never
 * check more than `limit` between them. False when they are used up.
 */
export async function reserveSignInAttempt(db: DB, address: string, window: number, limit: number): Promise<boolean> {
  return (await claimRequests(db, `console-sign-in:${address}`, window, limit, 1)) !== null
}

/** Gives a reserved attempt back: it was right, so it does not count against the address. */
export async function releaseSignInAttempt(db: DB, address: string, window: number): Promise<void> {
  await db
    .updateTable('rate_limits')
    .set((eb) => ({ count: eb('count', '-', 1) }))
    .where('key_id', '=', `console-sign-in:${address}`)
    .where('window', '=', window)
    .where('count', '>', 0)
    .execute()
}
