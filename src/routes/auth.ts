import type { Context } from 'hono'
import { createMiddleware } from 'hono/factory'
import type { AppDeps } from '../deps'
import { authenticate } from '../domain/orgs'
import type { Caller } from '../domain/caller'
import { rateLimitField, rateLimitPolicy, takeRequest } from '../domain/rate-limits'
import type { AppEnv } from '../env'
import { ApiError, notFound } from '../errors'

/** The credential of an `Authorization: <scheme> <credential>` header whose scheme is one of `schemes` (any case). */
function credentialOf(header: string | undefined, schemes: readonly string[]): string | null {
  const match = /^(\S+)\s+(\S+)\s*$/.exec(header ?? '')
  if (!match || !schemes.some((scheme) => scheme.toLowerCase() === match[1]!.toLowerCase())) return null
  return match[2]!
}

/** Work that must not delay the answer: inside waitUntil on Workers; on Node it simply runs on. */
function inBackground(c: Context<AppEnv>) {
  return (work: Promise<unknown>) => {
    try {
      c.executionCtx.waitUntil(work)
    } catch {
      // Node: no execution context.
    }
  }
}

/**
 * Requires a valid bearer (admin token or an org's API key); 401 otherwise. A `read` key may
 * only read (GET, and HEAD, which is a GET without its body): 403 for anything else. `schemes`:
 * the Authorization schemes taken (the Suger-compatible API takes Suger's `Key` as well).
 */
async function requireCaller(deps: AppDeps, c: Context<AppEnv>, schemes: readonly string[]): Promise<Caller> {
  const caller = await authenticate(deps, credentialOf(c.req.header('authorization'), schemes), inBackground(c))
  if (!caller) throw new ApiError('UNAUTHORIZED', `A valid API key is required (Authorization: ${schemes[0]} <key>).`)
  if (caller.kind === 'org' && caller.scope === 'read' && c.req.method !== 'GET' && c.req.method !== 'HEAD') {
    throw new ApiError('FORBIDDEN', 'This API key may only read (scope read): use a full key to make changes.')
  }
  c.set('caller', caller)
  return caller
}

/**
 * An org's objects are visible to its own keys and the operator. Another org's key gets the
 * same 404 as a missing org, so ids can't be probed. (`notFoundMessage`: the 404's own words, as
 * the Suger-compatible routes say it.)
 */
export function assertOrgAccess(caller: AppEnv['Variables']['caller'], orgId: string, notFoundMessage?: string): void {
  if (caller?.kind === 'admin') return
  if (caller?.kind === 'org' && caller.orgId === orgId) return
  throw notFoundMessage ? new ApiError('NOT_FOUND', notFoundMessage) : notFound('Org')
}

/**
 * The caller's rate limit (contract §13), once the caller is known: a request with a bad key was
 * refused before and counts against no key; the operator is never limited. Every answer to a key
 * with a limit carries the RateLimit-Policy and RateLimit fields, errors included (they are set
 * on the context before the route runs, so onError's answer has them too); over the limit the
 * route does not run at all.
 */
async function limitRate(deps: AppDeps, c: Context<AppEnv>, caller: Caller): Promise<void> {
  const state = await takeRequest(deps, caller)
  if (!state) return
  c.header('RateLimit-Policy', rateLimitPolicy(state))
  c.header('RateLimit', rateLimitField(state))
  if (!state.allowed) {
    c.header('Retry-After', String(state.resetSeconds))
    throw new ApiError('RATE_LIMITED', `This API key may make ${state.limit} requests a minute; try again in ${state.resetSeconds} s.`)
  }
}

/**
 * The gate in front of an API (/api/v1, /suger): the caller (requireCaller), its rate limit
 * (limitRate), then `check` (a refusal that needs the caller known first), as one middleware:
 * every API request passes it, and each middleware of Hono's costs a dispatch of its own.
 */
export const guardApi = (deps: AppDeps, options: { schemes?: readonly [string, ...string[]]; check?: (c: Context<AppEnv>) => void } = {}) => {
  const schemes = options.schemes ?? ['Bearer']
  return createMiddleware<AppEnv>(async (c, next) => {
    const caller = await requireCaller(deps, c, schemes)
    await limitRate(deps, c, caller)
    options.check?.(c)
    await next()
  })
}
