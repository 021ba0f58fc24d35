// The one export of workerd's `cloudflare:workers` module src/worker.ts reads (its shape:
// NativeTracing in providers/shared/telemetry.ts, checked there before use).
declare module 'cloudflare:workers' {
  export const tracing: unknown
}
