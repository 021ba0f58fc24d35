import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type AwsEmulator, createAwsEmulator } from '../sandbox/emulators/aws'
import { type GcpEmulator, createGcpEmulator } from '../sandbox/emulators/gcp'
import { type AzureSetup, startAzure, waitFor } from './helpers'
import { startServer } from './node-process'

/** The real server's output over a full run, and its shutdown. */
let azure: AzureSetup
let slowAzure: AzureSetup
let aws: AwsEmulator
let gcp: GcpEmulator
const closers: Array<() => Promise<void>> = []
let awsUrl: string
let gcpUrl: string
const dirs: string[] = []

beforeAll(async () => {
  azure = await startAzure()
  slowAzure = await startAzure({ latencyMs: 700 })
  aws = createAwsEmulator()
  const a = await aws.listen()
  awsUrl = a.url
  gcp = await createGcpEmulator()
  const g = await gcp.listen()
  gcpUrl = g.url
  closers.push(azure.close, slowAzure.close, a.close, g.close)
})
afterAll(async () => {
  for (const close of closers) await close()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

function scratch() {
  const dir = mkdtempSync(join(tmpdir(), 'marketbridge-ops-'))
  dirs.push(dir)
  return dir
}

const ADMIN = 'operability-admin-token-0123456789'
const form = (field: string, value: string) => ({
  method: 'POST',
  redirect: 'manual' as const,
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ [field]: value }).toString(),
})

describe('logs you can operate with', () => {
  test('a full run on all three marketplaces: one JSON line per request and per call, and no token, key or secret anywhere in the output', async () => {
    const dir = scratch()
    const encryptionKey = Buffer.alloc(32, 9).toString('base64')
    const server = await startServer(dir, {
      ADMIN_TOKEN: ADMIN,
      ENCRYPTION_KEY: encryptionKey,
      DATABASE_URL: `sqlite:${join(dir, 'db.sqlite')}`,
      AZURE_MARKETPLACE_API_URL: azure.url,
      AZURE_LOGIN_URL: azure.url,
      AWS_MARKETPLACE_METERING_URL: awsUrl,
      AWS_MARKETPLACE_ENTITLEMENT_URL: awsUrl,
      AWS_STS_URL: awsUrl,
      GCP_MARKETPLACE_CERTS_URL: gcp.certsUrl,
      GCP_OAUTH_TOKEN_URL: gcp.tokenUrl,
      GCP_PROCUREMENT_API_URL: gcpUrl,
    })
    const secrets: string[] = [ADMIN, encryptionKey, azure.clientSecret]
    try {
      const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }
      const { org, apiKey } = (await (
        await fetch(`${server.url}/api/v1/orgs`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'Logs', fulfillmentUrl: 'https://logs.example/s' }) })
      ).json()) as { org: { id: string }; apiKey: string }
      secrets.push(apiKey)
      const put = (partner: string, body: unknown) =>
        fetch(`${server.url}/api/v1/orgs/${org.id}/integrations/${partner}`, { method: 'PUT', headers: { ...admin, authorization: `Bearer ${apiKey}` }, body: JSON.stringify(body) })
      aws.addCredentials('AKIALOGTEST000000001', 'aws/secret+log=key')
      secrets.push('aws/secret+log=key')
      const key = await gcp.createServiceAccount('log-provider')
      secrets.push(key.private_key.split('\n')[1]!)
      expect((await put('azure', { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret })).status).toBe(200)
      expect((await put('aws', { credentials: { accessKeyId: 'AKIALOGTEST000000001', secretAccessKey: 'aws/secret+log=key' } })).status).toBe(200)
      expect((await put('gcp', { providerId: 'log-provider', audience: 'logs.example', serviceAccountKey: key })).status).toBe(200)

      const base = `${server.url}/public/signup`
      const sub = azure.emulator.addSubscription({ appId: azure.clientId })
      const azureToken = azure.emulator.issuePurchaseToken(sub.id)
      const { token: awsToken } = aws.addCustomer({ ProductCode: 'prod-log' })
      const { accountId } = gcp.addPurchase({ providerId: 'log-provider' })
      const gcpToken = await gcp.mintToken({ aud: 'logs.example', sub: accountId })
      const badGcp = await gcp.mintToken({ aud: 'elsewhere.example', sub: accountId })
      secrets.push(azureToken, encodeURIComponent(azureToken), awsToken, gcpToken, badGcp, 'bm90LXJlYWwrdG9rZW4=')
      azure.emulator.failNext('resolve', 503, 1)
      expect((await fetch(`${base}/azure/orgId/${org.id}?token=${encodeURIComponent(azureToken)}`, { redirect: 'manual' })).status).toBe(303)
      expect((await fetch(`${base}/azure/orgId/${org.id}?token=${encodeURIComponent(azureToken)}`, { redirect: 'manual' })).status).toBe(303)
      expect((await fetch(`${base}/azure/orgId/${org.id}?token=bm90LXJlYWwrdG9rZW4=`, { redirect: 'manual' })).status).toBe(400)
      expect((await fetch(`${base}/aws/orgId/${org.id}`, form('x-amzn-marketplace-token', awsToken))).status).toBe(303)
      expect((await fetch(`${base}/gcp/orgId/${org.id}`, form('x-gcp-marketplace-token', gcpToken))).status).toBe(303)
      expect((await fetch(`${base}/gcp/orgId/${org.id}`, form('x-gcp-marketplace-token', badGcp))).status).toBe(400)
      expect((await fetch(`${server.url}/api/v1/orgs/${org.id}/entitlements`, { headers: { authorization: `Bearer ${apiKey}` } })).status).toBe(200)
      // Entra's and Google's access tokens, as the marketplaces saw them.
      for (const call of azure.emulator.callsTo('resolve')) secrets.push(call.headers.authorization!.slice(7))
      for (const call of gcp.callsTo('approve')) secrets.push(call.authorization!.slice(7))
    } finally {
      await server.stop()
    }

    const output = server.output()
    console.log(output.split("\n").filter((l) => /unhandled|error/.test(l)).join("\n"))
    for (const secret of secrets) expect(output.includes(secret), `output contains ${secret.slice(0, 12)}…`).toBe(false)
    const lines = output
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
    const requests = lines.filter((line) => line.msg === 'request')
    expect(requests.length).toBeGreaterThanOrEqual(10)
    for (const line of requests) {
      expect(line).toEqual(expect.objectContaining({ requestId: expect.any(String), route: expect.any(String), status: expect.any(Number), latencyMs: expect.any(Number) }))
    }
    const landings = requests.filter((line) => line.route === '/public/signup/:partner/orgId/:orgId')
    expect(landings.every((line) => line.orgId && line.partner && line.outcome)).toBe(true)
    const calls = lines.filter((line) => line.msg === 'upstream call')
    expect(calls.some((line) => line.call === 'azure.resolve' && line.attempt === 2)).toBe(true)
    expect(calls.every((line) => 'status' in line && typeof line.latencyMs === 'number')).toBe(true)
  })
})

describe('shutdown', () => {
  test('SIGTERM lets the in-flight landing finish, then the server exits 0', async () => {
    const dir = scratch()
    const server = await startServer(dir, {
      ADMIN_TOKEN: ADMIN,
      DATABASE_URL: `sqlite:${join(dir, 'db.sqlite')}`,
      AZURE_MARKETPLACE_API_URL: slowAzure.url,
      AZURE_LOGIN_URL: slowAzure.url,
    })
    const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }
    const { org } = (await (
      await fetch(`${server.url}/api/v1/orgs`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'Drain', fulfillmentUrl: 'https://drain.example/s' }) })
    ).json()) as { org: { id: string } }
    await fetch(`${server.url}/api/v1/orgs/${org.id}/integrations/azure`, {
      method: 'PUT',
      headers: admin,
      body: JSON.stringify({ tenantId: slowAzure.tenantId, clientId: slowAzure.clientId, clientSecret: slowAzure.clientSecret }),
    })
    const sub = slowAzure.emulator.addSubscription({ appId: slowAzure.clientId })
    // Resolve and Activate take 700 ms each: SIGTERM arrives once Microsoft has the resolve call
    // and before it has the activation, so the landing is mid-way.
    const token = slowAzure.emulator.issuePurchaseToken(sub.id)
    const landing = fetch(`${server.url}/public/signup/azure/orgId/${org.id}?token=${encodeURIComponent(token)}`, { redirect: 'manual' })
    await waitFor('the landing at Microsoft', () => slowAzure.emulator.callsTo('resolve').some((call) => call.headers['x-ms-marketplace-token'] === token))
    expect(slowAzure.emulator.callsTo('activate').filter((call) => call.path.includes(sub.id))).toEqual([])
    const exit = server.stop('SIGTERM')
    // The server has taken the signal (it logs this, then stops listening at once).
    await waitFor('the server shutting down', () => server.output().includes('shutting down'))
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow() // no new connections
    const response = await landing
    expect(response.status).toBe(303)
    expect(await exit).toBe(0)
    expect(slowAzure.emulator.subscriptions.get(sub.id)!.saasSubscriptionStatus).toBe('Subscribed')
  })
})
