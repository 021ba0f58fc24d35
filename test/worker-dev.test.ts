import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type AwsEmulator, createAwsEmulator } from '../sandbox/emulators/aws'
import { type GcpEmulator, createGcpEmulator } from '../sandbox/emulators/gcp'
import { ADMIN_TOKEN, type AzureSetup, startAzure } from './helpers'
import { openPersistedD1, startWorker } from './worker-process'

/**
 * `npm run dev:worker` for real: wrangler dev, workerd, a local D1 persisted to a scratch
 * folder. The same app factory must serve health, the org and entitlement API and the Azure
 * landing (MSAL and fetch inside workerd) from D1, and keep its data across a restart.
 */
const ADMIN = ADMIN_TOKEN


let azure: AzureSetup
let aws: AwsEmulator
let gcp: GcpEmulator
let vars: Record<string, string>
const closers: Array<() => Promise<void>> = []
let persistTo: string
beforeAll(async () => {
  azure = await startAzure()
  aws = createAwsEmulator()
  const awsServer = await aws.listen()
  aws.addCredentials('AKIAWORKERTEST000001', 'worker/secret+key')
  gcp = await createGcpEmulator()
  const gcpServer = await gcp.listen()
  closers.push(azure.close, awsServer.close, gcpServer.close)
  vars = {
    AZURE_LOGIN_URL: azure.url,
    AZURE_MARKETPLACE_API_URL: azure.url,
    AWS_MARKETPLACE_METERING_URL: awsServer.url,
    AWS_MARKETPLACE_ENTITLEMENT_URL: awsServer.url,
    AWS_STS_URL: awsServer.url,
    GCP_MARKETPLACE_CERTS_URL: gcp.certsUrl,
    GCP_OAUTH_TOKEN_URL: gcp.tokenUrl,
    GCP_PROCUREMENT_API_URL: gcpServer.url,
  }
  persistTo = mkdtempSync(join(tmpdir(), 'marketbridge-d1-'))
})
afterAll(async () => {
  for (const close of closers) await close()
  rmSync(persistTo, { recursive: true, force: true })
})

describe('npm run dev:worker (workerd + D1)', () => {
  test('serves health, orgs, integrations, the landing for all three marketplaces and entitlements from D1, across a restart', async () => {
    const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }
    const sub = azure.emulator.addSubscription({ appId: azure.clientId, quantity: 2 })
    const token = azure.emulator.issuePurchaseToken(sub.id)
    let orgId: string
    let apiKey: string
    let location: string

    const first = await startWorker(persistTo, vars)
    try {
      // Migrated before the first request: the persisted D1 file already has the schema.
      const sqlite = openPersistedD1(persistTo)
      const tables = sqlite.prepare("select name from sqlite_master where type = 'table'").all() as Array<{ name: string }>
      sqlite.close()
      expect(tables.map((t) => t.name)).toEqual(expect.arrayContaining(['orgs', 'api_keys', 'integrations', 'entitlements', 'entitlement_events', 'landing_tokens']))

      expect(await (await fetch(`${first.url}/healthz`)).json()).toEqual({ status: 'ok' })
      const created = await fetch(`${first.url}/api/v1/orgs`, {
        method: 'POST',
        headers: admin,
        body: JSON.stringify({ name: 'Edge', fulfillmentUrl: 'https://edge.example/signup' }),
      })
      expect(created.status).toBe(201)
      ;({ org: { id: orgId }, apiKey } = (await created.json()) as { org: { id: string }; apiKey: string })
      const put = await fetch(`${first.url}/api/v1/orgs/${orgId}/integrations/azure`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret }),
      })
      expect(put.status).toBe(200)
      const { integration } = (await put.json()) as { integration: { signupUrl: string } }
      // Without PUBLIC_URL the Worker's own address is the public one.
      expect(integration.signupUrl.startsWith(`${first.url}/public/signup/azure/orgId/${orgId}?partnerId=`)).toBe(true)

      const landing = await fetch(`${first.url}/public/signup/azure/orgId/${orgId}?token=${encodeURIComponent(token)}`, { redirect: 'manual' })
      expect(landing.status).toBe(303)
      location = landing.headers.get('location')!
      expect(new URL(location).searchParams.get('partner')).toBe('azure')
      expect(azure.emulator.subscriptions.get(sub.id)!.saasSubscriptionStatus).toBe('Subscribed')

      // A literal "+" in the query reaches Microsoft as "+" through wrangler's proxy and workerd too.
      const plusSub = azure.emulator.addSubscription({ appId: azure.clientId })
      const plusToken = azure.emulator.issuePurchaseToken(plusSub.id)
      const literal = await fetch(`${first.url}/public/signup/azure/orgId/${orgId}?token=${plusToken.replace(/\//g, '%2F').replace(/=/g, '%3D')}`, { redirect: 'manual' })
      expect(literal.status).toBe(303)
      expect(azure.emulator.callsTo('resolve').at(-1)!.headers['x-ms-marketplace-token']).toBe(plusToken)

      const missing = await fetch(`${first.url}/public/signup/azure/orgId/${orgId}`)
      expect(missing.status).toBe(400)
      expect(await missing.text()).toContain('Configure account')

      // AWS (SDK clients, SigV4) and Google (jose, the generated Procurement client) inside workerd too.
      const orgAuth = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' }
      const putAws = await fetch(`${first.url}/api/v1/orgs/${orgId}/integrations/aws`, {
        method: 'PUT',
        headers: orgAuth,
        body: JSON.stringify({ credentials: { accessKeyId: 'AKIAWORKERTEST000001', secretAccessKey: 'worker/secret+key' } }),
      })
      expect(putAws.status).toBe(200)
      const { customer, token: awsToken } = aws.addCustomer({ ProductCode: 'prod-edge', LicenseArn: 'arn:aws:license-manager::1:license:l-edge' })
      aws.addEntitlement({ ProductCode: 'prod-edge', Dimension: 'seats', CustomerIdentifier: customer.CustomerIdentifier, Value: { IntegerValue: 3 } })
      const awsLanding = await fetch(`${first.url}/public/signup/aws/orgId/${orgId}`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ 'x-amzn-marketplace-token': awsToken }).toString(),
      })
      expect(awsLanding.status).toBe(303)
      expect(new URL(awsLanding.headers.get('location')!).searchParams.get('offerType')).toBe('CONTRACT')

      const putGcp = await fetch(`${first.url}/api/v1/orgs/${orgId}/integrations/gcp`, {
        method: 'PUT',
        headers: orgAuth,
        body: JSON.stringify({ providerId: 'edge-provider', audience: 'edge.example', serviceAccountKey: await gcp.createServiceAccount('edge-provider') }),
      })
      expect(putGcp.status).toBe(200)
      const { accountId } = gcp.addPurchase({ providerId: 'edge-provider', private: true })
      const gcpLanding = await fetch(`${first.url}/public/signup/gcp/orgId/${orgId}`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ 'x-gcp-marketplace-token': await gcp.mintToken({ aud: 'edge.example', sub: accountId }) }).toString(),
      })
      expect(gcpLanding.status).toBe(303)
      expect(new URL(gcpLanding.headers.get('location')!).searchParams.get('offerType')).toBe('PRIVATE')
      const refused = await fetch(`${first.url}/public/signup/gcp/orgId/${orgId}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ 'x-gcp-marketplace-token': await gcp.mintToken({ aud: 'edge.example', sub: accountId }, { alg: 'none' }) }).toString(),
      })
      expect(refused.status).toBe(400)
    } finally {
      await first.stop()
    }

    // Expire the AWS landing's token mapping while the Worker is down; the cron handler must prune it.
    const d1 = openPersistedD1(persistTo, false)
    expect((d1.prepare('select count(*) as n from landing_tokens').get() as { n: number }).n).toBe(4)
    d1.prepare("update landing_tokens set expires_at = '2000-01-01T00:00:00.000Z' where partner = 'aws'").run()
    d1.close()

    const second = await startWorker(persistTo, vars)
    try {
      const list = await fetch(`${second.url}/api/v1/orgs/${orgId}/entitlements`, { headers: { authorization: `Bearer ${apiKey}` } })
      expect(list.status).toBe(200)
      const { items } = (await list.json()) as { items: Array<{ id: string; status: string; externalId: string; partner: string }> }
      expect(items.map((item) => item.partner).sort()).toEqual(['aws', 'azure', 'azure', 'gcp'])
      expect(items.find((item) => item.externalId === sub.id)).toMatchObject({ status: 'ACTIVE', partner: 'azure', id: new URL(location).searchParams.get('sugerEntitlementId') })
      const activations = azure.emulator.callsTo('activate').length
      const refresh = await fetch(`${second.url}/public/signup/azure/orgId/${orgId}?token=${encodeURIComponent(token)}`, { redirect: 'manual' })
      expect(refresh.status).toBe(303)
      expect(refresh.headers.get('location')).toBe(location)
      expect(azure.emulator.callsTo('activate').length).toBe(activations)
      const other = await fetch(`${second.url}/api/v1/orgs/${orgId}`, { headers: { authorization: 'Bearer mbk_not-a-key' } })
      expect(other.status).toBe(401)
      // The cron trigger dev:worker fires by itself, nobody else.
      await second.jobRan()
    } finally {
      await second.stop()
    }
    const after = openPersistedD1(persistTo)
    const left = after.prepare('select partner from landing_tokens order by partner').all() as Array<{ partner: string }>
    after.close()
    expect(left.map((row) => row.partner)).toEqual(['azure', 'azure', 'gcp'])
  }, 120_000)
})
