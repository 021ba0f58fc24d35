import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi'
import type { AppDeps } from '../deps'
import { createApiKey, listApiKeys, revokeApiKey, rotateApiKey } from '../domain/api-keys'
import type { AppEnv } from '../env'
import { validationHook } from '../errors'
import { ApiKeySchema, CreateApiKeySchema, CreatedApiKeySchema, RotateApiKeySchema } from '../schemas'
import { auditContext } from './audit'
import { assertOrgAccess } from './auth'
import { OrgIdParam, errorResponses, jsonBody, jsonResponse } from './common'

const security = [{ bearer: [] }]
const KeyIdParam = z.string().min(1).max(64).openapi({ param: { name: 'id', in: 'path' }, example: 'key_01jd0000000000000000000000' })
const keyParams = z.object({ orgId: OrgIdParam, id: KeyIdParam })

const createKeyRoute = createRoute({
  method: 'post',
  path: '/{orgId}/api-keys',
  tags: ['API keys'],
  summary: 'Create an API key (a full key or the ADMIN_TOKEN)',
  security,
  request: { params: z.object({ orgId: OrgIdParam }), body: jsonBody(CreateApiKeySchema) },
  responses: { 201: jsonResponse(CreatedApiKeySchema, 'The key and its secret (shown only here)'), ...errorResponses(400, 401, 403, 404, 413) },
})

const listKeysRoute = createRoute({
  method: 'get',
  path: '/{orgId}/api-keys',
  tags: ['API keys'],
  summary: 'List the org’s API keys, newest first (revoked and expired ones included)',
  security,
  request: { params: z.object({ orgId: OrgIdParam }) },
  responses: { 200: jsonResponse(z.object({ items: z.array(ApiKeySchema) }), 'The keys (never their secrets)'), ...errorResponses(401, 404) },
})

const revokeKeyRoute = createRoute({
  method: 'delete',
  path: '/{orgId}/api-keys/{id}',
  tags: ['API keys'],
  summary: 'Revoke an API key, at once (the calling key too); revoking it again answers it unchanged',
  security,
  request: { params: keyParams },
  responses: { 200: jsonResponse(z.object({ apiKey: ApiKeySchema }), 'The revoked key'), ...errorResponses(401, 403, 404) },
})

const rotateKeyRoute = createRoute({
  method: 'post',
  path: '/{orgId}/api-keys/{id}/rotate',
  tags: ['API keys'],
  summary: 'Replace an API key with a new one (same name, scope and limit); the old one keeps working for the grace period',
  security,
  // The body is optional: an empty POST rotates with the default grace period.
  request: { params: keyParams, body: { ...jsonBody(RotateApiKeySchema), required: false } },
  responses: {
    201: jsonResponse(CreatedApiKeySchema, 'The new key and its secret (shown only here)'),
    ...errorResponses(400, 401, 403, 404, 409, 413),
  },
})

export function apiKeyRoutes(deps: AppDeps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })

  app.openapi(createKeyRoute, async (c) => {
    const { orgId } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    const created = await createApiKey(deps, orgId, c.req.valid('json'), auditContext(c))
    c.set('logFields', { orgId, keyId: created.apiKey.id })
    return c.json(created, 201)
  })

  app.openapi(listKeysRoute, async (c) => {
    const { orgId } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    return c.json({ items: await listApiKeys(deps, orgId) }, 200)
  })

  app.openapi(revokeKeyRoute, async (c) => {
    const { orgId, id } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    c.set('logFields', { orgId, keyId: id })
    return c.json({ apiKey: await revokeApiKey(deps, orgId, id, auditContext(c)) }, 200)
  })

  app.openapi(rotateKeyRoute, async (c) => {
    const { orgId, id } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    const rotated = await rotateApiKey(deps, orgId, id, c.req.valid('json') ?? {}, auditContext(c))
    c.set('logFields', { orgId, keyId: id, newKeyId: rotated.apiKey.id })
    return c.json(rotated, 201)
  })

  return app
}
