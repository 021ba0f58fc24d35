import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createAwsEmulator } from '../sandbox/emulators/aws'
import { createAzureEmulator } from '../sandbox/emulators/azure'
import { createGcpEmulator } from '../sandbox/emulators/gcp'
import { createServiceControlEmulator } from '../sandbox/emulators/gcp-servicecontrol'
import { createTestBroker } from './helpers'
import { inPastHour } from './metering-setup'
import { reportUsage } from '../src/domain/usage-reporter'

/**
 * Every upstream URL override keeps its path (contract, "Wave 2" preamble): with
 * `http://127.0.0.1:9000/gcp` as a root the calls go to `http://127.0.0.1:9000/gcp/v1/…`.
 * The three emulators are served only under a base path here (`/azure-api`, `/aws-api`,
 * `/gcp-api`, …), so a client that dropped the path would get a 404 and the landing would fail.
 */
const closers: Array<() => Promise<void>> = []
afterAll(async () => {
  for (const close of closers) await close()
})

async function underPrefixes(mounts: Record<string, Hono>) {
  // Not strict: the AWS SDK posts to `<endpoint>/` (`/aws-api/`), where the emulator serves `/`.
  const host = new Hono({ strict: false })
  for (const [prefix, app] of Object.entries(mounts)) host.route(prefix, app)
  host.all('*', (c) => c.text('not under a mounted base path', 404))
  return new Promise<string>((resolve) => {
    const server = serve({ fetch: host.fetch, hostname: '127.0.0.1', port: 0 }, (info: AddressInfo) => {
      closers.push(() => new Promise<void>((done) => server.close(() => done())))
      resolve(`http://127.0.0.1:${info.port}`)
    })
  })
}

const azure = createAzureEmulator()
const aws = createAwsEmulator()
let gcp: Awaited<ReturnType<typeof createGcpEmulator>>
let base: string
const gcpPaths: string[] = []
const scPaths: string[] = []
let serviceControl: ReturnType<typeof createServiceControlEmulator>
const app = { tenantId: 'prefix-tenant', clientId: 'prefix-app', clientSecret: 'prefix~secret' }

beforeAll(async () => {
  gcp = await createGcpEmulator()
  azure.registerApp(app)
  // Google's emulator routes by the whole path, so its base path is taken off in front of it
  // (the paths the broker asked for are recorded here, as they arrived).
  const { url: gcpEmulator, close } = await gcp.listen()
  closers.push(close)
  const gcpProxy = new Hono().all('*', async (c) => {
    const url = new URL(c.req.url)
    gcpPaths.push(`${c.req.method} ${url.pathname}`)
    const body = ['GET', 'HEAD'].includes(c.req.method) ? undefined : await c.req.arrayBuffer()
    return fetch(`${gcpEmulator}${url.pathname.replace(/^\/gcp-api/, '')}${url.search}`, { method: c.req.method, headers: c.req.raw.headers, body })
  })
  serviceControl = createServiceControlEmulator({ isAuthorized: (bearer) => gcp.isAccessToken(bearer) })
  const sc = await serviceControl.listen()
  closers.push(sc.close)
  const scProxy = new Hono().all('*', async (c) => {
    const url = new URL(c.req.url)
    scPaths.push(`${c.req.method} ${url.pathname}`)
    return fetch(`${sc.url}${url.pathname.replace(/^\/sc-api/, '')}${url.search}`, { method: c.req.method, headers: c.req.raw.headers, body: await c.req.arrayBuffer() })
  })
  base = await underPrefixes({ '/azure-api': azure.app, '/entra': azure.app, '/aws-api': aws.app, '/gcp-api': gcpProxy, '/sc-api': scProxy })
})

function form(field: string, value: string): RequestInit {
  return { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ [field]: value }).toString() }
}

describe('upstream URL overrides keep their base path', () => {
  test('Azure (API, Entra login), AWS (metering, entitlements, STS) and Google (certificates, token, Procurement): each landing reaches the emulator under its path', async () => {
    const broker = await createTestBroker({
      AZURE_MARKETPLACE_API_URL: `${base}/azure-api`,
      AZURE_LOGIN_URL: `${base}/entra`,
      AWS_MARKETPLACE_METERING_URL: `${base}/aws-api`,
      AWS_MARKETPLACE_ENTITLEMENT_URL: `${base}/aws-api`,
      AWS_STS_URL: `${base}/aws-api`,
      GCP_PROCUREMENT_API_URL: `${base}/gcp-api`,
      GCP_MARKETPLACE_CERTS_URL: `${base}/gcp-api${new URL(gcp.certsUrl).pathname}`,
      GCP_OAUTH_TOKEN_URL: `${base}/gcp-api/token`,
    })
    const { org, apiKey } = await broker.createOrg()
    const put = async (partner: string, json: unknown) => {
      const response = await broker.request(`/api/v1/orgs/${org.id}/integrations/${partner}`, { method: 'PUT', token: apiKey, json })
      expect(response.status, await response.clone().text()).toBe(200)
    }
    aws.addCredentials('AKIAPREFIXTEST000001', 'prefix/secret')
    const key = await gcp.createServiceAccount('prefix-provider')
    await put('azure', app)
    const roleArn = 'arn:aws:iam::294406891311:role/PrefixRole'
    aws.addRole(roleArn, 'AKIAPREFIXTEST000001', 'prefix-ext')
    await put('aws', { credentials: { accessKeyId: 'AKIAPREFIXTEST000001', secretAccessKey: 'prefix/secret' }, roleArn, externalId: 'prefix-ext' })
    await put('gcp', { providerId: 'prefix-provider', audience: 'prefix.example', serviceAccountKey: key })

    const sub = azure.addSubscription({ appId: app.clientId })
    const azureLanding = await broker.request(`/public/signup/azure/orgId/${org.id}?token=${encodeURIComponent(azure.issuePurchaseToken(sub.id))}`, { token: null })
    expect(azureLanding.status).toBe(303)
    const paths = azure.calls.map((call) => `${call.method} ${call.path}`)
    expect(paths).toEqual([
      `POST /entra/${app.tenantId}/oauth2/v2.0/token`,
      'POST /azure-api/api/saas/subscriptions/resolve',
      `GET /azure-api/api/saas/subscriptions/${sub.id}/listAvailablePlans`,
      `POST /azure-api/api/saas/subscriptions/${sub.id}/activate`,
    ])

    const { token } = aws.addCustomer({ ProductCode: 'prefix-product' })
    const awsLanding = await broker.request(`/public/signup/aws/orgId/${org.id}`, { token: null, ...form('x-amzn-marketplace-token', token) })
    expect(awsLanding.status).toBe(303)
    expect(aws.calls.map((call) => call.target)).toEqual(['AssumeRole', 'ResolveCustomer', 'GetEntitlements'])

    const { accountId } = gcp.addPurchase({ providerId: 'prefix-provider' })
    const jwt = await gcp.mintToken({ aud: 'prefix.example', sub: accountId })
    const gcpLanding = await broker.request(`/public/signup/gcp/orgId/${org.id}`, { token: null, ...form('x-gcp-marketplace-token', jwt) })
    expect(gcpLanding.status, await gcpLanding.clone().text()).toBe(303)
    expect(gcpPaths).toEqual([
      `GET /gcp-api${new URL(gcp.certsUrl).pathname}`,
      'POST /gcp-api/token',
      `POST /gcp-api/v1/providers/prefix-provider/accounts/${accountId}:approve`,
      'GET /gcp-api/v1/providers/prefix-provider/entitlements',
    ])
  })

  test('usage reports too: Azure batchUsageEvent, AWS BatchMeterUsage and Google Service Control (GCP_SERVICE_CONTROL_URL) under their paths', async () => {
    const broker = await createTestBroker({
      AZURE_MARKETPLACE_API_URL: `${base}/azure-api`,
      AZURE_LOGIN_URL: `${base}/entra`,
      AWS_MARKETPLACE_METERING_URL: `${base}/aws-api`,
      AWS_MARKETPLACE_ENTITLEMENT_URL: `${base}/aws-api`,
      GCP_PROCUREMENT_API_URL: `${base}/gcp-api`,
      GCP_MARKETPLACE_CERTS_URL: `${base}/gcp-api${new URL(gcp.certsUrl).pathname}`,
      GCP_OAUTH_TOKEN_URL: `${base}/gcp-api/token`,
      GCP_SERVICE_CONTROL_URL: `${base}/sc-api`,
    })
    const { org, apiKey } = await broker.createOrg()
    const put = async (partner: string, json: unknown) => expect((await broker.request(`/api/v1/orgs/${org.id}/integrations/${partner}`, { method: 'PUT', token: apiKey, json })).status).toBe(200)
    aws.addCredentials('AKIAPREFIXUSAGE00001', 'prefix/usage')
    await put('azure', app)
    await put('aws', { credentials: { accessKeyId: 'AKIAPREFIXUSAGE00001', secretAccessKey: 'prefix/usage' } })
    await put('gcp', { providerId: 'prefix-usage', audience: 'usage.example', serviceAccountKey: await gcp.createServiceAccount('prefix-usage'), serviceNames: { 'usage-product': 'usage-product.example.com' } })
    const landed = async (response: Response) => new URL((await response).headers.get('location')!).searchParams.get('sugerEntitlementId')!
    const sub = azure.addSubscription({ appId: app.clientId })
    const azureId = await landed(await broker.request(`/public/signup/azure/orgId/${org.id}?token=${encodeURIComponent(azure.issuePurchaseToken(sub.id))}`, { token: null }))
    const awsId = await landed(await broker.request(`/public/signup/aws/orgId/${org.id}`, { token: null, ...form('x-amzn-marketplace-token', aws.addCustomer({ ProductCode: 'prefix-usage' }).token) }))
    const { accountId, entitlement } = gcp.addPurchase({ providerId: 'prefix-usage', product: 'usage-product', state: 'ENTITLEMENT_ACTIVE' })
    serviceControl.addConsumer('usage-product.example.com', entitlement!.usageReportingId)
    const gcpId = await landed(await broker.request(`/public/signup/gcp/orgId/${org.id}`, { token: null, ...form('x-gcp-marketplace-token', await gcp.mintToken({ aud: 'usage.example', sub: accountId })) }))
    // Google takes usage up to an hour back: the broker's clock is set just after the hour the records fall in.
    const at = inPastHour(1, 50)
    broker.deps.now = () => new Date(Math.floor(Date.parse(at) / 3600_000) * 3600_000 + 3600_000 + 120_000)
    for (const id of [azureId, awsId, gcpId]) {
      const recorded = await broker.request(`/api/v1/orgs/${org.id}/entitlements/${id}/usage`, { method: 'POST', token: apiKey, json: { dimension: 'calls', quantity: 2, timestamp: at, idempotencyKey: `prefix-${id}` } })
      expect(recorded.status, await recorded.clone().text()).toBe(202)
    }
    azure.calls.length = 0
    aws.calls.length = 0
    await reportUsage(broker.deps, broker.deps.logger)
    expect(azure.calls.map((call) => `${call.method} ${call.path}`)).toContain('POST /azure-api/api/batchUsageEvent')
    expect(aws.calls.map((call) => call.target)).toContain('BatchMeterUsage')
    expect(scPaths).toEqual(['POST /sc-api/v1/services/usage-product.example.com:check', 'POST /sc-api/v1/services/usage-product.example.com:report'])
    for (const id of [azureId, awsId, gcpId]) {
      const { items } = (await (await broker.request(`/api/v1/orgs/${org.id}/entitlements/${id}/usage`, { token: apiKey })).json()) as { items: Array<{ status: string }> }
      expect(items.map((item) => item.status), JSON.stringify(items)).toEqual(['REPORTED'])
    }
  })
})
