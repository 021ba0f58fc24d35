import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import { type AzureEmulator, MARKETPLACE_RESOURCE, createAzureEmulator } from '../../sandbox/emulators/azure'

/**
 * The Azure emulator's metered billing APIs through real HTTP, against Microsoft's "Marketplace
 * metered billing APIs" (learn.microsoft.com/partner-center/marketplace/marketplace-metering-service-apis).
 */

const app = { tenantId: '72f988bf-86f1-41af-91ab-2d7cd011db47', clientId: 'isv-app-1', clientSecret: 'isv~secret' }
const other = { tenantId: 'other-tenant', clientId: 'other-app', clientSecret: 'other~secret' }
let emulator: AzureEmulator
let url: string
let close: () => Promise<void>
let bearer: string

beforeAll(async () => {
  emulator = createAzureEmulator()
  ;({ url, close } = await emulator.listen())
  emulator.registerApp(app)
  emulator.registerApp(other)
  bearer = await accessToken(app.clientId, app.clientSecret, app.tenantId)
})
afterAll(async () => {
  await close()
})
beforeEach(() => {
  emulator.clearUsageEvents()
})

async function accessToken(clientId: string, clientSecret: string, tenantId: string) {
  const response = await fetch(`${url}/${tenantId}/oauth2/v2.0/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret, scope: `${MARKETPLACE_RESOURCE}/.default` }),
  })
  expect(response.status).toBe(200)
  return ((await response.json()) as { access_token: string }).access_token
}

function post(path: '/api/usageEvent' | '/api/batchUsageEvent', body: unknown, init: { token?: string | null; apiVersion?: string | null } = {}) {
  const { token = bearer, apiVersion = '2018-08-31' } = init
  return fetch(`${url}${path}${apiVersion === null ? '' : `?api-version=${apiVersion}`}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token === null ? {} : { authorization: `Bearer ${token}` }) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
}
const single = (body: unknown, init?: Parameters<typeof post>[2]) => post('/api/usageEvent', body, init)
const batch = (request: unknown[], init?: Parameters<typeof post>[2]) => post('/api/batchUsageEvent', { request }, init)

const activeSubscription = (appId = app.clientId) =>
  emulator.addSubscription({ appId, planId: 'silver', saasSubscriptionStatus: 'Subscribed' })
/** The start of the UTC hour `hoursAgo` hours back, as Microsoft's examples spell it (no zone). */
const hourStart = (hoursAgo: number) => {
  const at = new Date(Math.floor(Date.now() / 3600_000) * 3600_000 - hoursAgo * 3600_000)
  return at.toISOString().slice(0, 19)
}
const event = (resourceId: string, overrides: Record<string, unknown> = {}) => ({
  resourceId,
  quantity: 5.5,
  dimension: 'dim1',
  effectiveStartTime: hourStart(1),
  planId: 'silver',
  ...overrides,
})
type Json = Record<string, any>

describe('POST /api/usageEvent', () => {
  test('accepted: 200 with the documented body, recorded', async () => {
    const sub = activeSubscription()
    const before = emulator.callsTo('usageEvent').length
    const sent = event(sub.id, { effectiveStartTime: `${hourStart(2).slice(0, 14)}30:14` })
    const response = await single(sent)
    expect(response.status).toBe(200)
    const body = (await response.json()) as Json
    expect(body).toEqual({
      usageEventId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      status: 'Accepted',
      messageTime: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}Z$/),
      ...sent,
    })
    expect(emulator.usageEvents).toEqual([body])
    expect(emulator.usageEventsFor(sub.id, 'dim1')).toEqual([body])
    expect(emulator.callsTo('usageEvent')).toHaveLength(before + 1)
    expect(JSON.parse(emulator.callsTo('usageEvent').at(-1)!.body)).toEqual(sent)
  })

  test('duplicate: same resource, dimension and hour -> 409 with additionalInfo.acceptedMessage', async () => {
    const sub = activeSubscription()
    const first = (await (await single(event(sub.id, { effectiveStartTime: `${hourStart(3).slice(0, 14)}05:00` }))).json()) as Json
    const again = await single(event(sub.id, { effectiveStartTime: `${hourStart(3).slice(0, 14)}55:59`, quantity: 1 }))
    expect(again.status).toBe(409)
    expect(await again.json()).toEqual({
      additionalInfo: { acceptedMessage: { ...first, status: 'Duplicate' } },
      message: 'This usage event already exist.',
      code: 'Conflict',
    })
    // Another dimension, or the next hour, is a new event.
    expect((await single(event(sub.id, { effectiveStartTime: hourStart(3), dimension: 'dim2' }))).status).toBe(200)
    expect((await single(event(sub.id, { effectiveStartTime: hourStart(2) }))).status).toBe(200)
    expect(emulator.usageEventsFor(sub.id)).toHaveLength(3)
    // Microsoft forgetting lets the hour through again.
    emulator.clearUsageEvents()
    expect((await single(event(sub.id, { effectiveStartTime: hourStart(3) }))).status).toBe(200)
  })

  test('expired (> 24 h back), in the future, quantity <= 0, missing fields: 400 BadArgument', async () => {
    const sub = activeSubscription()
    const refused = async (body: unknown, reason: string, target: string) => {
      const response = await single(body)
      expect(response.status).toBe(400)
      const error = (await response.json()) as Json
      expect(error).toMatchObject({ message: 'One or more errors have occurred.', target: 'usageEventRequest', code: 'BadArgument' })
      expect(error.details).toEqual([{ message: expect.any(String), target, code: reason }])
    }
    await refused(event(sub.id, { effectiveStartTime: new Date(Date.now() - 24 * 3600_000 - 60_000).toISOString() }), 'Expired', 'EffectiveStartTime')
    await refused(event(sub.id, { effectiveStartTime: new Date(Date.now() + 3600_000).toISOString() }), 'BadArgument', 'EffectiveStartTime')
    await refused(event(sub.id, { effectiveStartTime: 'yesterday' }), 'BadArgument', 'EffectiveStartTime')
    await refused(event(sub.id, { quantity: 0 }), 'InvalidQuantity', 'Quantity')
    await refused(event(sub.id, { quantity: -1 }), 'InvalidQuantity', 'Quantity')
    await refused(event(sub.id, { quantity: '5' }), 'BadArgument', 'Quantity')
    await refused(event(sub.id, { resourceId: undefined }), 'BadArgument', 'ResourceId')
    await refused(event(sub.id, { dimension: '' }), 'BadArgument', 'Dimension')
    await refused(event(sub.id, { planId: 'gold' }), 'BadArgument', 'PlanId')
    await refused(event('00000000-0000-0000-0000-000000000000'), 'ResourceNotFound', 'ResourceId')
    const notJson = await single('{"resourceId":')
    expect(notJson.status).toBe(400)
    expect(((await notJson.json()) as Json).code).toBe('BadArgument')
    // Just inside the window is fine.
    expect((await single(event(sub.id, { effectiveStartTime: new Date(Date.now() - 24 * 3600_000 + 60_000).toISOString() }))).status).toBe(200)
    expect(emulator.usageEvents).toHaveLength(1)
  })

  test('a subscription that is not Subscribed: 400 ResourceNotActive', async () => {
    for (const status of ['PendingFulfillmentStart', 'Suspended', 'Unsubscribed'] as const) {
      const sub = emulator.addSubscription({ appId: app.clientId, planId: 'silver', saasSubscriptionStatus: status })
      const response = await single(event(sub.id))
      expect(response.status).toBe(400)
      const error = (await response.json()) as Json
      expect(error.code).toBe('BadArgument')
      expect(error.details[0]).toMatchObject({ code: 'ResourceNotActive', target: 'ResourceId' })
    }
    expect(emulator.usageEvents).toHaveLength(0)
  })

  test('a dimension the plan lacks: 400 InvalidDimension (when the plan has dimensions set)', async () => {
    const sub = activeSubscription()
    emulator.setDimensions(sub.offerId, 'silver', ['dim1'])
    try {
      const response = await single(event(sub.id, { dimension: 'emails' }))
      expect(response.status).toBe(400)
      expect(((await response.json()) as Json).details[0].code).toBe('InvalidDimension')
      expect((await single(event(sub.id))).status).toBe(200)
    } finally {
      emulator.setDimensions(sub.offerId, 'silver', null)
    }
  })

  test('auth: no token, an unknown token or a wrong api-version are refused; another app gets 403', async () => {
    const sub = activeSubscription()
    expect((await single(event(sub.id), { token: null })).status).toBe(403)
    expect((await single(event(sub.id), { token: 'not-a-token-entra-issued' })).status).toBe(403)
    expect((await single(event(sub.id), { apiVersion: null })).status).toBe(400)
    expect((await single(event(sub.id), { apiVersion: '2022-01-01' })).status).toBe(400)
    const otherBearer = await accessToken(other.clientId, other.clientSecret, other.tenantId)
    const foreign = await single(event(sub.id), { token: otherBearer })
    expect(foreign.status).toBe(403)
    expect(((await foreign.json()) as Json).error.code).toBe('Forbidden')
    expect(emulator.usageEvents).toHaveLength(0)
  })

  test('failNext answers the injected status once', async () => {
    const sub = activeSubscription()
    emulator.failNext('usageEvent', 503)
    expect((await single(event(sub.id))).status).toBe(503)
    expect((await single(event(sub.id))).status).toBe(200)
  })
})

describe('POST /api/batchUsageEvent', () => {
  test('per-item statuses: Accepted, Duplicate (earlier and within the batch), Expired, ResourceNotFound, ResourceNotActive, ResourceNotAuthorized, InvalidQuantity, BadArgument', async () => {
    const sub = activeSubscription()
    const suspended = emulator.addSubscription({ appId: app.clientId, planId: 'silver', saasSubscriptionStatus: 'Suspended' })
    const foreign = activeSubscription(other.clientId)
    const earlier = (await (await single(event(sub.id, { effectiveStartTime: hourStart(5) }))).json()) as Json
    const request = [
      event(sub.id, { effectiveStartTime: hourStart(1) }),
      event(sub.id, { effectiveStartTime: hourStart(1), dimension: 'dim2', quantity: 39 }),
      event(sub.id, { effectiveStartTime: `${hourStart(1).slice(0, 14)}45:00` }),
      event(sub.id, { effectiveStartTime: hourStart(5) }),
      event(sub.id, { effectiveStartTime: hourStart(25) }),
      event('00000000-0000-0000-0000-000000000000'),
      event(suspended.id),
      event(foreign.id),
      event(sub.id, { effectiveStartTime: hourStart(2), quantity: 0 }),
      event(sub.id, { effectiveStartTime: hourStart(2), planId: undefined }),
    ]
    const response = await batch(request)
    expect(response.status).toBe(200)
    const body = (await response.json()) as { count: number; result: Json[] }
    expect(body.count).toBe(request.length)
    expect(body.result.map((r) => r.status)).toEqual([
      'Accepted',
      'Accepted',
      'Duplicate',
      'Duplicate',
      'Expired',
      'ResourceNotFound',
      'ResourceNotActive',
      'ResourceNotAuthorized',
      'InvalidQuantity',
      'BadArgument',
    ])
    const [first, second, sameHour, old] = body.result as [Json, Json, Json, Json]
    expect(first).toEqual({ usageEventId: expect.any(String), status: 'Accepted', messageTime: expect.any(String), ...request[0] })
    expect(second).toMatchObject({ status: 'Accepted', dimension: 'dim2', quantity: 39 })
    // The documented Duplicate item: no usageEventId, messageTime 0001-01-01, error = the 409 body.
    expect(sameHour).toEqual({
      status: 'Duplicate',
      messageTime: '0001-01-01T00:00:00',
      error: { additionalInfo: { acceptedMessage: { ...first, status: 'Duplicate' } }, message: 'This usage event already exist.', code: 'Conflict' },
      ...request[2],
    })
    expect(old.error.additionalInfo.acceptedMessage).toEqual({ ...earlier, status: 'Duplicate' })
    for (const item of body.result.slice(4)) {
      expect(item.usageEventId).toBeUndefined()
      expect(item.messageTime).toBe('0001-01-01T00:00:00')
      expect(item.error).toBeDefined()
    }
    expect(body.result[4]!.error.details[0].code).toBe('Expired')
    expect(body.result[6]!.error.details[0].code).toBe('ResourceNotActive')
    expect(emulator.usageEvents.map((e) => e.usageEventId)).toEqual([earlier.usageEventId, first.usageEventId, second.usageEventId])
    expect(emulator.callsTo('batchUsageEvent').length).toBeGreaterThan(0)
  })

  test('25 items are served; 26 are refused with 400 and nothing recorded', async () => {
    const subs = Array.from({ length: 26 }, () => activeSubscription())
    const tooMany = await batch(subs.map((s) => event(s.id)))
    expect(tooMany.status).toBe(400)
    expect(((await tooMany.json()) as Json).code).toBe('BadArgument')
    expect(emulator.usageEvents).toHaveLength(0)
    const full = await batch(subs.slice(0, 25).map((s) => event(s.id)))
    expect(full.status).toBe(200)
    const body = (await full.json()) as { count: number; result: Json[] }
    expect(body.count).toBe(25)
    expect(body.result.every((r) => r.status === 'Accepted')).toBe(true)
    expect(emulator.usageEvents).toHaveLength(25)
  })

  test('a body without a request array is 400', async () => {
    expect((await post('/api/batchUsageEvent', {})).status).toBe(400)
    expect((await post('/api/batchUsageEvent', { request: [] })).status).toBe(400)
    expect((await post('/api/batchUsageEvent', 'nope')).status).toBe(400)
  })

  test('auth: no token or an unknown one is 403; wrong api-version 400', async () => {
    const sub = activeSubscription()
    expect((await batch([event(sub.id)], { token: null })).status).toBe(403)
    expect((await batch([event(sub.id)], { token: 'forged' })).status).toBe(403)
    expect((await batch([event(sub.id)], { apiVersion: null })).status).toBe(400)
    expect(emulator.usageEvents).toHaveLength(0)
  })

  test('seedUsageEvent makes the hour a duplicate; the metering clock moves the 24 h window', async () => {
    const sub = activeSubscription()
    const seeded = emulator.seedUsageEvent(event(sub.id, { effectiveStartTime: hourStart(1) }))
    const [dup] = ((await (await batch([event(sub.id, { effectiveStartTime: hourStart(1) })])).json()) as { result: Json[] }).result
    expect(dup!.status).toBe('Duplicate')
    expect(dup!.error.additionalInfo.acceptedMessage.usageEventId).toBe(seeded.usageEventId)

    const old = hourStart(30)
    emulator.setMeteringClock(() => Date.parse(`${old}Z`) + 3600_000)
    try {
      expect((await single(event(sub.id, { effectiveStartTime: old }))).status).toBe(200)
    } finally {
      emulator.setMeteringClock(null)
    }
    const [expired] = ((await (await batch([event(sub.id, { effectiveStartTime: hourStart(30), dimension: 'dim9' })])).json()) as { result: Json[] }).result
    expect(expired!.status).toBe('Expired')
  })

  test('the HTTP controls list and clear usage events', async () => {
    const sub = activeSubscription()
    await single(event(sub.id))
    const listed = (await (await fetch(`${url}/_emulator/usageEvents`)).json()) as { usageEvents: Json[] }
    expect(listed.usageEvents).toHaveLength(1)
    expect(((await (await fetch(`${url}/_emulator/stats`)).json()) as Json).usageEvents).toBe(1)
    await fetch(`${url}/_emulator/usageEvents`, { method: 'DELETE' })
    expect(emulator.usageEvents).toHaveLength(0)
  })
})
