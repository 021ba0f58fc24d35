import { BoundedMap } from '../bounded-map'
import type { Config } from '../config'
import { claimRequests, pruneRateLimits } from '../db/rate-limits'
import type { DB } from '../db/schema'
import { type AppDeps, nowMs } from '../deps'
import type { Caller } from './caller'

/**
 * Rate limits per API key (contract §13), counted in the database so that every instance and
 * Workers isolate spends one budget: fixed one-minute windows aligned to the clock's minutes (a
 * key may send up to twice its limit across a window boundary — the price of one counter per
 * window instead of a log of request times).
 *
 * The database hands out requests in slices of a thousandth of the limit (at least 1), which an
 * instance then spends from memory: one UPSERT per slice instead of one per request (a write per
 * read cost the entitlement read two thirds of its throughput on SQLite). Nothing is ever spent
 * that the database did not hand out, so all instances together never pass the limit; what an
 * instance holds unspent when another is refused is less than one slice, so the total falls
 * short of the limit by under 0.1 % per instance using the key — within the contract's 10 % for
 * up to 100 instances or isolates at once. Below 2,000 a minute a slice is one request: exact.
 */

export const WINDOW_SECONDS = 60
const WINDOW_MS = WINDOW_SECONDS * 1000

/** The IETF draft's policy name (draft-ietf-httpapi-ratelimit-headers): one policy, so `default`. */
const POLICY = 'default'

export interface RateLimitState {
  limit: number
  /** Requests the key may still make in this window (after this one, when it was allowed). */
  remaining: number
  /** Whole seconds until the window ends and the count starts again (1–60). */
  resetSeconds: number
  allowed: boolean
}

/**
 * The requests per minute a key may make, or null for none: its own `rateLimitPerMinute`, else
 * RATE_LIMIT_PER_MINUTE, where 0 means no default limit (a key's own limit still holds: the ISV
 * set it on purpose).
 */
export function limitFor(caller: Extract<Caller, { kind: 'org' }>, config: Pick<Config, 'RATE_LIMIT_PER_MINUTE'>): number | null {
  const limit = caller.rateLimitPerMinute ?? config.RATE_LIMIT_PER_MINUTE
  return limit > 0 ? limit : null
}

const windowOf = (ms: number) => Math.floor(ms / WINDOW_MS)

export const sliceOf = (limit: number) => Math.max(1, Math.floor(limit / 1000))

/** What this instance holds of one key's current window. */
interface Slices {
  window: number
  limit: number
  /** Handed out by the database and not yet spent here. */
  unspent: number
  /** The window's count in the database as last seen, without what passed the limit. */
  counted: number
  /** The database refused: the window is spent (no instance can give requests back). */
  spent: boolean
  claiming?: Promise<void>
}

// Per database handle (one per instance or isolate; tests start several in one process), bounded
// like the other in-process caches: a key forgotten here only costs its unspent slice.
const slicesByDb = new WeakMap<DB, BoundedMap<string, Slices>>()
const KEYS_HELD = 10_000

function slicesOf(db: DB, keyId: string, window: number, limit: number): Slices {
  let keys = slicesByDb.get(db)
  if (!keys) slicesByDb.set(db, (keys = new BoundedMap(KEYS_HELD)))
  let held = keys.get(keyId)
  // A new window, or the key's limit changed: what was held belongs to the old terms.
  if (!held || held.window !== window || held.limit !== limit) keys.set(keyId, (held = { window, limit, unspent: 0, counted: 0, spent: false }))
  return held
}

async function claim(db: DB, keyId: string, held: Slices): Promise<void> {
  const slice = sliceOf(held.limit)
  const count = await claimRequests(db, keyId, held.window, held.limit, slice)
  if (count === null) {
    held.spent = true
    held.counted = held.limit
    return
  }
  // The last slice of a window may pass the limit: only what fits under it is ours.
  const granted = Math.min(slice, held.limit - (count - slice))
  held.unspent += granted
  held.counted = Math.max(held.counted, count - slice + granted)
}

/** One request from what this instance holds (none held and the window spent: refused). */
function spend(held: Slices, limit: number, resetSeconds: number): RateLimitState {
  if (held.unspent === 0) return { limit, remaining: 0, resetSeconds, allowed: false }
  held.unspent--
  // Exact on one instance (counted - unspent = spent here); others' spending shows at the next claim.
  return { limit, remaining: Math.max(0, limit - held.counted + held.unspent), resetSeconds, allowed: true }
}

// Rounded up: a client that waits this long is in the next window, never a moment early.
const resetSecondsAt = (now: number, window: number) => Math.ceil(((window + 1) * WINDOW_MS - now) / 1000)

/** What decides the caller's request at `now`: its key's limit and what this instance holds of the window; null without a limit. */
function heldFor(deps: AppDeps, caller: Caller, now: number): { keyId: string; limit: number; held: Slices; resetSeconds: number } | null {
  if (caller.kind !== 'org' || !caller.keyId) return null
  const limit = limitFor(caller, deps.config)
  if (limit === null) return null
  const window = windowOf(now)
  return { keyId: caller.keyId, limit, held: slicesOf(deps.db, caller.keyId, window, limit), resetSeconds: resetSecondsAt(now, window) }
}

/**
 * takeRequest without waiting, for the API's every request: its state (or null: no limit) when
 * this instance holds what decides it, else undefined (a slice must be claimed: takeRequest).
 */
export function takeHeldRequest(deps: AppDeps, caller: Caller, now = nowMs(deps)): RateLimitState | null | undefined {
  const key = heldFor(deps, caller, now)
  if (!key) return null
  if (key.held.unspent === 0 && !key.held.spent) return undefined
  return spend(key.held, key.limit, key.resetSeconds)
}

/**
 * Spends one request of the caller's key: its state with this request, or null when the key has
 * no limit (or the caller is no key: the operator is never limited). A refused request spends
 * nothing and writes nothing.
 */
export async function takeRequest(deps: AppDeps, caller: Caller): Promise<RateLimitState | null> {
  const key = heldFor(deps, caller, nowMs(deps))
  if (!key) return null
  const { keyId, held } = key
  while (held.unspent === 0 && !held.spent) {
    // Requests arriving together wait for one claim instead of each claiming a slice.
    held.claiming ??= claim(deps.db, keyId, held).finally(() => (held.claiming = undefined))
    await held.claiming
  }
  return spend(held, key.limit, key.resetSeconds)
}

/**
 * The `RateLimit-Policy` and `RateLimit` fields of draft-ietf-httpapi-ratelimit-headers (-10 to
 * -12; Structured Field lists, the policy named by a String): the quota and window, then what is
 * left and the seconds until more is.
 */
export const rateLimitPolicy = (state: RateLimitState) => `"${POLICY}";q=${state.limit};w=${WINDOW_SECONDS}`
export const rateLimitField = (state: RateLimitState) => `"${POLICY}";r=${state.remaining};t=${state.resetSeconds}`

/**
 * Forgets finished windows (the background job). The one before the current window is kept: an
 * instance whose clock runs a little behind may still be counting in it.
 */
export function pruneRateLimitWindows(deps: AppDeps): Promise<void> {
  return pruneRateLimits(deps.db, windowOf(nowMs(deps)) - 1)
}
