import { context, diag, DiagLogLevel, propagation, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { AlwaysOffSampler, AlwaysOnSampler, BatchSpanProcessor, ParentBasedSampler, type Sampler, type SpanExporter, TraceIdRatioBasedSampler, TracerProvider } from '@opentelemetry/sdk-trace'
import type { Config } from '../config'
import type { Logger } from '../logger'
import { tracingStarted } from '../telemetry'

/**
 * The OpenTelemetry SDK for Node (contract §16), imported by src/node.ts only when
 * OTEL_EXPORTER_OTLP_ENDPOINT is set: spans in batches over OTLP/HTTP (JSON) to
 * `<endpoint>/v1/traces` (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it is), with the exporter's
 * own OTEL_EXPORTER_OTLP_HEADERS, the batch processor's OTEL_BSP_* settings and the sampler of
 * OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG; async context
 * through AsyncLocalStorage; W3C trace context and baggage in and out. `shutdown` sends what is
 * left (at a graceful stop). `exporter` replaces the OTLP one (tests).
 */
/** The standard OTEL_BSP_* variables (this SDK version no longer reads them itself); unset or not a positive number: its default. */
function batchSettings(env: NodeJS.ProcessEnv) {
  const positive = (name: string) => {
    const value = Number(env[name])
    return Number.isFinite(value) && value > 0 ? { value } : null
  }
  const settings: { scheduledDelayMillis?: number; exportTimeoutMillis?: number; maxQueueSize?: number; maxExportBatchSize?: number } = {}
  const delay = positive('OTEL_BSP_SCHEDULE_DELAY')
  const timeout = positive('OTEL_BSP_EXPORT_TIMEOUT')
  const queue = positive('OTEL_BSP_MAX_QUEUE_SIZE')
  const batch = positive('OTEL_BSP_MAX_EXPORT_BATCH_SIZE')
  if (delay) settings.scheduledDelayMillis = delay.value
  if (timeout) settings.exportTimeoutMillis = timeout.value
  if (queue) settings.maxQueueSize = Math.floor(queue.value)
  if (batch) settings.maxExportBatchSize = Math.min(Math.floor(batch.value), settings.maxQueueSize ?? 2048)
  return settings
}

const SAMPLERS = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'] as const

/**
 * The sampler the standard OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG name (this SDK version
 * no longer reads them itself), by the specification's rules: default `parentbased_always_on`
 * (every span, a caller's unsampled traceparent honoured); a ratio outside 0–1 or not a number is
 * 1; an unknown sampler name is the default, said in the log.
 */
export function samplerFrom(env: NodeJS.ProcessEnv, log?: Logger): Sampler {
  const name = (env.OTEL_TRACES_SAMPLER ?? '').trim().toLowerCase() || 'parentbased_always_on'
  const known = (SAMPLERS as readonly string[]).includes(name)
  if (!known) log?.warn('tracing: OTEL_TRACES_SAMPLER is not one this broker knows; every span is sampled', { sampler: name.slice(0, 40), known: SAMPLERS.join(', ') })
  const arg = Number((env.OTEL_TRACES_SAMPLER_ARG ?? '').trim() || 'NaN')
  const ratio = Number.isFinite(arg) && arg >= 0 && arg <= 1 ? arg : 1
  const root: Sampler = {
    always_on: new AlwaysOnSampler(),
    always_off: new AlwaysOffSampler(),
    traceidratio: new TraceIdRatioBasedSampler(ratio),
    parentbased_always_on: new AlwaysOnSampler(),
    parentbased_always_off: new AlwaysOffSampler(),
    parentbased_traceidratio: new TraceIdRatioBasedSampler(ratio),
  }[known ? (name as (typeof SAMPLERS)[number]) : 'parentbased_always_on']
  return name.startsWith('parentbased_') || !known ? new ParentBasedSampler({ root }) : root
}

export function startNodeTracing(config: Config, env: NodeJS.ProcessEnv, log: Logger, exporter?: SpanExporter): { flush: () => Promise<void>; shutdown: () => Promise<void> } {
  const url = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() || `${config.OTEL_EXPORTER_OTLP_ENDPOINT}/v1/traces`
  // The SDK's own complaints (a collector that refuses, say) as our log lines, without payloads.
  diag.setLogger(
    {
      error: (message) => log.error('tracing', { detail: String(message).slice(0, 300) }),
      warn: (message) => log.warn('tracing', { detail: String(message).slice(0, 300) }),
      info: () => {},
      debug: () => {},
      verbose: () => {},
    },
    DiagLogLevel.WARN,
  )
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': config.OTEL_SERVICE_NAME }),
    sampler: samplerFrom(env, log),
    spanProcessors: [new BatchSpanProcessor({ exporter: exporter ?? new OTLPTraceExporter({ url }), ...batchSettings(env) })],
  })
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  propagation.setGlobalPropagator(new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }))
  trace.setGlobalTracerProvider(provider)
  tracingStarted()
  return { flush: () => provider.forceFlush(), shutdown: () => provider.shutdown() }
}
