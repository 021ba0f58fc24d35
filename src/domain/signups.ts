import { z } from '@hono/zod-openapi'
import type { Partner } from '../../providers/types'
import * as entitlementsDb from '../db/entitlements'
import type { EmailRow, EntitlementRow, SignupFormRow, SignupRow } from '../db/schema'
import * as signupsDb from '../db/signups'
import { type AppDeps, nowIso, nowMs } from '../deps'
import { ApiError } from '../errors'
import type { Logger } from '../logger'
import { type AuditContext, auditStatement, diffFields } from './audit'
import { base64UrlDecode, base64UrlEncode, randomBytes, timingSafeEqual } from './crypto'
import { decodeCursor, encodeCursor } from './cursor'
import { entitlementJson } from './entitlements'
import { webhookDelivery } from './envelopes'
import { newId } from './ids'
import { type RetryPolicy, nextAttempt } from './retry'
import { formatIssues } from '../errors'
import { checkRedirectUrl, getOrg } from './orgs'

/**
 * The hosted new-client signup form (contract §10): per-org settings, the public form a buyer
 * fills in after the landing, and its confirmation email (an outbox the job works).
 */

export const OPTIONAL_FIELDS = ['company', 'phone', 'notes'] as const
export const FORM_FIELDS = ['name', 'email', ...OPTIONAL_FIELDS] as const
export type FormField = (typeof FORM_FIELDS)[number]

const EMAIL = /^[^\s@<>()[\]\\,;:"]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/
export const isEmail = (value: string) => value.length <= 254 && EMAIL.test(value)

export const SignupFormInputSchema = z.strictObject({
  companyName: z.string().trim().min(1).max(200),
  logoUrl: z.string().trim().min(1).max(2048).nullable().optional(),
  publicNotes: z.string().trim().max(2000).nullable().optional(),
  ccEmails: z.array(z.string().trim().refine(isEmail, 'must be an email address')).max(10).optional(),
  fields: z.array(z.enum(FORM_FIELDS)).max(5).optional(),
})

export interface SignupForm {
  companyName: string
  logoUrl: string | null
  publicNotes: string | null
  ccEmails: string[]
  fields: FormField[]
  signupId: string
  url: string
  createdAt: string
  updatedAt: string
}

export const signupFormUrl = (deps: AppDeps, signupId: string) => `${deps.config.PUBLIC_URL}/public/signup/newclient/${signupId}`

export function toSignupForm(deps: AppDeps, row: SignupFormRow): SignupForm {
  return {
    companyName: row.company_name,
    logoUrl: row.logo_url,
    publicNotes: row.public_notes,
    ccEmails: JSON.parse(row.cc_emails) as string[],
    fields: JSON.parse(row.fields) as FormField[],
    signupId: row.signup_id,
    url: signupFormUrl(deps, row.signup_id),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  }
}

/** `PUT …/signup-form`: the org's form settings; a later PUT keeps the signup id and URL. */
export async function putSignupForm(deps: AppDeps, orgId: string, body: unknown, audit: AuditContext): Promise<SignupForm> {
  await getOrg(deps, orgId)
  const parsed = SignupFormInputSchema.safeParse(body)
  if (!parsed.success) throw new ApiError('VALIDATION_ERROR', `Invalid signup form: ${formatIssues(parsed.error)}.`)
  const input = parsed.data
  const logoUrl = input.logoUrl ? checkRedirectUrl('logoUrl', input.logoUrl) : null
  // name and email are always asked; the others as configured (default: all).
  const optional = input.fields ? OPTIONAL_FIELDS.filter((f) => input.fields!.includes(f)) : [...OPTIONAL_FIELDS]
  const now = nowIso(deps)
  const settings = { companyName: input.companyName, logoUrl, publicNotes: input.publicNotes || null, ccEmails: [...new Set(input.ccEmails ?? [])], fields: ['name', 'email', ...optional] }
  const before = await signupsDb.findFormByOrg(deps.db, orgId)
  const old = before ? toSignupForm(deps, before) : null
  const changes = diffFields(old && { companyName: old.companyName, logoUrl: old.logoUrl, publicNotes: old.publicNotes, ccEmails: old.ccEmails, fields: old.fields }, settings)
  // The same settings PUT again: nothing is written, and no audit entry (see domain/audit.ts).
  if (old && Object.keys(changes).length === 0) return old
  const signupId = before?.signup_id ?? newId('sgn')
  const row = await signupsDb.upsertForm(
    deps.db,
    {
      org_id: orgId,
      signup_id: signupId,
      company_name: settings.companyName,
      logo_url: settings.logoUrl,
      public_notes: settings.publicNotes,
      cc_emails: JSON.stringify(settings.ccEmails),
      fields: JSON.stringify(settings.fields),
      created_at: now,
      updated_at: now,
    },
    [auditStatement(deps, audit, { orgId, action: before ? 'signup_form.updated' : 'signup_form.created', targetType: 'signup_form', targetId: signupId, changes })],
  )
  return toSignupForm(deps, row)
}

export async function getSignupForm(deps: AppDeps, orgId: string): Promise<SignupForm> {
  await getOrg(deps, orgId)
  const row = await signupsDb.findFormByOrg(deps.db, orgId)
  if (!row) throw new ApiError('NOT_FOUND', 'The org has no signup form yet; create it with PUT.')
  return toSignupForm(deps, row)
}

// ---- the form token (CSRF): signed, tied to the form and the entitlement, single-use -------------

const TOKEN_TTL_MS = 2 * 3600_000
const keys = new WeakMap<object, Promise<CryptoKey>>()

function tokenKey(deps: AppDeps): Promise<CryptoKey> {
  let key = keys.get(deps.config)
  if (!key) {
    key = (async () => {
      // A key of its own, derived from ENCRYPTION_KEY (HMAC of a fixed label), never the key itself.
      const master = await crypto.subtle.importKey('raw', base64UrlDecode(deps.config.ENCRYPTION_KEY.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
      const derived = await crypto.subtle.sign('HMAC', master, new TextEncoder().encode('marketbridge signup-form token v1'))
      return crypto.subtle.importKey('raw', derived, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
    })()
    keys.set(deps.config, key)
  }
  return key
}

async function mac(deps: AppDeps, text: string): Promise<string> {
  return base64UrlEncode(new Uint8Array(await crypto.subtle.sign('HMAC', await tokenKey(deps), new TextEncoder().encode(text))))
}

export async function issueFormToken(deps: AppDeps, signupId: string, entitlementId: string): Promise<string> {
  const nonce = base64UrlEncode(randomBytes(16))
  const expires = nowMs(deps) + TOKEN_TTL_MS
  return `${nonce}.${expires}.${await mac(deps, `${signupId}|${entitlementId}|${nonce}|${expires}`)}`
}

/** The token's nonce and expiry when it is genuine for this form and this entitlement (`expired` once its 2 h are over). */
export async function checkFormToken(deps: AppDeps, token: string, signupId: string, entitlementId: string): Promise<{ nonce: string; expiresAt: string; expired: boolean } | null> {
  const [nonce, expires, signature, extra] = token.split('.')
  if (!nonce || !expires || !signature || extra !== undefined || !/^\d{1,15}$/.test(expires)) return null
  if (!timingSafeEqual(signature, await mac(deps, `${signupId}|${entitlementId}|${nonce}|${expires}`))) return null
  return { nonce, expiresAt: new Date(Number(expires)).toISOString(), expired: Number(expires) < nowMs(deps) }
}

// ---- the public form ---------------------------------------------------------------------------

export interface FormContext {
  form: SignupFormRow
  companyName: string
  entitlement: EntitlementRow
  fields: FormField[]
}

/** The form and the entitlement it is for; null when either is unknown or they belong to different orgs. */
export async function formContext(deps: AppDeps, signupId: string, entitlementId: string): Promise<FormContext | null> {
  if (!/^sgn_[0-9a-z]{26}$/.test(signupId) || !/^ent_[0-9a-z]{26}$/.test(entitlementId)) return null
  const form = await signupsDb.findFormBySignupId(deps.db, signupId)
  if (!form) return null
  const entitlement = await entitlementsDb.findEntitlement(deps.db, form.org_id, entitlementId)
  if (!entitlement) return null
  return { form, companyName: form.company_name, entitlement, fields: JSON.parse(form.fields) as FormField[] }
}

export type FormValues = Partial<Record<FormField, string>>
export type FormErrors = Partial<Record<FormField, string>>

const LIMITS: Record<FormField, number> = { name: 200, email: 254, company: 200, phone: 40, notes: 2000 }

/** The submitted values (trimmed, only the form's fields) and what is wrong with them. */
export function validateSubmission(fields: FormField[], raw: Record<string, unknown>): { values: FormValues; errors: FormErrors } {
  const values: FormValues = {}
  const errors: FormErrors = {}
  for (const field of fields) {
    const value = typeof raw[field] === 'string' ? (raw[field] as string).replace(/\r\n/g, '\n').trim() : ''
    values[field] = value.slice(0, LIMITS[field] + 1)
    if (value.length > LIMITS[field]) errors[field] = `Please keep this under ${LIMITS[field]} characters.`
  }
  if (!values.name) errors.name = 'Please enter your name.'
  if (!values.email) errors.email = 'Please enter your email address.'
  else if (!errors.email && !isEmail(values.email)) errors.email = 'Please enter a valid email address, like name@example.com.'
  if (values.phone && !errors.phone && !/^[+()0-9 .\-/]{3,40}$/.test(values.phone)) errors.phone = 'Please enter a phone number (digits, spaces, + - ( ) only).'
  for (const field of fields) {
    // Only notes may span lines; elsewhere a line break or tab could shape the email's text.
    const forbidden = field === 'notes' ? /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/ : /[\u0000-\u001f\u007f]/
    if (values[field] && forbidden.test(values[field]!)) errors[field] = 'Please remove the line breaks and control characters.'
  }
  return { values, errors }
}

export const partnerNames: Record<Partner, string> = { azure: 'Microsoft Azure Marketplace', aws: 'AWS Marketplace', gcp: 'Google Cloud Marketplace' }

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch]!)
}

/** The confirmation email: plain text and HTML, everything the buyer typed escaped. */
export function confirmationEmail(context: FormContext, values: FormValues) {
  const { companyName, entitlement } = context
  const marketplace = partnerNames[entitlement.partner as Partner] ?? entitlement.partner
  const product = [entitlement.product_id, entitlement.plan_id].filter(Boolean).join(' / ')
  const subject = `${companyName}: your signup is confirmed`.replace(/[\r\n]+/g, ' ')
  const lines = [
    `Hello ${values.name},`,
    '',
    `thank you for signing up for ${companyName} through ${marketplace}${product ? ` (${product})` : ''}.`,
    `We have received your details and will be in touch at ${values.email}.`,
    '',
    `Your reference: ${entitlement.id}`,
    '',
    companyName,
  ]
  const html = `<!doctype html><html><body style="font-family:system-ui,sans-serif;line-height:1.5">
<p>Hello ${escapeHtml(values.name ?? '')},</p>
<p>thank you for signing up for <strong>${escapeHtml(companyName)}</strong> through ${escapeHtml(marketplace)}${product ? ` (${escapeHtml(product)})` : ''}.
We have received your details and will be in touch at ${escapeHtml(values.email ?? '')}.</p>
<p style="color:#666">Your reference: ${escapeHtml(entitlement.id)}</p>
<p>${escapeHtml(companyName)}</p>
</body></html>`
  return { subject, text: lines.join('\n'), html }
}

export interface Signup {
  id: string
  entitlementId: string
  name: string
  email: string
  company: string | null
  phone: string | null
  notes: string | null
  createdAt: string
  updatedAt: string
  emailStatus: SignupRow['email_status']
}

export function toSignup(row: SignupRow): Signup {
  return {
    id: row.id,
    entitlementId: row.entitlement_id,
    name: row.name,
    email: row.email,
    company: row.company,
    phone: row.phone,
    notes: row.notes,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    emailStatus: row.email_status,
  }
}

/**
 * A valid submission is stored in one write with its form token spent: the signup (updated if the
 * entitlement has one), its confirmation email (PENDING, or SKIPPED without SMTP; none when one
 * was queued for this signup in the last 10 minutes), and `signup.submitted` when the org has a
 * webhookUrl.
 */
/** A confirmation per entitlement at most this often (a second submission soon after updates the signup only). */
const EMAIL_EVERY_MS = 10 * 60_000

/**
 * Stores a valid submission (see above); null when its token was spent already (a replay), in
 * which case nothing is stored.
 */
export async function saveSignup(deps: AppDeps, context: FormContext, values: FormValues, token: { nonce: string; expiresAt: string }): Promise<{ signup: SignupRow; emailId: string | null } | null> {
  const now = nowIso(deps)
  const existing = await signupsDb.findSignupByEntitlement(deps.db, context.entitlement.id)
  const recent = existing ? await signupsDb.latestEmailSince(deps.db, existing.id, new Date(Date.parse(now) - EMAIL_EVERY_MS).toISOString()) : undefined
  const sending = Boolean(deps.config.SMTP_URL && deps.sendEmail)
  const signup: SignupRow = {
    // One signup per entitlement, named after it: two tabs submitting at once still make one.
    id: `sup_${context.entitlement.id.slice('ent_'.length)}`,
    org_id: context.form.org_id,
    entitlement_id: context.entitlement.id,
    name: values.name!,
    email: values.email!,
    company: values.company || null,
    phone: values.phone || null,
    notes: values.notes || null,
    email_status: recent ? recent.status : sending ? 'PENDING' : 'SKIPPED',
    created_at: existing?.created_at ?? now,
    updated_at: now,
  }
  const message = confirmationEmail(context, values)
  const org = await getOrg(deps, context.form.org_id)
  const delivery = org.webhookUrl
    ? webhookDelivery(
        {
          id: newId('evt'),
          type: 'signup.submitted',
          createdAt: now,
          orgId: org.id,
          entityType: 'SIGNUP',
          entityId: signup.id,
          action: 'SUBMIT',
          entityStatus: context.entitlement.status,
          partner: context.entitlement.partner,
        },
        `{"signup":${JSON.stringify(toSignup(signup))},"entitlement":${entitlementJson(context.entitlement)}}`,
      )
    : null
  const emailId = recent ? null : newId('eml')
  const saved = await signupsDb.saveSubmission(
    deps.db,
    token,
    signup,
    emailId === null ? null : {
      id: emailId,
      org_id: org.id,
      signup_id: signup.id,
      to_address: signup.email,
      cc: context.form.cc_emails,
      subject: message.subject,
      text: message.text,
      html: message.html,
      status: sending ? 'PENDING' : 'SKIPPED',
      next_attempt_at: now,
      created_at: now,
      updated_at: now,
    },
    delivery,
  )
  if (!saved) return null
  if (!sending && emailId) deps.logger.info('confirmation email skipped: no SMTP_URL', { orgId: org.id, signupId: signup.id })
  return { signup, emailId: sending ? emailId : null }
}

/** `GET …/signups`: newest first. */
export async function listSignups(deps: AppDeps, orgId: string, query: { limit: number; cursor?: string }) {
  await getOrg(deps, orgId)
  const { rows, hasMore } = await signupsDb.listSignups(deps.db, { orgId, limit: query.limit, before: query.cursor ? decodeCursor(query.cursor) : undefined })
  return { items: rows.map(toSignup), nextCursor: hasMore && rows.length ? encodeCursor(rows.at(-1)!) : null }
}

// ---- the outbox --------------------------------------------------------------------------------

/** Retries after 1, 5, 15 and 30 minutes, then hourly, for a day; then FAILED. */
export const EMAIL_RETRY: RetryPolicy = { delaysMs: [60_000, 300_000, 900_000, 1_800_000, 3_600_000], jitter: [1, 1], giveUpAfterMs: 24 * 3600_000, maxAttempts: null }

/**
 * A send not finished by then counts as failed and is retried later. Each SMTP step has its own
 * timeout, but a server answering slowly step after step could otherwise outlast the lease and let
 * another instance send the same email while this one still is.
 */
export const EMAIL_SEND_DEADLINE_MS = 80_000

/** Longer than the send's deadline, and within §12’s two minutes (a job interval included) for another instance to take over. */
export const EMAIL_LEASE_MS = 100_000

/** `work`, or a rejection once `ms` have passed (the timer never outlives the work). */
async function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`${what} took longer than ${ms / 1000} s`), { code: 'ETIMEDOUT' })), ms)
  })
  try {
    return await Promise.race([work, late])
  } finally {
    clearTimeout(timer)
  }
}

/** Sends the confirmation emails that are due (a batch per run). */
export async function sendDueEmails(deps: AppDeps, log: Logger): Promise<number> {
  if (!deps.sendEmail || !deps.config.SMTP_URL) return 0
  // One at a time, each leased just before it is sent (a lease covers one send).
  let sent = 0
  for (; sent < 20; sent++) {
    const now = nowMs(deps)
    const email = await signupsDb.claimDueEmail(deps.db, new Date(now).toISOString(), new Date(now + EMAIL_LEASE_MS).toISOString())
    if (!email) break
    await sendLeased(deps, deps.sendEmail, email, log)
  }
  return sent
}

/** One email, if this caller can lease it: sent, then settled (retried later on failure). */
export async function sendEmail(deps: AppDeps, id: string, log: Logger): Promise<void> {
  const send = deps.sendEmail
  if (!send || !deps.config.SMTP_URL) return
  const now = nowMs(deps)
  const email = await signupsDb.leaseEmail(deps.db, id, new Date(now).toISOString(), new Date(now + EMAIL_LEASE_MS).toISOString())
  if (email) await sendLeased(deps, send, email, log)
}

/** An email this caller has just leased: sent, then settled. */
async function sendLeased(deps: AppDeps, send: NonNullable<AppDeps['sendEmail']>, email: EmailRow, log: Logger): Promise<void> {
  const emailLog = log.child({ emailId: email.id, orgId: email.org_id })
  try {
    await withDeadline(
      send({ from: deps.config.EMAIL_FROM, to: email.to_address, cc: JSON.parse(email.cc) as string[], subject: email.subject, text: email.text, html: email.html }),
      EMAIL_SEND_DEADLINE_MS,
      'the SMTP send',
    )
    await signupsDb.settleEmail(deps.db, email, { status: 'SENT', error: null, nextAttemptAt: null, now: nowIso(deps) })
    emailLog.info('confirmation email sent', { attempt: email.attempts })
  } catch (error) {
    // The SMTP server's answer, never the URL (it carries the credentials).
    const reason = (error instanceof Error ? `${(error as Error & { code?: string }).code ?? error.name}: ${error.message}` : String(error)).replace(/smtps?:\/\/[^\s]*/gi, 'smtp://…').slice(0, 1024)
    const { at, giveUp } = nextAttempt(EMAIL_RETRY, email.attempts, nowMs(deps), Date.parse(email.created_at))
    await signupsDb.settleEmail(deps.db, email, { status: giveUp ? 'FAILED' : 'PENDING', error: reason, nextAttemptAt: new Date(at).toISOString(), now: nowIso(deps) })
    emailLog.warn('confirmation email failed', { attempt: email.attempts, error: reason, final: giveUp })
  }
}
