import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi'
import type { AppDeps } from '../deps'
import { MAX_BATCH_GROUPS, approveEntitlement, cancel, getBuyer, getEntitlement, listEntitlements, listGroups, reportGroup, reportGroups } from '../domain/suger'
import type { AppEnv } from '../env'
import { validationHook } from '../errors'
import {
  CreateUsageRecordGroupParamsSchema,
  IdentityBuyerSchema,
  ListUsageRecordGroupsResponseSchema,
  MeteringUsageRecordGroupSchema,
  NewUsageRecordGroupSchema,
  USAGE_GROUP_SOURCES,
  USAGE_GROUP_STATUS_FILTERS,
  WorkloadEntitlementSchema,
} from '../suger-schemas'
import { auditContext } from './audit'
import { assertOrgAccess } from './auth'

/**
 * The Suger-compatible API (contract §15), mounted at `/suger`: Suger's paths, parameters and
 * JSON under Suger's base URL, so that clients generated from Suger's OpenAPI document work
 * against the broker unchanged. Keys, scopes and rate limits are the rest of the API's (app.tsx);
 * errors are a JSON string body (app.tsx's onError for /suger paths).
 */

const TAG = 'Suger-compatible'
const security = [{ sugerKey: [] }]

const errorString = (description: string) => ({ description, content: { 'application/json': { schema: z.string().openapi({ example: 'entitlement not found' }) } } })
const errors = {
  400: errorString('Bad request'),
  401: errorString('No API key or a bad one'),
  403: errorString('A read key may only read'),
  404: errorString('Not found (also another org’s)'),
}
const ok = <T extends z.ZodType>(schema: T, description: string) => ({ 200: { description, content: { 'application/json': { schema } } } })

/** Text without control characters: PostgreSQL cannot even compare one holding U+0000 (400, not a 500). */
const plain = (max: number) => z.string().max(max).refine((value) => !/[\u0000-\u001f\u007f]/.test(value), 'must not contain control characters')

const orgId = plain(64).min(1).openapi({ param: { name: 'orgId', in: 'path' }, description: 'Organization ID', example: 'org_01jd0000000000000000000000' })
const entitlementId = plain(64).min(1).openapi({ param: { name: 'entitlementId', in: 'path' }, description: 'Entitlement ID' })
const query = (description: string, extra: Record<string, unknown> = {}) => plain(512).optional().openapi({ description, ...extra })
const integerQuery = (description: string) => plain(32).optional().openapi({ type: 'integer', description })

const getEntitlementRoute = createRoute({
  method: 'get',
  path: '/org/{orgId}/entitlement/{entitlementId}',
  operationId: 'GetEntitlement',
  tags: [TAG],
  summary: 'get entitlement',
  security,
  request: { params: z.object({ orgId, entitlementId }) },
  responses: { ...ok(WorkloadEntitlementSchema, 'The entitlement'), ...errors },
})

const listEntitlementsRoute = createRoute({
  method: 'get',
  path: '/org/{orgId}/entitlement',
  operationId: 'ListEntitlements',
  tags: [TAG],
  summary: 'list entitlements',
  description: 'Newest first. Every filter given must match; `partner` in any case.',
  security,
  request: {
    params: z.object({ orgId }),
    query: z.object({
      partner: query('filter by partner: AZURE, AWS or GCP'),
      productId: query('filter by productId'),
      offerId: query('filter by offerId (the plan)'),
      buyerId: query('filter by buyerId (byr_…)'),
      externalId: query('filter by externalId'),
      buyerAccountId: query('filter by the buyer’s account id'),
      limit: integerQuery('List pagination size, default 1000, max value is 1000'),
      offset: integerQuery('List pagination offset, default 0'),
    }),
  },
  responses: { ...ok(z.array(WorkloadEntitlementSchema), 'The entitlements'), ...errors },
})

const reportGroupRoute = createRoute({
  method: 'post',
  path: '/org/{orgId}/entitlement/{entitlementId}/usageRecordGroup',
  operationId: 'ReportUsageRecordGroup',
  tags: [TAG],
  summary: 'report usageRecordGroup',
  description:
    'Each quantity above 0 becomes a usage record (idempotency key `<group id>:<dimension>`), reported to the marketplace once its UTC hour has ended. A group id seen before is refused (409) whatever the body; quantities all 0 are refused (400).',
  security,
  request: { params: z.object({ orgId, entitlementId }), body: { required: true, content: { 'application/json': { schema: CreateUsageRecordGroupParamsSchema } } } },
  responses: { ...ok(MeteringUsageRecordGroupSchema, 'The group as stored'), ...errors, 409: errorString('The group id was reported before') },
})

const batchRoute = createRoute({
  method: 'post',
  path: '/org/{orgId}/batchCreateUsageRecordGroups',
  operationId: 'BatchReportUsageRecordGroups',
  tags: [TAG],
  summary: 'batch report usageRecordGroups',
  description: 'Every group is checked before any is stored: one bad group and none is (400, or 409 for a group id seen before).',
  security,
  request: {
    params: z.object({ orgId }),
    body: { required: true, content: { 'application/json': { schema: z.array(NewUsageRecordGroupSchema).max(MAX_BATCH_GROUPS) } } },
  },
  responses: { ...ok(z.array(MeteringUsageRecordGroupSchema), 'The groups as stored, in order'), ...errors, 409: errorString('A group id was reported before') },
})

const listGroupsRoute = createRoute({
  method: 'get',
  path: '/org/{orgId}/usageRecordGroup',
  operationId: 'ListUsageRecordGroups',
  tags: [TAG],
  summary: 'list usageRecordGroups',
  description: 'Newest first; the groups created on the days from startDate to endDate (UTC, both included).',
  security,
  request: {
    params: z.object({ orgId }),
    query: z.object({
      partner: query('Cloud Partner', { enum: ['AWS', 'AZURE', 'GCP'] }),
      buyerId: query('filter by buyer ID'),
      entitlementId: query('filter by entitlement ID'),
      status: query('The status of the usage record group', { enum: [...USAGE_GROUP_STATUS_FILTERS] }),
      source: query('The source of the usage record group (every group reported here is API)', { enum: [...USAGE_GROUP_SOURCES] }),
      metaInfo: query('metaInfo filter (not used)'),
      startDate: query('start date (UTC) in YYYY-MM-DD format, default is 30 days before the endDate'),
      endDate: query('end date (UTC) in YYYY-MM-DD format, default is today'),
      limit: integerQuery('List pagination size, default 1000, max value is 1000'),
      offset: integerQuery('List pagination offset, default 0'),
    }),
  },
  responses: { ...ok(ListUsageRecordGroupsResponseSchema, 'A page of groups'), ...errors },
})

const getBuyerRoute = createRoute({
  method: 'get',
  path: '/org/{orgId}/buyer/{buyerId}',
  operationId: 'GetBuyer',
  tags: [TAG],
  summary: 'get buyer',
  security,
  request: { params: z.object({ orgId, buyerId: plain(512).min(1).openapi({ param: { name: 'buyerId', in: 'path' }, description: 'Buyer ID (byr_…)' }) }) },
  responses: { ...ok(IdentityBuyerSchema, 'The buyer'), ...errors },
})

const approveRoute = createRoute({
  method: 'post',
  path: '/org/{orgId}/entitlement/{entitlementId}/approve',
  operationId: 'ApproveEntitlement',
  tags: [TAG],
  summary: 'approve entitlement',
  description: 'The broker approves and activates entitlements itself: the entitlement when it is PENDING_START or ACTIVE, else 400.',
  security,
  request: { params: z.object({ orgId, entitlementId }) },
  responses: { ...ok(WorkloadEntitlementSchema, 'The entitlement'), ...errors },
})

const cancelRoute = createRoute({
  method: 'post',
  path: '/org/{orgId}/entitlement/{entitlementId}/cancel',
  operationId: 'CancelEntitlement',
  tags: [TAG],
  summary: 'cancel entitlement',
  description:
    'Azure only: the subscription is cancelled at Microsoft (DELETE …/subscriptions/{id}) and the entitlement follows (CANCELLED, or PENDING_CANCEL while Microsoft is still at it). Other marketplaces: 400 (their buyers cancel in the marketplace).',
  security,
  request: { params: z.object({ orgId, entitlementId }) },
  responses: { ...ok(WorkloadEntitlementSchema, 'The entitlement as it stands after the cancel'), ...errors, 502: errorString('Microsoft could not be asked') },
})

/**
 * The path's org must be the key's (the operator's token may read any): another org's is the same
 * 404 as a missing one, so ids cannot be probed.
 */
/** The org check of the rest of the API, in Suger's words. */
const assertOrg = (caller: AppEnv['Variables']['caller'], orgId: string) => assertOrgAccess(caller, orgId, 'organization not found')

export function sugerRoutes(deps: AppDeps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })

  app.openapi(getEntitlementRoute, async (c) => {
    const { orgId, entitlementId } = c.req.valid('param')
    assertOrg(c.get('caller'), orgId)
    return c.json(await getEntitlement(deps, orgId, entitlementId), 200)
  })

  app.openapi(listEntitlementsRoute, async (c) => {
    const { orgId } = c.req.valid('param')
    assertOrg(c.get('caller'), orgId)
    return c.json(await listEntitlements(deps, orgId, c.req.valid('query')), 200)
  })

  app.openapi(reportGroupRoute, async (c) => {
    const { orgId, entitlementId } = c.req.valid('param')
    assertOrg(c.get('caller'), orgId)
    return c.json(await reportGroup(deps, orgId, entitlementId, c.req.valid('json')), 200)
  })

  app.openapi(batchRoute, async (c) => {
    const { orgId } = c.req.valid('param')
    assertOrg(c.get('caller'), orgId)
    return c.json(await reportGroups(deps, orgId, c.req.valid('json'), false), 200)
  })

  app.openapi(listGroupsRoute, async (c) => {
    const { orgId } = c.req.valid('param')
    assertOrg(c.get('caller'), orgId)
    return c.json(await listGroups(deps, orgId, c.req.valid('query')), 200)
  })

  app.openapi(getBuyerRoute, async (c) => {
    const { orgId, buyerId } = c.req.valid('param')
    assertOrg(c.get('caller'), orgId)
    return c.json(await getBuyer(deps, orgId, buyerId), 200)
  })

  app.openapi(approveRoute, async (c) => {
    const { orgId, entitlementId } = c.req.valid('param')
    assertOrg(c.get('caller'), orgId)
    return c.json(await approveEntitlement(deps, orgId, entitlementId), 200)
  })

  app.openapi(cancelRoute, async (c) => {
    const { orgId, entitlementId } = c.req.valid('param')
    assertOrg(c.get('caller'), orgId)
    return c.json(await cancel(deps, orgId, entitlementId, c.get('log'), auditContext(c)), 200)
  })

  return app
}
