// The load generator, in its own process: autocannon against one target, results as JSON.
// Input: argv[2] is the path of a JSON file (path lists can be megabytes):
// { url, connections, duration?, amount?, paths?: string[], pick?: 'random' | 'sequential', headers?,
//   requests?: [{ method, path, headers?, body? }] (taken in order, one each, instead of paths),
//   urls?: string[] (several instances of one broker: the connections and the amount are split
//   over them, the paths shared, and p50/p99 computed over every response of all of them) }
import { readFileSync } from 'node:fs'
import autocannon from 'autocannon'

interface Job {
  url: string
  urls?: string[]
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

function run(url: string, connections: number, amount: number | undefined) {
  return autocannon({
    url,
    connections,
    ...(amount ? { amount } : { duration: job.duration ?? 5 }),
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
}

if (job.urls) {
  // One autocannon per instance in this process, so `next` hands every path out once across all.
  const urls = job.urls
  const share = (total: number, i: number) => Math.floor(total / urls.length) + (i < total % urls.length ? 1 : 0)
  const latencies: number[] = []
  let started = Infinity
  let finished = 0
  const instances = urls.map((url, i) => {
    const instance = run(url, share(job.connections, i), job.amount ? share(job.amount, i) : undefined)
    instance.on('start', () => (started = Math.min(started, performance.now())))
    instance.on('response', (_client, _status, _bytes, responseTime) => {
      latencies.push(responseTime)
      finished = performance.now()
    })
    return instance
  })
  const results = await Promise.all(instances)
  const seconds = (finished - started) / 1000
  latencies.sort((a, b) => a - b)
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0
  const total = results.reduce((n, r) => n + r.requests.total, 0)
  const sum = (key: '2xx' | '3xx' | '4xx' | '5xx' | 'errors' | 'timeouts') => results.reduce((n, r) => n + r[key], 0)
  const statuses = { '2xx': sum('2xx'), '3xx': sum('3xx'), '4xx': sum('4xx'), '5xx': sum('5xx'), errors: sum('errors'), timeouts: sum('timeouts') }
  console.log(JSON.stringify({ rps: Math.round((total / seconds) * 10) / 10, total, p50: Math.round(at(0.5)), p99: Math.round(at(0.99)), duration: Math.round(seconds * 100) / 100, statuses }))
  process.exit(0)
}

const instance = run(job.url, job.connections, job.amount)
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
