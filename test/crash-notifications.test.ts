import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { type AzureSetup, sleep, startAzure, waitFor } from './helpers'
import { startServer } from './node-process'

/**
 * Crash safety of the inbox, for real: the Node server takes a burst of Azure notifications
 * (each delivered twice, as Microsoft's retries do) while Microsoft's operations API answers
 * slowly, is killed with SIGKILL mid-way, and is started again on the same database; Microsoft
 * then redelivers every notification. Once the job has run, every notification is applied
 * exactly once: one event per operation, none lost, none twice.
 */
let azure: AzureSetup
let slowUrl: string
let closeSlow: () => Promise<void>
let dir: string
beforeAll(async () => {
  azure = await startAzure()
  // The operations API 150 ms slow, so the kill lands with applies in flight.
  const host = new Hono().all('*', async (c) => {
    if (c.req.path.includes('/operations/')) await sleep(150)
    return azure.emulator.app.fetch(c.req.raw)
  })
  await new Promise<void>((resolve) => {
    const server = serve({ fetch: host.fetch, hostname: '127.0.0.1', port: 0 }, (info: AddressInfo) => {
      slowUrl = `http://127.0.0.1:${info.port}`
      closeSlow = () => new Promise<void>((done) => server.close(() => done()))
      resolve()
    })
  })
  dir = mkdtempSync(join(tmpdir(), 'marketbridge-crash-inbox-'))
})
afterAll(async () => {
  await closeSlow()
  await azure.close()
  rmSync(dir, { recursive: true, force: true })
})

test('SIGKILL while notifications are applied, restart, redelivery: every notification applied exactly once', async () => {
  const env = {
    ADMIN_TOKEN: 'crash-inbox-admin-token-0123456789',
    DATABASE_URL: `sqlite:${join(dir, 'broker.db')}`,
    AZURE_MARKETPLACE_API_URL: slowUrl,
    AZURE_LOGIN_URL: slowUrl,
    // Short budgets so the killed process's leases run out quickly (lease 4 × 1 s + 2 s).
    UPSTREAM_TIMEOUT_MS: '500',
    JOB_INTERVAL_MS: '250',
  }
  const admin = { authorization: `Bearer ${env.ADMIN_TOKEN}`, 'content-type': 'application/json' }
  const first = await startServer(dir, env)
  const { org, apiKey } = (await (
    await fetch(`${first.url}/api/v1/orgs`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'Crash', fulfillmentUrl: 'https://crash.example/signup' }) })
  ).json()) as { org: { id: string }; apiKey: string }
  const put = await fetch(`${first.url}/api/v1/orgs/${org.id}/integrations/azure`, {
    method: 'PUT',
    headers: admin,
    body: JSON.stringify({ tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret }),
  })
  const { integration } = (await put.json()) as { integration: { notificationUrl: string } }
  const path = new URL(integration.notificationUrl)

  // 24 buyers land; then half are suspended and half change plan.
  const subs = Array.from({ length: 24 }, () => azure.emulator.addSubscription({ appId: azure.clientId, planId: 'silver' }))
  for (const sub of subs) {
    const landing = await fetch(`${first.url}/public/signup/azure/orgId/${org.id}?token=${encodeURIComponent(azure.emulator.issuePurchaseToken(sub.id))}`, { redirect: 'manual' })
    expect(landing.status).toBe(303)
  }
  const bodies = subs.map((sub, i) =>
    i % 2 === 0 ? azure.emulator.startOperation(sub.id, 'Suspend').webhookBody : azure.emulator.startOperation(sub.id, 'ChangePlan', { planId: 'gold' }).webhookBody,
  )
  const deliver = async (url: string, body: object) =>
    fetch(`${url}${path.pathname}${path.search}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await azure.emulator.mintWebhookToken({ tenantId: azure.tenantId, clientId: azure.clientId })}` },
      body: JSON.stringify(body),
    })
  const db = new Database(join(dir, 'broker.db'), { readonly: true })
  const count = (sql: string) => (db.prepare(sql).get() as { n: number }).n
  let delivered = 0
  const burst = Promise.allSettled(
    [...bodies, ...bodies].map(async (body, i) => {
      await sleep((i % 24) * 15)
      const response = await deliver(first.url, body)
      delivered++
      return response
    }),
  )
  // The kill lands once some notifications are stored and being applied (leased, waiting on the
  // slow operations API) while deliveries are still coming in.
  await waitFor(
    'notifications stored and being applied, deliveries in flight',
    () => count('select count(*) as n from notifications') >= 4 && count("select count(*) as n from notifications where status = 'PENDING' and lease_until is not null") > 0 && delivered < bodies.length * 2,
    { timeoutMs: 20_000, everyMs: 5 },
  )
  await first.stop('SIGKILL')
  const outcomes = await burst
  const answered = outcomes.filter((o) => o.status === 'fulfilled' && o.value.status === 200).length
  expect(answered).toBeGreaterThan(0)

  const unsettledAtKill = count("select count(*) as n from notifications where status = 'PENDING'")
  expect(unsettledAtKill, 'the kill landed with notifications not yet applied').toBeGreaterThan(0)

  const second = await startServer(dir, env)
  try {
    // Microsoft retries until it gets a 200: every notification arrives again.
    for (const body of bodies) expect((await deliver(second.url, body)).status).toBe(200)
    const deadline = Date.now() + 30_000
    while (count("select count(*) as n from notifications where status != 'APPLIED'") > 0) {
      if (Date.now() > deadline) throw new Error(`the job did not apply everything:\n${second.output()}`)
      await sleep(200)
    }
    expect(count('select count(*) as n from notifications')).toBe(bodies.length)
    const events = db.prepare("select e.type, n.external_id from entitlement_events e join entitlements n on n.id = e.entitlement_id where e.source = 'marketplace'").all() as Array<{
      type: string
      external_id: string
    }>
    db.close()
    // Exactly one event per operation, the right one.
    expect(events).toHaveLength(bodies.length)
    for (const [i, sub] of subs.entries()) {
      expect(events.filter((e) => e.external_id === sub.id).map((e) => e.type)).toEqual([i % 2 === 0 ? 'SUSPEND' : 'UPDATE'])
    }
    const auth = { authorization: `Bearer ${apiKey}` }
    const list = (await (await fetch(`${second.url}/api/v1/orgs/${org.id}/entitlements?limit=100`, { headers: auth })).json()) as {
      items: Array<{ externalId: string; status: string; planId: string }>
    }
    for (const [i, sub] of subs.entries()) {
      const entitlement = list.items.find((e) => e.externalId === sub.id)!
      expect(i % 2 === 0 ? entitlement.status : entitlement.planId).toBe(i % 2 === 0 ? 'SUSPENDED' : 'gold')
    }
  } finally {
    await second.stop()
  }
}, 90_000)
