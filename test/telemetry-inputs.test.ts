import { randomBytes } from 'node:crypto'
import { ROOT_CONTEXT, TraceFlags, trace as otelTrace } from '@opentelemetry/api'
import { InMemorySpanExporter, SamplingDecision } from '@opentelemetry/sdk-trace'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { parseConfig } from '../src/config'
import { createLogger } from '../src/logger'
import { isLoopbackAddress } from '../src/node/loopback'
import { samplerFrom, startNodeTracing } from '../src/node/tracing'
import { type TestBroker, createTestBroker, testEnv } from './helpers'

/*
 * The telemetry's inputs from outside, in process: whatever a caller sends as `traceparent`, as
 * the /metrics bearer, or as a landing's partner, the broker answers as it would without
 * telemetry, follows only a valid traceparent, and adds no label value beyond its fixed sets.
 * (End-to-end metrics and OTLP export: test/metrics.test.ts, test/tracing.test.ts.)
 */

const METRICS_TOKEN = 'metrics-token-0123456789abcdef'
const exporter = new InMemorySpanExporter()
const tracing = startNodeTracing(parseConfig(testEnv()), {}, createLogger({ silent: true }), exporter)
let broker: TestBroker

beforeAll(async () => {
  broker = await createTestBroker({ METRICS_TOKEN })
})
afterAll(async () => {
  await broker.close()
  await tracing.shutdown()
})

async function serverSpans() {
  await tracing.flush()
  const spans = exporter.getFinishedSpans().filter((span) => span.kind === 1 /* SERVER */)
  exporter.reset()
  return spans
}

/** What W3C Trace Context calls a valid version-00 traceparent (lower-case hex, ids not all zero). */
const VALID = /^00-(?!0{32})([0-9a-f]{32})-(?!0{16})([0-9a-f]{16})-[0-9a-f]{2}$/

describe('traceparent from the caller', () => {
  test('any header value: the request is answered as without it, and only a valid one becomes the parent', async () => {
    const hex = (length: number) => fc.stringMatching(new RegExp(`^[0-9a-f]{${length}}$`))
    const header = fc.oneof(
      fc.tuple(hex(32), hex(16)).map(([trace, span]) => `00-${trace}-${span}-01`),
      fc.tuple(hex(32), hex(16), fc.constantFrom('00', '01', 'ff', '0', 'zz')).map(([trace, span, flags]) => `00-${trace}-${span}-${flags}`),
      fc.constantFrom('00-00000000000000000000000000000000-b7ad6b7169203331-01', '00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01', 'ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', '', '-', '00--'),
      fc.string({ maxLength: 300 }),
    )
    await fc.assert(
      fc.asyncProperty(header, fc.option(fc.string({ maxLength: 100 })), async (traceparent, tracestate) => {
        const headers = new Headers()
        try {
          headers.set('traceparent', traceparent)
          if (tracestate !== null) headers.set('tracestate', tracestate)
        } catch {
          return // not a value an HTTP header can carry
        }
        const answer = await broker.request('/healthz', { headers, token: null })
        expect(answer.status).toBe(200)
        const spans = await serverSpans()
        const sampledParent = VALID.exec(traceparent.trim())
        // A parent that says "not sampled" is followed: nothing is recorded.
        if (sampledParent && (Number.parseInt(traceparent.trim().slice(-2), 16) & 1) === 0) {
          expect(spans).toHaveLength(0)
          return
        }
        expect(spans).toHaveLength(1)
        const span = spans[0]!
        if (sampledParent) {
          expect(span.spanContext().traceId).toBe(sampledParent[1])
          expect(span.parentSpanContext?.spanId).toBe(sampledParent[2])
        } else {
          expect(span.parentSpanContext).toBeUndefined()
        }
        expect(span.name).toBe('GET /healthz')
      }),
      { numRuns: 150 },
    )
  })
})

describe('/metrics bearer', () => {
  test('anything but the token is 401 without the metrics, and never shows the token', async () => {
    const sent = fc.oneof(
      fc.string({ maxLength: 80 }),
      fc.constantFrom(`Bearer ${METRICS_TOKEN.slice(0, -1)}`, `Bearer ${METRICS_TOKEN}x`, `Basic ${METRICS_TOKEN}`, METRICS_TOKEN, 'Bearer', 'Bearer '),
    )
    await fc.assert(
      fc.asyncProperty(sent, async (authorization) => {
        const headers = new Headers()
        try {
          headers.set('authorization', authorization)
        } catch {
          return
        }
        const answer = await broker.request('/metrics', { headers, token: null })
        const body = await answer.text()
        expect(body).not.toContain(METRICS_TOKEN)
        if (/^bearer\s+/i.test(authorization.trim()) && authorization.trim().replace(/^bearer\s+/i, '') === METRICS_TOKEN) {
          expect(answer.status).toBe(200)
          return
        }
        expect(answer.status).toBe(401)
        expect(answer.headers.get('www-authenticate')).toMatch(/^Bearer/)
        expect(body).not.toContain('marketbridge_')
      }),
      { numRuns: 150 },
    )
    const right = await broker.request('/metrics', { token: METRICS_TOKEN })
    expect(right.status).toBe(200)
    expect(right.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
  })
})

describe('landing labels', () => {
  test('whatever partner, org or query a landing names, the metrics gain no label value beyond the fixed sets', async () => {
    const segment = fc.string({ minLength: 1, maxLength: 40 }).map(encodeURIComponent)
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.constantFrom('azure', 'aws', 'gcp', 'AZURE', 'other'), segment), segment, fc.string({ maxLength: 60 }), async (partner, orgId, token) => {
        const answer = await broker.request(`/public/signup/${partner}/orgId/${orgId}?token=${encodeURIComponent(token)}`, { token: null })
        expect(answer.status).toBeLessThan(500)
      }),
      { numRuns: 100 },
    )
    const text = await (await broker.request('/metrics', { token: METRICS_TOKEN })).text()
    const series = text.split('\n').filter((line) => line.startsWith('marketbridge_landings_total{'))
    for (const line of series) {
      expect(line).toMatch(/^marketbridge_landings_total\{partner="(azure|aws|gcp|other)",outcome="(success|not-found|missing-token|invalid-token|configuration|upstream|activation-pending|error)"\} \d+$/)
    }
    const total = series.reduce((sum, line) => sum + Number(line.split(' ').pop()), 0)
    expect(total).toBe(100)
    // The partner the URL names is a label only when it is one of ours.
    expect(text).not.toMatch(/partner="AZURE"/)
  })
})

test('loopback peers: 127.0.0.0/8, ::1 and IPv4-mapped 127.x; nothing else', () => {
  for (const address of ['127.0.0.1', '127.255.0.9', '::1', '::ffff:127.0.0.1', '0:0:0:0:0:0:0:1']) expect(isLoopbackAddress(address), address).toBe(true)
  for (const address of [undefined, '', '10.0.0.1', '128.0.0.1', '::ffff:10.0.0.1', '::2', 'fe80::1', 'localhost', '1270.0.0.1', '::ffff:1270.0.0.1']) expect(isLoopbackAddress(address), String(address)).toBe(false)
})

describe('OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG', () => {
  const decide = (env: Record<string, string>, parent: 'none' | 'sampled' | 'unsampled', traceId = '0af7651916cd43dd8448eb211c80319c') => {
    const sampler = samplerFrom(env)
    const ctx =
      parent === 'none' ? ROOT_CONTEXT : otelTrace.setSpanContext(ROOT_CONTEXT, { traceId, spanId: 'b7ad6b7169203331', traceFlags: parent === 'sampled' ? TraceFlags.SAMPLED : TraceFlags.NONE, isRemote: true })
    return sampler.shouldSample(ctx, traceId, 'GET /healthz', 1, {}, []).decision
  }
  const SAMPLED = SamplingDecision.RECORD_AND_SAMPLED
  const DROPPED = SamplingDecision.NOT_RECORD

  test("the specification's samplers and default", () => {
    // Default: parentbased_always_on.
    expect(decide({}, 'none')).toBe(SAMPLED)
    expect(decide({}, 'unsampled')).toBe(DROPPED)
    expect(decide({ OTEL_TRACES_SAMPLER: 'always_on' }, 'unsampled')).toBe(SAMPLED)
    expect(decide({ OTEL_TRACES_SAMPLER: 'always_off' }, 'sampled')).toBe(DROPPED)
    expect(decide({ OTEL_TRACES_SAMPLER: 'parentbased_always_off' }, 'none')).toBe(DROPPED)
    expect(decide({ OTEL_TRACES_SAMPLER: 'parentbased_always_off' }, 'sampled')).toBe(SAMPLED)
    expect(decide({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' }, 'sampled')).toBe(DROPPED)
    expect(decide({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' }, 'none')).toBe(DROPPED)
    expect(decide({ OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' }, 'sampled')).toBe(SAMPLED)
    expect(decide({ OTEL_TRACES_SAMPLER: ' TraceIdRatio ', OTEL_TRACES_SAMPLER_ARG: '1' }, 'none')).toBe(SAMPLED)
  })

  test('a ratio samples about that share of trace ids; any value of either variable makes a sampler', () => {
    const ids = Array.from({ length: 2000 }, () => randomBytes(16).toString('hex'))
    const kept = ids.filter((id) => decide({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' }, 'none', id) === SAMPLED).length
    expect(kept).toBeGreaterThan(400)
    expect(kept).toBeLessThan(600)
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), fc.string({ maxLength: 20 }), (name, arg) => {
        const decision = decide({ OTEL_TRACES_SAMPLER: name, OTEL_TRACES_SAMPLER_ARG: arg }, 'none')
        expect([SAMPLED, DROPPED]).toContain(decision)
        // An unknown name or a ratio that is not one is "every span".
        const known = ['always_off', 'parentbased_always_off', 'traceidratio', 'parentbased_traceidratio'].includes(name.trim().toLowerCase())
        if (!known) expect(decision).toBe(SAMPLED)
        const ratio = Number(arg.trim() || 'NaN')
        if (name === 'traceidratio' && !(ratio >= 0 && ratio <= 1)) expect(decision).toBe(SAMPLED)
      }),
    )
  })
})
