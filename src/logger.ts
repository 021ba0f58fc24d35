import type { ProviderLogger } from '../providers/types'

export interface Logger extends ProviderLogger {
  child(fields: Record<string, unknown>): Logger
}

export type LogSink = (line: string) => void

/**
 * One JSON object per line. Callers pass structured fields; nothing here (or anywhere) logs
 * a request URL's query, a marketplace token, an API key or a secret.
 */
export function createLogger(options: { sink?: LogSink; fields?: Record<string, unknown>; silent?: boolean } = {}): Logger {
  const sink = options.sink ?? ((line: string) => console.log(line))
  const base = options.fields ?? {}
  const write = (level: string, message: string, fields?: Record<string, unknown>) => {
    if (options.silent) return
    sink(JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...base, ...fields }))
  }
  return {
    info: (message, fields) => write('info', message, fields),
    warn: (message, fields) => write('warn', message, fields),
    error: (message, fields) => write('error', message, fields),
    child: (fields) => createLogger({ ...options, fields: { ...base, ...fields } }),
  }
}
