import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi'
import type { AppDeps } from '../deps'
import { rotateWebhookSecret } from '../domain/webhook-signing'
import { DELIVERY_STATUSES, listDeliveries, queuePing, retryDelivery } from '../domain/webhooks'
import type { AppEnv } from '../env'
import { validationHook } from '../errors'
import { WebhookDeliverySchema } from '../schemas'
import { auditContext } from './audit'
import { assertOrgAccess } from './auth'
import { OrgIdParam, errorResponses, jsonResponse } from './common'

const security = [{ bearer: [] }]
const DeliveryIdParam = z.string().min(1).max(64).openapi({ param: { name: 'id', in: 'path' } })

const listRoute = createRoute({
  method: 'get',
  path: '/{orgId}/webhook-deliveries',
  tags: ['Webhooks'],
  summary: 'Webhook deliveries, newest first',
  security,
  request: {
    params: z.object({ orgId: OrgIdParam }),
    query: z.object({
      status: z.enum(DELIVERY_STATUSES).optional(),
      limit: z.coerce.number().int().min(1).max(1000).default(100).openapi({ type: 'integer', minimum: 1, maximum: 1000, default: 100 }),
      cursor: z.string().min(1).max(512).optional(),
    }),
  },
  responses: { 200: jsonResponse(z.object({ items: z.array(WebhookDeliverySchema), nextCursor: z.string().nullable() }), 'A page of deliveries'), ...errorResponses(400, 401, 404) },
})

const retryRoute = createRoute({
  method: 'post',
  path: '/{orgId}/webhook-deliveries/{id}/retry',
  tags: ['Webhooks'],
  summary: 'Send a delivery again now (whatever its state)',
  security,
  request: { params: z.object({ orgId: OrgIdParam, id: DeliveryIdParam }) },
  responses: { 200: jsonResponse(WebhookDeliverySchema, 'The delivery after the attempt'), ...errorResponses(401, 404) },
})

const testRoute = createRoute({
  method: 'post',
  path: '/{orgId}/webhooks/test',
  tags: ['Webhooks'],
  summary: 'Queue a ping to the org’s webhookUrl',
  security,
  request: { params: z.object({ orgId: OrgIdParam }) },
  responses: { 202: jsonResponse(WebhookDeliverySchema, 'The queued delivery (sent at once)'), ...errorResponses(400, 401, 404) },
})

const rotateRoute = createRoute({
  method: 'post',
  path: '/{orgId}/webhook-secret',
  tags: ['Webhooks'],
  summary: 'Issue a new signing secret (the old one keeps signing beside it for 24 h)',
  security,
  request: { params: z.object({ orgId: OrgIdParam }) },
  responses: { 200: jsonResponse(z.object({ webhookSecret: z.string() }), 'The new secret, shown only here'), ...errorResponses(400, 401, 404) },
})

export function webhookRoutes(deps: AppDeps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })

  app.openapi(listRoute, async (c) => {
    const { orgId } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    return c.json(await listDeliveries(deps, orgId, c.req.valid('query')), 200)
  })

  app.openapi(retryRoute, async (c) => {
    const { orgId, id } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    return c.json(await retryDelivery(deps, orgId, id, c.get('log'), auditContext(c)), 200)
  })

  app.openapi(testRoute, async (c) => {
    const { orgId } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    return c.json(await queuePing(deps, orgId, auditContext(c)), 202)
  })

  app.openapi(rotateRoute, async (c) => {
    const { orgId } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    return c.json({ webhookSecret: await rotateWebhookSecret(deps, orgId, auditContext(c)) }, 200)
  })

  return app
}
