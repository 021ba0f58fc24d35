import * as sessionsDb from '../db/console-sessions'
import { type AppDeps, nowIso, nowMs } from '../deps'
import type { AuditActor, AuditContext } from './audit'
import { randomSecret, sha256Hex, timingSafeEqual } from './crypto'
import { authenticate } from './orgs'

/**
 * The console's sessions (contract §14): server-side rows keyed by the SHA-256 of a random
 * cookie value. A session ends after 12 h without use, at sign-out, when its API key is revoked
 * or expires (read joined to the key on every request), and — an operator's — when ADMIN_TOKEN
 * changes. Each carries its own CSRF token, which every state-changing form sends back.
 */

export const SESSION_IDLE_MS = 12 * 3600_000
/** last_seen_at (and with it the idle expiry) is written at most this often per session. */
const TOUCH_EVERY_MS = 60_000
/** Wrong sign-ins allowed per address and minute; beyond them sign-in is refused until the minute ends. */
export const SIGN_IN_FAILURES_PER_MINUTE = 10
const MINUTE_MS = 60_000

export interface ConsoleSession {
  idHash: string
  /** The org the session may see; null: an operator, who sees every org. */
  orgId: string | null
  keyId: string | null
  keyName: string | null
  csrfToken: string
}

export type SignInResult =
  | { ok: true; cookieValue: string; session: ConsoleSession }
  | { ok: false; reason: 'throttled'; retryAfterSeconds: number }
  | { ok: false; reason: 'wrong' | 'read-key' }

/** Who the audit log names for a change made in the console: the key signed in with, or the operator. */
export function consoleAudit(session: ConsoleSession, requestId: string | null): AuditContext {
  const actor: AuditActor = session.orgId ? { type: 'console', id: session.keyId, name: session.keyName } : { type: 'console', id: null, name: 'operator' }
  return { actor, requestId }
}

/** Whether `orgId`'s pages are this session's to see. */
export const maySee = (session: ConsoleSession, orgId: string) => session.orgId === null || session.orgId === orgId

const adminHashes = new WeakMap<AppDeps, Promise<string>>()
function adminHash(deps: AppDeps): Promise<string> {
  let hash = adminHashes.get(deps)
  if (!hash) adminHashes.set(deps, (hash = sha256Hex(deps.config.ADMIN_TOKEN)))
  return hash
}

/**
 * Signs in with a `full` API key or the admin token. After SIGN_IN_FAILURES_PER_MINUTE wrong
 * attempts from one address in a minute, every attempt from it is refused until the minute is
 * over (right ones too: an attempt refused unchecked tells nothing).
 */
export async function signIn(deps: AppDeps, credential: string, address: string): Promise<SignInResult> {
  const now = nowMs(deps)
  const window = Math.floor(now / MINUTE_MS)
  // The attempt is counted before it is checked (atomically, so parallel attempts cannot all
  // slip under the limit), and given back when it was right.
  if (!(await sessionsDb.reserveSignInAttempt(deps.db, address, window, SIGN_IN_FAILURES_PER_MINUTE))) {
    return { ok: false, reason: 'throttled', retryAfterSeconds: Math.max(1, Math.ceil(((window + 1) * MINUTE_MS - now) / 1000)) }
  }
  const caller = await authenticate(deps, credential.trim())
  if (!caller || (caller.kind === 'org' && caller.scope !== 'full')) return { ok: false, reason: caller ? 'read-key' : 'wrong' }
  await sessionsDb.releaseSignInAttempt(deps.db, address, window)
  const cookieValue = randomSecret(32)
  const idHash = await sha256Hex(cookieValue)
  const session: ConsoleSession =
    caller.kind === 'admin'
      ? { idHash, orgId: null, keyId: null, keyName: null, csrfToken: randomSecret(24) }
      : { idHash, orgId: caller.orgId, keyId: caller.keyId, keyName: caller.keyName, csrfToken: randomSecret(24) }
  const at = new Date(now).toISOString()
  await sessionsDb.insertSession(deps.db, {
    id_hash: idHash,
    org_id: session.orgId,
    key_id: session.keyId,
    credential_hash: caller.kind === 'admin' ? await adminHash(deps) : null,
    csrf_token: session.csrfToken,
    created_at: at,
    last_seen_at: at,
    expires_at: new Date(now + SESSION_IDLE_MS).toISOString(),
  })
  return { ok: true, cookieValue, session }
}

/** The live session a cookie value stands for, or null (unknown, idle too long, its key revoked or expired). */
export async function loadSession(deps: AppDeps, cookieValue: string | undefined): Promise<ConsoleSession | null> {
  if (!cookieValue || cookieValue.length > 128) return null
  const idHash = await sha256Hex(cookieValue)
  const row = await sessionsDb.findSession(deps.db, idHash)
  if (!row) return null
  const now = nowMs(deps)
  const nowText = new Date(now).toISOString()
  const keyDead = row.key_id !== null && (row.key_name === null || row.key_revoked_at !== null || (row.key_expires_at !== null && row.key_expires_at <= nowText))
  const operatorDead = row.key_id === null && (row.credential_hash === null || !timingSafeEqual(row.credential_hash, await adminHash(deps)))
  if (row.expires_at <= nowText || keyDead || operatorDead) {
    await sessionsDb.deleteSession(deps.db, idHash)
    return null
  }
  if (now - Date.parse(row.last_seen_at) >= TOUCH_EVERY_MS) {
    await sessionsDb.touchSession(deps.db, idHash, nowText, new Date(now + SESSION_IDLE_MS).toISOString())
  }
  return { idHash, orgId: row.org_id, keyId: row.key_id, keyName: row.key_name, csrfToken: row.csrf_token }
}

export async function signOut(deps: AppDeps, session: ConsoleSession): Promise<void> {
  await sessionsDb.deleteSession(deps.db, session.idHash)
}

/** Ends the session a cookie value stands for, if any (a browser signing in again leaves no live session behind). */
export async function endSessionOf(deps: AppDeps, cookieValue: string | undefined): Promise<void> {
  if (cookieValue && cookieValue.length <= 128) await sessionsDb.deleteSession(deps.db, await sha256Hex(cookieValue))
}

/** Whether a form's CSRF field is this session's token. */
export const csrfMatches = (session: ConsoleSession, sent: unknown) => typeof sent === 'string' && sent.length > 0 && timingSafeEqual(sent, session.csrfToken)

export function pruneConsoleSessions(deps: AppDeps): Promise<void> {
  return sessionsDb.deleteExpiredSessions(deps.db, nowIso(deps))
}
