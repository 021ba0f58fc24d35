import { randomBytes } from './crypto'

const CROCKFORD = '0123456789abcdefghjkmnpqrstvwxyz'

let lastTime = -1
let lastRandom: number[] = []

/**
 * Prefixed, time-sortable ids (`org_…`, `ent_…`, `evt_…`): 10 base32 characters of
 * milliseconds then 16 random ones, so ids created later sort later and are unguessable.
 * Within one millisecond the random part is incremented (as monotonic ULIDs do), so events
 * written in quick succession keep their order when sorted by id.
 * The time part is the process's wall clock (one sequence per process, whatever clock a test
 * gives its deps); a caller may pass its own (usage records pass the injected clock's).
 */
export function newId(prefix: string, now = Date.now()): string {
  let random: number[]
  if (now <= lastTime) {
    random = increment(lastRandom)
  } else {
    random = Array.from(randomBytes(16), (byte) => byte % 32)
    lastTime = now
  }
  lastRandom = random
  let time = ''
  let value = lastTime
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[value % 32] + time
    value = Math.floor(value / 32)
  }
  return `${prefix}_${time}${random.map((digit) => CROCKFORD[digit]).join('')}`
}

function increment(digits: number[]): number[] {
  const next = [...digits]
  for (let i = next.length - 1; i >= 0; i--) {
    if (next[i]! < 31) {
      next[i] = next[i]! + 1
      return next
    }
    next[i] = 0
  }
  return next
}
