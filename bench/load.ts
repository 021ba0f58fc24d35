// The load generator, in its own process: autocannon against one target, results as JSON.
// Input: argv[2] is the path of a JSON file (path lists can be megabytes):
// { url, connections, duration?, amount?, paths?: string[], pick?: 'random' | 'sequential', headers?,
//   requests?: [{ method, path, headers?, body? }] (taken in order, one each, instead of paths) }
import { readFileSync } from 'node:fs'
import autocannon from 'autocannon'

interface Job {
  url: string
  connections: number
  duration?: number
  amount?: number
  paths?: string[]
  pick?: 'random' | 'sequential'
  headers?: Record<string, string>
  requests?: Array<{ method: string; path: string; headers?: Record<string, string>; body?: string }>
}

const job = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as Job
let next = 0
const paths = job.paths ?? ['/']
const instance = autocannon({
  url: job.url,
  connections: job.connections,
  ...(job.amount ? { amount: job.amount } : { duration: job.duration ?? 5 }),
  headers: job.headers,
  requests: [
    {
      setupRequest: (request) => {
        if (job.requests) {
          const one = job.requests[next++ % job.requests.length]!
          return { ...request, method: one.method as 'POST', path: one.path, headers: { ...request.headers, ...one.headers }, body: one.body }
        }
        const path = job.pick === 'sequential' ? paths[next++ % paths.length]! : paths[Math.floor(Math.random() * paths.length)]!
        return { ...request, path }
      },
    },
  ],
  // Without a callback autocannon returns its event emitter, made awaitable (its types say only Promise).
}) as unknown as autocannon.Instance & Promise<autocannon.Result>
// autocannon hands its result over on its next one-second tick, so its duration is whole
// ticks for a run of a fixed number of requests: time the run from the first request sent to
// the last response received instead.
let started = 0
let finished = 0
instance.on('start', () => (started = performance.now()))
instance.on('response', () => (finished = performance.now()))
const result = await instance
const seconds = (finished - started) / 1000
const statuses = { '2xx': result['2xx'], '3xx': result['3xx'], '4xx': result['4xx'], '5xx': result['5xx'], errors: result.errors, timeouts: result.timeouts }
console.log(
  JSON.stringify({
    rps: Math.round((result.requests.total / seconds) * 10) / 10,
    total: result.requests.total,
    p50: result.latency.p50,
    p99: result.latency.p99,
    duration: Math.round(seconds * 100) / 100,
    statuses,
  }),
)
