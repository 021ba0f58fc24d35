import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type AzureSetup, freePort, startAzure } from './helpers'
import { entry, startServer, tsx } from './node-process'

let azure: AzureSetup
const scratch: string[] = []
beforeAll(async () => {
  azure = await startAzure()
})
afterAll(async () => {
  await azure.close()
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true })
})

function scratchDir() {
  const dir = mkdtempSync(join(tmpdir(), 'marketbridge-'))
  scratch.push(dir)
  return dir
}

describe('npm start on a fresh machine', () => {
  test('needs no configuration: creates ./data with 0600 secrets and prints the admin token and curl line once', async () => {
    const cwd = scratchDir()
    const server = await startServer(cwd)
    try {
      const adminToken = readFileSync(join(cwd, 'data/admin-token'), 'utf8').trim()
      expect(adminToken.length).toBeGreaterThanOrEqual(32)
      expect(Buffer.from(readFileSync(join(cwd, 'data/encryption-key'), 'utf8').trim(), 'base64')).toHaveLength(32)
      for (const file of ['admin-token', 'encryption-key']) {
        expect(statSync(join(cwd, 'data', file)).mode & 0o777).toBe(0o600)
      }
      expect(readdirSync(join(cwd, 'data'))).toContain('marketbridge.db')
      expect(server.output()).toContain(adminToken)
      expect(server.output()).toMatch(/curl .*\/api\/v1\/orgs/)

      const health = await fetch(`${server.url}/healthz`)
      expect(await health.json()).toEqual({ status: 'ok' })
      const created = await fetch(`${server.url}/api/v1/orgs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'Acme', fulfillmentUrl: 'https://app.acme.example/signup' }),
      })
      expect(created.status).toBe(201)
    } finally {
      expect(await server.stop()).toBe(0)
    }

    const again = await startServer(cwd)
    try {
      const adminToken = readFileSync(join(cwd, 'data/admin-token'), 'utf8').trim()
      expect(again.output()).not.toContain(adminToken)
    } finally {
      await again.stop()
    }
  })
})

describe('restart persistence', () => {
  test('orgs, integrations, entitlements and refresh-safety survive a restart; secrets never hit the disk in clear', async () => {
    const cwd = scratchDir()
    const env = {
      ADMIN_TOKEN: 'restart-test-admin-token-0123456789',
      DATABASE_URL: `sqlite:${join(cwd, 'db', 'broker.db')}`,
      AZURE_MARKETPLACE_API_URL: azure.url,
      AZURE_LOGIN_URL: azure.url,
    }
    const admin = { authorization: `Bearer ${env.ADMIN_TOKEN}`, 'content-type': 'application/json' }
    const sub = azure.emulator.addSubscription({ appId: azure.clientId, quantity: 3 })
    const token = azure.emulator.issuePurchaseToken(sub.id)

    const first = await startServer(cwd, env)
    let orgId: string
    let location: string
    try {
      const created = (await (
        await fetch(`${first.url}/api/v1/orgs`, {
          method: 'POST',
          headers: admin,
          body: JSON.stringify({ name: 'Acme', fulfillmentUrl: 'https://app.acme.example/signup' }),
        })
      ).json()) as { org: { id: string } }
      orgId = created.org.id
      const put = await fetch(`${first.url}/api/v1/orgs/${orgId}/integrations/azure`, {
        method: 'PUT',
        headers: admin,
        body: JSON.stringify({ tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret }),
      })
      expect(put.status).toBe(200)
      const landing = await fetch(`${first.url}/public/signup/azure/orgId/${orgId}?token=${encodeURIComponent(token)}`, { redirect: 'manual' })
      expect(landing.status).toBe(303)
      location = landing.headers.get('location')!
      // The generated ENCRYPTION_KEY lives beside the database, not in ./data.
      expect(readdirSync(join(cwd, 'db')).sort()).toEqual(expect.arrayContaining(['broker.db', 'encryption-key']))
    } finally {
      await first.stop()
    }

    // Nothing secret in the database files (main file and any WAL left behind).
    const files = readdirSync(join(cwd, 'db')).filter((file) => file.startsWith('broker.db'))
    for (const file of files) {
      const bytes = readFileSync(join(cwd, 'db', file))
      expect(bytes.includes(Buffer.from(azure.clientSecret)), file).toBe(false)
      expect(bytes.includes(Buffer.from(token)), file).toBe(false)
    }

    const second = await startServer(cwd, env)
    try {
      const callsBefore = azure.emulator.calls.length
      const refresh = await fetch(`${second.url}/public/signup/azure/orgId/${orgId}?token=${encodeURIComponent(token)}`, { redirect: 'manual' })
      expect(refresh.status).toBe(303)
      expect(refresh.headers.get('location')).toBe(location)
      expect(azure.emulator.calls.length).toBe(callsBefore)
      const id = new URL(location).searchParams.get('sugerEntitlementId')
      const ent = await fetch(`${second.url}/api/v1/orgs/${orgId}/entitlements/${id}`, { headers: admin })
      expect(((await ent.json()) as { status: string }).status).toBe('ACTIVE')
      // The integration's sealed secret still opens after the restart: a new purchase lands.
      const next = azure.emulator.addSubscription({ appId: azure.clientId })
      const landing = await fetch(`${second.url}/public/signup/azure/orgId/${orgId}?token=${encodeURIComponent(azure.emulator.issuePurchaseToken(next.id))}`, {
        redirect: 'manual',
      })
      expect(landing.status).toBe(303)
    } finally {
      await second.stop()
    }
  })

  test('a bad configuration value stops the server with a clear message', async () => {
    const cwd = scratchDir()
    const port = await freePort()
    const child = spawn(process.execPath, ['--import', tsx, entry], {
      cwd,
      env: { PATH: process.env.PATH ?? '', PORT: String(port), ENCRYPTION_KEY: 'too-short' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stderr!.on('data', (chunk) => (output += chunk))
    const code = await new Promise<number | null>((done) => child.on('exit', done))
    expect(code).toBe(1)
    expect(output).toMatch(/ENCRYPTION_KEY/)
    expect(output).not.toContain('too-short')
  })
})

describe('JSON bodies on the Node server (read from the IncomingMessage, not through a Request)', () => {
  test('a valid body, malformed JSON (400), over 1 MiB with and without a Content-Length (413), a charset parameter', async () => {
    const cwd = scratchDir()
    const server = await startServer(cwd)
    try {
      const adminToken = readFileSync(join(cwd, 'data/admin-token'), 'utf8').trim()
      const post = (body: BodyInit, headers: Record<string, string> = {}) =>
        fetch(`${server.url}/api/v1/orgs`, { method: 'POST', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json', ...headers }, body, duplex: 'half' } as RequestInit)
      expect((await post(JSON.stringify({ name: 'Acme', fulfillmentUrl: 'https://a.example/s' }))).status).toBe(201)
      expect((await post(JSON.stringify({ name: 'Ünïcode ✓', fulfillmentUrl: 'https://a.example/s' }), { 'content-type': 'application/json; charset=utf-8' })).status).toBe(201)
      const malformed = await post('{"name": ')
      expect(malformed.status).toBe(400)
      expect(((await malformed.json()) as { error: { code: string } }).error.code).toBe('VALIDATION_ERROR')
      const big = JSON.stringify({ name: 'x'.repeat(1_100_000), fulfillmentUrl: 'https://a.example/s' })
      const declared = await post(big)
      expect(declared.status).toBe(413)
      expect(((await declared.json()) as { error: { code: string } }).error.code).toBe('PAYLOAD_TOO_LARGE')
      const stream = new ReadableStream({
        start(controller) {
          for (let i = 0; i < 20; i++) controller.enqueue(new TextEncoder().encode(big.slice(i * 60_000, (i + 1) * 60_000)))
          controller.close()
        },
      })
      const chunked = await post(stream)
      expect(chunked.status).toBe(413)
      // The server still answers afterwards.
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200)
    } finally {
      await server.stop()
    }
  })
})
