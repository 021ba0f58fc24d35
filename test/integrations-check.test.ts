import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Server, type Socket, createServer } from 'node:net'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type AwsEmulator, createAwsEmulator } from '../sandbox/emulators/aws'
import { type GcpEmulator, createGcpEmulator } from '../sandbox/emulators/gcp'
import { type AzureSetup, type TestBroker, createTestBroker, startAzure } from './helpers'
import { type WorkerProcess, httpBroker, startWorker } from './worker-process'

/**
 * `POST /api/v1/orgs/{orgId}/integrations/{partner}/check` (contract §13): real calls to each
 * marketplace's emulator with the stored credentials, good and bad; the answer and the log lines
 * never carry a secret, and nothing is written.
 */

interface CheckBody {
  ok: boolean
  checks: Array<{ name: string; ok: boolean; message: string }>
}

let azure: AzureSetup
let aws: AwsEmulator
let awsServer: { url: string; close: () => Promise<void> }
let gcp: GcpEmulator
let gcpServer: { url: string; close: () => Promise<void> }
let broker: TestBroker

const awsKeys = { accessKeyId: 'AKIACHECKTEST0000001', secretAccessKey: `chk/${randomBytes(18).toString('base64')}` }
const roleArn = 'arn:aws:iam::444455556666:role/MarketbridgeSeller'
const externalRoleArn = 'arn:aws:iam::444455556666:role/MarketbridgeWithExternalId'
const gcpProvider = 'check-provider'
let gcpKey: Record<string, string>

/** Every secret this file configures anywhere: none may appear in an answer or a log line. */
const secrets: string[] = []
/** The PEM body lines of a private key: any one of them in a log is a leak. */
const pemLines = (pem: string) => pem.split('\n').filter((line) => line && !line.startsWith('-----'))

beforeAll(async () => {
  azure = await startAzure()
  aws = createAwsEmulator()
  awsServer = await aws.listen()
  aws.addCredentials(awsKeys.accessKeyId, awsKeys.secretAccessKey, 'arn:aws:iam::444455556666:user/marketbridge')
  aws.addRole(roleArn, awsKeys.accessKeyId)
  aws.addRole(externalRoleArn, awsKeys.accessKeyId, 'expected-external-id')
  gcp = await createGcpEmulator()
  gcpServer = await gcp.listen()
  gcpKey = (await gcp.createServiceAccount(gcpProvider)) as unknown as Record<string, string>
  secrets.push(azure.clientSecret, awsKeys.secretAccessKey, gcpKey.private_key!, ...pemLines(gcpKey.private_key!))
  broker = await createTestBroker({
    AZURE_MARKETPLACE_API_URL: azure.url,
    AZURE_LOGIN_URL: azure.url,
    AWS_STS_URL: awsServer.url,
    AWS_MARKETPLACE_METERING_URL: awsServer.url,
    AWS_MARKETPLACE_ENTITLEMENT_URL: awsServer.url,
    GCP_OAUTH_TOKEN_URL: gcp.tokenUrl,
    GCP_PROCUREMENT_API_URL: gcpServer.url,
    GCP_MARKETPLACE_CERTS_URL: gcp.certsUrl,
  })
})

afterAll(async () => {
  await broker?.close()
  await azure?.close()
  await awsServer?.close()
  await gcpServer?.close()
})

/** An org with one integration, as its owner configured it. */
async function withIntegration(target: Pick<TestBroker, 'createOrg' | 'request'>, partner: string, body: Record<string, unknown>) {
  const { org, apiKey } = await target.createOrg()
  const put = await target.request(`/api/v1/orgs/${org.id}/integrations/${partner}`, { method: 'PUT', token: apiKey, json: body })
  if (put.status !== 200) throw new Error(`PUT ${partner}: ${put.status} ${await put.text()}`)
  return { orgId: org.id, apiKey }
}

const integrationRow = (orgId: string, partner: string) => broker.deps.db.selectFrom('integrations').selectAll().where('org_id', '=', orgId).where('partner', '=', partner).executeTakeFirst()

/**
 * Calls the check and asserts what every answer must hold: 200, the contract's shape, `ok` as
 * the checks say, the integration row untouched, and no configured secret in the answer or in
 * any log line written meanwhile.
 */
async function check(partner: string, body: Record<string, unknown>): Promise<CheckBody> {
  const { orgId, apiKey } = await withIntegration(broker, partner, body)
  const before = await integrationRow(orgId, partner)
  const logsFrom = broker.logs.length
  const response = await broker.request(`/api/v1/orgs/${orgId}/integrations/${partner}/check`, { method: 'POST', token: apiKey })
  const text = await response.text()
  expect(response.status, text).toBe(200)
  const answer = JSON.parse(text) as CheckBody
  expect(Object.keys(answer).sort()).toEqual(['checks', 'ok'])
  expect(answer.checks.length).toBeGreaterThan(0)
  for (const item of answer.checks) expect(Object.keys(item).sort()).toEqual(['message', 'name', 'ok'])
  expect(answer.ok).toBe(answer.checks.every((item) => item.ok))
  expect(await integrationRow(orgId, partner)).toEqual(before)
  const logs = broker.logs.slice(logsFrom).join('\n')
  expect(logs).toContain('"integration checked"')
  for (const secret of secrets) {
    expect(text).not.toContain(secret)
    expect(logs).not.toContain(secret)
  }
  // No bearer or session credential either (Entra JWTs start eyJ, Google's tokens ya29.).
  expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}|ya29\.|ASIA[A-Z0-9]{16}/)
  expect(logs).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}|ya29\.|ASIA[A-Z0-9]{16}/)
  return answer
}

const named = (answer: CheckBody, name: string) => {
  const found = answer.checks.find((item) => item.name === name)
  if (!found) throw new Error(`no ${name} check in ${JSON.stringify(answer)}`)
  return found
}

describe('azure: an Entra token for the marketplace scope', () => {
  test('good credentials: ok, and Entra was asked', async () => {
    const before = azure.emulator.callsTo('token').length
    const answer = await check('azure', { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret })
    expect(answer).toEqual({ ok: true, checks: [{ name: 'entra:token', ok: true, message: expect.stringContaining(azure.clientId) }] })
    expect(azure.emulator.callsTo('token').length).toBe(before + 1)
  })

  test('a wrong secret: not ok, the message names the invalid secret', async () => {
    const wrong = `sec~${randomBytes(12).toString('base64url')}`
    secrets.push(wrong)
    const answer = await check('azure', { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: wrong })
    expect(answer.ok).toBe(false)
    expect(named(answer, 'entra:token')).toMatchObject({ ok: false, message: expect.stringMatching(/AADSTS7000215.*client secret is wrong/) })
  })

  test('a wrong tenant: not ok, the message says the app is not in that tenant', async () => {
    const answer = await check('azure', { tenantId: 'another-tenant', clientId: azure.clientId, clientSecret: azure.clientSecret })
    expect(named(answer, 'entra:token')).toMatchObject({ ok: false, message: expect.stringMatching(/AADSTS700016.*clientId or tenantId/) })
  })

  test('no cached token hides a secret revoked since the last good call', async () => {
    const app = { tenantId: azure.tenantId, clientId: `app-${randomBytes(4).toString('hex')}`, clientSecret: `sec~${randomBytes(12).toString('base64url')}` }
    secrets.push(app.clientSecret)
    azure.emulator.registerApp(app)
    const { orgId, apiKey } = await withIntegration(broker, 'azure', app)
    const run = async () => (await (await broker.request(`/api/v1/orgs/${orgId}/integrations/azure/check`, { method: 'POST', token: apiKey })).json()) as CheckBody
    expect((await run()).ok).toBe(true)
    // The ISV deletes the secret in Entra (a new one replaces it there, not yet in the broker).
    azure.emulator.registerApp({ ...app, clientSecret: `sec~${randomBytes(12).toString('base64url')}` })
    expect((await run()).checks[0]).toMatchObject({ ok: false, message: expect.stringContaining('AADSTS7000215') })
  })
})

describe('aws: STS GetCallerIdentity, after AssumeRole with a roleArn', () => {
  test('static keys: ok, signed in as the IAM user', async () => {
    const answer = await check('aws', { region: 'us-east-1', credentials: awsKeys })
    expect(answer).toEqual({
      ok: true,
      checks: [{ name: 'sts:GetCallerIdentity', ok: true, message: expect.stringContaining('arn:aws:iam::444455556666:user/marketbridge') }],
    })
  })

  test('an unknown access key: not ok, InvalidClientTokenId', async () => {
    const answer = await check('aws', { region: 'us-east-1', credentials: { accessKeyId: 'AKIAUNKNOWNKEY000001', secretAccessKey: awsKeys.secretAccessKey } })
    expect(named(answer, 'sts:GetCallerIdentity')).toMatchObject({ ok: false, message: expect.stringMatching(/AKIAUNKNOWNKEY000001.*InvalidClientTokenId/) })
  })

  test('a wrong secret access key: not ok, SignatureDoesNotMatch', async () => {
    const wrong = `wrong/${randomBytes(18).toString('base64')}`
    secrets.push(wrong)
    const answer = await check('aws', { region: 'us-east-1', credentials: { accessKeyId: awsKeys.accessKeyId, secretAccessKey: wrong } })
    expect(named(answer, 'sts:GetCallerIdentity')).toMatchObject({ ok: false, message: expect.stringMatching(/secret access key does not belong.*SignatureDoesNotMatch/) })
  })

  test('a role it may assume: AssumeRole, then the session is the assumed role', async () => {
    const before = aws.callsTo('AssumeRole').length
    const answer = await check('aws', { region: 'us-east-1', credentials: awsKeys, roleArn })
    expect(answer.ok).toBe(true)
    expect(answer.checks.map((item) => item.name)).toEqual(['sts:AssumeRole', 'sts:GetCallerIdentity'])
    expect(named(answer, 'sts:GetCallerIdentity').message).toContain('arn:aws:sts::444455556666:assumed-role/MarketbridgeSeller/marketbridge-')
    expect(aws.callsTo('AssumeRole').length).toBe(before + 1)
    // GetCallerIdentity was signed with the session's temporary key, not the static one.
    expect(aws.callsTo('GetCallerIdentity').at(-1)!.accessKeyId).toMatch(/^ASIA/)
  })

  test('a role that does not trust the key: AssumeRole fails with AccessDenied; the key itself still signs in', async () => {
    const answer = await check('aws', { region: 'us-east-1', credentials: awsKeys, roleArn: 'arn:aws:iam::444455556666:role/NotTrusted' })
    expect(answer.ok).toBe(false)
    expect(named(answer, 'sts:AssumeRole')).toMatchObject({ ok: false, message: expect.stringMatching(/may not assume arn:aws:iam::444455556666:role\/NotTrusted \(AccessDenied\)/) })
    expect(named(answer, 'sts:GetCallerIdentity')).toMatchObject({ ok: true, message: expect.stringContaining('the role was not assumed') })
  })

  test('a role whose externalId is wrong: AssumeRole fails, and the externalId is named as a cause', async () => {
    const answer = await check('aws', { region: 'us-east-1', credentials: awsKeys, roleArn: externalRoleArn, externalId: 'not-the-one' })
    expect(named(answer, 'sts:AssumeRole')).toMatchObject({ ok: false, message: expect.stringContaining('externalId') })
    const good = await check('aws', { region: 'us-east-1', credentials: awsKeys, roleArn: externalRoleArn, externalId: 'expected-external-id' })
    expect(good.ok).toBe(true)
  })
})

describe('gcp: a service-account token, then one entitlement listed', () => {
  test('a good key of the provider: both checks pass, one entitlement asked for', async () => {
    gcp.addPurchase({ providerId: gcpProvider, plan: 'team', state: 'ENTITLEMENT_ACTIVE' })
    const answer = await check('gcp', { providerId: gcpProvider, audience: 'check.acme.example', serviceAccountKey: gcpKey })
    expect(answer).toEqual({
      ok: true,
      checks: [
        { name: 'oauth2:token', ok: true, message: expect.stringContaining(gcpKey.client_email!) },
        { name: 'procurement:entitlements.list', ok: true, message: expect.stringContaining(gcpProvider) },
      ],
    })
    expect(gcp.calls.filter((call) => call.route === 'listEntitlements').at(-1)!.query).toEqual({ pageSize: '1' })
  })

  test('no cached token hides a key deleted since the last good call', async () => {
    const key = (await gcp.createServiceAccount(gcpProvider)) as unknown as Record<string, string>
    secrets.push(key.private_key!, ...pemLines(key.private_key!))
    const { orgId, apiKey } = await withIntegration(broker, 'gcp', { providerId: gcpProvider, audience: 'check.acme.example', serviceAccountKey: key })
    const run = async () => (await (await broker.request(`/api/v1/orgs/${orgId}/integrations/gcp/check`, { method: 'POST', token: apiKey })).json()) as CheckBody
    expect((await run()).ok).toBe(true)
    gcp.deleteServiceAccountKey(key.client_email!)
    expect(named(await run(), 'oauth2:token')).toMatchObject({ ok: false, message: expect.stringContaining('invalid_grant') })
  })

  test('a key the token endpoint refuses: not ok, the list is not tried', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
    const forged = { ...gcpKey, private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() }
    secrets.push(forged.private_key, ...pemLines(forged.private_key))
    const answer = await check('gcp', { providerId: gcpProvider, audience: 'check.acme.example', serviceAccountKey: forged })
    expect(answer.ok).toBe(false)
    expect(named(answer, 'oauth2:token')).toMatchObject({ ok: false, message: expect.stringContaining('invalid_grant') })
    expect(named(answer, 'procurement:entitlements.list')).toMatchObject({ ok: false, message: expect.stringContaining('not tried') })
  })

  test('a provider id Procurement denies the account: the token passes, the list fails with PERMISSION_DENIED', async () => {
    const answer = await check('gcp', { providerId: 'someone-elses-provider', audience: 'check.acme.example', serviceAccountKey: gcpKey })
    expect(named(answer, 'oauth2:token').ok).toBe(true)
    expect(named(answer, 'procurement:entitlements.list')).toMatchObject({
      ok: false,
      message: expect.stringMatching(/may not act for provider someone-elses-provider \(403 PERMISSION_DENIED\)/),
    })
  })
})

describe('the route', () => {
  test('auth like the other org routes; 404 without the integration or the org; 400 for an unknown partner', async () => {
    const { orgId, apiKey } = await withIntegration(broker, 'aws', { region: 'us-east-1', credentials: awsKeys })
    const post = (path: string, token?: string | null) => broker.request(path, { method: 'POST', ...(token !== undefined ? { token } : {}) })
    expect((await post(`/api/v1/orgs/${orgId}/integrations/aws/check`, null)).status).toBe(401)
    expect((await post(`/api/v1/orgs/${orgId}/integrations/aws/check`, 'mb_live_not-a-key')).status).toBe(401)
    // The admin token may check any org's integration.
    expect(((await (await post(`/api/v1/orgs/${orgId}/integrations/aws/check`)).json()) as CheckBody).ok).toBe(true)
    // Another org's key: the same 404 as a missing org.
    const other = await broker.createOrg()
    expect((await post(`/api/v1/orgs/${orgId}/integrations/aws/check`, other.apiKey)).status).toBe(404)
    const missing = await post(`/api/v1/orgs/${orgId}/integrations/azure/check`, apiKey)
    expect(missing.status).toBe(404)
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('NOT_FOUND')
    expect((await post(`/api/v1/orgs/org_missing/integrations/aws/check`)).status).toBe(404)
    const unknown = await post(`/api/v1/orgs/${orgId}/integrations/ebay/check`, apiKey)
    expect(unknown.status).toBe(400)
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe('VALIDATION_ERROR')
  })

  test('the OpenAPI document shows the route and its answer', async () => {
    const doc = (await (await broker.request('/api/openapi.json', { token: null })).json()) as {
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>
      components: { schemas: Record<string, unknown> }
    }
    const operation = doc.paths['/api/v1/orgs/{orgId}/integrations/{partner}/check']?.post
    expect(operation).toBeDefined()
    expect(Object.keys(operation!.responses)).toEqual(expect.arrayContaining(['200', '400', '401', '404']))
    expect(doc.components.schemas.IntegrationCheck).toBeDefined()
  })

  test('a secret a provider lets slip into a message is cut out of the answer', async () => {
    const { orgId, apiKey } = await withIntegration(broker, 'azure', { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret })
    const provider = broker.deps.providers.azure
    const original = provider.checkCredentials
    provider.checkCredentials = async (integration) => [{ name: 'entra:token', ok: false, message: `refused ${String(integration.secrets.clientSecret)} for ${integration.settings.clientId}` }]
    try {
      const text = await (await broker.request(`/api/v1/orgs/${orgId}/integrations/azure/check`, { method: 'POST', token: apiKey })).text()
      expect(text).not.toContain(azure.clientSecret)
      expect(text).toContain(`refused [redacted] for ${azure.clientId}`)
    } finally {
      provider.checkCredentials = original
    }
  })

  test('property: any partner segment and any body is never a 5xx', async () => {
    const { orgId, apiKey } = await withIntegration(broker, 'azure', { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret })
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.constantFrom('azure', 'aws', 'gcp', 'AZURE', 'azure%2F', '%00', '..'), fc.string({ minLength: 1, maxLength: 20 }).map(encodeURIComponent)),
        fc.oneof(fc.constant(undefined), fc.string({ maxLength: 200 }), fc.json().map((json) => json)),
        fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded'),
        async (partner, body, contentType) => {
          const response = await broker.request(`/api/v1/orgs/${orgId}/integrations/${partner}/check`, {
            method: 'POST',
            token: apiKey,
            ...(body === undefined ? {} : { body, headers: { 'content-type': contentType } }),
          })
          const text = await response.text()
          expect(response.status, text).toBeLessThan(500)
          expect(text).not.toContain(azure.clientSecret)
        },
      ),
      { numRuns: 60 },
    )
  })
})

describe('a marketplace that hangs', () => {
  let hanging: Server
  let hangingUrl: string
  const sockets = new Set<Socket>()
  let connections = 0
  let slow: TestBroker

  beforeAll(async () => {
    // Accepts connections and never answers a byte.
    hanging = createServer((socket) => {
      connections++
      sockets.add(socket)
      socket.on('close', () => sockets.delete(socket))
    })
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve))
    const address = hanging.address() as { port: number }
    hangingUrl = `http://127.0.0.1:${address.port}`
    slow = await createTestBroker({
      UPSTREAM_TIMEOUT_MS: '300',
      AZURE_MARKETPLACE_API_URL: hangingUrl,
      AZURE_LOGIN_URL: hangingUrl,
      AWS_STS_URL: hangingUrl,
      GCP_OAUTH_TOKEN_URL: `${hangingUrl}/token`,
      GCP_PROCUREMENT_API_URL: hangingUrl,
      GCP_MARKETPLACE_CERTS_URL: `${hangingUrl}/certs`,
    })
  })

  afterAll(async () => {
    await slow?.close()
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => hanging?.close(resolve))
  })

  test.each([
    ['azure', 'entra:token', () => ({ tenantId: 'publisher-tenant', clientId: 'app-hang', clientSecret: azure.clientSecret })],
    ['aws', 'sts:AssumeRole', () => ({ region: 'us-east-1', credentials: awsKeys, roleArn })],
    ['gcp', 'oauth2:token', () => ({ providerId: gcpProvider, audience: 'check.acme.example', serviceAccountKey: gcpKey })],
  ])('%s: answered within twice UPSTREAM_TIMEOUT_MS, not ok, saying it had no answer', async (partner, step, body) => {
    const { orgId, apiKey } = await withIntegration(slow, partner, body())
    const connected = connections
    const started = Date.now()
    const response = await slow.request(`/api/v1/orgs/${orgId}/integrations/${partner}/check`, { method: 'POST', token: apiKey })
    const elapsed = Date.now() - started
    expect(response.status).toBe(200)
    const answer = (await response.json()) as CheckBody
    expect(answer.ok).toBe(false)
    // The provider's own step gave up at the deadline it was handed (not the hard bound, which names the partner).
    expect(answer.checks[0]).toMatchObject({ name: step, ok: false, message: expect.stringMatching(/no answer|in time/i) })
    // 2 × 300 ms budget, and slack for a busy machine.
    expect(elapsed).toBeLessThan(3_000)
    // It did try the marketplace (the hanging server), rather than answer without asking.
    expect(connections).toBeGreaterThan(connected)
  })

  test('a provider that ignores its deadline is cut off by the hard bound', async () => {
    const { orgId, apiKey } = await withIntegration(slow, 'azure', { tenantId: 'publisher-tenant', clientId: 'app-hang', clientSecret: azure.clientSecret })
    const provider = slow.deps.providers.azure
    const original = provider.checkCredentials
    provider.checkCredentials = () => new Promise(() => {})
    try {
      const started = Date.now()
      const response = await slow.request(`/api/v1/orgs/${orgId}/integrations/azure/check`, { method: 'POST', token: apiKey })
      expect(Date.now() - started).toBeLessThan(3_000)
      expect(await response.json()).toEqual({ ok: false, checks: [{ name: 'azure', ok: false, message: 'no answer from the marketplace within 600 ms' }] })
    } finally {
      provider.checkCredentials = original
    }
  })
})

// The Workers runtime once (the postgres project runs the Node brokers above on PostgreSQL; workerd keeps D1).
describe.skipIf(process.env.MB_TEST_DIALECT === 'postgres')('workerd + D1: azure', () => {
  let worker: WorkerProcess
  let persistTo: string

  beforeAll(async () => {
    persistTo = mkdtempSync(join(tmpdir(), 'marketbridge-check-'))
    worker = await startWorker(persistTo, { AZURE_MARKETPLACE_API_URL: azure.url, AZURE_LOGIN_URL: azure.url })
  }, 120_000)

  afterAll(async () => {
    await worker?.stop()
    if (persistTo) rmSync(persistTo, { recursive: true, force: true })
  })

  test('good credentials pass, a wrong secret fails saying why, and neither answer nor log holds a secret', async () => {
    const client = httpBroker(worker.url)
    const wrong = `sec~${randomBytes(12).toString('base64url')}`
    const run = async (clientSecret: string) => {
      const { orgId, apiKey } = await withIntegration(client, 'azure', { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret })
      const response = await client.request(`/api/v1/orgs/${orgId}/integrations/azure/check`, { method: 'POST', token: apiKey })
      const text = await response.text()
      expect(response.status, text).toBe(200)
      for (const secret of [azure.clientSecret, wrong]) expect(text).not.toContain(secret)
      return JSON.parse(text) as CheckBody
    }
    expect(await run(azure.clientSecret)).toEqual({ ok: true, checks: [{ name: 'entra:token', ok: true, message: expect.stringContaining(azure.clientId) }] })
    const bad = await run(wrong)
    expect(bad.ok).toBe(false)
    expect(bad.checks[0]!.message).toMatch(/AADSTS7000215.*client secret is wrong/)
    expect(worker.output()).toContain('integration checked')
    for (const secret of [azure.clientSecret, wrong]) expect(worker.output()).not.toContain(secret)
  })
})
