import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi'
import type { Context } from 'hono'
import type { AppDeps } from '../deps'
import { getEntitlementJson, listEntitlementEvents, listEntitlementsJson } from '../domain/entitlements'
import { refreshEntitlement } from '../domain/reconcile'
import type { AppEnv } from '../env'
import { validationHook } from '../errors'
import { EntitlementSchema, EntitlementStatusSchema, EventSchema, PartnerSchema } from '../schemas'
import { auditContext } from './audit'
import { assertOrgAccess } from './auth'
import { OrgIdParam, errorResponses, jsonResponse } from './common'

const security = [{ bearer: [] }]
const EntitlementIdParam = z.string().min(1).max(64).openapi({ param: { name: 'id', in: 'path' } })

const listRoute = createRoute({
  method: 'get',
  path: '/{orgId}/entitlements',
  tags: ['Entitlements'],
  summary: 'List entitlements, newest first',
  security,
  request: {
    params: z.object({ orgId: OrgIdParam }),
    query: z.object({
      partner: PartnerSchema.optional(),
      status: EntitlementStatusSchema.optional(),
      limit: z.coerce.number().int().min(1).max(1000).default(100).openapi({ type: 'integer', minimum: 1, maximum: 1000, default: 100 }),
      cursor: z.string().min(1).max(512).optional().openapi({ description: 'nextCursor of the previous page' }),
    }),
  },
  responses: {
    200: jsonResponse(z.object({ items: z.array(EntitlementSchema), nextCursor: z.string().nullable() }), 'A page of entitlements'),
    ...errorResponses(400, 401, 404),
  },
})

const getRoute = createRoute({
  method: 'get',
  path: '/{orgId}/entitlements/{id}',
  tags: ['Entitlements'],
  summary: 'Get an entitlement (the redirect’s sugerEntitlementId)',
  security,
  request: { params: z.object({ orgId: OrgIdParam, id: EntitlementIdParam }) },
  responses: { 200: jsonResponse(EntitlementSchema, 'The entitlement'), ...errorResponses(401, 404) },
})

const eventsRoute = createRoute({
  method: 'get',
  path: '/{orgId}/entitlements/{id}/events',
  tags: ['Entitlements'],
  summary: 'An entitlement’s history, oldest first',
  security,
  request: { params: z.object({ orgId: OrgIdParam, id: EntitlementIdParam }) },
  responses: { 200: jsonResponse(z.object({ items: z.array(EventSchema) }), 'Its events'), ...errorResponses(401, 404) },
})

const refreshRoute = createRoute({
  method: 'post',
  path: '/{orgId}/entitlements/{id}/refresh',
  tags: ['Entitlements'],
  summary: 'Re-read the entitlement from its marketplace now and apply what differs',
  description: 'The daily reconciliation, for one entitlement: changes are written as events with source "marketplace" and data.reconciled true.',
  security,
  request: { params: z.object({ orgId: OrgIdParam, id: EntitlementIdParam }) },
  responses: { 200: jsonResponse(EntitlementSchema, 'The entitlement as it stands now'), ...errorResponses(401, 404, 502) },
})

/** A 200 whose JSON body the domain already serialized (see entitlementJson). */
function jsonText(c: Context, body: string) {
  return c.body(body, 200, { 'content-type': 'application/json' }) as never
}

export function entitlementRoutes(deps: AppDeps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })

  app.openapi(listRoute, async (c) => {
    const { orgId } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    return jsonText(c, await listEntitlementsJson(deps, orgId, c.req.valid('query')))
  })

  app.openapi(getRoute, async (c) => {
    const { orgId, id } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    return jsonText(c, await getEntitlementJson(deps, orgId, id))
  })

  app.openapi(eventsRoute, async (c) => {
    const { orgId, id } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    return c.json({ items: await listEntitlementEvents(deps, orgId, id) }, 200)
  })

  app.openapi(refreshRoute, async (c) => {
    const { orgId, id } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    return jsonText(c, await refreshEntitlement(deps, orgId, id, c.get('log'), auditContext(c)))
  })

  return app
}
