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

const tracer = () => trace.getTracer('marketbridge')

export interface CallSpan {
  /** Records the outcome on the span (if one is recording) and tells the observer. */
  end(outcome: { status: number | null; attempts: number; error?: string }): void
}

/**
 * Times one marketplace call (retries included) as a CLIENT span `<partner>.<call>` under the
 * active one, and reports it to `observe`. With no tracer provider registered the span is the
 * API's no-op one: no cost beyond a function call.
 */
export async function observeCall<T>(label: string, observe: UpstreamObserver | undefined, run: (call: CallSpan) => Promise<T>): Promise<T> {
  const { partner, call } = splitLabel(label)
  const attributes: Attributes = { 'marketbridge.partner': partner, 'marketbridge.call': call }
  return tracer().startActiveSpan(label, { kind: SpanKind.CLIENT, attributes }, async (span: Span) => {
    const started = performance.now()
    let ended = false
    const handle: CallSpan = {
      end(outcome) {
        if (ended) return
        ended = true
        if (span.isRecording()) {
          if (outcome.status !== null) span.setAttribute('http.response.status_code', outcome.status)
          span.setAttribute('marketbridge.attempts', outcome.attempts)
          span.setAttribute('http.request.resend_count', Math.max(0, outcome.attempts - 1))
          if (outcome.error || outcome.status === null || outcome.status >= 400) span.setStatus({ code: SpanStatusCode.ERROR, ...(outcome.error ? { message: outcome.error } : {}) })
        }
        observe?.({ partner, call, status: outcome.status, attempts: outcome.attempts, seconds: (performance.now() - started) / 1000 })
      },
    }
    try {
      return await run(handle)
    } finally {
      handle.end({ status: null, attempts: 0, error: 'ended without an outcome' })
      span.end()
    }
  })
}
