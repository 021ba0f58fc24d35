import type { Hook } from '@hono/zod-openapi'
import type { z } from 'zod'
import type { AppEnv } from './env'

/**
 * One error model for the JSON API (contract §2). Domain code throws `ApiError` with an
 * UPPER_SNAKE code; the app's `onError` turns it into
 * `{"error": {"code", "message", "requestId"}}` with the status from this map.
 */
export const errorStatus = {
  VALIDATION_ERROR: 400,
  INVALID_CURSOR: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  RATE_LIMITED: 429,
  INTERNAL_ERROR: 500,
  UPSTREAM_ERROR: 502,
  SERVICE_UNAVAILABLE: 503,
} as const

export type ErrorCode = keyof typeof errorStatus

/**
 * The code for an HTTP status raised outside our domain code (Hono's own HTTPExceptions): the
 * first code the map above gives that status. 500 has none on purpose, so an unexpected
 * internal error stays the generic, detail-free INTERNAL_ERROR.
 */
export const codeForStatus: Partial<Record<number, ErrorCode>> = {}
for (const [code, status] of Object.entries(errorStatus) as Array<[ErrorCode, number]>) {
  if (status !== 500) codeForStatus[status] ??= code
}

export class ApiError extends Error {
  override name = 'ApiError'
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message)
  }
  get status() {
    return errorStatus[this.code]
  }
}

export const notFound = (what: string) => new ApiError('NOT_FOUND', `${what} was not found.`)

/** A schema's first few issues, `path: message; …`, for a VALIDATION_ERROR's message. */
export function formatIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => (issue.path.length ? `${issue.path.join('.')}: ${issue.message}` : issue.message))
    .join('; ')
}

/** Validation failures of any route schema become the contract's 400 error shape. */
export const validationHook: Hook<any, AppEnv, any, any> = (result) => {
  if (!result.success) {
    throw new ApiError('VALIDATION_ERROR', `Invalid request: ${formatIssues(result.error)}.`)
  }
}
