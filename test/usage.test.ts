import { Webhook } from 'standardwebhooks'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { runJobs } from '../src/domain/jobs'
import { createLandingService } from '../src/domain/landing'
import { type TestBroker, createTestBroker, startHookReceiver, waitFor } from './helpers'
import { GCP_PRODUCT, GCP_SERVICE, type Marketplaces, type MeteredOrg, awsHours, hourStart, inPastHour, meteredOrg, startMarketplaces } from './metering-setup'

/**
 * Usage metering (contract §9) on the in-process Node broker: recording through the real routes,
 * reporting by the real job with the real SDK clients against the three emulators. The broker's
 * clock is real unless a test moves it (`clock.shift`), so the AWS and Azure emulators' windows
 * judge the same times the broker does.
 */
let m: Marketplaces
let broker: TestBroker
let org: MeteredOrg & { webhookSecret?: string }
const shift = { ms: 0 }
let hooks: Awaited<ReturnType<typeof startHookReceiver>>

beforeAll(async () => {
  m = await startMarketplaces()
  hooks = await startHookReceiver()
  broker = await createTestBroker(m.env)
  broker.deps.now = () => new Date(Date.now() + shift.ms)
  org = await meteredOrg(broker, m, { webhookUrl: hooks.url })
}, 60_000)

afterAll(async () => {
  await broker?.close()
  await m?.close()
  await hooks?.close()
})

const job = () => runJobs(broker.deps, createLandingService(broker.deps), broker.deps.logger)
const json = async (response: Response) => (await response.json()) as any
let keys = 0
const key = () => `key-${Date.now()}-${keys++}`

describe('recording', () => {
  test('a record is 202; the same key and body again is 200 with the same record; another body is 409', async () => {
    const { id } = await org.buyAzure()
    const body = { dimension: 'api_calls', quantity: 5, timestamp: inPastHour(1), idempotencyKey: key() }
    const first = await org.record(id, body)
    expect(first.status).toBe(202)
    const { usageRecord } = await json(first)
    expect(usageRecord).toMatchObject({ entitlementId: id, dimension: 'api_calls', quantity: 5, status: 'PENDING', marketplaceStatus: null, reportedAt: null, idempotencyKey: body.idempotencyKey })
    expect(usageRecord.id).toMatch(/^use_/)
    const again = await org.record(id, body)
    expect(again.status).toBe(200)
    expect((await json(again)).usageRecord).toEqual(usageRecord)
    const other = await org.record(id, { ...body, quantity: 6 })
    expect(other.status).toBe(409)
    expect((await json(other)).error.code).toBe('CONFLICT')
    // Without a timestamp: the time it was first accepted; a replay without one is the same body.
    const noTime = { dimension: 'api_calls', quantity: 1, idempotencyKey: key() }
    const a = await json(await org.record(id, noTime))
    const b = await org.record(id, noTime)
    expect(b.status).toBe(200)
    expect((await json(b)).usageRecord.timestamp).toBe(a.usageRecord.timestamp)
    expect((await org.record(id, { ...noTime, timestamp: a.usageRecord.timestamp })).status).toBe(409)
  })

  test('refusals are 400 with the error shape and store nothing', async () => {
    const { id } = await org.buyAzure()
    const { id: awsId } = await org.buyAws()
    const { id: gcpId } = await org.buyGcp()
    const now = Date.now()
    const cases: Array<[string, Record<string, unknown>, string?]> = [
      ['zero', { dimension: 'd', quantity: 0 }],
      ['negative', { dimension: 'd', quantity: -1 }],
      ['huge', { dimension: 'd', quantity: 1e13 }],
      ['not a number', { dimension: 'd', quantity: '5' }],
      ['NaN as text', { dimension: 'd', quantity: 'NaN' }],
      ['long dimension', { dimension: 'x'.repeat(10_000), quantity: 1 }],
      ['empty dimension', { dimension: '', quantity: 1 }],
      ['control characters', { dimension: 'a\u0000b', quantity: 1 }],
      ['year 9999', { dimension: 'd', quantity: 1, timestamp: '9999-12-31T23:59:59Z' }],
      ['a minute ahead', { dimension: 'd', quantity: 1, timestamp: new Date(now + 60_000).toISOString() }],
      ['no zone', { dimension: 'd', quantity: 1, timestamp: '2026-11-22T10:00:00' }],
      ['not a date', { dimension: 'd', quantity: 1, timestamp: 'yesterday' }],
      ['Azure: hour older than 24 h', { dimension: 'd', quantity: 1, timestamp: new Date(now - 25 * 3600_000).toISOString() }],
      ['unknown field', { dimension: 'd', quantity: 1, extra: true }],
      ['long key', { dimension: 'd', quantity: 1, idempotencyKey: 'k'.repeat(256) }],
    ]
    for (const [name, body] of cases) {
      const response = await org.record(id, { idempotencyKey: key(), ...body })
      expect(response.status, name).toBe(400)
      const error = (await json(response)).error
      expect(error.code, name).toBe('VALIDATION_ERROR')
      expect(error.message.length, name).toBeLessThan(2000)
    }
    // Infinity: JSON cannot carry it, but 1e999 parses to it.
    const infinite = await broker.request(`/api/v1/orgs/${org.orgId}/entitlements/${id}/usage`, {
      method: 'POST',
      token: org.apiKey,
      headers: { 'content-type': 'application/json' },
      body: `{"dimension":"d","quantity":1e999,"idempotencyKey":"${key()}"}`,
    })
    expect(infinite.status).toBe(400)
    expect((await org.record(awsId, { dimension: 'd', quantity: 1.5, idempotencyKey: key() })).status).toBe(400)
    expect((await org.record(awsId, { dimension: 'd', quantity: 1, timestamp: new Date(now - 6 * 3600_000 - 60_000).toISOString(), idempotencyKey: key() })).status).toBe(400)
    expect((await org.record(gcpId, { dimension: 'd', quantity: 1, timestamp: new Date(now - 2 * 3600_000).toISOString(), idempotencyKey: key() })).status).toBe(400)
    expect(await org.usage(id)).toEqual([])
    expect(await org.usage(awsId)).toEqual([])
  })

  test('only ACTIVE and PENDING_CANCEL entitlements take usage; another org’s entitlement is 404', async () => {
    const { id, subscriptionId } = await org.buyAzure()
    m.azure.emulator.subscriptions.get(subscriptionId)!.saasSubscriptionStatus = 'Suspended'
    await broker.request(`/api/v1/orgs/${org.orgId}/entitlements/${id}/refresh`, { method: 'POST', token: org.apiKey })
    const refused = await org.record(id, { dimension: 'd', quantity: 1, idempotencyKey: key() })
    expect(refused.status).toBe(400)
    expect((await json(refused)).error.message).toMatch(/SUSPENDED/)
    const other = await broker.createOrg()
    const foreign = await broker.request(`/api/v1/orgs/${other.org.id}/entitlements/${id}/usage`, { method: 'POST', token: other.apiKey, json: { dimension: 'd', quantity: 1, idempotencyKey: key() } })
    expect(foreign.status).toBe(404)
    expect((await broker.request(`/api/v1/orgs/${org.orgId}/entitlements/${id}/usage`, { method: 'POST', token: other.apiKey, json: { dimension: 'd', quantity: 1, idempotencyKey: key() } })).status).toBe(404)
    expect((await broker.request(`/api/v1/orgs/${other.org.id}/entitlements/${id}/usage`, { token: other.apiKey })).status).toBe(404)
  })

  test('bulk: 207 with one result per record; duplicate keys in one body, bad records and unknown entitlements are per-record errors', async () => {
    const { id } = await org.buyAzure()
    const replayKey = key()
    const conflictKey = key()
    await org.record(id, { dimension: 'seats', quantity: 2, idempotencyKey: replayKey, timestamp: inPastHour(1) })
    await org.record(id, { dimension: 'seats', quantity: 2, idempotencyKey: conflictKey, timestamp: inPastHour(1) })
    const dup = key()
    const response = await broker.request(`/api/v1/orgs/${org.orgId}/usage`, {
      method: 'POST',
      token: org.apiKey,
      json: {
        records: [
          { entitlementId: id, dimension: 'seats', quantity: 1, idempotencyKey: dup },
          { entitlementId: id, dimension: 'seats', quantity: 1, idempotencyKey: dup },
          { entitlementId: id, dimension: 'seats', quantity: 2, idempotencyKey: replayKey, timestamp: inPastHour(1) },
          { entitlementId: id, dimension: 'seats', quantity: 3, idempotencyKey: conflictKey, timestamp: inPastHour(1) },
          { entitlementId: 'ent_nope', dimension: 'seats', quantity: 1, idempotencyKey: key() },
          { entitlementId: id, dimension: 'seats', quantity: -1, idempotencyKey: key() },
          'not an object',
        ],
      },
    })
    expect(response.status).toBe(207)
    const { results } = await json(response)
    expect(results.map((r: { status: number }) => r.status)).toEqual([202, 400, 200, 409, 404, 400, 400])
    expect(results[1].error.message).toMatch(/more than once/)
    expect(results[0].usageRecord.idempotencyKey).toBe(dup)
    expect(results[6].idempotencyKey).toBeNull()
    const tooMany = await broker.request(`/api/v1/orgs/${org.orgId}/usage`, {
      method: 'POST',
      token: org.apiKey,
      json: { records: Array.from({ length: 1001 }, (_, i) => ({ entitlementId: id, dimension: 'd', quantity: 1, idempotencyKey: `many-${i}` })) },
    })
    expect(tooMany.status).toBe(400)
    const huge = await broker.request(`/api/v1/orgs/${org.orgId}/usage`, {
      method: 'POST',
      token: org.apiKey,
      json: { records: Array.from({ length: 100_000 }, (_, i) => ({ entitlementId: id, dimension: 'd', quantity: 1, idempotencyKey: `huge-${i}` })) },
    })
    expect(huge.status).toBe(413)
    expect((await json(huge)).error.code).toBe('PAYLOAD_TOO_LARGE')
    expect((await org.usage(id)).length).toBe(3)
  })

  test('GET …/usage pages newest first with a cursor', async () => {
    const { id } = await org.buyAzure()
    for (let i = 0; i < 5; i++) await org.record(id, { dimension: 'd', quantity: i + 1, idempotencyKey: key() })
    const seen: number[] = []
    let cursor: string | null = null
    do {
      const page: any = await json(await broker.request(`/api/v1/orgs/${org.orgId}/entitlements/${id}/usage?limit=2${cursor ? `&cursor=${cursor}` : ''}`, { token: org.apiKey }))
      seen.push(...page.items.map((item: { quantity: number }) => item.quantity))
      cursor = page.nextCursor
    } while (cursor)
    expect(seen).toEqual([5, 4, 3, 2, 1])
    expect((await broker.request(`/api/v1/orgs/${org.orgId}/entitlements/${id}/usage?cursor=garbage`, { token: org.apiKey })).status).toBe(400)
  })
})

describe('reporting', () => {
  test('Azure: an ended hour is summed per dimension and sent once with batchUsageEvent; the current hour waits; a late record is rejected with the reason', async () => {
    const { id, subscriptionId, planId } = await org.buyAzure()
    const past = inPastHour(2)
    for (const [dimension, quantity] of [['api_calls', 100], ['api_calls', 23.5], ['gb', 7]] as const) {
      expect((await org.record(id, { dimension, quantity, timestamp: past, idempotencyKey: key() })).status).toBe(202)
    }
    await org.record(id, { dimension: 'api_calls', quantity: 1, idempotencyKey: key() })
    await job()
    const events = m.azure.emulator.usageEventsFor(subscriptionId)
    expect(events.map((e) => [e.dimension, e.quantity, e.planId, Date.parse(e.effectiveStartTime)]).sort()).toEqual(
      [['api_calls', 123.5, planId, Date.parse(hourStart(past))], ['gb', 7, planId, Date.parse(hourStart(past))]].sort(),
    )
    const records = await org.usage(id)
    expect(records.filter((r) => r.status === 'REPORTED').map((r) => r.marketplaceStatus)).toEqual(['Accepted', 'Accepted', 'Accepted'])
    expect(records.filter((r) => r.status === 'PENDING')).toHaveLength(1)
    expect(records.find((r) => r.status === 'REPORTED')!.reportedAt).toBeTruthy()

    await job()
    expect(m.azure.emulator.usageEventsFor(subscriptionId)).toHaveLength(2)

    const late = await json(await org.record(id, { dimension: 'api_calls', quantity: 4, timestamp: past, idempotencyKey: key() }))
    await job()
    const after = (await org.usage(id)).find((r) => r.id === late.usageRecord.id)!
    expect(after.status).toBe('REJECTED')
    expect(after.error).toMatch(/late/)
    expect(m.azure.emulator.usageEventsFor(subscriptionId)).toHaveLength(2)
  })

  test('Azure: per-item statuses become REJECTED with Azure’s status and reason', async () => {
    const { id, subscriptionId } = await org.buyAzure({ planId: 'dims' })
    m.azure.emulator.setDimensions('offer1', 'dims', ['known'])
    await org.record(id, { dimension: 'unknown-dim', quantity: 2, timestamp: inPastHour(3), idempotencyKey: key() })
    await org.record(id, { dimension: 'known', quantity: 2, timestamp: inPastHour(3), idempotencyKey: key() })
    await job()
    const records = await org.usage(id)
    expect(records.find((r) => r.dimension === 'unknown-dim')).toMatchObject({ status: 'REJECTED', marketplaceStatus: 'InvalidDimension' })
    expect(records.find((r) => r.dimension === 'known')).toMatchObject({ status: 'REPORTED', marketplaceStatus: 'Accepted' })
    expect(m.azure.emulator.usageEventsFor(subscriptionId)).toHaveLength(1)
  })

  test('Azure: an hour someone else already reported is REJECTED Duplicate; a resend of our own is REPORTED', async () => {
    const { id, subscriptionId, planId } = await org.buyAzure()
    const at = inPastHour(4)
    m.azure.emulator.seedUsageEvent({ resourceId: subscriptionId, dimension: 'theirs', quantity: 9, effectiveStartTime: hourStart(at), planId })
    await org.record(id, { dimension: 'theirs', quantity: 3, timestamp: at, idempotencyKey: key() })
    // An earlier attempt of ours got through but its answer was lost: the row says it was tried.
    m.azure.emulator.seedUsageEvent({ resourceId: subscriptionId, dimension: 'ours', quantity: 8, effectiveStartTime: hourStart(at), planId })
    await org.record(id, { dimension: 'ours', quantity: 8, timestamp: at, idempotencyKey: key() })
    const { reportUsage } = await import('../src/domain/usage-reporter')
    const { closableHours, closeHour } = await import('../src/db/usage')
    for (const hour of await closableHours(broker.deps.db, new Date().toISOString(), 100)) await closeHour(broker.deps.db, hour, 'test-run', new Date().toISOString())
    await broker.deps.db.updateTable('usage_reports').set({ attempts: 1 }).where('entitlement_id', '=', id).where('dimension', '=', 'ours').execute()
    await reportUsage(broker.deps, broker.deps.logger)
    const records = await org.usage(id)
    expect(records.find((r) => r.dimension === 'theirs')).toMatchObject({ status: 'REJECTED', marketplaceStatus: 'Duplicate' })
    expect(records.find((r) => r.dimension === 'ours')).toMatchObject({ status: 'REPORTED', marketplaceStatus: 'Accepted' })
  })

  test('Azure: a 5xx is retried later with the same hour; nothing is reported twice', async () => {
    const { id, subscriptionId } = await org.buyAzure()
    await org.record(id, { dimension: 'retry', quantity: 11, timestamp: inPastHour(5), idempotencyKey: key() })
    m.azure.emulator.failNext('batchUsageEvent', 503)
    await job()
    expect((await org.usage(id))[0]).toMatchObject({ status: 'PENDING' })
    const report = await broker.deps.db.selectFrom('usage_reports').selectAll().where('entitlement_id', '=', id).executeTakeFirstOrThrow()
    expect(report.attempts).toBe(1)
    expect(report.error).toMatch(/503/)
    shift.ms = 2 * 60_000
    try {
      await job()
    } finally {
      shift.ms = 0
    }
    expect((await org.usage(id))[0]).toMatchObject({ status: 'REPORTED' })
    expect(m.azure.emulator.usageEventsFor(subscriptionId, 'retry').map((e) => e.quantity)).toEqual([11])
  })

  test('Azure: a batch refused as a whole (400) is sent again event by event, so only a bad event is rejected', async () => {
    const a = await org.buyAzure()
    const b = await org.buyAzure()
    const at = inPastHour(7)
    await org.record(a.id, { dimension: 'split', quantity: 1, timestamp: at, idempotencyKey: key() })
    await org.record(b.id, { dimension: 'split', quantity: 2, timestamp: at, idempotencyKey: key() })
    m.azure.emulator.failNext('batchUsageEvent', 400)
    await job()
    expect((await org.usage(a.id))[0]).toMatchObject({ status: 'REPORTED', marketplaceStatus: 'Accepted' })
    expect((await org.usage(b.id))[0]).toMatchObject({ status: 'REPORTED', marketplaceStatus: 'Accepted' })
  })

  test('AWS: BatchMeterUsage with the real SDK client, in the LicenseArn form and the ProductCode form; CustomerNotSubscribed and unprocessed records', async () => {
    const licensed = await org.buyAws({ license: true })
    const legacy = await org.buyAws({ license: false })
    const gone = await org.buyAws({ license: true })
    const at = inPastHour(2, 5)
    await org.record(licensed.id, { dimension: 'requests', quantity: 40, timestamp: at, idempotencyKey: key() })
    await org.record(licensed.id, { dimension: 'requests', quantity: 2, timestamp: inPastHour(2, 50), idempotencyKey: key() })
    await org.record(legacy.id, { dimension: 'requests', quantity: 7, timestamp: at, idempotencyKey: key() })
    await org.record(gone.id, { dimension: 'requests', quantity: 1, timestamp: at, idempotencyKey: key() })
    m.aws.setSubscribed({ CustomerAWSAccountId: gone.accountId }, false)
    await job()
    const metered = m.aws.meteringRecords.filter((r) => r.ProductCode === licensed.productCode)
    expect(metered.map((r) => [r.LicenseArn ?? null, r.CustomerIdentifier, r.Quantity]).sort()).toEqual(
      [[licensed.licenseArn, licensed.customerIdentifier, 42], [null, legacy.customerIdentifier, 7]].sort(),
    )
    expect((await org.usage(licensed.id)).map((r) => r.marketplaceStatus)).toEqual(['Success', 'Success'])
    expect((await org.usage(gone.id))[0]).toMatchObject({ status: 'REJECTED', marketplaceStatus: 'CustomerNotSubscribed' })

    const later = await org.buyAws()
    await org.record(later.id, { dimension: 'requests', quantity: 3, timestamp: inPastHour(1), idempotencyKey: key() })
    m.aws.leaveUnprocessedNext(1)
    await job()
    expect((await org.usage(later.id))[0]).toMatchObject({ status: 'PENDING' })
    shift.ms = 2 * 60_000
    try {
      await job()
    } finally {
      shift.ms = 0
    }
    expect((await org.usage(later.id))[0]).toMatchObject({ status: 'REPORTED', marketplaceStatus: 'Success' })
    expect(m.aws.meteringRecords.filter((r) => r.LicenseArn === later.licenseArn).map((r) => r.Quantity)).toEqual([3])
  })

  test('AWS: a retried, unprocessed or resent hour stays in the license form (both forms in one hour bill twice)', async () => {
    const c = await org.buyAws({ license: true })
    const two = inPastHour(2, 15)
    for (const [quantity, timestamp] of [[5, two], [7, inPastHour(1, 15)]] as const) {
      await org.record(c.id, { dimension: 'requests', quantity, timestamp, idempotencyKey: key() })
    }
    // AWS leaves the older hour unprocessed once, then answers 500 once: both are sent again later.
    m.aws.leaveUnprocessedNext((record) => record.LicenseArn === c.licenseArn && record.Timestamp * 1000 < Date.parse(hourStart(two)) + 3600_000)
    await job()
    expect((await org.usage(c.id)).map((r) => r.status).sort()).toEqual(['PENDING', 'REPORTED'])
    m.aws.failNext('BatchMeterUsage', 500, 'InternalServiceErrorException', 3)
    try {
      shift.ms = 2 * 60_000
      await job()
      expect((await org.usage(c.id)).map((r) => r.status).sort()).toEqual(['PENDING', 'REPORTED'])
      shift.ms = 5 * 60_000
      await job()
    } finally {
      shift.ms = 0
    }
    expect((await org.usage(c.id)).map((r) => r.status)).toEqual(['REPORTED', 'REPORTED'])
    const hours = awsHours(m.aws, [c.accountId])
    expect(hours.map((hour) => [[...hour.forms], hour.records.map((r) => r.Quantity)]).sort((x, y) => Number(x[1]) - Number(y[1]))).toEqual([
      [['license'], [5]],
      [['license'], [7]],
    ])
  })

  test('AWS final reporting window: usage for the hour an entitlement was CANCELLED is taken and reported for an hour after, then 400', async () => {
    const ended = await org.buyAws({ concurrent: true })
    const other = await org.buyAws({ concurrent: true, accountId: ended.accountId })
    const { notificationSecret } = await json(await broker.request(`/api/v1/orgs/${org.orgId}/integrations/aws/notification-secret`, { method: 'POST', token: org.apiKey }))
    const { notificationUrl } = (await json(await broker.request(`/api/v1/orgs/${org.orgId}/integrations`, { token: org.apiKey }))).items.find((i: { partner: string }) => i.partner === 'aws')
    const event = {
      version: '0',
      id: `deprovisioned-${ended.id}`,
      'detail-type': 'License Deprovisioned - Manufacturer',
      source: 'aws.agreement-marketplace',
      account: '123456789012',
      time: new Date().toISOString(),
      region: 'us-east-1',
      resources: [],
      detail: { agreement: { id: `agmt-${ended.id}` }, product: { code: ended.productCode }, license: { arn: ended.licenseArn }, acceptor: { accountId: ended.accountId } },
    }
    const delivered = await broker.request(new URL(notificationUrl).pathname + new URL(notificationUrl).search, {
      method: 'POST',
      token: null,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${notificationSecret}` },
      body: JSON.stringify(event),
    })
    expect(delivered.status).toBe(200)
    // The receipt applies the event in the background under the notification's lease; a job run
    // meanwhile leaves it to that apply. Either way it ends CANCELLED: wait for that, running jobs.
    await waitFor('the deprovisioned license CANCELLED', async () => {
      await job()
      return (await json(await broker.request(`/api/v1/orgs/${org.orgId}/entitlements/${ended.id}`, { token: org.apiKey }))).status === 'CANCELLED'
    })
    const cancelledAt = Date.parse((await json(await broker.request(`/api/v1/orgs/${org.orgId}/entitlements/${ended.id}/events`, { token: org.apiKey }))).items.find((e: { type: string }) => e.type === 'CANCEL').createdAt)
    m.aws.endLicense(ended.licenseArn!, cancelledAt)
    const hour = Date.parse(hourStart(new Date(cancelledAt).toISOString()))

    const final = { dimension: 'requests', quantity: 3, timestamp: new Date(hour).toISOString(), idempotencyKey: key() }
    expect((await org.record(ended.id, final)).status).toBe(202)
    const earlier = await org.record(ended.id, { ...final, timestamp: new Date(hour - 60_000).toISOString(), idempotencyKey: key() })
    expect(earlier.status).toBe(400)
    expect((await json(earlier)).error.message).toMatch(/CANCELLED/)
    expect((await org.record(other.id, { ...final, idempotencyKey: key() })).status).toBe(202)
    try {
      // The hour has ended (and its grace), still within the hour after the cancellation: reported.
      shift.ms = hour + 3600_000 + 90_000 - Date.now()
      await job()
      expect((await org.usage(ended.id)).map((r) => [r.quantity, r.status, r.marketplaceStatus])).toEqual([[3, 'REPORTED', 'Success']])
      // An hour after the cancellation: 400 as for any CANCELLED entitlement; the replay of the kept record is still 200.
      shift.ms = cancelledAt + 3600_000 + 1000 - Date.now()
      const late = await org.record(ended.id, { ...final, timestamp: new Date(hour + 60_000).toISOString(), idempotencyKey: key() })
      expect(late.status).toBe(400)
      expect((await json(late)).error.message).toMatch(/CANCELLED/)
      expect((await org.record(ended.id, final)).status).toBe(200)
    } finally {
      shift.ms = 0
    }
    expect(m.aws.meteringRecords.filter((r) => r.LicenseArn === ended.licenseArn).map((r) => [r.Quantity, r.form])).toEqual([[3, 'license']])
  })

  test('AWS: a dimension AWS does not know fails only its own record', async () => {
    const a = await org.buyAws()
    const b = await org.buyAws()
    m.aws.addProduct(a.productCode, ['requests'])
    const at = inPastHour(1, 30)
    await org.record(a.id, { dimension: 'requests', quantity: 5, timestamp: at, idempotencyKey: key() })
    await org.record(b.id, { dimension: 'bogus', quantity: 5, timestamp: at, idempotencyKey: key() })
    await job()
    expect((await org.usage(a.id))[0]).toMatchObject({ status: 'REPORTED', marketplaceStatus: 'Success' })
    expect((await org.usage(b.id))[0]).toMatchObject({ status: 'REJECTED', marketplaceStatus: 'InvalidUsageDimensionException' })
  })

  test('Google: services.check then services.report with the usageReportingId, the service name from serviceNames and <product>/<dimension>; a late record is its own operation', async () => {
    const { id, usageReportingId } = await org.buyGcp()
    // Google takes usage up to an hour back: the broker's clock is moved to just after the hour the record falls in.
    const at = inPastHour(1, 50)
    shift.ms = Date.parse(hourStart(at)) + 3600_000 + 2 * 60_000 - Date.now()
    try {
      await org.record(id, { dimension: 'storage_gib', quantity: 150, timestamp: at, idempotencyKey: key() })
      await org.record(id, { dimension: 'storage_gib', quantity: 0.5, timestamp: at, idempotencyKey: key() })
      await job()
      const reports = m.serviceControl.reports.filter((r) => r.consumerId === usageReportingId)
      expect(reports).toHaveLength(1)
      expect(reports[0]).toMatchObject({
        serviceName: GCP_SERVICE,
        consumerId: usageReportingId,
        startTime: hourStart(at),
        endTime: new Date(Date.parse(hourStart(at)) + 3600_000).toISOString(),
        metricValueSets: [{ metricName: `${GCP_PRODUCT}/storage_gib`, metricValues: [{ doubleValue: 150.5 }] }],
      })
      expect(m.serviceControl.callsTo('check').some((c) => JSON.parse(c.body).operation.operationId === reports[0]!.operationId)).toBe(true)
      expect((await org.usage(id)).map((r) => [r.status, r.marketplaceStatus])).toEqual([['REPORTED', 'OK'], ['REPORTED', 'OK']])

      await org.record(id, { dimension: 'storage_gib', quantity: 2, timestamp: at, idempotencyKey: key() })
      await job()
      const all = m.serviceControl.reports.filter((r) => r.consumerId === usageReportingId)
      expect(all).toHaveLength(2)
      expect(all[1]!.operationId).not.toBe(all[0]!.operationId)
      expect(all[1]!.metricValueSets[0]!.metricValues[0]).toEqual({ int64Value: '2' })
      expect(m.serviceControl.usageFor(GCP_SERVICE, usageReportingId, `${GCP_PRODUCT}/storage_gib`)).toBe(152.5)
    } finally {
      shift.ms = 0
    }
  })

  test('Google: a check error is REJECTED with its code; a report 503 is retried with the same operationId and counted once', async () => {
    const suspended = await org.buyGcp()
    const flaky = await org.buyGcp()
    m.serviceControl.suspendConsumer(GCP_SERVICE, suspended.usageReportingId)
    const at = inPastHour(1, 45)
    shift.ms = Date.parse(hourStart(at)) + 3600_000 + 2 * 60_000 - Date.now()
    try {
      await org.record(suspended.id, { dimension: 'calls', quantity: 5, timestamp: at, idempotencyKey: key() })
      await org.record(flaky.id, { dimension: 'calls', quantity: 6, timestamp: at, idempotencyKey: key() })
      m.serviceControl.failNext('report', 503, 3)
      await job()
      expect((await org.usage(suspended.id))[0]).toMatchObject({ status: 'REJECTED', marketplaceStatus: 'SERVICE_NOT_ACTIVATED' })
      expect((await org.usage(flaky.id))[0]).toMatchObject({ status: 'PENDING' })
      shift.ms += 2 * 60_000
      await job()
      expect((await org.usage(flaky.id))[0]).toMatchObject({ status: 'REPORTED', marketplaceStatus: 'OK' })
      expect(m.serviceControl.usageFor(GCP_SERVICE, flaky.usageReportingId, `${GCP_PRODUCT}/calls`)).toBe(6)
    } finally {
      shift.ms = 0
    }
  })

  test('usage.reported webhooks, signed, one per reported hour and dimension', async () => {
    const { id } = await org.buyAzure()
    const at = inPastHour(6)
    const r1 = await json(await org.record(id, { dimension: 'hooks', quantity: 1, timestamp: at, idempotencyKey: key() }))
    const r2 = await json(await org.record(id, { dimension: 'hooks', quantity: 2, timestamp: at, idempotencyKey: key() }))
    await job()
    const sent = hooks.received.map((r) => ({ ...r, payload: JSON.parse(r.body) })).filter((r) => r.payload.type === 'usage.reported' && r.payload.data.entitlementId === id)
    expect(sent).toHaveLength(1)
    const wh = new Webhook(org.webhookSecret!)
    expect(() => wh.verify(sent[0]!.body, sent[0]!.headers)).not.toThrow()
    expect(sent[0]!.payload).toMatchObject({
      type: 'usage.reported',
      entityType: 'ENTITLEMENT',
      entityId: id,
      action: 'USAGE',
      entityStatus: 'ACTIVE',
      partner: 'azure',
      data: { entitlementId: id, dimension: 'hooks', hour: hourStart(at), quantity: 3, status: 'REPORTED', marketplaceStatus: 'Accepted' },
    })
    expect(sent[0]!.payload.data.usageRecordIds.sort()).toEqual([r1.usageRecord.id, r2.usageRecord.id].sort())
  })
})
