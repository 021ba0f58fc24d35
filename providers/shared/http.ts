import { UpstreamError } from '../errors'
import type { ProviderLogger } from '../types'
import { type UpstreamObserver, observeCall } from './telemetry'

export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number
  /** Each attempt is aborted after this long. */
  timeoutMs: number
  /** Backoff before retry n is a random delay in [0, min(maxDelayMs, baseDelayMs * 2^n)) ("full jitter"). */
  baseDelayMs: number
  maxDelayMs: number
  /** The whole call, retries included, gives up after this long so the buyer gets an answer. */
  deadlineMs: number
}

export const defaultRetryPolicy: RetryPolicy = retryPolicyFor(10_000)

/** The policy for a per-attempt timeout (`UPSTREAM_TIMEOUT_MS`): 3 attempts within twice that. */
export function retryPolicyFor(timeoutMs: number): RetryPolicy {
  return { attempts: 3, timeoutMs, baseDelayMs: 200, maxDelayMs: 2_000, deadlineMs: 2 * timeoutMs }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** 429 and 5xx are worth another try; every other status is the caller's to interpret. */
export const isRetryableStatus = (status: number) => status === 429 || status >= 500

function retryAfterMs(header: string | null): number | null {
  if (!header) return null
  const seconds = Number(header)
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000)
  const date = Date.parse(header)
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now())
}

/** What one attempt came to: a final answer, or something worth another try. */
export type AttemptOutcome<T> =
  | { done: true; value: T; status?: number | null }
  | { done: false; status: number | null; retryAfter?: string | null; error?: unknown; value?: T; discard?: () => Promise<void> }

/**
 * Runs `attempt` with a per-attempt timeout (its AbortSignal), retrying what it reports as
 * retryable with exponential backoff and full jitter, honouring `Retry-After` within the
 * overall deadline. When attempts run out, a retryable outcome that still carries a value
 * (an HTTP 503 response, say) is returned for the caller to map; one without throws
 * `UpstreamError`.
 */
export interface RetryOptions {
  policy?: RetryPolicy
  log?: ProviderLogger
  label: string
  /** An absolute deadline (epoch ms) shared with the other calls of the same landing. */
  deadline?: number
  /** Told how the call ended (metrics); the call is also a span `label` (tracing). */
  observe?: UpstreamObserver
}

/** Milliseconds left before `deadline`, the default being a whole policy deadline from now. */
export function remainingMs(policy: RetryPolicy, deadline?: number): number {
  return Math.min(policy.deadlineMs, (deadline ?? Number.POSITIVE_INFINITY) - Date.now())
}

export function withRetry<T>(attempt: (signal: AbortSignal) => Promise<AttemptOutcome<T>>, options: RetryOptions): Promise<T> {
  return observeCall(options.label, options.observe, async (call) => {
    let attempts = 0
    let last: AttemptOutcome<T> | undefined
    try {
      const value = await retrying(attempt, options, (n, outcome) => {
        attempts = n
        last = outcome
      })
      call.end({ status: last?.status ?? null, attempts })
      return value
    } catch (error) {
      call.end({ status: last?.status ?? null, attempts, error: error instanceof Error ? error.name : 'error' })
      throw error
    }
  })
}

async function retrying<T>(attempt: (signal: AbortSignal) => Promise<AttemptOutcome<T>>, options: RetryOptions, counted: (n: number, last: AttemptOutcome<T> | undefined) => void): Promise<T> {
  const policy = options.policy ?? defaultRetryPolicy
  const stopAt = Date.now() + remainingMs(policy, options.deadline)
  let last: AttemptOutcome<T> | undefined
  for (let n = 1; n <= policy.attempts; n++) {
    const remaining = stopAt - Date.now()
    if (remaining <= 0) break
    const attemptStarted = Date.now()
    try {
      last = await attempt(AbortSignal.timeout(Math.min(policy.timeoutMs, remaining)))
    } catch (error) {
      last = { done: false, status: null, error }
    }
    options.log?.info('upstream call', {
      call: options.label,
      attempt: n,
      status: last.status ?? null,
      latencyMs: Date.now() - attemptStarted,
      ...(last.done || last.error === undefined ? {} : { error: errorName(last.error) }),
    })
    counted(n, last)
    if (last.done) return last.value
    const backoff = Math.random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (n - 1))
    const wait = Math.max(backoff, retryAfterMs(last.retryAfter ?? null) ?? 0)
    if (n === policy.attempts || Date.now() + wait >= stopAt) break
    await last.discard?.()
    await sleep(wait)
  }
  if (last && !last.done && last.value !== undefined) return last.value
  throw new UpstreamError(`${options.label}: no answer from the marketplace (${errorName(last && !last.done ? last.error : undefined)})`)
}

/**
 * fetch under `withRetry`: network errors, timeouts, 429 and 5xx are retried; the last
 * response is returned even when it is still a 429/5xx, so the caller maps every status.
 */
export function fetchWithRetry(fetchFn: FetchLike, url: string, init: RequestInit, options: RetryOptions): Promise<Response> {
  return withRetry<Response>(async (signal) => {
    const response = await fetchFn(url, { ...init, signal })
    if (!isRetryableStatus(response.status)) return { done: true, value: response, status: response.status }
    return {
      done: false,
      status: response.status,
      value: response,
      retryAfter: response.headers.get('retry-after'),
      // The body of a response we drop must be consumed or cancelled to free the connection.
      discard: async () => {
        await response.body?.cancel().catch(() => {})
      },
    }
  }, options)
}

function errorName(error: unknown): string {
  if (error instanceof Error) return error.name === 'TimeoutError' || error.name === 'AbortError' ? 'timeout' : error.name
  return error === undefined ? 'gave up' : 'unknown error'
}
