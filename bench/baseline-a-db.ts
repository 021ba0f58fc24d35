// Baseline A+DB: baseline A plus the read's one SQLite lookup, and nothing else (no auth, no
// log line, no validation, no Kysely): the floor for any server that reads an entitlement from
// SQLite per request on this machine. Answers the row's stored JSON, as the broker does.
// Usage: node bench/baseline-a-db.ts <port> <sqliteFile>
import { serve } from '@hono/node-server'
import SQLite from 'better-sqlite3'
import { Hono } from 'hono'

const [port, file] = process.argv.slice(2) as [string, string]
const db = new SQLite(file, { readonly: true })
const find = db.prepare('select "json" from "entitlements" where "org_id" = ? and "id" = ?').pluck()
const app = new Hono()
app.get('/api/v1/orgs/:orgId/entitlements/:id', (c) => {
  const json = find.get(c.req.param('orgId'), c.req.param('id')) as string | undefined
  return json ? c.body(json, 200, { 'content-type': 'application/json' }) : c.json({ error: 'not found' }, 404)
})
serve({ fetch: app.fetch, hostname: '127.0.0.1', port: Number(port) }, () => console.log(JSON.stringify({ ready: true })))
