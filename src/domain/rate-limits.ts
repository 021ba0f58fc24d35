import type { Config } from '../config'
import { countRequest, pruneRateLimits } from '../db/rate-limits'
import { type AppDeps, nowMs } from '../deps'
import type { Caller } from './caller'

/**
 * Rate limits per API key (contract §13), counted in the database so that every instance and
 * Workers isolate spends one budget: fixed one-minute windows aligned to the clock's minutes (a
 * key may send up to twice its limit across a window boundary — the price of one counter per
 * window instead of a log of request times), one UPSERT per request (db/rate-limits.ts).
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

/**
 * Counts one request of the caller's key: its state with this request, or null when the key has
 * no limit (or the caller is no key: the operator is never limited). A refused request is not
 * counted (see countRequest).
 */
export async function takeRequest(deps: AppDeps, caller: Caller): Promise<RateLimitState | null> {
  if (caller.kind !== 'org' || !caller.keyId) return null
  const limit = limitFor(caller, deps.config)
  if (limit === null) return null
  const now = nowMs(deps)
  const window = windowOf(now)
  const count = await countRequest(deps.db, caller.keyId, window, limit)
  // Rounded up: a client that waits this long is in the next window, never a moment early.
  const resetSeconds = Math.ceil(((window + 1) * WINDOW_MS - now) / 1000)
  return count === null ? { limit, remaining: 0, resetSeconds, allowed: false } : { limit, remaining: Math.max(0, limit - count), resetSeconds, allowed: true }
}

/**
 * The `RateLimit-Policy` and `RateLimit` fields of draft-ietf-httpapi-ratelimit-headers (-10 to
 * -12; Structured Field lists, the policy named by a String): the quota and window, then what is
 * left and the seconds until more is.
 */
export function rateLimitHeaders(state: RateLimitState): Record<string, string> {
  return {
    'RateLimit-Policy': `"${POLICY}";q=${state.limit};w=${WINDOW_SECONDS}`,
    RateLimit: `"${POLICY}";r=${state.remaining};t=${state.resetSeconds}`,
  }
}

/**
 * Forgets finished windows (the background job). The one before the current window is kept: an
 * instance whose clock runs a little behind may still be counting in it.
 */
export function pruneRateLimitWindows(deps: AppDeps): Promise<void> {
  return pruneRateLimits(deps.db, windowOf(nowMs(deps)) - 1)
}
