import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi'
import { PARTNERS } from '../../providers/types'
import type { AppDeps } from '../deps'
import { checkIntegration, configureIntegration, listIntegrations, rotateNotificationSecret } from '../domain/integrations'
import { createOrg, getOrg, updateOrg } from '../domain/orgs'
import type { AppEnv } from '../env'
import { ApiError, validationHook } from '../errors'
import { CreateOrgSchema, CreatedOrgSchema, IntegrationCheckSchema, IntegrationSchema, OrgSchema, UpdateOrgSchema } from '../schemas'
import { auditContext } from './audit'
import { assertOrgAccess } from './auth'
import { OrgIdParam, errorResponses, jsonBody, jsonResponse } from './common'

const security = [{ bearer: [] }]

const createOrgRoute = createRoute({
  method: 'post',
  path: '/',
  tags: ['Orgs'],
  summary: 'Register an org (operator, ADMIN_TOKEN)',
  security,
  request: { body: jsonBody(CreateOrgSchema) },
  responses: { 201: jsonResponse(CreatedOrgSchema, 'The org and its API key (shown only here)'), ...errorResponses(400, 401, 413) },
})

const getOrgRoute = createRoute({
  method: 'get',
  path: '/{orgId}',
  tags: ['Orgs'],
  summary: 'Get an org',
  security,
  request: { params: z.object({ orgId: OrgIdParam }) },
  responses: { 200: jsonResponse(OrgSchema, 'The org'), ...errorResponses(401, 404) },
})

const patchOrgRoute = createRoute({
  method: 'patch',
  path: '/{orgId}',
  tags: ['Orgs'],
  summary: 'Update an org',
  security,
  request: { params: z.object({ orgId: OrgIdParam }), body: jsonBody(UpdateOrgSchema) },
  responses: { 200: jsonResponse(OrgSchema, 'The updated org'), ...errorResponses(400, 401, 404, 413) },
})

const PartnerParam = z.enum(PARTNERS).openapi({ param: { name: 'partner', in: 'path' } })

const putIntegrationRoute = createRoute({
  method: 'put',
  path: '/{orgId}/integrations/{partner}',
  tags: ['Integrations'],
  summary: 'Create or replace the org’s integration with one marketplace',
  description:
    'Bodies — azure: {tenantId, clientId, clientSecret, offerTypes?}; aws: {region?, credentials? {accessKeyId, secretAccessKey, sessionToken?}, roleArn?, externalId?, offerTypes?}; gcp: {providerId, audience, serviceAccountKey, offerTypes?}. Secrets are encrypted at rest and never returned.',
  security,
  request: {
    params: z.object({ orgId: OrgIdParam, partner: PartnerParam }),
    body: jsonBody(z.record(z.string(), z.unknown()).openapi('IntegrationInput')),
  },
  responses: {
    200: jsonResponse(z.object({ integration: IntegrationSchema }), 'The integration (no secrets)'),
    ...errorResponses(400, 401, 404, 413),
  },
})

const listIntegrationsRoute = createRoute({
  method: 'get',
  path: '/{orgId}/integrations',
  tags: ['Integrations'],
  summary: 'List the org’s integrations',
  security,
  request: { params: z.object({ orgId: OrgIdParam }) },
  responses: { 200: jsonResponse(z.object({ items: z.array(IntegrationSchema) }), 'Integrations'), ...errorResponses(401, 404) },
})

const rotateNotificationSecretRoute = createRoute({
  method: 'post',
  path: '/{orgId}/integrations/aws/notification-secret',
  tags: ['Integrations'],
  summary: 'Issue a new EventBridge notification secret for the AWS integration (the old one is refused from now on)',
  security,
  request: { params: z.object({ orgId: OrgIdParam }) },
  responses: { 200: jsonResponse(z.object({ notificationSecret: z.string() }), 'The new secret, shown only here'), ...errorResponses(401, 404) },
})

const checkIntegrationRoute = createRoute({
  method: 'post',
  path: '/{orgId}/integrations/{partner}/check',
  tags: ['Integrations'],
  summary: 'Check the integration’s credentials against the marketplace (changes nothing)',
  description:
    'Real calls with the stored credentials — azure: an Entra ID token for the marketplace API; aws: sts:AssumeRole (with a roleArn), then sts:GetCallerIdentity; gcp: a service-account token, then one entitlement of the provider listed. Always 200 when the integration exists: `ok` is false when a check failed, and its `message` says why. No secret or token is ever returned. Bounded by twice UPSTREAM_TIMEOUT_MS.',
  security,
  request: { params: z.object({ orgId: OrgIdParam, partner: PartnerParam }) },
  responses: { 200: jsonResponse(IntegrationCheckSchema, 'What works and what does not'), ...errorResponses(400, 401, 404) },
})

export function orgRoutes(deps: AppDeps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })

  app.openapi(createOrgRoute, async (c) => {
    if (c.get('caller')?.kind !== 'admin') throw new ApiError('UNAUTHORIZED', 'Creating an org needs the ADMIN_TOKEN.')
    const created = await createOrg(deps, c.req.valid('json'), auditContext(c))
    c.set('logFields', { orgId: created.org.id })
    return c.json(created, 201)
  })

  app.openapi(getOrgRoute, async (c) => {
    const { orgId } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    return c.json(await getOrg(deps, orgId), 200)
  })

  app.openapi(patchOrgRoute, async (c) => {
    const { orgId } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    return c.json(await updateOrg(deps, orgId, c.req.valid('json'), auditContext(c)), 200)
  })

  app.openapi(putIntegrationRoute, async (c) => {
    const { orgId, partner } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    const integration = await configureIntegration(deps, orgId, partner, c.req.valid('json'), auditContext(c))
    c.set('logFields', { orgId, partner })
    return c.json({ integration }, 200)
  })

  app.openapi(rotateNotificationSecretRoute, async (c) => {
    const { orgId } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    return c.json({ notificationSecret: await rotateNotificationSecret(deps, orgId, auditContext(c)) }, 200)
  })

  app.openapi(checkIntegrationRoute, async (c) => {
    const { orgId, partner } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    c.set('logFields', { orgId, partner })
    return c.json(await checkIntegration(deps, orgId, partner, c.get('log')), 200)
  })

  app.openapi(listIntegrationsRoute, async (c) => {
    const { orgId } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    return c.json({ items: await listIntegrations(deps, orgId) }, 200)
  })

  return app
}
