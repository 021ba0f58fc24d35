import { context, diag, DiagLogLevel, propagation, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { BatchSpanProcessor, type SpanExporter, TracerProvider } from '@opentelemetry/sdk-trace'
import type { Config } from '../config'
import type { Logger } from '../logger'
import { tracingStarted } from '../telemetry'

/**
 * The OpenTelemetry SDK for Node (contract §16), imported by src/node.ts only when
 * OTEL_EXPORTER_OTLP_ENDPOINT is set: spans in batches over OTLP/HTTP (JSON) to
 * `<endpoint>/v1/traces` (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it is), with the exporter's
 * own OTEL_EXPORTER_OTLP_HEADERS and the batch processor's OTEL_BSP_* settings; async context
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
    spanProcessors: [new BatchSpanProcessor({ exporter: exporter ?? new OTLPTraceExporter({ url }), ...batchSettings(env) })],
  })
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  propagation.setGlobalPropagator(new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }))
  trace.setGlobalTracerProvider(provider)
  tracingStarted()
  return { flush: () => provider.forceFlush(), shutdown: () => provider.shutdown() }
}
