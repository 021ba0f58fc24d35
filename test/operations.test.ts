import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createApp } from '../src/app'
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
        'GET /api/v1/orgs/{orgId}/audit-log',
        'POST /api/v1/orgs/{orgId}/integrations/{partner}/check',
        'GET /api/v1/orgs/{orgId}/api-keys',
        'POST /api/v1/orgs/{orgId}/api-keys',
        'DELETE /api/v1/orgs/{orgId}/api-keys/{id}',
        'POST /api/v1/orgs/{orgId}/api-keys/{id}/rotate',
        'GET /suger/org/{orgId}/entitlement',
        'GET /suger/org/{orgId}/entitlement/{entitlementId}',
        'POST /suger/org/{orgId}/entitlement/{entitlementId}/usageRecordGroup',
        'POST /suger/org/{orgId}/batchCreateUsageRecordGroups',
        'GET /suger/org/{orgId}/usageRecordGroup',
        'GET /suger/org/{orgId}/buyer/{buyerId}',
        'POST /suger/org/{orgId}/entitlement/{entitlementId}/approve',
        'POST /suger/org/{orgId}/entitlement/{entitlementId}/cancel',
      ].sort(),
    )
    for (const name of ['Org', 'Integration', 'Entitlement', 'Event', 'Error']) expect(doc.components.schemas).toHaveProperty(name)
  })

  test('/api/docs is Swagger UI from the broker itself: its own files, no inline script, a strict CSP', async () => {
    const response = await broker.request('/api/docs', { token: null })
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/text\/html/)
    const csp = response.headers.get('content-security-policy') ?? ''
    expect(csp).toContain("script-src 'self';")
    expect(csp).toContain("default-src 'none'")
    expect(csp).not.toContain('unsafe-')
    const html = await response.text()
    expect(html).toContain('href="/api/openapi.json"')
    const sources = [...html.matchAll(/<(?:script|link)\b[^>]*?(?:src|href)="([^"]+)"/g)].map((m) => m[1])
    expect(sources).toEqual(expect.arrayContaining(['/api/docs/assets/swagger-ui.css', '/api/docs/assets/swagger-ui-bundle.js', '/api/docs/assets/docs.js']))
    for (const source of sources) expect(source, 'same origin').toMatch(/^\/api\//)
    // Every <script> has a src: nothing inline.
    expect([...html.matchAll(/<script\b([^>]*)>/g)].every((m) => /\bsrc=/.test(m[1]!))).toBe(true)
    expect(html).not.toMatch(/<style\b/)
    expect(html).not.toMatch(/https?:\/\//)
  })

  test('the initializer never calls validator.swagger.io nor reads a spec URL from the query', async () => {
    const script = await (await broker.request('/api/docs/assets/docs.js', { token: null })).text()
    expect(script).toContain('SwaggerUIBundle(')
    expect(script).toContain("url: \"/api/openapi.json\"")
    expect(script).toContain('validatorUrl: null')
    expect(script).toContain('queryConfigEnabled: false')
    expect(script).not.toMatch(/https?:\/\//)
  })

  test('/api/docs/assets: the allow-listed files with their types and long caching, ETag revalidation; 404 for the rest', async () => {
    const expected: Record<string, RegExp> = {
      'swagger-ui.css': /^text\/css/,
      'swagger-ui-bundle.js': /^text\/javascript/,
      'favicon-32x32.png': /^image\/png$/,
      'favicon-16x16.png': /^image\/png$/,
      'docs.js': /^text\/javascript/,
      'docs.css': /^text\/css/,
    }
    for (const [file, type] of Object.entries(expected)) {
      const response = await broker.request(`/api/docs/assets/${file}`, { token: null })
      expect(response.status, file).toBe(200)
      expect(response.headers.get('content-type'), file).toMatch(type)
      expect(response.headers.get('cache-control'), file).toBe('public, max-age=86400')
      expect(response.headers.get('x-content-type-options'), file).toBe('nosniff')
      const etag = response.headers.get('etag')
      expect(etag, file).toMatch(/^"[^"]+"$/)
      expect((await response.arrayBuffer()).byteLength, file).toBeGreaterThan(100)
      const again = await broker.request(`/api/docs/assets/${file}`, { token: null, headers: { 'if-none-match': etag! } })
      expect(again.status, file).toBe(304)
      expect(again.headers.get('etag'), file).toBe(etag)
      expect(again.headers.get('cache-control'), file).toBe('public, max-age=86400')
    }
    const bundle = await broker.request('/api/docs/assets/swagger-ui-bundle.js', { token: null })
    expect((await bundle.text()).length).toBeGreaterThan(1_000_000)
    for (const file of ['index.html', 'swagger-initializer.js', 'oauth2-redirect.html', 'swagger-ui-bundle.js.map', 'package.json', '..%2Fpackage.json', '%2e%2e%2fpackage.json', 'nope.js', 'constructor', '__proto__']) {
      const response = await broker.request(`/api/docs/assets/${file}`, { token: null })
      expect(response.status, file).toBe(404)
      expect(((await response.json()) as { error: { code: string } }).error.code, file).toBe('NOT_FOUND')
    }
    expect((await broker.request('/api/docs/assets/x/../../package.json', { token: null })).status).toBe(404)
  })

  test('without docsAsset (an entry that does not provide it) /api/docs links the document and loads nothing', async () => {
    const app = createApp({ ...broker.deps, docsAsset: undefined })
    const page = await app.request('/api/docs')
    expect(page.status).toBe(200)
    const html = await page.text()
    expect(html).toContain('href="/api/openapi.json"')
    expect(html).not.toMatch(/<script\b|<style\b/)
    expect((await app.request('/api/docs/assets/swagger-ui-bundle.js')).status).toBe(404)
    expect((await app.request('/api/docs/assets/docs.css')).status).toBe(200)
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
    expect(config.DATABASE_POOL_MAX).toBe(10)
    expect(parseConfig({ ...testEnv(), DATABASE_POOL_MAX: '25' }).DATABASE_POOL_MAX).toBe(25)
    // PostgreSQL URLs are kept as given: sslmode and the rest are pg's (libpq's rules) to read.
    for (const url of ['postgres://app:pw@db.internal:5432/broker?sslmode=verify-full', 'postgresql://app@localhost/broker']) {
      expect(parseConfig({ ...testEnv(), DATABASE_URL: url }).DATABASE_URL).toBe(url)
    }
  })

  test('bad values are refused with a message naming the variable (and never its value)', () => {
    expect(() => parseConfig({ ...testEnv(), ENCRYPTION_KEY: 'c2hvcnQ=' })).toThrow(/ENCRYPTION_KEY/)
    expect(() => parseConfig({ ...testEnv(), PORT: 'eighty' })).toThrow(ConfigError)
    expect(() => parseConfig({ ...testEnv(), DATABASE_URL: 'mysql://x' })).toThrow(/DATABASE_URL/)
    expect(() => parseConfig({ ...testEnv(), DATABASE_URL: 'postgres://user:s3cret@[bad' })).toThrow(/DATABASE_URL/)
    expect(() => parseConfig({ ...testEnv(), DATABASE_URL: 'postgres://user:s3cret@[bad' })).not.toThrow(/s3cret/)
    for (const value of ['0', '-1', '2.5', 'ten']) expect(() => parseConfig({ ...testEnv(), DATABASE_POOL_MAX: value })).toThrow(/DATABASE_POOL_MAX: must be a positive integer/)
    expect(() => parseConfig({ ...testEnv(), AZURE_LOGIN_URL: 'not a url' })).toThrow(/AZURE_LOGIN_URL/)
    try {
      parseConfig({ ...testEnv(), ADMIN_TOKEN: 'short-secret' })
    } catch (error) {
      expect(String(error)).toMatch(/ADMIN_TOKEN/)
      expect(String(error)).not.toContain('short-secret')
    }
  })
})
