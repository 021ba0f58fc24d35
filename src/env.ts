import type { Hook } from '@hono/zod-openapi'
import type { Caller } from './domain/orgs'
import { formatIssues } from './domain/integrations'
import { ApiError } from './errors'
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

/** Validation failures of any route schema become the contract's 400 error shape. */
export const validationHook: Hook<any, AppEnv, any, any> = (result) => {
  if (!result.success) {
    throw new ApiError('VALIDATION_ERROR', `Invalid request: ${formatIssues(result.error)}.`)
  }
}
