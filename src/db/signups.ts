import type { Insertable } from 'kysely'
import { type Statement, atomically, returningWith } from './batch'
import type { DB, EmailRow, EmailsTable, SignupFormRow, SignupFormsTable, SignupRow, SignupsTable } from './schema'
import { claimDue, notHeld, olderThan, pageOf } from './outbox'
import { type NewDelivery, deliveryIfHooked } from './webhooks'

/** The hosted signup form's tables (migration 0008). */

export function findFormByOrg(db: DB, orgId: string): Promise<SignupFormRow | undefined> {
  return db.selectFrom('signup_forms').selectAll().where('org_id', '=', orgId).executeTakeFirst()
}

export function findFormBySignupId(db: DB, signupId: string): Promise<SignupFormRow | undefined> {
  return db.selectFrom('signup_forms').selectAll().where('signup_id', '=', signupId).executeTakeFirst()
}

/** Creates or replaces the org's form settings, with `also` (its audit entry) in the same atomic write; the signup id of an existing form is kept. */
export async function upsertForm(db: DB, row: Insertable<SignupFormsTable>, also: Statement[] = []): Promise<SignupFormRow> {
  const upsert = db
    .insertInto('signup_forms')
    .values(row)
    .onConflict((oc) =>
      oc.column('org_id').doUpdateSet({
        company_name: row.company_name,
        logo_url: row.logo_url,
        public_notes: row.public_notes,
        cc_emails: row.cc_emails,
        fields: row.fields,
        updated_at: row.updated_at,
      }),
    )
    .returningAll()
  return (await returningWith<SignupFormRow>(db, upsert, also))[0]!
}

/** Spent tokens are kept only until they would have expired anyway. */
export async function deleteExpiredTokens(db: DB, now: string): Promise<void> {
  await db.deleteFrom('signup_tokens').where('expires_at', '<', now).execute()
}

export function findSignupByEntitlement(db: DB, entitlementId: string): Promise<SignupRow | undefined> {
  return db.selectFrom('signups').selectAll().where('entitlement_id', '=', entitlementId).executeTakeFirst()
}

export function findSignup(db: DB, id: string): Promise<SignupRow | undefined> {
  return db.selectFrom('signups').selectAll().where('id', '=', id).executeTakeFirst()
}

/**
 * A submission in one atomic write: the signup (a second one for the entitlement updates it), its
 * confirmation email in the outbox, and its `signup.submitted` delivery when there is one.
 */
export async function saveSubmission(
  db: DB,
  token: { nonce: string; expiresAt: string },
  signup: Insertable<SignupsTable>,
  email: Insertable<EmailsTable> | null,
  delivery: NewDelivery | null,
): Promise<boolean> {
  // The form's token is spent in the same write: a replay stores nothing, a failed write spends nothing.
  if (await db.selectFrom('signup_tokens').select('nonce').where('nonce', '=', token.nonce).executeTakeFirst()) return false
  const statements: Statement[] = [
    db.insertInto('signup_tokens').values({ nonce: token.nonce, expires_at: token.expiresAt }),
    db
      .insertInto('signups')
      .values(signup)
      .onConflict((oc) =>
        oc.column('entitlement_id').doUpdateSet({
          name: signup.name,
          email: signup.email,
          company: signup.company,
          phone: signup.phone,
          notes: signup.notes,
          email_status: signup.email_status,
          updated_at: signup.updated_at,
        }),
      ),
  ]
  if (email) statements.push(db.insertInto('emails').values(email))
  if (delivery) statements.push(deliveryIfHooked(db, delivery))
  try {
    await atomically(db, statements)
  } catch (error) {
    // Two submissions with one token at the same moment: the other one spent it.
    if (await db.selectFrom('signup_tokens').select('nonce').where('nonce', '=', token.nonce).executeTakeFirst()) return false
    throw error
  }
  return true
}

/** The signup's newest email created after `since`, if any. */
export function latestEmailSince(db: DB, signupId: string, since: string): Promise<Pick<EmailRow, 'id' | 'status'> | undefined> {
  return db.selectFrom('emails').select(['id', 'status']).where('signup_id', '=', signupId).where('created_at', '>', since).orderBy('id', 'desc').limit(1).executeTakeFirst()
}

export async function listSignups(
  db: DB,
  query: { orgId: string; limit: number; before?: { createdAt: string; id: string } },
): Promise<{ rows: SignupRow[]; hasMore: boolean }> {
  let select = db.selectFrom('signups').selectAll().where('org_id', '=', query.orgId)
  if (query.before) select = select.where(olderThan(query.before))
  const rows = await select.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(query.limit + 1).execute()
  return pageOf(rows, query.limit)
}

// ---- the email outbox ------------------------------------------------------------------------

/** Leases the oldest due email nobody holds, if any (see claimDue). */
export async function claimDueEmail(db: DB, now: string, leaseUntil: string): Promise<EmailRow | undefined> {
  return (await claimDue(db, 'emails', now, leaseUntil, 1, true))[0]
}

export function leaseEmail(db: DB, id: string, now: string, leaseUntil: string): Promise<EmailRow | undefined> {
  return db
    .updateTable('emails')
    .set((eb) => ({ lease_until: leaseUntil, attempts: eb('attempts', '+', 1), updated_at: now }))
    .where('id', '=', id)
    .where('status', '=', 'PENDING')
    .where('next_attempt_at', '<=', now)
    .where(notHeld(now))
    .returningAll()
    .executeTakeFirst()
}

/** An email's outcome, mirrored on its signup (when it is that signup's newest email). */
export async function settleEmail(db: DB, email: EmailRow, outcome: { status: EmailRow['status']; error: string | null; nextAttemptAt: string | null; now: string }): Promise<void> {
  await atomically(db, [
    db
      .updateTable('emails')
      .set({ status: outcome.status, last_error: outcome.error, next_attempt_at: outcome.nextAttemptAt ?? email.next_attempt_at, lease_until: null, updated_at: outcome.now })
      .where('id', '=', email.id),
    db
      .updateTable('signups')
      .set({ email_status: outcome.status })
      .where('id', '=', email.signup_id)
      .where((eb) => eb.not(eb.exists(eb.selectFrom('emails as newer').select('newer.id').where('newer.signup_id', '=', email.signup_id).where('newer.id', '>', email.id)))),
  ])
}
