import { mkdtempSync, rmSync } from 'node:fs'
import { type IncomingMessage, type Server, createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type AzureSetup, type ReceivedHook, createAzureOrg, startAzure, startHookReceiver, waitFor } from './helpers'
import { type Running, startServer } from './node-process'

/*
 * Contract §16's traces, end to end: a real `npm start` process exporting over OTLP/HTTP to a
 * receiver here (decoded by the OTLP JSON mapping), with the Azure emulator as the marketplace
 * and an ISV webhook receiver. And the same process without OTEL_EXPORTER_OTLP_ENDPOINT: nothing
 * sent, no traceparent on webhooks, no ids in the logs.
 */

interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  attributes: Record<string, string | number | boolean>
  status?: { code?: number }
  resource: Record<string, string | number | boolean>
}

type OtlpValue = { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number }
const valueOf = (value: OtlpValue) => value.stringValue ?? (value.intValue !== undefined ? Number(value.intValue) : (value.boolValue ?? value.doubleValue ?? ''))
const attributesOf = (list: Array<{ key: string; value: OtlpValue }> = []) => Object.fromEntries(list.map(({ key, value }) => [key, valueOf(value)]))

/** An OTLP/HTTP receiver (JSON encoding, gzip or not) keeping every span it is sent. */
async function startOtlpReceiver() {
  const spans: OtlpSpan[] = []
  const requests: Array<{ path: string; type: string }> = []
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk) => chunks.push(chunk))
    req.on('end', () => {
      requests.push({ path: req.url ?? '', type: String(req.headers['content-type']) })
      let body = Buffer.concat(chunks)
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body)
      if (req.url === '/v1/traces' && String(req.headers['content-type']).startsWith('application/json')) {
        const payload = JSON.parse(body.toString('utf8')) as { resourceSpans: Array<{ resource: { attributes: never }; scopeSpans: Array<{ spans: Array<Record<string, never>> }> }> }
        for (const resourceSpans of payload.resourceSpans) {
          const resource = attributesOf(resourceSpans.resource.attributes)
          for (const scope of resourceSpans.scopeSpans) {
            for (const span of scope.spans) spans.push({ ...(span as unknown as OtlpSpan), attributes: attributesOf(span.attributes), resource })
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  const url = await new Promise<string>((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as { port: number }).port}`)))
  return { url, spans, requests, close: () => new Promise<void>((done) => server.close(() => done())) }
}

const ADMIN = 'tracing-test-admin-token-0123456789'
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736'
const PARENT_ID = '00f067aa0ba902b7'
const traceparent = `00-${TRACE_ID}-${PARENT_ID}-01`

let azure: AzureSetup
let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>
let hooks: Awaited<ReturnType<typeof startHookReceiver>>
/** The ISV's receiver answers 503 while this is false. */
let accepting = true
const dirs: string[] = []

beforeAll(async () => {
  azure = await startAzure()
  otlp = await startOtlpReceiver()
  hooks = await startHookReceiver(() => accepting)
})
afterAll(async () => {
  await Promise.all([azure.close(), otlp.close(), hooks.close()])
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

async function broker(env: Record<string, string>): Promise<Running> {
  const cwd = mkdtempSync(join(tmpdir(), 'mb-tracing-'))
  dirs.push(cwd)
  return startServer(cwd, { ADMIN_TOKEN: ADMIN, AZURE_MARKETPLACE_API_URL: azure.url, AZURE_LOGIN_URL: azure.url, JOB_INTERVAL_MS: '300', ...env })
}

/** An org with a webhook receiver and an Azure integration; a landing of a fresh purchase with `headers`. */
async function landOnce(server: Running, headers: Record<string, string>) {
  const orgId = await createAzureOrg(server.url, ADMIN, azure, hooks.url)
  const sub = azure.emulator.addSubscription({ appId: azure.clientId })
  const token = azure.emulator.issuePurchaseToken(sub.id)
  const landing = await fetch(`${server.url}/public/signup/azure/orgId/${orgId}?token=${encodeURIComponent(token)}`, { redirect: 'manual', headers })
  expect(landing.status).toBe(303)
  return { orgId, token, requestId: landing.headers.get('x-request-id')!, hooksOf: () => hooks.received.filter((hook: ReceivedHook) => hook.body.includes(orgId)) }
}

const logLines = (server: Running) =>
  server
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)

describe('tracing on (OTEL_EXPORTER_OTLP_ENDPOINT)', () => {
  let server: Running
  beforeAll(async () => {
    server = await broker({ OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: '100', OTEL_SERVICE_NAME: 'mb-under-test' })
  })
  afterAll(async () => {
    await server.stop()
  })

  test('a landing with a traceparent: its request span, marketplace and database spans, the webhook it causes, and the log lines', async () => {
    // The first resolve answers 503: the call's span says 2 attempts.
    azure.emulator.failNext('resolve', 503)
    const landed = await landOnce(server, { traceparent })
    const request = await waitFor('the landing span', () => otlp.spans.find((span) => span.traceId === TRACE_ID && span.kind === 2))
    expect(request.parentSpanId).toBe(PARENT_ID)
    expect(request.name).toBe('GET /public/signup/:partner/orgId/:orgId')
    expect(request.attributes).toMatchObject({ 'http.request.method': 'GET', 'http.route': '/public/signup/:partner/orgId/:orgId', 'http.response.status_code': 303 })
    expect(request.resource['service.name']).toBe('mb-under-test')

    const inTrace = () => otlp.spans.filter((span) => span.traceId === TRACE_ID)
    const resolve = await waitFor('azure.resolve', () => inTrace().find((span) => span.name === 'azure.resolve'))
    expect(resolve.kind).toBe(3)
    expect(resolve.attributes).toMatchObject({ 'marketbridge.partner': 'azure', 'marketbridge.call': 'resolve', 'http.response.status_code': 200, 'marketbridge.attempts': 2, 'http.request.resend_count': 1 })
    const activate = await waitFor('azure.activate', () => inTrace().find((span) => span.name === 'azure.activate'))
    expect(activate.attributes['marketbridge.attempts']).toBe(1)
    // Each span's parent is in the trace, up to the request span, whose parent is the caller's.
    const ids = new Map(inTrace().map((span) => [span.spanId, span]))
    for (const span of [resolve, activate]) {
      let at = span
      while (at.parentSpanId && ids.has(at.parentSpanId)) at = ids.get(at.parentSpanId)!
      expect(at.spanId, span.name).toBe(request.spanId)
    }
    expect(inTrace().some((span) => span.name === 'db.transaction' && span.attributes['db.system.name'] === 'sqlite')).toBe(true)

    // The webhook deliveries the landing caused continue its trace, and say so to the ISV.
    const delivered = await waitFor('the webhooks', () => (landed.hooksOf().length >= 2 ? landed.hooksOf() : null))
    for (const hook of delivered) {
      const [, traceId, spanId] = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/.exec(hook.headers.traceparent ?? '') ?? []
      expect(traceId, 'the webhook traceparent').toBe(TRACE_ID)
      const deliver = await waitFor('webhook.deliver', () => inTrace().find((span) => span.spanId === spanId))
      expect(deliver.name).toBe('webhook.deliver')
      expect(deliver.kind).toBe(3)
      expect(deliver.attributes['http.response.status_code']).toBe(200)
    }

    // No span carries the query: the token is nowhere in what was exported.
    expect(JSON.stringify(otlp.spans)).not.toContain(landed.token)
    // Every line of the request carries the trace's ids.
    const lines = logLines(server).filter((line) => line.requestId === landed.requestId)
    expect(lines.length).toBeGreaterThanOrEqual(3)
    for (const line of lines) {
      expect(line.traceId, String(line.msg)).toBe(TRACE_ID)
      expect(line.spanId).toMatch(/^[0-9a-f]{16}$/)
    }
    expect(otlp.requests.every((request) => request.path === '/v1/traces')).toBe(true)
  })

  test("a delivery retried by the job later stays in the landing's trace", async () => {
    const traceId = 'a1b2c3d4e5f60718293a4b5c6d7e8f90'
    accepting = false
    let landed: Awaited<ReturnType<typeof landOnce>>
    try {
      landed = await landOnce(server, { traceparent: `00-${traceId}-${PARENT_ID}-01` })
      // The first attempts, right after the landing, are refused: their spans say so.
      const refused = await waitFor('a refused webhook.deliver', () =>
        otlp.spans.find((span) => span.traceId === traceId && span.name === 'webhook.deliver' && span.attributes['http.response.status_code'] === 503),
      )
      expect(refused.status?.code).toBe(2 /* ERROR */)
      expect(refused.attributes['marketbridge.webhook.attempt']).toBe(1)
    } finally {
      accepting = true
    }
    // About 5 s later the job sends them again, from a run of its own, in the landing's trace.
    const delivered = await waitFor('the retried webhooks', () => (landed.hooksOf().length >= 2 ? landed.hooksOf() : null), { timeoutMs: 20_000, everyMs: 100 })
    for (const hook of delivered) {
      const [, hookTrace, spanId] = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/.exec(hook.headers.traceparent ?? '') ?? []
      expect(hookTrace).toBe(traceId)
      const retry = await waitFor('the retry span', () => otlp.spans.find((span) => span.spanId === spanId))
      expect(retry.name).toBe('webhook.deliver')
      expect(retry.traceId).toBe(traceId)
      expect(retry.attributes['marketbridge.webhook.attempt']).toBe(2)
      expect(retry.attributes['http.response.status_code']).toBe(200)
    }
  })

  test('the background job is spans of its own, one per duty', async () => {
    const job = await waitFor('job spans', () => {
      const names = new Set(otlp.spans.filter((span) => span.name.startsWith('job ')).map((span) => span.name))
      return names.has('job webhooks') && names.has('job usage') ? names : null
    })
    expect([...job]).toEqual(expect.arrayContaining(['job claims', 'job notifications', 'job emails']))
    const one = otlp.spans.find((span) => span.name === 'job webhooks')!
    expect(one.parentSpanId || undefined).toBeUndefined()
    expect(one.attributes['marketbridge.job']).toBe('webhooks')
  })
})

describe('tracing off (no OTEL_EXPORTER_OTLP_ENDPOINT)', () => {
  test('nothing is exported, webhooks carry no traceparent, log lines no trace ids', async () => {
    // The receiver's address is in the environment, under a name nothing reads.
    const server = await broker({ NOT_THE_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: '100' })
    try {
      const before = otlp.requests.length
      const landed = await landOnce(server, { traceparent })
      const delivered = await waitFor('the webhooks', () => (landed.hooksOf().length >= 2 ? landed.hooksOf() : null))
      for (const hook of delivered) expect(hook.headers.traceparent).toBeUndefined()
      await new Promise((resolve) => setTimeout(resolve, 700))
      expect(otlp.requests.length).toBe(before)
      const lines = logLines(server)
      expect(lines.length).toBeGreaterThan(3)
      for (const line of lines) expect(line.traceId).toBeUndefined()
    } finally {
      await server.stop()
    }
  })
})
