import { runCompiled } from './compiled'
import type { DB } from './schema'

/**
 * Hands `slice` requests of `keyId`'s `window` to the caller unless the window's count has
 * reached `limit`: one UPSERT (the same statement on SQLite, D1 and PostgreSQL), atomic in the
 * database, so instances racing on one key never hand out more than the limit between them.
 * Answers the count with this slice, or null when the limit was reached already (then nothing
 * is written: a refused request does not use up the next window's room, and changes no row).
 * The count can pass `limit` by less than one slice: the caller keeps only what fits (see
 * domain/rate-limits.ts).
 */
export async function claimRequests(db: DB, keyId: string, window: number, limit: number, slice: number): Promise<number | null> {
  const result = await runCompiled(
    db,
    'claimRequests',
    (p) =>
      db
        .insertInto('rate_limits')
        .values({ key_id: p('keyId'), window: p('window'), count: p('slice') })
        .onConflict((oc) =>
          oc
            .columns(['key_id', 'window'])
            .doUpdateSet((eb) => ({ count: eb('rate_limits.count', '+', eb.ref('excluded.count')) }))
            .where('rate_limits.count', '<', p('limit')),
        )
        .returning('count'),
    { keyId, window, limit, slice },
  )
  const row = result.rows[0]
  return row ? Number(row.count) : null
}

/** Forgets the windows before `window` (the background job). */
export async function pruneRateLimits(db: DB, window: number): Promise<void> {
  await db.deleteFrom('rate_limits').where('window', '<', window).execute()
}
