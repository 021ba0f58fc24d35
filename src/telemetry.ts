import { type Attributes, type Context, ROOT_CONTEXT, type Span, SpanKind, SpanStatusCode, context, propagation, trace } from '@opentelemetry/api'

/*
 * Tracing in shared code (contract §16), through @opentelemetry/api only: the runtime's entry
 * registers an SDK (Node: src/node/tracing.ts, when OTEL_EXPORTER_OTLP_ENDPOINT is set) and
 * calls `tracingStarted()`. Until then every helper here is a plain call of its work: no span,
 * no context, no header, no log field.
 */

let tracing = false

/** Called by the entry once a tracer provider, context manager and propagator are registered. */
export function tracingStarted(): void {
  tracing = true
}

export const tracingOn = (): boolean => tracing

export const tracer = () => trace.getTracer('marketbridge')

/** `work` inside an INTERNAL (or `kind`) span `name`, ended when it settles; an error marks it failed. */
export function inSpan<T>(name: string, attributes: Attributes, work: (span: Span | null) => Promise<T>, kind: SpanKind = SpanKind.INTERNAL, parent?: Context): Promise<T> {
  if (!tracing) return work(null)
  return tracer().startActiveSpan(name, { kind, attributes }, parent ?? context.active(), async (span) => {
    try {
      return await work(span)
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
  if (!tracing) return undefined
  const span = trace.getActiveSpan()
  if (!span) return undefined
  const { traceId, spanId } = span.spanContext()
  return trace.isSpanContextValid(span.spanContext()) ? { traceId, spanId } : undefined
}

/** The active context as a W3C `traceparent`, to store with work done later (a webhook delivery); null when not tracing. */
export function currentTraceparent(): string | null {
  if (!tracing) return null
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
  if (!tracing) return {}
  const carrier: Record<string, string> = {}
  propagation.inject(context.active(), carrier)
  return carrier
}

const headerGetter = {
  get: (headers: Headers, key: string) => headers.get(key) ?? undefined,
  keys: (headers: Headers) => [...headers.keys()],
}

/**
 * A request as a SERVER span, child of the caller's W3C `traceparent` when it sends one. Named
 * and tagged with the route's pattern once routing is done (`describe`): never the query, which
 * carries marketplace tokens on the landing.
 */
export function serverSpan(method: string, path: string, headers: Headers, work: () => Promise<void>, describe: () => { route: string; status: number }): Promise<void> {
  if (!tracing) return work()
  const parent = propagation.extract(ROOT_CONTEXT, headers, headerGetter)
  const attributes: Attributes = { 'http.request.method': method, 'url.path': path }
  return tracer().startActiveSpan(method, { kind: SpanKind.SERVER, attributes }, parent, async (span) => {
    try {
      await work()
    } finally {
      const { route, status } = describe()
      span.updateName(`${method} ${route}`)
      span.setAttribute('http.route', route)
      span.setAttribute('http.response.status_code', status)
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR })
      span.end()
    }
  })
}

export { SpanKind }
