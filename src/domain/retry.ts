/**
 * When an outbox tries a failed row again (review §3). Every outbox (activations, marketplace
 * notifications, webhook deliveries, emails, usage reports) has its own schedule, because the
 * other side's patience differs (Microsoft redelivers for 8 h, AWS takes usage for 6 h, a
 * receiver's outage may last a weekend), but they all compute it here, from one shape.
 */
export interface RetryPolicy {
  /** The wait after the 1st, 2nd, … failed attempt; past the end the last one repeats. */
  delaysMs: readonly number[]
  /** Each wait is multiplied by a factor drawn uniformly between these two, so a burst of failures does not come back as a burst. */
  jitter: readonly [low: number, high: number]
  /** Given up once the next attempt would come more than this long after the row's start; null: never by time. */
  giveUpAfterMs: number | null
  /** Given up after this many attempts; null: never by count. */
  maxAttempts: number | null
}

/** The doubling waits `firstMs`, 2·`firstMs`, 4·`firstMs`, … up to `capMs`, as a table. */
export function doubling(firstMs: number, capMs: number): number[] {
  const delays = [firstMs]
  while (delays.at(-1)! < capMs) delays.push(Math.min(capMs, delays.at(-1)! * 2))
  return delays
}

/**
 * The next attempt after `failures` failed ones (at least 1), failing at `now` (epoch ms), for a
 * row that started at `since` (epoch ms): when it is due, and whether the policy gives up instead.
 */
export function nextAttempt(policy: RetryPolicy, failures: number, now: number, since = now): { at: number; giveUp: boolean } {
  const { delaysMs, jitter: [low, high] } = policy
  const base = delaysMs[Math.min(Math.max(failures, 1), delaysMs.length) - 1]!
  const at = now + base * (low + Math.random() * (high - low))
  const giveUp = (policy.maxAttempts !== null && failures >= policy.maxAttempts) || (policy.giveUpAfterMs !== null && at - since > policy.giveUpAfterMs)
  return { at, giveUp }
}
