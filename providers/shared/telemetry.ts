import { type Attributes, type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { isPartner } from '../types'

/**
 * What one marketplace call came to, for the runtime's metrics (contract §16): the partner and
 * the call's name are fixed strings of ours, never an id or a URL, so they are safe as labels.
 */
export interface UpstreamCall {
  partner: string
  call: string
  /** The final HTTP status, or null when no answer came (network error, timeout). */
  status: number | null
  attempts: number
  seconds: number
}

export type UpstreamObserver = (call: UpstreamCall) => void

/** A partner as a metric label: one of ours, or `other` for whatever else a URL names. */
export const partnerLabel = (partner: string): string => (isPartner(partner) ? partner : 'other')

/** `azure.resolve` → partner `azure`, call `resolve`. */
export function splitLabel(label: string): { partner: string; call: string } {
  const dot = label.indexOf('.')
  return dot < 0 ? { partner: 'other', call: label } : { partner: label.slice(0, dot), call: label.slice(dot + 1) }
}

export const tracer = () => trace.getTracer('marketbridge')

/**
 * A runtime's own tracing, when it has one and no OpenTelemetry SDK is registered: on Workers
 * the `tracing` of `cloudflare:workers` (src/worker.ts), described here by shape only, so shared
 * code imports nothing of a runtime. Its spans nest by the runtime's own async context, under
 * its automatic ones (the handler, each fetch, each D1 query), and end when the callback settles.
 */
export interface NativeSpan {
  readonly isTraced: boolean
  spanContext(): { traceId: string; spanId: string; traceFlags: number }
  setAttribute(key: string, value: string | number | boolean): unknown
  updateName(name: string): unknown
  setStatus(status: { code: 'unset' | 'ok' | 'error'; message?: string }): unknown
}
export interface NativeTracing {
  enterSpan<T>(name: string, callback: (span: NativeSpan) => T): T
  getActiveSpan(): NativeSpan | undefined
}

let native: NativeTracing | null = null
/** Set once an OpenTelemetry SDK is registered (src/telemetry.ts `tracingStarted`). */
let otel = false

export function useOtelTracing(): void {
  otel = true
}

export const otelTracing = (): boolean => otel

/** Called by a runtime's entry (Workers) whose platform records spans itself. */
export function useNativeTracing(tracing: NativeTracing | null): void {
  native = tracing
}

export const nativeTracing = (): NativeTracing | null => native

/** What shared code does to a span, the same on OpenTelemetry's and on a runtime's own. */
export interface TraceSpan {
  /** False when the span is not sampled: nothing set on it is kept. */
  readonly recording: boolean
  set(key: string, value: string | number | boolean): void
  rename(name: string): void
  fail(message?: string): void
}

export function otelSpan(span: Span): TraceSpan {
  return {
    get recording() {
      return span.isRecording()
    },
    set: (key, value) => void span.setAttribute(key, value),
    rename: (name) => void span.updateName(name),
    fail: (message) => void span.setStatus({ code: SpanStatusCode.ERROR, ...(message ? { message } : {}) }),
  }
}

export function runtimeSpan(span: NativeSpan): TraceSpan {
  return {
    get recording() {
      return span.isTraced
    },
    set: (key, value) => void span.setAttribute(key, value),
    rename: (name) => void span.updateName(name),
    fail: (message) => void span.setStatus({ code: 'error', ...(message ? { message } : {}) }),
  }
}

/** `work` in a span named `name` of the runtime's own tracing, its attributes set first. */
export function inNativeSpan<T>(tracing: NativeTracing, name: string, attributes: Attributes, work: (span: TraceSpan) => Promise<T>): Promise<T> {
  return tracing.enterSpan(name, async (span) => {
    const handle = runtimeSpan(span)
    for (const [key, value] of Object.entries(attributes)) if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') handle.set(key, value)
    try {
      return await work(handle)
    } catch (error) {
      handle.fail(error instanceof Error ? error.name : 'error')
      throw error
    }
  })
}

export interface CallSpan {
  /** Records the outcome on the span (if one is recording) and tells the observer. */
  end(outcome: { status: number | null; attempts: number; error?: string }): void
}

/**
 * Times one marketplace call (retries included) as a CLIENT span `<partner>.<call>` under the
 * active one, and reports it to `observe`. Without tracing, only the observer is told. On a
 * runtime with its own tracing (Workers) the span is that runtime's.
 */
export async function observeCall<T>(label: string, observe: UpstreamObserver | undefined, run: (call: CallSpan) => Promise<T>): Promise<T> {
  const { partner, call } = splitLabel(label)
  const attributes: Attributes = { 'marketbridge.partner': partner, 'marketbridge.call': call }
  const timed = async (span: TraceSpan | null) => {
    const started = performance.now()
    let ended = false
    const handle: CallSpan = {
      end(outcome) {
        if (ended) return
        ended = true
        if (span?.recording) {
          if (outcome.status !== null) span.set('http.response.status_code', outcome.status)
          span.set('marketbridge.attempts', outcome.attempts)
          span.set('http.request.resend_count', Math.max(0, outcome.attempts - 1))
          if (outcome.error || outcome.status === null || outcome.status >= 400) span.fail(outcome.error)
        }
        observe?.({ partner, call, status: outcome.status, attempts: outcome.attempts, seconds: (performance.now() - started) / 1000 })
      },
    }
    try {
      return await run(handle)
    } finally {
      handle.end({ status: null, attempts: 0, error: 'ended without an outcome' })
    }
  }
  if (native) return inNativeSpan(native, label, attributes, timed)
  // Untraced: not even the API's no-op span (this is on every landing's path).
  if (!otel) return timed(null)
  return tracer().startActiveSpan(label, { kind: SpanKind.CLIENT, attributes }, async (span: Span) => {
    try {
      return await timed(otelSpan(span))
    } finally {
      span.end()
    }
  })
}
