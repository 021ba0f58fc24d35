import { type Kysely, sql } from 'kysely'
import { Webhook } from 'standardwebhooks'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { migrationsFor } from '../migrations/index'
import type { Database } from '../src/db/schema'
import { type ReceivedHook, sleep, startHookReceiver, waitFor } from './helpers'
import { type Instances, instanceEnv, openDatabase, startInstances } from './instances'
import { type Marketplaces, hourStart, inPastHour, meteredOrg } from './metering-setup'
import { startMarketplaces } from './metering-setup'
import { type Cluster, type TestDatabase, createTestDatabase, postgresAvailable, startCluster } from './postgres'

/**
 * Contract §12 with real processes: three `npm start` instances on one PostgreSQL database behave
 * as one broker. Every case counts at the marketplace emulators, at the ISV's webhook receiver and
 * in the database, never only in one instance's answer. PostgreSQL only: without a server the
 * suite fails in CI with the reason and is skipped on a developer's machine (CI unset).
 */
const available = await postgresAvailable()

/** Runs every cleanup even when one of them throws, then throws the first failure. */
async function cleanUp(...steps: Array<(() => unknown) | undefined>) {
  const results = await Promise.allSettled(steps.map(async (step) => step?.()))
  const failed = results.find((result) => result.status === 'rejected')
  if (failed) throw (failed as PromiseRejectedResult).reason
}

let m: Marketplaces
let receiver: Awaited<ReturnType<typeof startHookReceiver>>
// The ISV's receiver answers 503 (and records nothing) while this says no: see the SIGKILL case.
let receiving = true

describe.runIf(available)('several npm start instances on one PostgreSQL database', () => {
  beforeAll(async () => {
    // Resolve and Activate take 40 ms, so concurrent landings really overlap at Microsoft; metering
    // answers 300 ms after it took the events, so a report stays in flight over several job runs.
    m = await startMarketplaces({ azureLatencyMs: 40, azureMeteringDelayMs: 300 })
    receiver = await startHookReceiver(() => receiving)
  })
  afterAll(() => cleanUp(() => receiver?.close(), () => m?.close()))

  /** What the ISV received for `orgId`, each checked against its Standard Webhooks signature. */
  const hooksOf = (orgId: string, secret: string) => {
    const verifier = new Webhook(secret)
    return receiver.received
      .map((hook: ReceivedHook) => ({ hook, body: JSON.parse(hook.body) as { type: string; orgId: string; entityId: string } }))
      .filter(({ body }) => body.orgId === orgId)
      .map(({ hook, body }) => {
        verifier.verify(hook.body, hook.headers)
        return { id: hook.headers['webhook-id']!, type: body.type, entitlementId: body.entityId }
      })
  }
  const activationsOf = (subscriptionId: string) => m.azure.emulator.callsTo('activate').filter((call) => call.path.split('/')[4] === subscriptionId).length

  describe('on the shared server', () => {
    let database: TestDatabase
    let db: Kysely<Database>
    let instances: Instances | undefined
    let org: { id: string; apiKey: string; webhookSecret: string }

    beforeAll(async () => {
      database = await createTestDatabase()
      db = openDatabase(database.url)
    })
    afterAll(() => cleanUp(() => instances?.close(), async () => {
      await db?.destroy()
      await database?.drop()
    }))

    /** The three instances (started by the migration race; on their own if that case was skipped). */
    async function running() {
      instances ??= await startInstances(3, instanceEnv(database.url, m.env))
      if (!org) {
        const client = instances.client(0)
        const created = (await client.createOrg({ webhookUrl: receiver.url })) as unknown as { org: { id: string }; apiKey: string; webhookSecret: string }
        const put = await client.request(`/api/v1/orgs/${created.org.id}/integrations/azure`, {
          method: 'PUT',
          token: created.apiKey,
          json: { tenantId: m.azure.tenantId, clientId: m.azure.clientId, clientSecret: m.azure.clientSecret },
        })
        expect(put.status).toBe(200)
        org = { id: created.org.id, apiKey: created.apiKey, webhookSecret: created.webhookSecret }
      }
      return instances
    }
    const landingPath = (token: string) => `/public/signup/azure/orgId/${org.id}?token=${encodeURIComponent(token)}`
    const land = (url: string, token: string) => fetch(`${url}${landingPath(token)}`, { redirect: 'manual' })
    const newPurchase = () => {
      const sub = m.azure.emulator.addSubscription({ appId: m.azure.clientId, quantity: 1 })
      return { sub, token: m.azure.emulator.issuePurchaseToken(sub.id) }
    }
    const outputs = () => (instances?.all ?? []).map((instance, i) => `--- instance ${i}\n${instance.output().slice(-3000)}`).join('\n')

    test('migration race: three instances started at once on an empty database all come up; each migration recorded once', async () => {
      instances = await startInstances(3, instanceEnv(database.url, m.env))
      for (const instance of instances.all) expect((await fetch(`${instance.url}/healthz`)).status).toBe(200)
      const recorded = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db)
      expect(recorded.rows.map((row) => row.name)).toEqual(Object.keys(migrationsFor('postgres')).sort())
      for (const instance of instances.all) expect(instance.output()).not.toMatch(/migration .* failed|failed to start/)
    }, 90_000)

    test('identical answers: an entitlement and the list read through each instance are byte-identical JSON', async () => {
      const all = await running()
      const ids: string[] = []
      for (const [i, instance] of all.all.entries()) {
        const { token } = newPurchase()
        const landed = await land(instance.url, token)
        expect(landed.status, `landing through instance ${i}`).toBe(303)
        ids.push(new URL(landed.headers.get('location')!).searchParams.get('sugerEntitlementId')!)
      }
      const read = async (path: string) =>
        Promise.all(all.all.map(async (instance) => {
          const response = await fetch(`${instance.url}${path}`, { headers: { authorization: `Bearer ${org.apiKey}` } })
          expect(response.status, path).toBe(200)
          return response.text()
        }))
      for (const path of [
        ...ids.map((id) => `/api/v1/orgs/${org.id}/entitlements/${id}`),
        ...ids.map((id) => `/api/v1/orgs/${org.id}/entitlements/${id}/events`),
        `/api/v1/orgs/${org.id}/entitlements?limit=100`,
        `/api/v1/orgs/${org.id}/entitlements?limit=2&partner=azure&status=ACTIVE`,
      ]) {
        const [first, ...rest] = await read(path)
        for (const other of rest) expect(other, path).toBe(first)
      }
      const list = JSON.parse((await read(`/api/v1/orgs/${org.id}/entitlements?limit=100`))[0]!) as { items: Array<{ id: string }> }
      expect(list.items.map((item) => item.id).sort()).toEqual([...ids].sort())
    }, 60_000)

    test('double-click race: one token sent to all three instances at once, four times each: one entitlement, one Activate, every answer the same 303', async () => {
      const all = await running()
      const { sub, token } = newPurchase()
      const answers = await Promise.all(all.all.flatMap((instance) => Array.from({ length: 4 }, () => land(instance.url, token))))
      const seen = answers.map((response) => `${response.status} ${response.headers.get('location')}`)
      expect(new Set(seen).size, seen.join('\n')).toBe(1)
      expect(answers[0]!.status).toBe(303)
      const rows = await db.selectFrom('entitlements').select(['id', 'status']).where('external_id', '=', sub.id).execute()
      expect(rows).toHaveLength(1)
      expect(rows[0]!.status).toBe('ACTIVE')
      expect(seen[0]).toContain(`sugerEntitlementId=${rows[0]!.id}`)
      await m.azure.emulator.idle()
      expect(activationsOf(sub.id)).toBe(1)
    }, 60_000)

    test('30 landings with webhooks over three instances: 30 entitlements activated, each delivery received exactly once', async () => {
      const all = await running()
      const purchases = Array.from({ length: 30 }, newPurchase)
      const answers = await Promise.all(purchases.map(({ token }, i) => land(all.all[i % 3]!.url, token)))
      expect(answers.map((response) => response.status)).toEqual(purchases.map(() => 303))
      const subIds = purchases.map(({ sub }) => sub.id)
      const rows = await db.selectFrom('entitlements').select(['id', 'status', 'external_id']).where('external_id', 'in', subIds).execute()
      expect(rows).toHaveLength(30)
      for (const row of rows) expect(row.status).toBe('ACTIVE')
      const ids = new Set(rows.map((row) => row.id))
      // Positively first: every delivery of these entitlements SUCCEEDED and arrived.
      const deliveries = await waitFor('every delivery succeeded', async () => {
        const found = await db.selectFrom('webhook_deliveries').innerJoin('entitlement_events', 'entitlement_events.id', 'webhook_deliveries.event_id')
          .select(['webhook_deliveries.id', 'webhook_deliveries.status']).where('entitlement_events.entitlement_id', 'in', [...ids]).execute()
        return found.length === 60 && found.every((row) => row.status === 'SUCCEEDED') ? found : null
      }, { timeoutMs: 30_000 })
      // Then three more job runs on every instance: a second send would come now.
      await sleep(4 * Number(all.env.JOB_INTERVAL_MS))
      const hooks = hooksOf(org.id, org.webhookSecret).filter((hook) => ids.has(hook.entitlementId))
      expect(new Set(hooks.map((hook) => hook.id)).size, 'each webhook-id received once').toBe(hooks.length)
      expect(hooks.map((hook) => hook.id).sort()).toEqual(deliveries.map((row) => row.id).sort())
      for (const id of ids) expect(hooks.filter((hook) => hook.entitlementId === id).map((hook) => hook.type).sort()).toEqual(['entitlement.activated', 'entitlement.created'])
      for (const id of subIds) expect(activationsOf(id), `Activate calls for ${id}`).toBe(1)
    }, 90_000)

    test('SIGKILL of one instance mid-burst: nothing answered is lost, nothing is done twice, the others take over its leases', async () => {
      const all = await running()
      // The receiver is down until the kill: a delivery the killed instance had sent would
      // legitimately be sent again, so only what is sent after the kill is counted.
      receiving = false
      try {
        const purchases = Array.from({ length: 30 }, newPurchase)
        // A third of the buyers click twice; visits go round-robin over the three instances.
        const visits = purchases.flatMap((purchase, i) => (i % 3 === 0 ? [purchase, purchase] : [purchase]))
        const targets = [...all.all]
        const victim = targets[0]!
        const activatedBefore = m.azure.emulator.callsTo('activate').length
        const burst = Promise.allSettled(
          visits.map(async ({ sub, token }, i) => {
            await sleep((i % 20) * 30) // spread over ~600 ms
            const instance = targets[i % 3]!
            const response = await land(instance.url, token)
            return { sub, instance, status: response.status, location: response.headers.get('location') }
          }),
        )
        // Killed on an observed state: Microsoft has been asked to activate a quarter of the purchases.
        await waitFor('a quarter of the purchases activated', () => m.azure.emulator.callsTo('activate').length - activatedBefore >= purchases.length / 4, { timeoutMs: 20_000, everyMs: 5 })
        await all.kill(victim)
        const killedAt = Date.now()
        receiving = true
        const outcomes = await burst
        const failed = outcomes.filter((outcome) => outcome.status === 'rejected').length
        expect(failed, 'requests to the killed instance were cut off').toBeGreaterThan(0)
        await m.azure.emulator.idle()

        const subIds = purchases.map(({ sub }) => sub.id)
        const open = async () => {
          const [claims, pending, deliveries] = await Promise.all([
            db.selectFrom('landing_claims').select('token_hash').execute(),
            db.selectFrom('pending_activations').select('entitlement_id').execute(),
            db.selectFrom('webhook_deliveries').select('id').where('org_id', '=', org.id).where('status', '!=', 'SUCCEEDED').execute(),
          ])
          return claims.length + pending.length + deliveries.length
        }
        // Leases: a landing's 3 s (UPSTREAM_TIMEOUT_MS 500), a webhook delivery's 15 s (fixed), then the retry's backoff.
        await waitFor('the survivors finished the killed instance\'s work', async () => (await open()) === 0, { timeoutMs: 90_000, everyMs: 200 })
        const takeoverSeconds = (Date.now() - killedAt) / 1000
        console.log(`SIGKILL case: the survivors finished the killed instance's work ${takeoverSeconds.toFixed(1)} s after the kill`)
        await sleep(4 * Number(all.env.JOB_INTERVAL_MS))

        const rows = await db.selectFrom('entitlements').select(['id', 'status', 'external_id']).where('external_id', 'in', subIds).execute()
        const bySub = new Map(rows.map((row) => [row.external_id, row]))
        // No duplicate entitlement; every purchase Microsoft resolved is stored, ACTIVE, and Subscribed there.
        expect(bySub.size).toBe(rows.length)
        for (const id of subIds.filter((id) => m.azure.emulator.resolved.has(id))) expect(bySub.has(id), `resolved ${id} is stored`).toBe(true)
        for (const row of rows) {
          expect(row.status, row.external_id).toBe('ACTIVE')
          expect(m.azure.emulator.subscriptions.get(row.external_id)!.saasSubscriptionStatus).toBe('Subscribed')
        }
        // Every buyer who got a 303 has an ACTIVE entitlement behind it.
        for (const outcome of outcomes) {
          if (outcome.status !== 'fulfilled' || outcome.value.status !== 303) continue
          const id = new URL(outcome.value.location!).searchParams.get('sugerEntitlementId')
          expect(bySub.get(outcome.value.sub.id)?.id, `the 303 for ${outcome.value.sub.id}`).toBe(id)
        }
        for (const outcome of outcomes) if (outcome.status === 'fulfilled') expect([303, 503]).toContain(outcome.value.status)
        // Each entitlement exactly its CREATE and ACTIVATE, each webhook received once.
        for (const row of rows) {
          const events = await db.selectFrom('entitlement_events').select('type').where('entitlement_id', '=', row.id).orderBy('id').execute()
          expect(events.map((event) => event.type), `events of ${row.external_id}`).toEqual(['CREATE', 'ACTIVATE'])
        }
        const ids = new Set(rows.map((row) => row.id))
        const hooks = hooksOf(org.id, org.webhookSecret).filter((hook) => ids.has(hook.entitlementId))
        expect(new Set(hooks.map((hook) => hook.id)).size, 'each webhook-id received once').toBe(hooks.length)
        for (const row of rows) expect(hooks.filter((hook) => hook.entitlementId === row.id).map((hook) => hook.type).sort(), `webhooks of ${row.external_id}`).toEqual(['entitlement.activated', 'entitlement.created'])
        // No subscription activated twice, the killed instance's included.
        for (const id of subIds) expect(activationsOf(id), `Activate calls for ${id}`).toBeLessThanOrEqual(1)
        for (const row of rows) expect(activationsOf(row.external_id), `Activate calls for ${row.external_id}`).toBe(1)
      } catch (error) {
        throw new Error(`${(error as Error).message}\n${outputs()}`, { cause: error })
      } finally {
        receiving = true
      }
    }, 180_000)
  })

  test('usage recorded through three instances for one entitlement, dimension and hour is reported once, summed', async () => {
    const database = await createTestDatabase()
    const db = openDatabase(database.url)
    let recorders: Instances | undefined
    let reporters: Instances | undefined
    try {
      // The recorders' job runs only at their start (an hour apart after that), before any usage
      // exists: a run between two records of one hour would report the later one late, on its own
      // (contract §9), which is not what this case is about.
      recorders = await startInstances(3, instanceEnv(database.url, { ...m.env, JOB_INTERVAL_MS: '3600000' }))
      const org = await meteredOrg(recorders.client(0), m, { name: 'instances' })
      const azure = await org.buyAzure()
      const aws = await org.buyAws()
      const past = inPastHour(2)
      const quantities = [1.5, 2.25, 0.125, 4, 0.0625, 3.5]
      let n = 0
      const record = (i: number, entitlementId: string, dimension: string, quantity: number) =>
        recorders!.client(i).request(`/api/v1/orgs/${org.orgId}/entitlements/${entitlementId}/usage`, {
          method: 'POST',
          token: org.apiKey,
          json: { dimension, quantity, timestamp: past, idempotencyKey: `multi-${n++}` },
        })
      // AWS meters whole units; Azure takes fractions (exact in binary, so the sum is exact too).
      const awsQuantities = [3, 1, 4, 1, 5, 9]
      const answers = await Promise.all(quantities.flatMap((quantity, i) => [record(i % 3, azure.id, 'calls', quantity), record(i % 3, aws.id, 'requests', awsQuantities[i]!)]))
      for (const answer of answers) expect(answer.status, await answer.clone().text()).toBe(202)
      const sum = quantities.reduce((a, b) => a + b, 0)
      const awsSum = awsQuantities.reduce((a, b) => a + b, 0)

      // Three fresh instances with a short job interval start at once: they race to close the hour and report it.
      reporters = await startInstances(3, instanceEnv(database.url, { ...m.env, JOB_INTERVAL_MS: '250' }))
      await waitFor('every record reported', async () => {
        const left = await db.selectFrom('usage_records').select('id').where('status', '!=', 'REPORTED').execute()
        return left.length === 0
      }, { timeoutMs: 60_000, everyMs: 200 })
      await sleep(4 * 250)
      const reports = await db.selectFrom('usage_reports').select(['status', 'quantity']).execute()
      expect(reports.map((report) => [report.status, report.quantity]).sort()).toEqual([['REPORTED', sum], ['REPORTED', awsSum]].sort())
      expect(m.azure.emulator.usageEventsFor(azure.subscriptionId).map((event) => [event.dimension, event.quantity, Date.parse(event.effectiveStartTime)])).toEqual([['calls', sum, Date.parse(hourStart(past))]])
      expect(m.aws.meteringRecords.filter((record) => record.LicenseArn === aws.licenseArn).map((record) => record.Quantity)).toEqual([awsSum])
      // Sent once, too: both marketplaces would take a second send as a duplicate and bill once, so what they billed alone would not show it.
      const mentions = (bodies: string[], id: string) => bodies.reduce((n, body) => n + body.split(id).length - 1, 0)
      const azureBodies = [...m.azure.emulator.callsTo('usageEvent'), ...m.azure.emulator.callsTo('batchUsageEvent')].map((call) => call.body)
      expect(mentions(azureBodies, azure.subscriptionId), 'usage events sent to Azure').toBe(1)
      expect(mentions(m.aws.callsTo('BatchMeterUsage').map((call) => call.body), aws.licenseArn!), 'usage records sent to AWS').toBe(1)
    } finally {
      await cleanUp(() => recorders?.close(), () => reporters?.close(), async () => {
        await db.destroy()
        await database.drop()
      })
    }
  }, 180_000)

  describe('PostgreSQL restart (a private cluster: the shared server is never stopped)', () => {
    let cluster: Cluster
    let database: TestDatabase
    let instances: Instances | undefined
    beforeAll(async () => {
      cluster = await startCluster()
      database = await createTestDatabase({ base: cluster.url })
    }, 60_000)
    afterAll(() => cleanUp(() => instances?.close(), async () => {
      await database?.drop().catch(() => {})
      await cluster?.destroy()
    }))

    test('the server stops: /healthz 503 on every instance; it starts again: 200 without a restart, landings work, nothing answered before is lost', async () => {
      instances = await startInstances(3, instanceEnv(database.url, m.env))
      const client = instances.client(0)
      const { org, apiKey } = await client.createOrg()
      const put = await client.request(`/api/v1/orgs/${org.id}/integrations/azure`, { method: 'PUT', token: apiKey, json: { tenantId: m.azure.tenantId, clientId: m.azure.clientId, clientSecret: m.azure.clientSecret } })
      expect(put.status).toBe(200)
      const landThrough = async (url: string) => {
        const sub = m.azure.emulator.addSubscription({ appId: m.azure.clientId })
        const response = await fetch(`${url}/public/signup/azure/orgId/${org.id}?token=${encodeURIComponent(m.azure.emulator.issuePurchaseToken(sub.id))}`, { redirect: 'manual' })
        expect(response.status).toBe(303)
        return new URL(response.headers.get('location')!).searchParams.get('sugerEntitlementId')!
      }
      try {
        await restartCase(instances, landThrough, client, org.id, apiKey)
      } catch (error) {
        const outputs = instances.all.map((instance, i) => `--- instance ${i} (exit ${instance.child.exitCode ?? instance.child.signalCode})\n${instance.output().slice(-3000)}`).join('\n')
        throw new Error(`${(error as Error).message}\n${outputs}`, { cause: error })
      }
    }, 120_000)

    async function restartCase(instances: Instances, landThrough: (url: string) => Promise<string>, client: ReturnType<Instances['client']>, orgId: string, apiKey: string) {
      const before = await Promise.all(instances.all.map((instance) => landThrough(instance.url)))
      const health = () => Promise.all(instances.all.map(async (instance) => (await fetch(`${instance.url}/healthz`, { signal: AbortSignal.timeout(10_000) })).status))
      expect(await health()).toEqual([200, 200, 200])

      await cluster.stop()
      await waitFor('/healthz 503 on every instance', async () => (await health()).every((status) => status === 503), { timeoutMs: 20_000, everyMs: 100 })
      await cluster.start()
      await waitFor('/healthz 200 on every instance', async () => (await health()).every((status) => status === 200), { timeoutMs: 30_000, everyMs: 100 })

      const after = await Promise.all(instances.all.map((instance) => landThrough(instance.url)))
      for (const id of [...before, ...after]) {
        const response = await client.request(`/api/v1/orgs/${orgId}/entitlements/${id}`, { token: apiKey })
        expect(response.status).toBe(200)
        expect(((await response.json()) as { status: string }).status).toBe('ACTIVE')
      }
      // The same processes throughout: none was restarted.
      for (const instance of instances.all) expect(instance.child.exitCode).toBeNull()
    }
  })
})
