import type { Context } from 'hono'
import { createMiddleware } from 'hono/factory'
import { type AppDeps, nowMs } from '../deps'
import { authenticateKey } from '../domain/api-keys'
import { knownCaller } from '../domain/orgs'
import { type RateLimitState, rateLimitField, rateLimitPolicy, takeHeldRequest, takeRequest } from '../domain/rate-limits'
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
 * The gate in front of an API (/api/v1, /suger), as one middleware (every API request passes it,
 * and each middleware of Hono's costs a dispatch of its own), in this order:
 * - a valid bearer (admin token or an org's API key), else 401; `schemes`: the Authorization
 *   schemes taken (the Suger-compatible API takes Suger's `Key` as well). A `read` key may only
 *   read (GET, and HEAD, which is a GET without its body): 403 for anything else;
 * - the key's rate limit (contract §13): a request with a bad key was refused above and counts
 *   against no key; the operator is never limited. Over the limit the route does not run, and the
 *   429 carries Retry-After and the RateLimit fields; every other answer to a key with a limit
 *   carries the fields too, set on the answer once it is made (errors included: onError's answer
 *   is the one the route's chain ends with);
 * - `check`: a refusal that needs the caller known first.
 * A key this instance checked moments ago and a window slice it holds need no promise at all.
 */
export const guardApi = (deps: AppDeps, options: { schemes?: readonly [string, ...string[]]; check?: (c: Context<AppEnv>) => void } = {}) => {
  const schemes = options.schemes ?? ['Bearer']
  return createMiddleware<AppEnv>(async (c, next) => {
    let now = nowMs(deps)
    const bearer = credentialOf(c.req.header('authorization'), schemes)
    const background = inBackground(c)
    let caller = knownCaller(deps, bearer, background, now)
    if (caller === undefined) {
      // An API key this instance does not remember (knownCaller decided everything else).
      caller = await authenticateKey(deps, bearer!, background)
      // The look-up took time (it may have crossed a minute): the rate limit counts from now.
      now = nowMs(deps)
    }
    if (!caller) throw new ApiError('UNAUTHORIZED', `A valid API key is required (Authorization: ${schemes[0]} <key>).`)
    if (caller.kind === 'org' && caller.scope === 'read' && c.req.method !== 'GET' && c.req.method !== 'HEAD') {
      throw new ApiError('FORBIDDEN', 'This API key may only read (scope read): use a full key to make changes.')
    }
    c.set('caller', caller)
    let state = takeHeldRequest(deps, caller, now)
    if (state === undefined) state = await takeRequest(deps, caller)
    try {
      if (state && !state.allowed) {
        c.header('Retry-After', String(state.resetSeconds))
        throw new ApiError('RATE_LIMITED', `This API key may make ${state.limit} requests a minute; try again in ${state.resetSeconds} s.`)
      }
      options.check?.(c)
    } catch (error) {
      // A refusal here is answered by onError from the context's fields: they go there first.
      if (state) setRateLimitFields(c, state, 'context')
      throw error
    }
    await next()
    if (state) setRateLimitFields(c, state, 'answer')
  })
}

/**
 * The RateLimit-Policy and RateLimit fields, on the context (for an answer yet to be made) or on
 * the answer already made: on its own headers, which the adapter sends as they are (c.header()
 * at that point would copy the whole answer, and before the route runs every field is checked
 * twice: when set, and when Hono copies them into a standard Response). An answer whose headers
 * cannot change (one fetched from elsewhere) takes the copy.
 */
function setRateLimitFields(c: Context<AppEnv>, state: RateLimitState, on: 'context' | 'answer'): void {
  const policy = rateLimitPolicy(state)
  const field = rateLimitField(state)
  if (on === 'answer') {
    try {
      c.res.headers.set('RateLimit-Policy', policy)
      c.res.headers.set('RateLimit', field)
      return
    } catch {
      // Immutable headers: set them through the context below.
    }
  }
  c.header('RateLimit-Policy', policy)
  c.header('RateLimit', field)
}
