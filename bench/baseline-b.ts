// Baseline B: a bare Hono app that makes the landing's two marketplace calls (Resolve, then
// Activate) to the same emulator and answers the same 303: no database, no MSAL (one bearer
// fetched at start). Usage: node bench/baseline-b.ts <port> <emulatorUrl> <tenant> <client> <secret>
import { serve } from '@hono/node-server'
import { Hono } from 'hono'

const [port, emulator, tenant, clientId, clientSecret] = process.argv.slice(2) as [string, string, string, string, string]
const tokenResponse = await fetch(`${emulator}/${tenant}/oauth2/v2.0/token`, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret, scope: '20e940b3-4c77-4b0b-9a53-9e16a1b010a7/.default' }),
})
const { access_token: bearer } = (await tokenResponse.json()) as { access_token: string }
const headers = { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' }

const app = new Hono()
app.get('/public/signup/azure/orgId/:orgId', async (c) => {
  const raw = new URL(c.req.url).search.match(/[?&]token=([^&]*)/)?.[1]
  if (!raw) return c.text('missing token', 400)
  const resolved = await fetch(`${emulator}/api/saas/subscriptions/resolve?api-version=2018-08-31`, {
    method: 'POST',
    headers: { ...headers, 'x-ms-marketplace-token': decodeURIComponent(raw) },
  })
  if (!resolved.ok) return c.text('resolve failed', 502)
  const sub = (await resolved.json()) as { id: string; planId: string; subscription: { quantity?: number } }
  const activated = await fetch(`${emulator}/api/saas/subscriptions/${sub.id}/activate?api-version=2018-08-31`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ planId: sub.planId, ...(sub.subscription.quantity ? { quantity: sub.subscription.quantity } : {}) }),
  })
  await activated.body?.cancel()
  if (!activated.ok) return c.text('activate failed', 502)
  return c.body(null, 303, { location: `https://app.example/signup?sugerEntitlementId=${sub.id}&partner=azure&offerType=DEFAULT`, 'cache-control': 'no-store' })
})
serve({ fetch: app.fetch, hostname: '127.0.0.1', port: Number(port) }, () => console.log(JSON.stringify({ ready: true })))
