import { UpstreamError } from '../errors'
import type { ProviderLogger } from '../types'

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

export const defaultRetryPolicy: RetryPolicy = {
  attempts: 3,
  timeoutMs: 10_000,
  baseDelayMs: 200,
  maxDelayMs: 2_000,
  deadlineMs: 20_000,
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** 429 and 5xx are worth another try; every other status is the caller's to interpret. */
export const isRetryableStatus = (status: number) => status === 429 || status >= 500

function retryAfterMs(response: Response): number | null {
  const header = response.headers.get('retry-after')
  if (!header) return null
  const seconds = Number(header)
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000)
  const date = Date.parse(header)
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now())
}

/**
 * fetch with a per-attempt timeout, retrying network errors, 429 and 5xx with exponential
 * backoff and full jitter (honouring `Retry-After` within the deadline). Returns the last
 * response, which may still be a 429/5xx when the attempts ran out; throws `UpstreamError`
 * only when no response came at all.
 */
export async function fetchWithRetry(
  fetchFn: FetchLike,
  url: string,
  init: RequestInit,
  options: { policy?: RetryPolicy; log?: ProviderLogger; label: string },
): Promise<Response> {
  const policy = options.policy ?? defaultRetryPolicy
  const started = Date.now()
  let lastError: unknown
  for (let attempt = 1; attempt <= policy.attempts; attempt++) {
    const remaining = policy.deadlineMs - (Date.now() - started)
    if (remaining <= 0) break
    const attemptStarted = Date.now()
    let response: Response | undefined
    try {
      response = await fetchFn(url, { ...init, signal: AbortSignal.timeout(Math.min(policy.timeoutMs, remaining)) })
    } catch (error) {
      lastError = error
    }
    options.log?.info('upstream call', {
      call: options.label,
      attempt,
      status: response?.status ?? null,
      latencyMs: Date.now() - attemptStarted,
      ...(response ? {} : { error: errorName(lastError) }),
    })
    if (response && !isRetryableStatus(response.status)) return response
    if (attempt === policy.attempts) {
      if (response) return response
      break
    }
    const backoff = Math.random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1))
    const wait = Math.max(backoff, response ? (retryAfterMs(response) ?? 0) : 0)
    if (Date.now() - started + wait >= policy.deadlineMs) {
      if (response) return response
      break
    }
    // The body of a response we drop must be consumed or cancelled to free the connection.
    await response?.body?.cancel().catch(() => {})
    await sleep(wait)
  }
  throw new UpstreamError(`${options.label}: no answer from the marketplace (${errorName(lastError)})`)
}

function errorName(error: unknown): string {
  if (error instanceof Error) return error.name === 'TimeoutError' ? 'timeout' : error.name
  return 'unknown error'
}
