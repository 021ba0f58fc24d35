import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { ConfigError, parseConfig } from '../src/config'
import { type TestBroker, createTestBroker, testEnv } from './helpers'

let broker: TestBroker
beforeAll(async () => {
  broker = await createTestBroker()
})
afterAll(async () => {
  await broker.close()
})

describe('health', () => {
  test('GET /healthz is ok while the database answers', async () => {
    const response = await broker.request('/healthz', { token: null })
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ status: 'ok' })
  })

  test('GET /healthz is 503 in the error shape when the database is gone', async () => {
    const dead = await createTestBroker()
    await dead.deps.db.destroy()
    const response = await dead.request('/healthz', { token: null })
    expect(response.status).toBe(503)
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('SERVICE_UNAVAILABLE')
  })
})

describe('OpenAPI', () => {
  test('/api/openapi.json is OpenAPI 3.1 and describes every /api route', async () => {
    const response = await broker.request('/api/openapi.json', { token: null })
    expect(response.status).toBe(200)
    const doc = (await response.json()) as { openapi: string; paths: Record<string, Record<string, unknown>>; components: { schemas: Record<string, unknown> } }
    expect(doc.openapi).toMatch(/^3\.1/)
    const operations = Object.entries(doc.paths).flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`))
    expect(operations.sort()).toEqual(
      [
        'GET /healthz',
        'POST /api/v1/orgs',
        'POST /api/v1/orgs/{orgId}/entitlements/{id}/refresh',
        'POST /api/v1/orgs/{orgId}/entitlements/{id}/usage',
        'POST /api/v1/orgs/{orgId}/usage',
        'PUT /api/v1/orgs/{orgId}/signup-form',
        'POST /api/v1/orgs/{orgId}/integrations/aws/notification-secret',
        'GET /api/v1/orgs/{orgId}/webhook-deliveries',
        'POST /api/v1/orgs/{orgId}/webhook-deliveries/{id}/retry',
        'POST /api/v1/orgs/{orgId}/webhooks/test',
        'POST /api/v1/orgs/{orgId}/webhook-secret',
        'GET /api/v1/orgs/{orgId}',
        'PATCH /api/v1/orgs/{orgId}',
        'GET /api/v1/orgs/{orgId}/integrations',
        'PUT /api/v1/orgs/{orgId}/integrations/{partner}',
        'GET /api/v1/orgs/{orgId}/entitlements',
        'GET /api/v1/orgs/{orgId}/entitlements/{id}',
        'GET /api/v1/orgs/{orgId}/entitlements/{id}/events',
        'GET /api/v1/orgs/{orgId}/entitlements/{id}/usage',
        'GET /api/v1/orgs/{orgId}/signup-form',
        'GET /api/v1/orgs/{orgId}/signups',
      ].sort(),
    )
    for (const name of ['Org', 'Integration', 'Entitlement', 'Event', 'Error']) expect(doc.components.schemas).toHaveProperty(name)
  })

  test('/api/docs is an HTML page that loads the document', async () => {
    const response = await broker.request('/api/docs', { token: null })
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/text\/html/)
    expect(await response.text()).toContain('/api/openapi.json')
  })
})

describe('configuration', () => {
  test('defaults follow the contract', () => {
    const config = parseConfig({ ADMIN_TOKEN: 'x'.repeat(20), ENCRYPTION_KEY: testEnv().ENCRYPTION_KEY })
    expect(config).toMatchObject({
      PORT: 8787,
      HOST: '0.0.0.0',
      DATABASE_URL: 'sqlite:./data/marketbridge.db',
      PUBLIC_URL: 'http://localhost:8787',
      AZURE_MARKETPLACE_API_URL: 'https://marketplaceapi.microsoft.com',
      AZURE_LOGIN_URL: 'https://login.microsoftonline.com',
      GCP_PROCUREMENT_API_URL: 'https://cloudcommerceprocurement.googleapis.com',
      GCP_OAUTH_TOKEN_URL: 'https://oauth2.googleapis.com/token',
      GCP_MARKETPLACE_CERTS_URL: 'https://www.googleapis.com/robot/v1/metadata/x509/cloud-commerce-partner@system.gserviceaccount.com',
    })
    expect(config.AWS_MARKETPLACE_METERING_URL).toBeUndefined()
    expect(parseConfig({ ...testEnv(), PORT: '9000', PUBLIC_URL: '' }).PUBLIC_URL).toBe('http://localhost:9000')
    expect(parseConfig({ ...testEnv(), AZURE_LOGIN_URL: 'http://127.0.0.1:4000/' }).AZURE_LOGIN_URL).toBe('http://127.0.0.1:4000')
  })

  test('bad values are refused with a message naming the variable (and never its value)', () => {
    expect(() => parseConfig({ ...testEnv(), ENCRYPTION_KEY: 'c2hvcnQ=' })).toThrow(/ENCRYPTION_KEY/)
    expect(() => parseConfig({ ...testEnv(), PORT: 'eighty' })).toThrow(ConfigError)
    expect(() => parseConfig({ ...testEnv(), DATABASE_URL: 'postgres://x' })).toThrow(/DATABASE_URL/)
    expect(() => parseConfig({ ...testEnv(), AZURE_LOGIN_URL: 'not a url' })).toThrow(/AZURE_LOGIN_URL/)
    try {
      parseConfig({ ...testEnv(), ADMIN_TOKEN: 'short-secret' })
    } catch (error) {
      expect(String(error)).toMatch(/ADMIN_TOKEN/)
      expect(String(error)).not.toContain('short-secret')
    }
  })
})
