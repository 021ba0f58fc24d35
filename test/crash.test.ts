import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { type AzureSetup, startAzure } from './helpers'
import { startServer } from './node-process'

/**
 * Crash safety, for real: the Node server (`src/node.ts` as `npm start` runs it) takes a
 * burst of concurrent landings for distinct and repeated tokens, is killed with SIGKILL in
 * the middle, and is started again on the same database. Once its background job has run:
 * no duplicate entitlement, every purchase the marketplace resolved is stored, every pending
 * activation is completed, and no subscription was activated twice.
 */
let azure: AzureSetup
let dir: string
beforeAll(async () => {
  // Slow enough that the kill lands with Resolves and Activates in flight.
  azure = await startAzure({ latencyMs: 120 })
  dir = mkdtempSync(join(tmpdir(), 'marketbridge-crash-'))
})
afterAll(async () => {
  await azure.close()
  rmSync(dir, { recursive: true, force: true })
})

test('SIGKILL mid-burst, restart, job: nothing duplicated, nothing lost, nothing activated twice', async () => {
  const env = {
    ADMIN_TOKEN: 'crash-test-admin-token-0123456789',
    DATABASE_URL: `sqlite:${join(dir, 'broker.db')}`,
    AZURE_MARKETPLACE_API_URL: azure.url,
    AZURE_LOGIN_URL: azure.url,
    // A short budget so leases of the killed process run out quickly (deadline 1 s, lease 3 s).
    UPSTREAM_TIMEOUT_MS: '500',
    JOB_INTERVAL_MS: '250',
  }
  const admin = { authorization: `Bearer ${env.ADMIN_TOKEN}`, 'content-type': 'application/json' }

  const first = await startServer(dir, env)
  const { org } = (await (
    await fetch(`${first.url}/api/v1/orgs`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'Crash', fulfillmentUrl: 'https://crash.example/signup' }) })
  ).json()) as { org: { id: string } }
  const put = await fetch(`${first.url}/api/v1/orgs/${org.id}/integrations/azure`, {
    method: 'PUT',
    headers: admin,
    body: JSON.stringify({ tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret }),
  })
  expect(put.status).toBe(200)

  // 40 purchases; a third of them clicked two or three times at once.
  const subs = Array.from({ length: 40 }, () => azure.emulator.addSubscription({ appId: azure.clientId, quantity: 1 }))
  const visits = subs.flatMap((sub, i) => {
    const token = azure.emulator.issuePurchaseToken(sub.id)
    return Array.from({ length: i % 3 === 0 ? 3 : 1 }, () => token)
  })
  const burst = Promise.allSettled(
    visits.map(async (token, i) => {
      await new Promise((r) => setTimeout(r, (i % 30) * 30)) // spread over ~900 ms
      return fetch(`${first.url}/public/signup/azure/orgId/${org.id}?token=${encodeURIComponent(token)}`, { redirect: 'manual' })
    }),
  )
  // Killed while some buyers already have their 303, some wait on Microsoft, some have not arrived.
  await new Promise((r) => setTimeout(r, 600))
  await first.stop('SIGKILL')
  const outcomes = await burst
  const answered = outcomes.filter((o) => o.status === 'fulfilled').length
  expect(answered).toBeLessThan(visits.length) // the kill really landed mid-burst
  // Requests already sent to the marketplace finish there even though we are gone.
  await new Promise((r) => setTimeout(r, 400))
  expect(azure.emulator.resolved.size).toBeGreaterThan(0)

  const second = await startServer(dir, env)
  try {
    const db = new Database(join(dir, 'broker.db'), { readonly: true })
    const count = (sql: string) => (db.prepare(sql).get() as { n: number }).n
    const deadline = Date.now() + 30_000
    while (count('select count(*) as n from landing_claims') + count('select count(*) as n from pending_activations') > 0) {
      if (Date.now() > deadline) throw new Error(`the job did not finish:\n${second.output()}`)
      await new Promise((r) => setTimeout(r, 200))
    }
    const rows = db.prepare('select external_id, status from entitlements where org_id = ?').all(org.id) as Array<{ external_id: string; status: string }>
    db.close()

    // No duplicate entitlement.
    expect(new Set(rows.map((r) => r.external_id)).size).toBe(rows.length)
    // Every purchase the marketplace resolved is stored.
    const stored = new Set(rows.map((r) => r.external_id))
    for (const id of azure.emulator.resolved) expect(stored.has(id), `resolved ${id} is stored`).toBe(true)
    // Every pending activation completed: stored ones are ACTIVE, and Subscribed at Microsoft.
    for (const row of rows) {
      expect(row.status).toBe('ACTIVE')
      expect(azure.emulator.subscriptions.get(row.external_id)!.saasSubscriptionStatus).toBe('Subscribed')
    }
    // No subscription activated twice.
    const activations = new Map<string, number>()
    for (const call of azure.emulator.callsTo('activate')) {
      const id = call.path.split('/')[4]!
      activations.set(id, (activations.get(id) ?? 0) + 1)
    }
    for (const [id, n] of activations) expect(n, `activations of ${id}`).toBe(1)

    // Reloads after the restart land on the stored entitlements without activating anything.
    const activateCalls = azure.emulator.callsTo('activate').length
    for (const sub of subs.filter((s) => stored.has(s.id)).slice(0, 5)) {
      const token = azure.emulator.issuePurchaseToken(sub.id)
      const response = await fetch(`${second.url}/public/signup/azure/orgId/${org.id}?token=${encodeURIComponent(token)}`, { redirect: 'manual' })
      expect(response.status).toBe(303)
    }
    expect(azure.emulator.callsTo('activate').length).toBe(activateCalls)
  } finally {
    await second.stop()
  }
}, 90_000)
