import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest'
import { type ServiceControlEmulator, createServiceControlEmulator } from '../../sandbox/emulators/gcp-servicecontrol'

// `@googleapis/servicecontrol` is not installed in this project, so these tests speak to the
// emulator over real HTTP with fetch only.

const SERVICE = 'example-messaging-service.gcpmarketplace.example.com'
const CONSUMER = 'project_number:123456789012'
const TOKEN = 'ya29.test-access-token'

let sc: ServiceControlEmulator
let url: string
let close: () => Promise<void>

beforeAll(async () => {
  sc = createServiceControlEmulator({ isAuthorized: (bearer) => bearer === TOKEN })
  ;({ url, close } = await sc.listen())
  sc.addConsumer(SERVICE, CONSUMER)
})
afterAll(async () => {
  await close()
})

const call = (service: string, verb: 'check' | 'report', body: unknown, token: string | null = TOKEN) =>
  fetch(`${url}/v1/services/${service}:${verb}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token === null ? {} : { authorization: `Bearer ${token}` }) },
    body: JSON.stringify(body),
  })

let counter = 0
/** Google's documented example operation (Configure usage reporting to Google), with a fresh id. */
const operation = (overrides: Record<string, unknown> = {}) => ({
  operationId: `op-${++counter}-${Date.now()}`,
  operationName: 'Hourly Usage Report',
  consumerId: CONSUMER,
  startTime: '2019-02-06T12:00:00Z',
  endTime: '2019-02-06T13:00:00Z',
  metricValueSets: [{ metricName: 'example-messaging-service/UsageInGiB', metricValues: [{ int64Value: '150' }] }],
  userLabels: { 'cloudmarketplace.googleapis.com/resource_name': 'order_history_cache' },
  ...overrides,
})

describe('services.check', () => {
  test('a known consumer passes: operationId echoed, no checkErrors', async () => {
    const op = operation()
    const response = await call(SERVICE, 'check', { operation: { operationId: op.operationId, operationName: op.operationName, consumerId: CONSUMER, startTime: op.startTime } })
    expect(response.status).toBe(200)
    const body = (await response.json()) as { operationId: string; checkErrors?: unknown[] }
    expect(body.operationId).toBe(op.operationId)
    expect(body.checkErrors).toBeUndefined()
    expect(sc.callsTo('check').at(-1)?.serviceName).toBe(SERVICE)
  })

  test('an unknown consumer gets a PROJECT_INVALID check error (HTTP 200)', async () => {
    const response = await call(SERVICE, 'check', { operation: { operationId: 'check-unknown', consumerId: 'project_number:999', startTime: '2019-02-06T12:00:00Z' } })
    expect(response.status).toBe(200)
    const body = (await response.json()) as { operationId: string; checkErrors: Array<{ code: string; detail: string; subject?: string }> }
    expect(body.operationId).toBe('check-unknown')
    expect(body.checkErrors).toHaveLength(1)
    expect(body.checkErrors[0]).toMatchObject({ code: 'PROJECT_INVALID', subject: 'project_number:999' })
    expect(body.checkErrors[0]!.detail).toBeTruthy()
  })

  test('a consumer that is not a project gets CONSUMER_INVALID', async () => {
    const response = await call(SERVICE, 'check', { operation: { operationId: 'check-folder', consumerId: 'folders/42', startTime: '2019-02-06T12:00:00Z' } })
    const body = (await response.json()) as { checkErrors: Array<{ code: string }> }
    expect(body.checkErrors[0]!.code).toBe('CONSUMER_INVALID')
  })

  test('a suspended consumer gets SERVICE_NOT_ACTIVATED, a deleted one PROJECT_DELETED', async () => {
    sc.addConsumer(SERVICE, 'project_number:555')
    sc.suspendConsumer(SERVICE, 'project_number:555')
    let body = (await (await call(SERVICE, 'check', { operation: { operationId: 'c1', consumerId: 'project_number:555', startTime: '2019-02-06T12:00:00Z' } })).json()) as {
      checkErrors: Array<{ code: string; status: { code: number } }>
    }
    expect(body.checkErrors[0]).toMatchObject({ code: 'SERVICE_NOT_ACTIVATED', status: { code: 7 } })
    sc.suspendConsumer(SERVICE, 'project_number:555', 'PROJECT_DELETED')
    body = (await (await call(SERVICE, 'check', { operation: { operationId: 'c2', consumerId: 'project_number:555', startTime: '2019-02-06T12:00:00Z' } })).json()) as typeof body
    expect(body.checkErrors[0]!.code).toBe('PROJECT_DELETED')
  })

  test('snake_case is read; an unknown field or a missing operation is 400 INVALID_ARGUMENT', async () => {
    const ok = await call(SERVICE, 'check', { operation: { operation_id: 'snake', consumer_id: CONSUMER, start_time: '2019-02-06T12:00:00Z' } })
    expect(((await ok.json()) as { operationId: string }).operationId).toBe('snake')
    const unknown = await call(SERVICE, 'check', { operation: { operationId: 'x', consumerId: CONSUMER, startTime: '2019-02-06T12:00:00Z', bogus: 1 } })
    expect(unknown.status).toBe(400)
    expect(await unknown.json()).toMatchObject({ error: { code: 400, status: 'INVALID_ARGUMENT' } })
    expect((await call(SERVICE, 'check', {})).status).toBe(400)
  })
})

describe('services.report', () => {
  beforeEach(() => {
    sc.addConsumer(SERVICE, CONSUMER)
  })

  test('a report for a known consumer is accepted: {} apart from the config ids, recorded with its values', async () => {
    const op = operation()
    const response = await call(SERVICE, 'report', { operations: [op] })
    expect(response.status).toBe(200)
    const body = (await response.json()) as Record<string, unknown>
    expect(body.reportErrors).toBeUndefined()
    const record = sc.reports.find((r) => r.operationId === op.operationId)
    expect(record).toMatchObject({
      serviceName: SERVICE,
      consumerId: CONSUMER,
      operationName: 'Hourly Usage Report',
      startTime: '2019-02-06T12:00:00Z',
      endTime: '2019-02-06T13:00:00Z',
      metricValueSets: [{ metricName: 'example-messaging-service/UsageInGiB', metricValues: [{ int64Value: '150' }] }],
      userLabels: { 'cloudmarketplace.googleapis.com/resource_name': 'order_history_cache' },
    })
  })

  test('the same operationId twice (a retry) is accepted both times and counted once', async () => {
    const consumer = 'project_number:222222222222'
    sc.addConsumer(SERVICE, consumer)
    const op = operation({ consumerId: consumer, metricValueSets: [{ metricName: 'example-messaging-service/UsageInGiB', metricValues: [{ int64Value: '7' }] }] })
    for (let i = 0; i < 2; i++) {
      const response = await call(SERVICE, 'report', { operations: [op] })
      expect(response.status).toBe(200)
      expect(((await response.json()) as Record<string, unknown>).reportErrors).toBeUndefined()
    }
    expect(sc.reports.filter((r) => r.operationId === op.operationId)).toHaveLength(1)
    expect(sc.duplicates.filter((d) => d.operationId === op.operationId)).toHaveLength(1)
    expect(sc.usageFor(SERVICE, consumer, 'example-messaging-service/UsageInGiB')).toBe(7)
  })

  test('a bad consumer gets a reportError for its operation only (partial success)', async () => {
    const good = operation()
    const bad = operation({ consumerId: 'project_number:404404' })
    sc.addConsumer(SERVICE, 'project_number:303')
    sc.suspendConsumer(SERVICE, 'project_number:303')
    const suspended = operation({ consumerId: 'project_number:303' })
    const response = await call(SERVICE, 'report', { operations: [good, bad, suspended] })
    expect(response.status).toBe(200)
    const body = (await response.json()) as { reportErrors: Array<{ operationId: string; status: { code: number; message: string } }> }
    expect(body.reportErrors.map((e) => e.operationId)).toEqual([bad.operationId, suspended.operationId])
    expect(body.reportErrors[0]!.status.code).toBe(3)
    expect(body.reportErrors[0]!.status.message).toMatch(/PROJECT_INVALID/)
    expect(body.reportErrors[1]!.status.code).toBe(7)
    expect(sc.reports.some((r) => r.operationId === good.operationId)).toBe(true)
    expect(sc.reports.some((r) => r.operationId === bad.operationId || r.operationId === suspended.operationId)).toBe(false)
  })

  test('a malformed operation fails the whole call with 400 and records nothing', async () => {
    const before = sc.reports.length
    const noEnd = operation({ endTime: undefined })
    expect((await call(SERVICE, 'report', { operations: [operation(), noEnd] })).status).toBe(400)
    const twoValues = operation({ metricValueSets: [{ metricName: 'm', metricValues: [{ int64Value: '1', doubleValue: 1 }] }] })
    expect((await call(SERVICE, 'report', { operations: [twoValues] })).status).toBe(400)
    const fraction = operation({ metricValueSets: [{ metricName: 'm', metricValues: [{ int64Value: '1.5' }] }] })
    expect((await call(SERVICE, 'report', { operations: [fraction] })).status).toBe(400)
    expect(sc.reports.length).toBe(before)
  })

  test('an unknown service is 403 PERMISSION_DENIED', async () => {
    const response = await call('unknown.gcpmarketplace.example.com', 'report', { operations: [operation()] })
    expect(response.status).toBe(403)
    expect(await response.json()).toMatchObject({ error: { code: 403, status: 'PERMISSION_DENIED' } })
    expect((await call('unknown.gcpmarketplace.example.com', 'check', { operation: operation() })).status).toBe(403)
  })

  test('no bearer or an unknown one is 401 UNAUTHENTICATED', async () => {
    const before = sc.reports.length
    const missing = await call(SERVICE, 'report', { operations: [operation()] }, null)
    expect(missing.status).toBe(401)
    expect(await missing.json()).toMatchObject({ error: { code: 401, status: 'UNAUTHENTICATED' } })
    expect((await call(SERVICE, 'check', { operation: operation() }, 'ya29.forged')).status).toBe(401)
    expect(sc.reports.length).toBe(before)
  })

  test('failNext answers injected errors, then the route works again', async () => {
    sc.failNext('report', 503, 2)
    const op = operation()
    expect((await call(SERVICE, 'report', { operations: [op] })).status).toBe(503)
    const second = await call(SERVICE, 'report', { operations: [op] })
    expect(second.status).toBe(503)
    expect(await second.json()).toMatchObject({ error: { status: 'UNAVAILABLE' } })
    expect((await call(SERVICE, 'report', { operations: [op] })).status).toBe(200)
    expect(sc.reports.filter((r) => r.operationId === op.operationId)).toHaveLength(1)
    expect(sc.callsTo('report').filter((c) => c.body.includes(op.operationId))).toHaveLength(3)
  })
})
