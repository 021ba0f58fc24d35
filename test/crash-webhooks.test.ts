import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { Webhook } from 'standardwebhooks'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { type AzureSetup, sleep, startAzure, startHookReceiver, waitFor } from './helpers'
import { startServer } from './node-process'

/**
 * The outbox survives a crash: buyers land while the ISV's receiver is down (503), the Node
 * server is killed with SIGKILL with deliveries pending and others in flight, and started again
 * on the same database with the receiver back. Once the job has run, every delivery the
 * database holds reached the receiver, each webhook-id at least once, every one verifiable.
 */
let azure: AzureSetup
let dir: string
let up = false
let receiver: Awaited<ReturnType<typeof startHookReceiver>>

beforeAll(async () => {
  azure = await startAzure({ latencyMs: 60 })
  dir = mkdtempSync(join(tmpdir(), 'marketbridge-crash-hooks-'))
  receiver = await startHookReceiver(() => up)
})
afterAll(async () => {
  await receiver?.close()
  await azure.close()
  rmSync(dir, { recursive: true, force: true })
})

test('SIGKILL with deliveries pending, restart: every delivery reaches the ISV, none lost', async () => {
  const env = {
    ADMIN_TOKEN: 'crash-hooks-admin-token-0123456789',
    DATABASE_URL: `sqlite:${join(dir, 'broker.db')}`,
    AZURE_MARKETPLACE_API_URL: azure.url,
    AZURE_LOGIN_URL: azure.url,
    UPSTREAM_TIMEOUT_MS: '500',
    JOB_INTERVAL_MS: '250',
  }
  const admin = { authorization: `Bearer ${env.ADMIN_TOKEN}`, 'content-type': 'application/json' }
  const first = await startServer(dir, env)
  const { org, webhookSecret } = (await (
    await fetch(`${first.url}/api/v1/orgs`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'Crash', fulfillmentUrl: 'https://crash.example/s', webhookUrl: receiver.url }) })
  ).json()) as { org: { id: string }; webhookSecret: string }
  await fetch(`${first.url}/api/v1/orgs/${org.id}/integrations/azure`, {
    method: 'PUT',
    headers: admin,
    body: JSON.stringify({ tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret }),
  })
  const db = new Database(join(dir, 'broker.db'), { readonly: true })
  const count = (sql: string) => (db.prepare(sql).get() as { n: number }).n
  const subs = Array.from({ length: 24 }, () => azure.emulator.addSubscription({ appId: azure.clientId }))
  let answered = 0
  const burst = Promise.allSettled(
    subs.map(async (sub, i) => {
      await sleep((i % 24) * 25)
      const response = await fetch(`${first.url}/public/signup/azure/orgId/${org.id}?token=${encodeURIComponent(azure.emulator.issuePurchaseToken(sub.id))}`, { redirect: 'manual' })
      answered++
      return response
    }),
  )
  // The kill lands once deliveries are stored (the receiver refuses them) and landings are still in flight.
  await waitFor('deliveries stored while landings are in flight', () => count("select count(*) as n from webhook_deliveries where status = 'PENDING'") >= 4 && answered < subs.length, { timeoutMs: 20_000, everyMs: 5 })
  await first.stop('SIGKILL')
  await burst

  expect(count("select count(*) as n from webhook_deliveries where status = 'PENDING'"), 'deliveries pending at the kill').toBeGreaterThan(0)
  // Every event has its delivery: the kill cannot have separated them.
  expect(count('select count(*) as n from entitlement_events')).toBe(count('select count(*) as n from webhook_deliveries'))

  up = true
  const second = await startServer(dir, env)
  try {
    const deadline = Date.now() + 40_000
    while (count("select count(*) as n from webhook_deliveries where status != 'SUCCEEDED'") > 0) {
      if (Date.now() > deadline) throw new Error(`deliveries left:\n${second.output().slice(-2000)}`)
      await sleep(250)
    }
    const ids = (db.prepare('select id from webhook_deliveries').all() as Array<{ id: string }>).map((row) => row.id)
    db.close()
    const verifier = new Webhook(webhookSecret)
    const seen = new Set(receiver.received.map((r) => (verifier.verify(r.body, r.headers), r.headers['webhook-id'])))
    for (const id of ids) expect(seen.has(id), `delivery ${id} received`).toBe(true)
  } finally {
    await second.stop()
  }
}, 90_000)
