import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi'
import type { Context } from 'hono'
import type { AppDeps } from '../deps'
import { type AuditContext, actorOf, listAuditLog } from '../domain/audit'
import type { AppEnv } from '../env'
import { validationHook } from '../errors'
import { assertOrgAccess } from './auth'
import { OrgIdParam, errorResponses, jsonResponse } from './common'

/** Who makes this request and its id (the X-Request-Id the app answers with): what an audit entry records. */
export function auditContext(c: Context<AppEnv>): AuditContext {
  return { actor: actorOf(c.get('caller')), requestId: c.get('requestId') ?? null }
}

const AuditEntrySchema = z
  .object({
    id: z.string().openapi({ example: 'aud_01jd0000000000000000000000' }),
    orgId: z.string(),
    action: z.string().openapi({ example: 'org.updated' }),
    actor: z.object({ type: z.enum(['api_key', 'admin', 'console']), id: z.string().nullable(), name: z.string().nullable() }),
    targetType: z.string().openapi({ example: 'org' }),
    targetId: z.string().nullable(),
    requestId: z.string().nullable(),
    changes: z.record(z.string(), z.object({ from: z.unknown(), to: z.unknown() })).openapi({ description: 'Each changed field; secrets as "[redacted]".' }),
    createdAt: z.string(),
  })
  .openapi('AuditEntry')

const listRoute = createRoute({
  method: 'get',
  path: '/{orgId}/audit-log',
  tags: ['Audit log'],
  summary: 'Changes made to the org through the API, newest first',
  security: [{ bearer: [] }],
  request: {
    params: z.object({ orgId: OrgIdParam }),
    query: z.object({
      action: z.string().min(1).max(100).optional().openapi({ example: 'integration.updated' }),
      limit: z.coerce.number().int().min(1).max(1000).default(100).openapi({ type: 'integer', minimum: 1, maximum: 1000, default: 100 }),
      cursor: z.string().min(1).max(512).optional().openapi({ description: 'nextCursor of the previous page' }),
    }),
  },
  responses: {
    200: jsonResponse(z.object({ items: z.array(AuditEntrySchema), nextCursor: z.string().nullable() }), 'A page of audit entries'),
    ...errorResponses(400, 401, 404),
  },
})

export function auditRoutes(deps: AppDeps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  app.openapi(listRoute, async (c) => {
    const { orgId } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    return c.json(await listAuditLog(deps, orgId, c.req.valid('query')), 200)
  })
  return app
}
