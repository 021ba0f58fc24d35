import { createMiddleware } from 'hono/factory'
import type { AppDeps } from '../deps'
import { authenticate } from '../domain/orgs'
import type { AppEnv } from '../env'
import { ApiError, notFound } from '../errors'

function bearerOf(header: string | undefined): string | null {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')
  return match ? match[1]! : null
}

/** Requires a valid bearer (admin token or an org's API key); 401 otherwise. */
export const requireCaller = (deps: AppDeps) =>
  createMiddleware<AppEnv>(async (c, next) => {
    const caller = await authenticate(deps, bearerOf(c.req.header('authorization')))
    if (!caller) throw new ApiError('UNAUTHORIZED', 'A valid API key is required (Authorization: Bearer <key>).')
    c.set('caller', caller)
    await next()
  })

/**
 * An org's objects are visible to its own keys and the operator. Another org's key gets the
 * same 404 as a missing org, so ids can't be probed.
 */
export function assertOrgAccess(caller: AppEnv['Variables']['caller'], orgId: string): void {
  if (caller?.kind === 'admin') return
  if (caller?.kind === 'org' && caller.orgId === orgId) return
  throw notFound('Org')
}
