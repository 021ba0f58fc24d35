import { AsyncLocalStorage } from 'node:async_hooks'
import { randomBytes } from 'node:crypto'
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest'
import { type NativeSpan, type NativeTracing, useNativeTracing } from '../providers/shared/telemetry'
import { type AzureSetup, type TestBroker, createTestBroker, startAzure, startHookReceiver, waitFor } from './helpers'

/*
 * Contract §16 on Workers: the broker's named spans go to the runtime's own tracing (workerd's
 * `tracing` of `cloudflare:workers`, handed over by src/worker.ts). workerd records spans only
 * for a deployed Worker, so its API is played here by a recorder of the documented shape
 * (enterSpan nests by async context and ends the span when the callback settles; getActiveSpan;
 * spanContext; isTraced), with the real app, the Azure emulator and a webhook receiver. That
 * src/worker.ts hands the real one over under workerd is run by the Workers suites.
 */

interface Recorded {
  name: string
  traceId: string
  spanId: string
  parent: string | null
  attributes: Record<string, string | number | boolean>
  status: { code: string; message?: string } | null
  ended: boolean
}

function platformTracing(traced: () => boolean) {
  const active = new AsyncLocalStorage<Recorded>()
  const spans: Recorded[] = []
  const handle = (span: Recorded, isTraced: boolean): NativeSpan => ({
    isTraced,
    spanContext: () => ({ traceId: span.traceId, spanId: span.spanId, traceFlags: isTraced ? 1 : 0 }),
    setAttribute: (key, value) => void (span.attributes[key] = value),
    updateName: (name) => void (span.name = name),
    setStatus: (status) => void (span.status = status),
  })
  const tracing: NativeTracing = {
    enterSpan(name, callback) {
      const parent = active.getStore()
      const span: Recorded = { name, traceId: parent?.traceId ?? randomBytes(16).toString('hex'), spanId: randomBytes(8).toString('hex'), parent: parent?.spanId ?? null, attributes: {}, status: null, ended: false }
      spans.push(span)
      const isTraced = traced()
      const result = active.run(span, () => callback(handle(span, isTraced)))
      if (result instanceof Promise) return result.finally(() => void (span.ended = true)) as typeof result
      span.ended = true
      return result
    },
    getActiveSpan() {
      const span = active.getStore()
      return span ? handle(span, traced()) : undefined
    },
  }
  return { tracing, spans }
}

let azure: AzureSetup
let hooks: Awaited<ReturnType<typeof startHookReceiver>>
let broker: TestBroker
let traced = true
const platform = platformTracing(() => traced)

beforeAll(async () => {
  azure = await startAzure()
  hooks = await startHookReceiver()
  useNativeTracing(platform.tracing)
  broker = await createTestBroker({ AZURE_MARKETPLACE_API_URL: azure.url, AZURE_LOGIN_URL: azure.url })
})
afterEach(() => {
  traced = true
})
afterAll(async () => {
  useNativeTracing(null)
  await broker.close()
  await Promise.all([azure.close(), hooks.close()])
})

async function landing() {
  const { org, apiKey } = await broker.createOrg({ webhookUrl: hooks.url })
  const put = await broker.request(`/api/v1/orgs/${org.id}/integrations/azure`, { method: 'PUT', token: apiKey, json: { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret } })
  expect(put.status).toBe(200)
  const token = azure.emulator.issuePurchaseToken(azure.emulator.addSubscription({ appId: azure.clientId }).id)
  platform.spans.length = 0
  const answer = await broker.request(`/public/signup/azure/orgId/${org.id}?token=${encodeURIComponent(token)}`, { token: null })
  expect(answer.status).toBe(303)
  return { orgId: org.id, token, requestId: answer.headers.get('x-request-id')! }
}

describe("the runtime's own tracing (Workers)", () => {
  test('a landing: the route span, the marketplace calls and the transactions under it, by the names and attributes the Node spans have', async () => {
    azure.emulator.failNext('resolve', 503)
    const landed = await landing()
    const route = platform.spans.find((span) => span.name === 'GET /public/signup/:partner/orgId/:orgId')
    expect(route, platform.spans.map((span) => span.name).join(', ')).toBeDefined()
    expect(route!.attributes).toMatchObject({ 'http.request.method': 'GET', 'http.route': '/public/signup/:partner/orgId/:orgId', 'http.response.status_code': 303 })
    const resolve = platform.spans.find((span) => span.name === 'azure.resolve')!
    expect(resolve.attributes).toMatchObject({ 'marketbridge.partner': 'azure', 'marketbridge.call': 'resolve', 'http.response.status_code': 200, 'marketbridge.attempts': 2, 'http.request.resend_count': 1 })
    expect(resolve.status).toBeNull()
    const activate = platform.spans.find((span) => span.name === 'azure.activate')!
    expect(activate.attributes['marketbridge.attempts']).toBe(1)
    const byId = new Map(platform.spans.map((span) => [span.spanId, span]))
    const rootOf = (span: Recorded) => {
      let at = span
      while (at.parent && byId.has(at.parent)) at = byId.get(at.parent)!
      return at
    }
    for (const span of [resolve, activate]) expect(rootOf(span)).toBe(route)
    expect(platform.spans.some((span) => span.name === 'db.transaction' && span.attributes['db.system.name'] === 'sqlite' && rootOf(span) === route)).toBe(true)
    expect(platform.spans.every((span) => span.ended)).toBe(true)
    // The token is in no span, and the request's log lines carry the route span's ids or a child's.
    expect(JSON.stringify(platform.spans)).not.toContain(landed.token)
    const lines = broker.logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.requestId === landed.requestId)
    expect(lines.length).toBeGreaterThanOrEqual(2)
    for (const line of lines.filter((l) => l.msg !== 'request')) {
      expect(line.traceId).toBe(route!.traceId)
      expect(byId.has(String(line.spanId))).toBe(true)
    }
  })

  test("webhooks carry the platform's traceparent: the webhook.deliver span's own ids", async () => {
    const landed = await landing()
    const received = await waitFor('the webhooks', () => {
      const mine = hooks.received.filter((hook) => hook.body.includes(landed.orgId))
      return mine.length >= 2 ? mine : null
    })
    for (const hook of received) {
      const [, traceId, spanId, flags] = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(hook.headers.traceparent ?? '') ?? []
      expect(flags, `traceparent ${hook.headers.traceparent}`).toBe('01')
      const deliver = platform.spans.find((span) => span.spanId === spanId)
      expect(deliver?.name).toBe('webhook.deliver')
      expect(deliver?.traceId).toBe(traceId)
      expect(deliver?.attributes['http.response.status_code']).toBe(200)
    }
  })

  test('a failing marketplace call marks its span failed; an unsampled request sends no traceparent and logs no ids', async () => {
    const { org, apiKey } = await broker.createOrg({ webhookUrl: hooks.url })
    await broker.request(`/api/v1/orgs/${org.id}/integrations/azure`, { method: 'PUT', token: apiKey, json: { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret } })
    platform.spans.length = 0
    expect((await broker.request(`/public/signup/azure/orgId/${org.id}?token=not-a-purchase-token`, { token: null })).status).toBe(400)
    const resolve = platform.spans.find((span) => span.name === 'azure.resolve')!
    expect(resolve.attributes['http.response.status_code']).toBe(400)
    expect(resolve.status?.code).toBe('error')

    traced = false
    const logged = broker.logs.length
    const token = azure.emulator.issuePurchaseToken(azure.emulator.addSubscription({ appId: azure.clientId }).id)
    const answer = await broker.request(`/public/signup/azure/orgId/${org.id}?token=${encodeURIComponent(token)}`, { token: null })
    expect(answer.status).toBe(303)
    const received = await waitFor('the webhooks', () => {
      const mine = hooks.received.filter((hook) => hook.body.includes(org.id) && hook.body.includes('"ACTIVE"'))
      return mine.length >= 1 ? mine : null
    })
    for (const hook of received) expect(hook.headers.traceparent).toBeUndefined()
    for (const line of broker.logs.slice(logged)) expect((JSON.parse(line) as Record<string, unknown>).traceId).toBeUndefined()
  })
})
