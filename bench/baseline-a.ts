// Baseline A: a bare Hono app on @hono/node-server answering a fixed JSON body the size of
// an entitlement. Usage: node bench/baseline-a.ts <port> <bodyBytes>
import { serve } from '@hono/node-server'
import { Hono } from 'hono'

const port = Number(process.argv[2])
const size = Number(process.argv[3] ?? 900)
const body = JSON.stringify({ id: 'ent_baseline', padding: 'x'.repeat(Math.max(0, size - 40)) })
const app = new Hono()
app.get('*', (c) => c.json(JSON.parse(body)))
serve({ fetch: app.fetch, hostname: '127.0.0.1', port }, () => console.log(JSON.stringify({ ready: true })))
