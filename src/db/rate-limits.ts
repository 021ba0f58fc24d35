import { runCompiled } from './compiled'
import type { DB } from './schema'

/**
 * Counts one request of `keyId` in `window` unless the window's count has reached `limit`: one
 * UPSERT (the same statement on SQLite, D1 and PostgreSQL), atomic in the database, so requests
 * racing on several instances never count past the limit between them. Answers the count with
 * this request, or null when the limit was reached already (then nothing is written: a refused
 * request does not use up the next one's room, and costs no row change).
 */
export async function countRequest(db: DB, keyId: string, window: number, limit: number): Promise<number | null> {
  const result = await runCompiled(
    db,
    'countRequest',
    (p) =>
      db
        .insertInto('rate_limits')
        .values({ key_id: p('keyId'), window: p('window'), count: 1 })
        .onConflict((oc) =>
          oc
            .columns(['key_id', 'window'])
            .doUpdateSet((eb) => ({ count: eb('rate_limits.count', '+', 1) }))
            .where('rate_limits.count', '<', p('limit')),
        )
        .returning('count'),
    { keyId, window, limit },
  )
  const row = result.rows[0]
  return row ? Number(row.count) : null
}

/** Forgets the windows before `window` (the background job). */
export async function pruneRateLimits(db: DB, window: number): Promise<void> {
  await db.deleteFrom('rate_limits').where('window', '<', window).execute()
}
