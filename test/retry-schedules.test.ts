import { afterEach, describe, expect, test, vi } from 'vitest'
import { NOTIFICATION_RETRY } from '../src/domain/inbox'
import { ACTIVATION_RETRY } from '../src/domain/landing'
import { type RetryPolicy, nextAttempt } from '../src/domain/retry'
import { EMAIL_LEASE_MS, EMAIL_RETRY, EMAIL_SEND_DEADLINE_MS } from '../src/domain/signups'
import { USAGE_RETRY } from '../src/domain/usage-reporter'
import { WEBHOOK_RETRY, nextAttemptAt } from '../src/domain/webhooks'

/**
 * Each outbox's schedule, pinned: the waits after the 1st, 2nd, … failure (the last repeats), the
 * jitter's bounds and when the outbox gives up. These are the schedules the outboxes had before
 * they shared one RetryPolicy; a change here is a change the ISV or the marketplace notices.
 */

const s = 1000
const min = 60 * s
const h = 60 * min
const NOW = Date.parse('2030-01-01T00:00:00.000Z')

const schedules: Array<{ name: string; policy: RetryPolicy; waits: number[]; jitter: [number, number] }> = [
  // 5 s doubling to a 30 min cap, ×0.5–1.
  { name: 'activation', policy: ACTIVATION_RETRY, waits: [5 * s, 10 * s, 20 * s, 40 * s, 80 * s, 160 * s, 320 * s, 640 * s, 1280 * s, 30 * min], jitter: [0.5, 1] },
  { name: 'notifications', policy: NOTIFICATION_RETRY, waits: [5 * s, 10 * s, 20 * s, 40 * s, 80 * s, 160 * s, 320 * s, 640 * s, 1280 * s, 30 * min], jitter: [0.5, 1] },
  { name: 'webhooks', policy: WEBHOOK_RETRY, waits: [5 * s, 30 * s, 2 * min, 10 * min, 30 * min, h, 2 * h, 4 * h, 8 * h], jitter: [0.8, 1.2] },
  { name: 'emails', policy: EMAIL_RETRY, waits: [min, 5 * min, 15 * min, 30 * min, h], jitter: [1, 1] },
  { name: 'usage', policy: USAGE_RETRY, waits: [30 * s, min, 2 * min, 5 * min, 10 * min, 20 * min, 30 * min, h], jitter: [0.8, 1.2] },
]

afterEach(() => vi.restoreAllMocks())

const waitAfter = (policy: RetryPolicy, failures: number, random: number) => {
  vi.spyOn(Math, 'random').mockReturnValue(random)
  return nextAttempt(policy, failures, NOW).at - NOW
}

describe.each(schedules)('$name', ({ policy, waits, jitter }) => {
  test('waits the pinned delays after each failure, the last one repeating, within the jitter bounds', () => {
    const failures = waits.length + 5
    for (let n = 1; n <= failures; n++) {
      const base = waits[Math.min(n, waits.length) - 1]!
      expect(waitAfter(policy, n, 0)).toBeCloseTo(base * jitter[0], 3)
      expect(waitAfter(policy, n, 0.5)).toBeCloseTo(base * (jitter[0] + jitter[1]) / 2, 3)
      expect(waitAfter(policy, n, 1 - 1e-12)).toBeCloseTo(base * jitter[1], 2)
    }
  })
})

describe('giving up', () => {
  test('activations never give up, however many failures and however old', () => {
    expect(nextAttempt(ACTIVATION_RETRY, 10_000, NOW, NOW - 365 * 24 * h).giveUp).toBe(false)
  })

  test('notifications give up at the 60th attempt, whatever their age', () => {
    expect(nextAttempt(NOTIFICATION_RETRY, 59, NOW, NOW - 365 * 24 * h).giveUp).toBe(false)
    expect(nextAttempt(NOTIFICATION_RETRY, 60, NOW, NOW).giveUp).toBe(true)
  })

  test('webhook deliveries give up once the next attempt would come more than 3 days after the delivery was created', () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5) // the 8 h wait, exactly
    const created = new Date(NOW).toISOString()
    expect(nextAttemptAt(created, 20, NOW + 64 * h)).toBe(new Date(NOW + 72 * h).toISOString())
    expect(nextAttemptAt(created, 20, NOW + 64 * h + 1)).toBeNull()
    // The first failure of a fresh delivery: due 5 s later.
    expect(nextAttemptAt(created, 1, NOW)).toBe(new Date(NOW + 5 * s).toISOString())
  })

  test('emails give up once the next attempt would come more than 24 h after the email was written', () => {
    expect(nextAttempt(EMAIL_RETRY, 9, NOW + 23 * h, NOW)).toEqual({ at: NOW + 24 * h, giveUp: false })
    expect(nextAttempt(EMAIL_RETRY, 9, NOW + 23 * h + 1, NOW)).toEqual({ at: NOW + 24 * h + 1, giveUp: true })
  })

  test("usage reports give up by the marketplace's window (usage-reporter's retryOrGiveUp), never by the policy", () => {
    expect(nextAttempt(USAGE_RETRY, 10_000, NOW, NOW - 365 * 24 * h).giveUp).toBe(false)
  })
})

describe('email lease', () => {
  test('a send gives up before its lease ends, and the lease is within §12’s two minutes for another instance to take over', () => {
    expect(EMAIL_SEND_DEADLINE_MS).toBeLessThan(EMAIL_LEASE_MS)
    expect(EMAIL_LEASE_MS + 5_000).toBeLessThanOrEqual(120_000)
  })
})
