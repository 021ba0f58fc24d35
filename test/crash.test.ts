import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import * as orgsDb from '../src/db/orgs'
import { runJobs } from '../src/domain/jobs'
import { createLandingService } from '../src/domain/landing'
import { Webhook } from 'standardwebhooks'
import { type AzureSetup, type TestBroker, createAzureScenario, sleep, startAzure, startHookReceiver } from './helpers'
import { startServer } from './node-process'

/**
 * Crash safety, for real: the Node server (`src/node.ts` as `npm start` runs it) takes a
 * burst of concurrent landings for distinct and repeated tokens, is killed with SIGKILL in
 * the middle, and is started again on the same database. Once its background job has run:
 * no duplicate entitlement, every purchase the marketplace resolved is stored, every pending
 * activation is completed, no subscription was activated twice, every entitlement has exactly the
 * events its status implies and the ISV got each of their webhooks exactly once.
 */
let azure: AzureSetup
let dir: string
let receiver: Awaited<ReturnType<typeof startHookReceiver>>
// The ISV's receiver is down (503, nothing recorded) until the kill: a delivery the killed process
// had sent would legitimately be sent again, so only what the restarted one sends is counted.
let receiving = false
beforeAll(async () => {
  // Slow enough that the kill lands with Resolves and Activates in flight.
  azure = await startAzure({ latencyMs: 120 })
  dir = mkdtempSync(join(tmpdir(), 'marketbridge-crash-'))
  receiver = await startHookReceiver(() => receiving)
})
afterAll(async () => {
  await receiver?.close()
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
  const { org, webhookSecret } = (await (
    await fetch(`${first.url}/api/v1/orgs`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ name: 'Crash', fulfillmentUrl: 'https://crash.example/signup', webhookUrl: receiver.url }),
    })
  ).json()) as { org: { id: string }; webhookSecret: string }
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
  // Killed while some buyers already have their 303, some wait on Microsoft, some have not arrived:
  // once Microsoft has been asked to activate a quarter of the purchases.
  const killAt = Date.now() + 20_000
  while (azure.emulator.callsTo('activate').length < subs.length / 4) {
    if (Date.now() > killAt) throw new Error(`no activations seen:\n${first.output()}`)
    await sleep(5)
  }
  await first.stop('SIGKILL')
  receiving = true
  const outcomes = await burst
  const answered = outcomes.filter((o) => o.status === 'fulfilled').length
  expect(answered).toBeLessThan(visits.length) // the kill really landed mid-burst
  // Requests already sent to the marketplace finish there even though we are gone.
  await azure.emulator.idle()
  expect(azure.emulator.resolved.size).toBeGreaterThan(0)

  const second = await startServer(dir, env)
  try {
    const db = new Database(join(dir, 'broker.db'), { readonly: true })
    const count = (sql: string) => (db.prepare(sql).get() as { n: number }).n
    const deadline = Date.now() + 30_000
    const unfinished = () =>
      count('select count(*) as n from landing_claims') +
      count('select count(*) as n from pending_activations') +
      count("select count(*) as n from webhook_deliveries where status != 'SUCCEEDED'")
    while (unfinished() > 0) {
      if (Date.now() > deadline) throw new Error(`the job did not finish:\n${second.output()}`)
      await new Promise((r) => setTimeout(r, 200))
    }
    const rows = db.prepare('select id, external_id, status from entitlements where org_id = ?').all(org.id) as Array<{ id: string; external_id: string; status: string }>
    const eventsOf = db.prepare('select type from entitlement_events where entitlement_id = ? order by id')
    const events = new Map(rows.map((row) => [row.id, (eventsOf.all(row.id) as Array<{ type: string }>).map((e) => e.type)]))
    const deliveries = count('select count(*) as n from webhook_deliveries')
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
    // Every entitlement has exactly the events its status implies: the kill separated no change from its event.
    for (const row of rows) expect(events.get(row.id), `events of ${row.external_id}`).toEqual(['CREATE', 'ACTIVATE'])
    // The ISV got each webhook exactly once: one entitlement.created and one entitlement.activated per entitlement.
    const verifier = new Webhook(webhookSecret)
    const hooks = receiver.received.map((hook) => {
      verifier.verify(hook.body, hook.headers)
      const body = JSON.parse(hook.body) as { type: string; entityId: string }
      return { id: hook.headers['webhook-id']!, type: body.type, entitlementId: body.entityId }
    })
    expect(new Set(hooks.map((hook) => hook.id)).size, 'each webhook-id received once').toBe(hooks.length)
    expect(hooks.length).toBe(deliveries)
    for (const row of rows) {
      const types = hooks.filter((hook) => hook.entitlementId === row.id).map((hook) => hook.type).sort()
      expect(types, `webhooks of ${row.external_id}`).toEqual(['entitlement.activated', 'entitlement.created'])
    }
    expect(hooks.length).toBe(2 * rows.length)
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

/**
 * The same crash window, hit every time: a real fault of the database (a trigger that refuses
 * ACTIVATE events, as a full disk or a dying process would refuse the write) falls between an
 * entitlement's change and its event. The change must not be made without its event: once the
 * fault is gone, the job finishes the purchase with its ACTIVATE event and its webhook, once.
 */
describe('a database fault between a change and its event', () => {
  const refuseActivateEvents = (db: TestBroker['deps']['db']) =>
    sql`create trigger test_fault_activate before insert on entitlement_events when new.type = 'ACTIVATE' begin select raise(abort, 'injected fault'); end`.execute(db)
  const healed = (db: TestBroker['deps']['db']) => sql`drop trigger test_fault_activate`.execute(db)

  async function faultScenario() {
    const scenario = await createAzureScenario(azure)
    const { db } = scenario.broker.deps
    await orgsDb.updateOrg(db, scenario.org.id, { webhook_url: receiver.url })
    expect((await scenario.broker.request(`/api/v1/orgs/${scenario.org.id}/webhook-secret`, { method: 'POST', token: scenario.apiKey })).status).toBe(200)
    const land = (token: string) => scenario.broker.request(scenario.landingPath(`?token=${encodeURIComponent(token)}`))
    // Every lease and backoff over: the job's next run takes it all.
    const due = async () => {
      await db.updateTable('pending_activations').set({ next_attempt_at: '2000-01-01T00:00:00.000Z', lease_until: '2000-01-01T00:00:00.000Z' }).execute()
      await db.updateTable('landing_claims').set({ lease_until: '2000-01-01T00:00:00.000Z' }).execute()
      await runJobs(scenario.broker.deps, createLandingService(scenario.broker.deps), scenario.broker.deps.logger)
    }
    const outcome = async (subscriptionId: string) => {
      const row = (await db.selectFrom('entitlements').select(['id', 'status']).where('external_id', '=', subscriptionId).executeTakeFirstOrThrow())
      const events = (await db.selectFrom('entitlement_events').select('type').where('entitlement_id', '=', row.id).orderBy('id').execute()).map((e) => e.type)
      // Positively: every delivery of this entitlement reached the receiver before counting them.
      for (let i = 0; ; i++) {
        const left = await db.selectFrom('webhook_deliveries').select('id').where('org_id', '=', scenario.org.id).where('status', '!=', 'SUCCEEDED').execute()
        if (left.length === 0) break
        if (i > 100) throw new Error(`deliveries did not succeed: ${JSON.stringify(await db.selectFrom('webhook_deliveries').select(['type', 'status', 'last_error']).where('org_id', '=', scenario.org.id).execute())}`)
        await runJobs(scenario.broker.deps, createLandingService(scenario.broker.deps), scenario.broker.deps.logger)
        await sleep(20)
      }
      const hooks = receiver.received.map((hook) => JSON.parse(hook.body) as { type: string; entityId: string }).filter((hook) => hook.entityId === row.id)
      // Each once; the job sends due deliveries concurrently, so their arrival order is not asserted.
      return { status: row.status, events, hooks: hooks.map((hook) => hook.type).sort() }
    }
    return { scenario, db, land, due, outcome }
  }

  beforeAll(() => {
    receiving = true
  })

  test('activation: Microsoft activated, the write of ACTIVE + ACTIVATE fails; the job completes it with its event and webhook', async () => {
    const { db, land, due, outcome } = await faultScenario()
    const sub = azure.emulator.addSubscription({ appId: azure.clientId })
    await refuseActivateEvents(db)
    expect((await land(azure.emulator.issuePurchaseToken(sub.id))).status).toBe(503)
    expect(azure.emulator.subscriptions.get(sub.id)!.saasSubscriptionStatus).toBe('Subscribed')
    await healed(db)
    await due()
    expect(await outcome(sub.id)).toEqual({ status: 'ACTIVE', events: ['CREATE', 'ACTIVATE'], hooks: ['entitlement.activated', 'entitlement.created'] })
    expect(azure.emulator.callsTo('activate').filter((call) => call.path.includes(sub.id))).toHaveLength(1)
  })

  test('a later landing: the purchase became Subscribed meanwhile, the write of ACTIVE + ACTIVATE fails; the job completes it with its event and webhook', async () => {
    const { db, land, due, outcome } = await faultScenario()
    const sub = azure.emulator.addSubscription({ appId: azure.clientId })
    azure.emulator.failNext('activate', 500, 3)
    expect((await land(azure.emulator.issuePurchaseToken(sub.id))).status).toBe(503)
    // Activated at Microsoft by someone else (the buyer's other tab, support): the revisit's Resolve says Subscribed.
    azure.emulator.subscriptions.get(sub.id)!.saasSubscriptionStatus = 'Subscribed'
    await refuseActivateEvents(db)
    expect((await land(azure.emulator.issuePurchaseToken(sub.id))).status).toBe(500)
    await healed(db)
    await due()
    expect(await outcome(sub.id)).toEqual({ status: 'ACTIVE', events: ['CREATE', 'ACTIVATE'], hooks: ['entitlement.activated', 'entitlement.created'] })
  })
})
