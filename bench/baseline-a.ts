// Baseline A: a bare Hono app on @hono/node-server answering a fixed JSON body the size of
// an entitlement. Usage: node bench/baseline-a.ts <port> <bodyBytes> [microseconds]
// With microseconds, each request first spins the CPU that long: a calibration of what a given
// cost per request does to requests/s on this machine (a server that is the bottleneck also
// pays for waking the load generator on every response).
import { serve } from '@hono/node-server'
import { Hono } from 'hono'

const port = Number(process.argv[2])
const size = Number(process.argv[3] ?? 900)
const micros = Number(process.argv[4] ?? 0)
const body = JSON.stringify({ id: 'ent_baseline', padding: 'x'.repeat(Math.max(0, size - 34)) })
const app = new Hono()
app.get('*', (c) => {
  if (micros > 0) {
    const until = performance.now() + micros / 1000
    while (performance.now() < until);
  }
  return c.json(JSON.parse(body))
})
serve({ fetch: app.fetch, hostname: '127.0.0.1', port }, () => console.log(JSON.stringify({ ready: true })))
