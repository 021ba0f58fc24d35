import { generateKeyPairSync } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, test } from 'vitest'
import { PUBLIC_URL, type TestBroker, createTestBroker, waitFor } from './helpers'

let broker: TestBroker
beforeEach(async () => {
  broker = await createTestBroker()
})
afterEach(async () => {
  await broker.close()
})

const azureBody = { tenantId: '72f988bf-86f1-41af-91ab-2d7cd011db47', clientId: 'd3f1a1c2-0000-4000-8000-000000000001', clientSecret: 'Azure~Secret.Value_123' }
const awsBody = {
  region: 'us-east-1',
  credentials: { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' },
  offerTypes: { prod1234: 'CONTRACT' },
}
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
const gcpBody = {
  providerId: 'acme-provider',
  audience: 'app.acme.example',
  serviceAccountKey: {
    type: 'service_account',
    client_email: 'marketbridge@acme-project.iam.gserviceaccount.com',
    private_key_id: 'abc123',
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  },
}

describe('PUT/GET integrations', () => {
  test('azure: returns the signup URL and the non-secret settings, never the secret', async () => {
    const { org, apiKey } = await broker.createOrg()
    const response = await broker.request(`/api/v1/orgs/${org.id}/integrations/azure`, { method: 'PUT', token: apiKey, json: { ...azureBody, offerTypes: { gold: 'PRIVATE' } } })
    expect(response.status).toBe(200)
    const text = await response.text()
    expect(text).not.toContain(azureBody.clientSecret)
    const { integration } = JSON.parse(text) as { integration: Record<string, any> }
    expect(integration).toMatchObject({
      partner: 'azure',
      partnerId: expect.stringMatching(/^azure_/),
      tenantId: azureBody.tenantId,
      clientId: azureBody.clientId,
      offerTypes: { gold: 'PRIVATE' },
    })
    expect(integration.signupUrl).toBe(`${PUBLIC_URL}/public/signup/azure/orgId/${org.id}?partnerId=${integration.partnerId}`)
    expect(integration.createdAt).toBe(integration.updatedAt)
    expect(integration).not.toHaveProperty('clientSecret')
  })

  test('replacing an integration keeps its partnerId (the URL pasted in the marketplace) and createdAt', async () => {
    const { org, apiKey } = await broker.createOrg()
    const put = async (json: unknown) =>
      ((await (await broker.request(`/api/v1/orgs/${org.id}/integrations/azure`, { method: 'PUT', token: apiKey, json })).json()) as { integration: Record<string, string> }).integration
    const first = await put(azureBody)
    // updatedAt has millisecond precision: the second write comes once the clock has moved on.
    await waitFor('the clock past the first write', () => Date.now() > Date.parse(first.updatedAt!))
    const second = await put({ ...azureBody, clientId: 'another-client' })
    expect(second.partnerId).toBe(first.partnerId)
    expect(second.signupUrl).toBe(first.signupUrl)
    expect(second.createdAt).toBe(first.createdAt)
    expect(second.updatedAt! > first.updatedAt!).toBe(true)
    expect(second.clientId).toBe('another-client')
  })

  test('aws and gcp integrations are accepted and listed without secrets', async () => {
    const { org, apiKey } = await broker.createOrg()
    for (const [partner, json] of [['azure', azureBody], ['aws', awsBody], ['gcp', gcpBody]] as const) {
      const response = await broker.request(`/api/v1/orgs/${org.id}/integrations/${partner}`, { method: 'PUT', token: apiKey, json })
      expect(response.status, partner).toBe(200)
    }
    const list = await broker.request(`/api/v1/orgs/${org.id}/integrations`, { token: apiKey })
    const text = await list.text()
    const { items } = JSON.parse(text) as { items: Array<Record<string, any>> }
    expect(items.map((item) => item.partner).sort()).toEqual(['aws', 'azure', 'gcp'])
    const aws = items.find((item) => item.partner === 'aws')!
    expect(aws).toMatchObject({ region: 'us-east-1', accessKeyId: 'AKIAIOSFODNN7EXAMPLE', offerTypes: { prod1234: 'CONTRACT' } })
    const gcp = items.find((item) => item.partner === 'gcp')!
    expect(gcp).toMatchObject({ providerId: 'acme-provider', audience: 'app.acme.example', serviceAccountEmail: gcpBody.serviceAccountKey.client_email })
    for (const secret of [azureBody.clientSecret, awsBody.credentials.secretAccessKey, 'PRIVATE KEY']) expect(text).not.toContain(secret)
  })

  test.each([
    ['azure without clientSecret', 'azure', { tenantId: 't', clientId: 'c' }],
    ['azure with a tenant that is not path-safe', 'azure', { ...azureBody, tenantId: '../evil' }],
    ['azure with an unknown offer type', 'azure', { ...azureBody, offerTypes: { gold: 'SPECIAL' } }],
    ['azure with an unknown field', 'azure', { ...azureBody, password: 'x' }],
    ['aws with neither credentials nor roleArn', 'aws', { region: 'us-east-1' }],
    ['aws with a malformed roleArn', 'aws', { roleArn: 'role/x' }],
    ['gcp without a service account key', 'gcp', { providerId: 'p', audience: 'a' }],
    ['gcp with a key that is not PEM', 'gcp', { ...gcpBody, serviceAccountKey: { client_email: 'a@b.example', private_key: 'nope' } }],
  ])('rejects %s with 400', async (_, partner, json) => {
    const { org, apiKey } = await broker.createOrg()
    const response = await broker.request(`/api/v1/orgs/${org.id}/integrations/${partner}`, { method: 'PUT', token: apiKey, json })
    expect(response.status).toBe(400)
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('VALIDATION_ERROR')
  })

  test('an unknown partner is 400; a missing org is 404', async () => {
    const { org, apiKey } = await broker.createOrg()
    const bad = await broker.request(`/api/v1/orgs/${org.id}/integrations/ebay`, { method: 'PUT', token: apiKey, json: azureBody })
    expect(bad.status).toBe(400)
    const missing = await broker.request(`/api/v1/orgs/org_missing/integrations/azure`, { method: 'PUT', json: azureBody })
    expect(missing.status).toBe(404)
  })
})

describe('secrets at rest', () => {
  test('integration secrets are stored AES-GCM sealed, not in plain text', async () => {
    const { org, apiKey } = await broker.createOrg()
    await broker.request(`/api/v1/orgs/${org.id}/integrations/azure`, { method: 'PUT', token: apiKey, json: azureBody })
    await broker.request(`/api/v1/orgs/${org.id}/integrations/aws`, { method: 'PUT', token: apiKey, json: awsBody })
    const rows = await broker.deps.db.selectFrom('integrations').selectAll().execute()
    const dump = JSON.stringify(rows)
    expect(dump).not.toContain(azureBody.clientSecret)
    expect(dump).not.toContain(awsBody.credentials.secretAccessKey)
    for (const row of rows) expect(row.secrets).toMatch(/^v1\.[A-Za-z0-9+/=]+\.[A-Za-z0-9+/=]+$/)
  })

  test('a sealed secret copied to another org does not open there', async () => {
    const a = await broker.createOrg()
    const b = await broker.createOrg()
    await broker.request(`/api/v1/orgs/${a.org.id}/integrations/azure`, { method: 'PUT', token: a.apiKey, json: azureBody })
    const sealed = (await broker.deps.db.selectFrom('integrations').select('secrets').where('org_id', '=', a.org.id).executeTakeFirstOrThrow()).secrets
    await expect(broker.deps.secrets.open(sealed, `integration:${a.org.id}:azure`)).resolves.toContain(azureBody.clientSecret)
    await expect(broker.deps.secrets.open(sealed, `integration:${b.org.id}:azure`)).rejects.toThrow()
  })
})
