import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { runJobs } from '../src/domain/jobs'
import { createLandingService } from '../src/domain/landing'
import { type TestBroker, createTestBroker, startHookReceiver, waitFor } from './helpers'
import { type Marketplaces, inPastHour, meteredOrg, startMarketplaces } from './metering-setup'
import { type SugerShape, sugerProblems } from './suger-schema'
import { type WorkerProcess, httpBroker, startWorker } from './worker-process'

/**
 * The Suger-compatible API (contract §15) on both runtimes, through HTTP only: the in-process
 * Node app on SQLite and `npm run dev:worker` (workerd + D1). Entitlements from real landings at
 * the emulators, usage groups reported by each runtime's own job, the Azure cancel at the
 * emulator; every answer checked with the broker's strict schemas of Suger's shapes and §15's wire
 * rules (test/suger-schema.ts).
 */
let m: Marketplaces
let hooks: Awaited<ReturnType<typeof startHookReceiver>>
let node: TestBroker
let worker: WorkerProcess
let persistTo: string

beforeAll(async () => {
  m = await startMarketplaces()
  hooks = await startHookReceiver()
  node = await createTestBroker(m.env)
  persistTo = mkdtempSync(join(tmpdir(), 'marketbridge-suger-'))
  // The job runs when the test says (see usage-runtimes): the groups' records must be stored before their hour is reported.
  worker = await startWorker(persistTo, { ...m.env, JOB_INTERVAL_MS: '3600000' })
}, 120_000)

afterAll(async () => {
  await worker?.stop()
  await node?.close()
  await hooks?.close()
  await m?.close()
  rmSync(persistTo, { recursive: true, force: true })
})

type Client = Pick<TestBroker, 'request' | 'createOrg'>
const runtimes: Array<[string, () => Client, () => Promise<void>]> = [
  ['node + SQLite', () => node, async () => void (await runJobs(node.deps, createLandingService(node.deps), node.deps.logger))],
  [
    'workerd + D1',
    () => httpBroker(worker.url),
    async () => {
      const run = await fetch(`${worker.url}/cdn-cgi/local/scheduled?cron=${encodeURIComponent('* * * * *')}`)
      if (!run.ok) throw new Error(`the scheduled run answered ${run.status}: ${await run.text()}`)
    },
  ],
]

describe.each(runtimes)('%s', (_name, client, job) => {
  test('entitlements, buyers, usage groups to REPORTED and the Azure cancel, as Suger’s clients read them', async () => {
    const org = await meteredOrg(client(), m, { webhookUrl: hooks.url, name: 'sugerrt' })
    const call = async (path: string, init: { method?: string; json?: unknown; auth?: string } = {}) => {
      const response = await client().request(`/suger/org/${org.orgId}${path}`, {
        method: init.method ?? 'GET',
        token: null,
        headers: { authorization: init.auth ?? `Key ${org.apiKey}`, ...(init.json === undefined ? {} : { 'content-type': 'application/json' }) },
        body: init.json === undefined ? undefined : JSON.stringify(init.json),
      })
      const text = await response.text()
      return { status: response.status, type: response.headers.get('content-type') ?? '', body: JSON.parse(text) as any, text }
    }
    const valid = async (path: string, shape: SugerShape, init?: Parameters<typeof call>[1]) => {
      const answer = await call(path, init)
      expect(answer.status, answer.text).toBe(200)
      expect(sugerProblems(shape, { contentType: answer.type, body: answer.body })).toEqual([])
      return answer.body
    }

    const azure = await org.buyAzure()
    const aws = await org.buyAws()
    const gcp = await org.buyGcp()

    // Get, list, filter, page, buyers.
    const entitlement = await valid(`/entitlement/${azure.id}`, 'WorkloadEntitlement')
    expect(entitlement).toMatchObject({ id: azure.id, partner: 'AZURE', externalID: azure.subscriptionId, status: 'ACTIVE', organizationID: org.orgId })
    expect(entitlement.info.azureSubscriptions[0].id).toBe(azure.subscriptionId)
    expect((await valid('/entitlement', 'WorkloadEntitlement[]')).map((e: { id: string }) => e.id)).toEqual([gcp.id, aws.id, azure.id])
    expect((await valid('/entitlement?partner=aws', 'WorkloadEntitlement[]')).map((e: { id: string }) => e.id)).toEqual([aws.id])
    expect((await valid('/entitlement?limit=1&offset=1', 'WorkloadEntitlement[]')).map((e: { id: string }) => e.id)).toEqual([aws.id])
    const awsEntitlement = await valid(`/entitlement/${aws.id}`, 'WorkloadEntitlement')
    expect(await valid(`/buyer/${awsEntitlement.buyerID}`, 'IdentityBuyer')).toMatchObject({ partner: 'AWS', externalID: aws.accountId, info: { awsBuyer: { awsAccountID: aws.accountId } } })
    const missing = await call('/entitlement/ent_nope')
    expect([missing.status, missing.body]).toEqual([404, 'entitlement not found'])
    const anonymous = await call('/entitlement', { auth: 'Key nope' })
    expect(anonymous.status).toBe(401)
    expect(typeof anonymous.body).toBe('string')

    // Usage groups: one, a batch, a seen id, a bad batch; reported by the runtime's job.
    const gid = `rt-${Date.now().toString(36)}`
    const group = await valid(`/entitlement/${azure.id}/usageRecordGroup`, 'MeteringUsageRecordGroup', {
      method: 'POST',
      json: { id: gid, entitlementID: azure.id, organizationID: org.orgId, records: { calls: 7, idle: 0 }, timestamp: inPastHour(1) },
    })
    expect(group).toMatchObject({ id: gid, status: 'CREATED', records: { calls: 7 }, metaInfo: { source: 'API', originRecords: { calls: 7, idle: 0 } } })
    const seen = await call(`/entitlement/${azure.id}/usageRecordGroup`, { method: 'POST', json: { id: gid, entitlementID: azure.id, organizationID: org.orgId, records: { other: 1 } } })
    expect(seen.status).toBe(409)
    const batch = await valid('/batchCreateUsageRecordGroups', 'MeteringUsageRecordGroup[]', {
      method: 'POST',
      json: [
        { entitlementID: aws.id, records: { calls: 3 }, timestamp: inPastHour(1) },
        { entitlementID: azure.id, records: { storage: 2 }, timestamp: inPastHour(1) },
      ],
    })
    expect(batch.map((g: { partner: string }) => g.partner)).toEqual(['AWS', 'AZURE'])
    const bad = await call('/batchCreateUsageRecordGroups', { method: 'POST', json: [{ entitlementID: aws.id, records: { calls: 5 } }, { entitlementID: aws.id, records: { calls: 0 } }] })
    expect(bad.status).toBe(400)
    expect(bad.body).toMatch(/usageRecordGroups\[1\]: all the quantity of usage records are zero/)
    const groups = async (query = '') => (await valid(`/usageRecordGroup${query}`, 'ListUsageRecordGroupsResponse')).usageRecordGroups as Array<{ id: string; status: string; entitlementID: string }>
    // Newest first; of one batch the later group first.
    expect((await groups()).map((g) => g.id)).toEqual([batch[1].id, batch[0].id, gid])
    expect((await groups(`?entitlementId=${aws.id}`)).map((g) => g.id)).toEqual([batch[0].id])
    await job()
    await waitFor('every group REPORTED', async () => (await groups()).every((g) => g.status === 'REPORTED'), { timeoutMs: 20_000, everyMs: 200 })
    expect(m.azure.emulator.usageEventsFor(azure.subscriptionId).map((e) => [e.dimension, e.quantity]).sort()).toEqual([['calls', 7], ['storage', 2]])
    const reported = await groups('?status=REPORTED')
    expect(reported).toHaveLength(3)

    // Cancel: Azure at Microsoft; elsewhere 400.
    const cancelled = await valid(`/entitlement/${azure.id}/cancel`, 'WorkloadEntitlement', { method: 'POST' })
    expect(cancelled.status).toBe('CANCELLED')
    expect(m.azure.emulator.subscriptions.get(azure.subscriptionId)!.saasSubscriptionStatus).toBe('Unsubscribed')
    expect(m.azure.emulator.callsTo('delete').filter((c) => c.path.endsWith(azure.subscriptionId))).toHaveLength(1)
    const refused = await call(`/entitlement/${gcp.id}/cancel`, { method: 'POST' })
    expect(refused.status).toBe(400)
    const hook = await waitFor('the cancelled webhook', () => hooks.received.map((h) => JSON.parse(h.body)).find((body) => body.type === 'entitlement.cancelled' && body.entityId === azure.id), { timeoutMs: 20_000 })
    expect(hook.data.event.source).toBe('api')
    const audit = await client().request(`/api/v1/orgs/${org.orgId}/audit-log?action=entitlement.cancelled`, { token: org.apiKey })
    expect(((await audit.json()) as { items: Array<{ targetId: string }> }).items.map((entry) => entry.targetId)).toEqual([azure.id])
  }, 90_000)
})
