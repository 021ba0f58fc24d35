import { type CompiledQuery, type Insertable, type SqlBool, sql } from 'kysely'
import { insertWhere } from './batch'
import { compiledQuery, placeholders, runCompiled } from './compiled'
import type { DB, LandingClaimRow, LandingClaimsTable, PendingActivationRow } from './schema'

/**
 * Landing claims and pending activations: hand-overs done in one statement each (insert or
 * take over an expired lease), so they hold across processes and on D1, which has no
 * interactive transactions. "Mine" is decided by whether the statement returned a row.
 */

/** Inserts the claim, or takes over one whose lease ran out. True when the caller now holds it. */
export async function claimLanding(db: DB, row: Insertable<LandingClaimsTable>, now: string): Promise<boolean> {
  const columns = ['token_hash', 'org_id', 'partner', 'partner_id', 'sealed_token', 'lease_until', 'created_at'] as const
  const taken = await runCompiled(
    db,
    'claimLanding',
    (p) =>
      db
        .insertInto('landing_claims')
        .values(placeholders(p, columns) as never)
        .onConflict((oc) =>
          oc
            .column('token_hash')
            .doUpdateSet((eb) => ({
              sealed_token: eb.ref('excluded.sealed_token'),
              lease_until: eb.ref('excluded.lease_until'),
              attempts: eb('landing_claims.attempts', '+', 1),
            }))
            .where('landing_claims.lease_until', '<', p('now')),
        )
        .returning('token_hash'),
    { partner_id: null, ...row, now },
  )
  return taken.rows.length > 0
}

export function findClaim(db: DB, tokenHash: string): Promise<LandingClaimRow | undefined> {
  return db.selectFrom('landing_claims').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst()
}

export async function releaseClaim(db: DB, tokenHash: string): Promise<void> {
  await db.executeQuery(releaseStatement(db, tokenHash))
}

/** `releaseClaim` as a statement, to be written with the landing's last write (db/batch.ts). */
export function releaseStatement(db: DB, tokenHash: string): CompiledQuery {
  return compiledQuery(db, 'releaseClaim', (p) => db.deleteFrom('landing_claims').where('token_hash', '=', p('tokenHash')), { tokenHash })
}

/**
 * Claims whose holder is gone (lease expired), taken over with a fresh lease in one statement
 * that re-checks the lease as it writes: each goes to one caller (on PostgreSQL the stale rows
 * are locked SKIP LOCKED, so instances recovering at once take different ones).
 */
export async function takeStaleClaims(db: DB, now: string, leaseUntil: string, limit: number): Promise<LandingClaimRow[]> {
  const stale = db.selectFrom('landing_claims').select('token_hash').where('lease_until', '<', now).orderBy('lease_until').limit(limit)
  // Usually there is none: a read says so without a write.
  if (!(await stale.executeTakeFirst())) return []
  return db
    .updateTable('landing_claims')
    .set((eb) => ({ lease_until: leaseUntil, attempts: eb('attempts', '+', 1) }))
    .where('token_hash', 'in', db.dialect.skipLocked ? stale.forUpdate().skipLocked() : stale)
    .where('lease_until', '<', now)
    .returningAll()
    .execute()
}

/**
 * Takes the right to call Activate for an entitlement: creates its pending row already
 * leased, or leases an existing one whose lease ran out. A buyer's revisit ignores the
 * job's backoff (next_attempt_at); the job respects it (`due`).
 */
export async function holdActivation(
  db: DB,
  row: { entitlement_id: string; org_id: string; partner: string; lease_until: string; created_at: string },
  now: string,
  options: { due?: boolean } = {},
): Promise<PendingActivationRow | undefined> {
  const result = await runCompiled(
    db,
    options.due ? 'holdActivation:due' : 'holdActivation',
    (p) =>
      db
        .insertInto('pending_activations')
        .values({
          entitlement_id: p('entitlement_id'),
          org_id: p('org_id'),
          partner: p('partner'),
          lease_until: p('lease_until'),
          created_at: p('created_at'),
          next_attempt_at: p('now'),
          attempts: 0,
          last_error: null,
        })
        .onConflict((oc) => {
          let update = oc
            .column('entitlement_id')
            .doUpdateSet((eb) => ({ lease_until: eb.ref('excluded.lease_until') }))
            .where('pending_activations.lease_until', '<', p('now'))
          if (options.due) update = update.where('pending_activations.next_attempt_at', '<=', p('now'))
          return update
        })
        .returningAll(),
    { ...row, now },
  )
  return result.rows[0]
}

/**
 * The pending activation of an entitlement being created, held by its creator: written with the
 * entitlement's insert (as `also`), and only if that insert happened (a D1 batch writes it
 * without looking at the insert's answer; the new entitlement's id exists only if it did).
 */
export function holdNewActivation(db: DB, row: Pick<PendingActivationRow, 'entitlement_id' | 'org_id' | 'partner' | 'lease_until' | 'created_at'>): CompiledQuery {
  const columns = ['entitlement_id', 'org_id', 'partner', 'next_attempt_at', 'lease_until', 'created_at'] as const
  return compiledQuery(
    db,
    'holdNewActivation',
    (p) => insertWhere(db, 'pending_activations', columns, p, sql<SqlBool>`exists (select 1 from entitlements where id = ${p('entitlement_id')})`),
    { ...row, next_attempt_at: row.created_at },
  )
}

export async function activationSettled(db: DB, entitlementId: string): Promise<void> {
  await db.executeQuery(settleActivation(db, entitlementId))
}

/** `activationSettled` as a statement, to be written with the change it settles (db/batch.ts). */
export function settleActivation(db: DB, entitlementId: string): CompiledQuery {
  return compiledQuery(db, 'activationSettled', (p) => db.deleteFrom('pending_activations').where('entitlement_id', '=', p('entitlementId')), { entitlementId })
}

/** Records a failed attempt, releases the lease and sets when the job tries again. */
export async function activationFailed(db: DB, entitlementId: string, failure: { nextAttemptAt: string; error: string; now: string }): Promise<number> {
  const row = await db
    .updateTable('pending_activations')
    .set((eb) => ({ attempts: eb('attempts', '+', 1), next_attempt_at: failure.nextAttemptAt, last_error: failure.error, lease_until: failure.now }))
    .where('entitlement_id', '=', entitlementId)
    .returning('attempts')
    .executeTakeFirst()
  return row?.attempts ?? 0
}

/**
 * Leases the oldest pending activation whose backoff is over and whose lease ran out, if any, in
 * one statement that re-checks both as it writes (on PostgreSQL SKIP LOCKED: instances claiming
 * at once take different ones). The job's counterpart of `holdActivation`.
 */
export async function claimDueActivation(db: DB, now: string, leaseUntil: string): Promise<PendingActivationRow | undefined> {
  const due = db.selectFrom('pending_activations').select('entitlement_id').where('next_attempt_at', '<=', now).where('lease_until', '<', now).orderBy('next_attempt_at').limit(1)
  // Usually there is none: a read says so without a write.
  if (!(await due.executeTakeFirst())) return undefined
  return db
    .updateTable('pending_activations')
    .set({ lease_until: leaseUntil })
    .where('entitlement_id', 'in', db.dialect.skipLocked ? due.forUpdate().skipLocked() : due)
    .where('next_attempt_at', '<=', now)
    .where('lease_until', '<', now)
    .returningAll()
    .executeTakeFirst()
}
