import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type AzureSetup, freePort, startAzure } from './helpers'

/**
 * `npm run dev:worker` for real: wrangler dev, workerd, a local D1 persisted to a scratch
 * folder. The same app factory must serve health, the org and entitlement API and the Azure
 * landing (MSAL and fetch inside workerd) from D1, and keep its data across a restart.
 */
const script = resolve(import.meta.dirname, '../scripts/dev-worker.mjs')
const ADMIN = 'worker-test-admin-token-0123456789'

async function startWorker(persistTo: string, azureUrl: string) {
  const port = await freePort()
  const key = Buffer.alloc(32, 7).toString('base64')
  const child: ChildProcess = spawn(
    process.execPath,
    [
      script,
      '--port', String(port),
      '--ip', '127.0.0.1',
      '--persist-to', persistTo,
      '--var', `ADMIN_TOKEN:${ADMIN}`,
      '--var', `ENCRYPTION_KEY:${key}`,
      '--var', `AZURE_LOGIN_URL:${azureUrl}`,
      '--var', `AZURE_MARKETPLACE_API_URL:${azureUrl}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, CI: 'true' } },
  )
  let output = ''
  child.stdout!.on('data', (chunk) => (output += chunk))
  child.stderr!.on('data', (chunk) => (output += chunk))
  const deadline = Date.now() + 60_000
  while (!/Ready on http/.test(output)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`wrangler dev did not start:\n${output}`)
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    stop: async () => {
      const exited = new Promise((done) => child.on('exit', done))
      process.kill(-child.pid!, 'SIGTERM')
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))])
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        // already gone
      }
    },
  }
}

let azure: AzureSetup
let persistTo: string
beforeAll(async () => {
  azure = await startAzure()
  persistTo = mkdtempSync(join(tmpdir(), 'marketbridge-d1-'))
})
afterAll(async () => {
  await azure.close()
  rmSync(persistTo, { recursive: true, force: true })
})

describe('npm run dev:worker (workerd + D1)', () => {
  test('serves health, orgs, integrations, the Azure landing and entitlements from D1, across a restart', async () => {
    const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }
    const sub = azure.emulator.addSubscription({ appId: azure.clientId, quantity: 2 })
    const token = azure.emulator.issuePurchaseToken(sub.id)
    let orgId: string
    let apiKey: string
    let location: string

    const first = await startWorker(persistTo, azure.url)
    try {
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

      const missing = await fetch(`${first.url}/public/signup/azure/orgId/${orgId}`)
      expect(missing.status).toBe(400)
      expect(await missing.text()).toContain('Configure account')
    } finally {
      await first.stop()
    }

    const second = await startWorker(persistTo, azure.url)
    try {
      const list = await fetch(`${second.url}/api/v1/orgs/${orgId}/entitlements`, { headers: { authorization: `Bearer ${apiKey}` } })
      expect(list.status).toBe(200)
      const { items } = (await list.json()) as { items: Array<{ id: string; status: string; externalId: string }> }
      expect(items).toHaveLength(1)
      expect(items[0]).toMatchObject({ status: 'ACTIVE', externalId: sub.id, id: new URL(location).searchParams.get('sugerEntitlementId') })
      const activations = azure.emulator.callsTo('activate').length
      const refresh = await fetch(`${second.url}/public/signup/azure/orgId/${orgId}?token=${encodeURIComponent(token)}`, { redirect: 'manual' })
      expect(refresh.status).toBe(303)
      expect(refresh.headers.get('location')).toBe(location)
      expect(azure.emulator.callsTo('activate').length).toBe(activations)
      const other = await fetch(`${second.url}/api/v1/orgs/${orgId}`, { headers: { authorization: 'Bearer mbk_not-a-key' } })
      expect(other.status).toBe(401)
    } finally {
      await second.stop()
    }
  }, 120_000)
})
