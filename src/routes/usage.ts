import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi'
import type { AppDeps } from '../deps'
import { MAX_BULK_RECORDS, listUsage, recordBulk, recordOne } from '../domain/usage'
import type { AppEnv } from '../env'
import { validationHook } from '../errors'
import { ErrorSchema, RecordUsageSchema, UsageRecordSchema, usageFields } from '../schemas'
import { assertOrgAccess } from './auth'
import { OrgIdParam, errorResponses, jsonBody, jsonResponse } from './common'

const security = [{ bearer: [] }]
const EntitlementIdParam = z.string().min(1).max(64).openapi({ param: { name: 'id', in: 'path' } })
const UsageAnswer = z.object({ usageRecord: UsageRecordSchema })

const recordRoute = createRoute({
  method: 'post',
  path: '/{orgId}/entitlements/{id}/usage',
  tags: ['Usage'],
  summary: 'Record usage of a dimension (reported to the marketplace once its UTC hour has ended)',
  description:
    'Idempotent per org by idempotencyKey: the same key with the same body answers 200 and the record; with another body 409. The entitlement must be ACTIVE or PENDING_CANCEL; the timestamp (default: now) may not be in the future nor older than the marketplace accepts (Azure 24 h, measured from its hour; AWS 6 h; Google 1 h). AWS takes whole units.',
  security,
  request: { params: z.object({ orgId: OrgIdParam, id: EntitlementIdParam }), body: jsonBody(RecordUsageSchema) },
  responses: {
    202: jsonResponse(UsageAnswer, 'Recorded; reported after its hour ends'),
    200: jsonResponse(UsageAnswer, 'The same key and body again: the record as it stands'),
    ...errorResponses(400, 401, 404, 409, 413),
  },
})

const BulkResultSchema = z
  .object({
    idempotencyKey: z.string().nullable(),
    status: z.number().int().openapi({ description: '202 new, 200 replayed, 400 invalid, 404 unknown entitlement, 409 key used with another body' }),
    usageRecord: UsageRecordSchema.optional(),
    error: ErrorSchema.shape.error.omit({ requestId: true }).optional(),
  })
  .openapi('UsageBulkResult')

const bulkRoute = createRoute({
  method: 'post',
  path: '/{orgId}/usage',
  tags: ['Usage'],
  summary: `Record up to ${MAX_BULK_RECORDS} usage records at once, each judged on its own`,
  security,
  request: {
    params: z.object({ orgId: OrgIdParam }),
    body: jsonBody(
      z.strictObject({
        records: z
          .array(z.unknown().openapi({ type: 'object', properties: { entitlementId: { type: 'string' }, ...Object.fromEntries(Object.keys(usageFields).map((k) => [k, {}])) } }))
          .min(1)
          .max(MAX_BULK_RECORDS),
      }),
    ),
  },
  responses: { 207: jsonResponse(z.object({ results: z.array(BulkResultSchema) }), 'One result per record, in order'), ...errorResponses(400, 401, 413) },
})

const listRoute = createRoute({
  method: 'get',
  path: '/{orgId}/entitlements/{id}/usage',
  tags: ['Usage'],
  summary: 'An entitlement’s usage records, newest first',
  security,
  request: {
    params: z.object({ orgId: OrgIdParam, id: EntitlementIdParam }),
    query: z.object({
      limit: z.coerce.number().int().min(1).max(1000).default(100).openapi({ type: 'integer', minimum: 1, maximum: 1000, default: 100 }),
      cursor: z.string().min(1).max(512).optional(),
    }),
  },
  responses: { 200: jsonResponse(z.object({ items: z.array(UsageRecordSchema), nextCursor: z.string().nullable() }), 'A page of usage records'), ...errorResponses(400, 401, 404) },
})

export function usageRoutes(deps: AppDeps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })

  app.openapi(recordRoute, async (c) => {
    const { orgId, id } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    const { status, record } = await recordOne(deps, orgId, { entitlementId: id, ...c.req.valid('json') })
    return c.json({ usageRecord: record }, status)
  })

  app.openapi(bulkRoute, async (c) => {
    const { orgId } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    return c.json({ results: await recordBulk(deps, orgId, c.req.valid('json').records) }, 207)
  })

  app.openapi(listRoute, async (c) => {
    const { orgId, id } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    return c.json(await listUsage(deps, orgId, id, c.req.valid('query')), 200)
  })

  return app
}
