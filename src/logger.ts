import type { ProviderLogger } from '../providers/types'
import { traceFields } from './telemetry'

export interface Logger extends ProviderLogger {
  child(fields: Record<string, unknown>): Logger
}

export type LogSink = (line: string) => void

/**
 * One JSON object per line. Callers pass structured fields; nothing here (or anywhere) logs
 * a request URL's query, a marketplace token, an API key or a secret.
 */
export function createLogger(options: { sink?: LogSink; fields?: Record<string, unknown>; silent?: boolean } = {}): Logger {
  return new JsonLogger(options.silent ? null : (options.sink ?? ((line: string) => console.log(line))), options.fields ?? {})
}

let isoAt = Number.NaN
let isoText = ''

/**
 * The time of a line: Date.now() as an ISO string, formatted once per millisecond (a busy broker
 * writes dozens of lines in one; formatting was half the cost of a line).
 */
function lineTime(): string {
  const now = Date.now()
  if (now !== isoAt) {
    isoAt = now
    isoText = new Date(now).toISOString()
  }
  return isoText
}

/**
 * A class rather than closures: a child logger is made per request (and per landing), and
 * a method on the prototype costs nothing to make, where four fresh closures did.
 */
class JsonLogger implements Logger {
  constructor(
    private readonly sink: LogSink | null,
    private readonly fields: Record<string, unknown>,
  ) {}

  info(message: string, fields?: Record<string, unknown>): void {
    this.write('info', message, fields)
  }

  warn(message: string, fields?: Record<string, unknown>): void {
    this.write('warn', message, fields)
  }

  error(message: string, fields?: Record<string, unknown>): void {
    this.write('error', message, fields)
  }

  child(fields: Record<string, unknown>): Logger {
    return new JsonLogger(this.sink, { ...this.fields, ...fields })
  }

  private write(level: string, message: string, fields?: Record<string, unknown>): void {
    // While tracing, a line written inside a span carries its traceId and spanId (contract §16).
    if (this.sink) this.sink(JSON.stringify({ time: lineTime(), level, msg: message, ...this.fields, ...fields, ...traceFields() }))
  }
}
