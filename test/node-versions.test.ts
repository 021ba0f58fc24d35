import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type AwsEmulator, createAwsEmulator } from '../sandbox/emulators/aws'
import { type GcpEmulator, createGcpEmulator } from '../sandbox/emulators/gcp'
import { type AzureSetup, startAzure } from './helpers'
import { startServer } from './node-process'

/**
 * `npm start` on each supported Node: the suite's own (Node 24, brought by the `node` dev
 * dependency) and, when MARKETBRIDGE_SMOKE_NODE names another binary, that one too. `.ci/run`
 * installs Node 22 from the npm registry and sets it, so CI covers the users who run the broker
 * on 22 with their system Node (`npm ci --omit=dev`); in CI its absence is a failure.
 */
const smokeNode = process.env.MARKETBRIDGE_SMOKE_NODE
const runtimes = [process.execPath, ...(smokeNode ? [smokeNode] : [])].map((path) => ({
  path,
  version: execFileSync(path, ['--version'], { encoding: 'utf8' }).trim(),
}))

let azure: AzureSetup
let aws: AwsEmulator
let gcp: GcpEmulator
const closers: Array<() => Promise<void>> = []
const dirs: string[] = []
let awsUrl: string
let gcpUrl: string

beforeAll(async () => {
  azure = await startAzure()
  aws = createAwsEmulator()
  gcp = await createGcpEmulator()
  const a = await aws.listen()
  const g = await gcp.listen()
  awsUrl = a.url
  gcpUrl = g.url
  closers.push(azure.close, a.close, g.close)
})
afterAll(async () => {
  for (const close of closers) await close()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

const ADMIN = 'node-versions-admin-token-0123456789'
const form = (field: string, value: string) => ({
  method: 'POST',
  redirect: 'manual' as const,
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ [field]: value }).toString(),
})

describe('supported Node versions', () => {
  test.skipIf(process.env.CI !== 'true')('CI provides a Node 22 binary for the smoke run (MARKETBRIDGE_SMOKE_NODE)', () => {
    expect(smokeNode, '.ci/run sets MARKETBRIDGE_SMOKE_NODE').toBeTruthy()
    expect(runtimes.map((r) => r.version.split('.')[0])).toEqual(['v24', 'v22'])
  })

  test.each(runtimes)('npm start on Node $version: one landing per marketplace, then a restart on the same database', async ({ path, version }) => {
    const dir = mkdtempSync(join(tmpdir(), 'marketbridge-node-'))
    dirs.push(dir)
    const env = {
      ADMIN_TOKEN: ADMIN,
      DATABASE_URL: `sqlite:${join(dir, 'broker.db')}`,
      AZURE_MARKETPLACE_API_URL: azure.url,
      AZURE_LOGIN_URL: azure.url,
      AWS_MARKETPLACE_METERING_URL: awsUrl,
      AWS_MARKETPLACE_ENTITLEMENT_URL: awsUrl,
      AWS_STS_URL: awsUrl,
      GCP_MARKETPLACE_CERTS_URL: gcp.certsUrl,
      GCP_OAUTH_TOKEN_URL: gcp.tokenUrl,
      GCP_PROCUREMENT_API_URL: gcpUrl,
    }
    const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }
    const providerId = `node-${version.replace(/\W/g, '')}`
    const sub = azure.emulator.addSubscription({ appId: azure.clientId })
    const azureToken = azure.emulator.issuePurchaseToken(sub.id)
    const awsKey = `AKIANODE${version.replace(/\W/g, '').slice(0, 6).padEnd(6, '0').toUpperCase()}000000`
    aws.addCredentials(awsKey, 'aws/secret+node=key')
    const { token: awsToken } = aws.addCustomer({ ProductCode: 'prod-node' })
    const key = await gcp.createServiceAccount(providerId)
    const { accountId } = gcp.addPurchase({ providerId })
    const gcpToken = await gcp.mintToken({ aud: 'node.example', sub: accountId })

    const first = await startServer(dir, env, { node: path })
    let orgId: string
    let apiKey: string
    const locations: Record<string, string> = {}
    try {
      expect(first.output()).toContain(`Node ${version}`)
      const created = (await (
        await fetch(`${first.url}/api/v1/orgs`, { method: 'POST', headers: admin, body: JSON.stringify({ name: 'Node', fulfillmentUrl: 'https://node.example/s' }) })
      ).json()) as { org: { id: string }; apiKey: string }
      orgId = created.org.id
      apiKey = created.apiKey
      const put = (partner: string, body: unknown) =>
        fetch(`${first.url}/api/v1/orgs/${orgId}/integrations/${partner}`, { method: 'PUT', headers: { ...admin, authorization: `Bearer ${apiKey}` }, body: JSON.stringify(body) })
      expect((await put('azure', { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret })).status).toBe(200)
      expect((await put('aws', { credentials: { accessKeyId: awsKey, secretAccessKey: 'aws/secret+node=key' } })).status).toBe(200)
      expect((await put('gcp', { providerId, audience: 'node.example', serviceAccountKey: key })).status).toBe(200)

      const base = `${first.url}/public/signup`
      const landings = {
        azure: await fetch(`${base}/azure/orgId/${orgId}?token=${encodeURIComponent(azureToken)}`, { redirect: 'manual' }),
        aws: await fetch(`${base}/aws/orgId/${orgId}`, form('x-amzn-marketplace-token', awsToken)),
        gcp: await fetch(`${base}/gcp/orgId/${orgId}`, form('x-gcp-marketplace-token', gcpToken)),
      }
      for (const [partner, landing] of Object.entries(landings)) {
        expect(landing.status, partner).toBe(303)
        locations[partner] = landing.headers.get('location')!
        expect(new URL(locations[partner]!).searchParams.get('partner')).toBe(partner)
      }
    } finally {
      expect(await first.stop()).toBe(0)
    }

    const second = await startServer(dir, env, { node: path })
    try {
      const list = (await (await fetch(`${second.url}/api/v1/orgs/${orgId}/entitlements`, { headers: { authorization: `Bearer ${apiKey}` } })).json()) as {
        items: Array<{ id: string; partner: string; status: string }>
      }
      expect(list.items.map((e) => e.partner).sort()).toEqual(['aws', 'azure', 'gcp'])
      for (const item of list.items) expect(new URL(locations[item.partner]!).searchParams.get('sugerEntitlementId')).toBe(item.id)
      // Refresh-safe across the restart: the same token, the same redirect, no second activation.
      const again = await fetch(`${second.url}/public/signup/azure/orgId/${orgId}?token=${encodeURIComponent(azureToken)}`, { redirect: 'manual' })
      expect(again.status).toBe(303)
      expect(again.headers.get('location')).toBe(locations.azure)
    } finally {
      expect(await second.stop()).toBe(0)
    }
    expect(first.output() + second.output()).not.toMatch(/Assertion failed|FATAL ERROR/)
  })
})
