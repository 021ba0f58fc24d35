import { type Attributes, type Context, ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace } from '@opentelemetry/api'
import { type TraceSpan, inNativeSpan, nativeTracing, otelSpan, otelTracing, tracer, useOtelTracing } from '../providers/shared/telemetry'

/*
 * Tracing in shared code (contract §16), through @opentelemetry/api only: the runtime's entry
 * registers an SDK (Node: src/node/tracing.ts, when OTEL_EXPORTER_OTLP_ENDPOINT is set) and
 * calls `tracingStarted()`. Until then every helper here is a plain call of its work: no span,
 * no context, no header, no log field. On Workers the entry hands the platform's own tracing to
 * `useNativeTracing` (providers/shared/telemetry.ts) instead: the same spans, by the same names,
 * nested by the runtime under its automatic ones; a parent context given here is then not used
 * (the platform's async context decides), and nothing is recorded unless the Worker's tracing
 * is enabled and samples the request.
 */

/** Called by the entry once a tracer provider, context manager and propagator are registered. */
export const tracingStarted = (): void => useOtelTracing()

/** `work` inside an INTERNAL (or `kind`) span `name`, ended when it settles; an error marks it failed. */
export function inSpan<T>(name: string, attributes: Attributes, work: (span: TraceSpan | null) => Promise<T>, kind: SpanKind = SpanKind.INTERNAL, parent?: Context): Promise<T> {
  if (!otelTracing()) {
    const native = nativeTracing()
    return native ? inNativeSpan(native, name, attributes, work) : work(null)
  }
  return tracer().startActiveSpan(name, { kind, attributes }, parent ?? context.active(), async (span) => {
    try {
      return await work(otelSpan(span))
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.name : 'error' })
      throw error
    } finally {
      span.end()
    }
  })
}

/** The active span's ids for a log line, when tracing is on and a span is active. */
export function traceFields(): { traceId: string; spanId: string } | undefined {
  if (!otelTracing()) {
    const span = nativeTracing()?.getActiveSpan()
    if (!span?.isTraced) return undefined
    const { traceId, spanId } = span.spanContext()
    return { traceId, spanId }
  }
  const span = trace.getActiveSpan()
  if (!span) return undefined
  const { traceId, spanId } = span.spanContext()
  return trace.isSpanContextValid(span.spanContext()) ? { traceId, spanId } : undefined
}

const HEX = /^[0-9a-f]+$/

/** The runtime's active span as a W3C `traceparent`, when it is sampled and its ids are W3C's. */
function nativeTraceparent(): string | null {
  const span = nativeTracing()?.getActiveSpan()
  if (!span?.isTraced) return null
  const { traceId, spanId, traceFlags } = span.spanContext()
  if (traceId.length !== 32 || spanId.length !== 16 || !HEX.test(traceId) || !HEX.test(spanId) || /^0+$/.test(traceId) || /^0+$/.test(spanId)) return null
  return `00-${traceId}-${spanId}-${(traceFlags & 0xff).toString(16).padStart(2, '0')}`
}

/** The active context as a W3C `traceparent`, to store with work done later (a webhook delivery); null when not tracing. */
export function currentTraceparent(): string | null {
  if (!otelTracing()) return nativeTraceparent()
  const carrier: Record<string, string> = {}
  propagation.inject(context.active(), carrier)
  return carrier.traceparent ?? null
}

/** The context a stored `traceparent` names (the active one when none was stored). */
export function contextFrom(traceparent: string | null): Context {
  return traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent }) : context.active()
}

/** `traceparent` (and `tracestate`) of the active span, to send with an outgoing request. */
export function traceHeaders(): Record<string, string> {
  if (!otelTracing()) {
    const traceparent = nativeTraceparent()
    return traceparent ? { traceparent } : {}
  }
  const carrier: Record<string, string> = {}
  propagation.inject(context.active(), carrier)
  return carrier
}

const headerGetter = {
  get: (headers: Headers, key: string) => headers.get(key) ?? undefined,
  keys: (headers: Headers) => [...headers.keys()],
}

/** Whether requests are traced at all (an OpenTelemetry SDK, or Workers' own tracing): without, serverSpan is not needed. */
export const tracingRequests = (): boolean => otelTracing() || nativeTracing() !== null

/**
 * A request as a SERVER span, child of the caller's W3C `traceparent` when it sends one. Named
 * and tagged with the route's pattern once routing is done (`describe`): never the query, which
 * carries marketplace tokens on the landing. (Without tracing it only runs `work`; the app skips
 * it then, see tracingRequests.)
 */
export function serverSpan(method: string, path: string, headers: Headers, work: () => Promise<void>, describe: () => { route: string; status: number }): Promise<void> {
  const otel = otelTracing()
  const native = otel ? null : nativeTracing()
  if (!otel && !native) return work()
  const attributes: Attributes = { 'http.request.method': method, 'url.path': path }
  const answered = async (span: TraceSpan) => {
    try {
      await work()
    } finally {
      const { route, status } = describe()
      span.rename(`${method} ${route}`)
      span.set('http.route', route)
      span.set('http.response.status_code', status)
      if (status >= 500) span.fail()
    }
  }
  // On Workers the platform's handler span is the request's (the caller's traceparent is its to
  // honour); this child of it gets the route's name once routing is done.
  if (native) return inNativeSpan(native, method, attributes, answered)
  const parent = propagation.extract(ROOT_CONTEXT, headers, headerGetter)
  return tracer().startActiveSpan(method, { kind: SpanKind.SERVER, attributes }, parent, async (span) => {
    try {
      await answered(otelSpan(span))
    } finally {
      span.end()
    }
  })
}

export { SpanKind }
export type { TraceSpan }
