import type { Caller } from './domain/caller'
import type { Logger } from './logger'

/** Hono context variables shared by every route group. */
export type AppEnv = {
  Variables: {
    requestId: string
    log: Logger
    caller?: Caller
    /** The body was read (and its size limited) by the runtime's own reader: see AppDeps.jsonBodies. */
    bodyRead?: boolean
    /** Filled in by handlers for the request log line. */
    logFields?: Record<string, unknown>
  }
}
