import { spawn } from 'node:child_process'
import { type IncomingHttpHeaders, request } from 'node:http'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type Sandbox, startSandbox } from '../sandbox/start'

/**
 * The sandbox's own routes under hostile input (in-process, broker on Node): whatever a form or a
 * URL carries, no 5xx, and a refused input changes nothing at the broker. The browser test
 * (sandbox-browser.test.ts) covers the happy paths on both runtimes.
 */
let sandbox: Sandbox
let dir: string
let orgId: string
let apiKey: string
let entitlementId: string

const post = (path: string, form: Record<string, string>, headers: Record<string, string> = {}) =>
  fetch(`${sandbox.url}${path}`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: new URL(sandbox.url).origin, ...headers },
    body: new URLSearchParams(form).toString(),
  })
const api = async (path: string) => {
  const response = await fetch(`${sandbox.brokerUrl}/api/v1/orgs/${orgId}${path}`, { headers: { authorization: `Bearer ${apiKey}` } })
  return (await response.json()) as any
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'marketbridge-sandbox-'))
  sandbox = await startSandbox({ runtime: 'node', port: 0, dataDir: join(dir, 'data') })
  // The home page shows the demo org's curl line: its id and key.
  const home = await (await fetch(sandbox.url)).text()
  orgId = home.match(/orgs\/(org_[a-z0-9]+)\/entitlements/)![1]!
  apiKey = home.match(/Bearer (mbk_[A-Za-z0-9_-]+)/)![1]!
  // One Azure purchase, through the landing.
  const buy = await post('/buy/azure', { plan: 'starter' })
  expect(buy.status).toBe(303)
  const landing = await fetch(buy.headers.get('location')!, { redirect: 'manual' })
  expect(landing.status).toBe(303)
  entitlementId = new URL(landing.headers.get('location')!).searchParams.get('sugerEntitlementId')!
  expect(entitlementId).toMatch(/^ent_/)
}, 60_000)

afterAll(async () => {
  await sandbox?.stop()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

const text = fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('', 'starter', 'business', 'payg', 'contract', 'suspend', 'cancel', '../x', '%2e%2e', '1e999', '-5', '0', 'NaN'))

describe('sandbox routes under arbitrary input', () => {
  test('buy: an unknown plan or marketplace never sends the buyer anywhere; never a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('azure', 'aws', 'gcp', 'ibm', '%00'), text, async (partner, plan) => {
        fc.pre(!['starter', 'business', 'payg', 'contract'].includes(plan))
        const response = await post(`/buy/${partner}`, { plan })
        expect(response.status).toBeLessThan(500)
        expect(response.headers.get('location') ?? '').not.toContain(sandbox.brokerUrl)
        expect(await response.text()).not.toContain('x-amzn-marketplace-token')
      }),
      { numRuns: 40 },
    )
  })

  test('marketplace actions and usage: a refused input changes nothing at the broker; never a 5xx', async () => {
    const before = await api(`/entitlements/${entitlementId}`)
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.constant(entitlementId), fc.string({ maxLength: 30 }).map(encodeURIComponent), fc.constant('ent_unknown0')), text, text, async (id, action, quantity) => {
        fc.pre(!['suspend', 'cancel', 'change-plan'].includes(action))
        const acted = await post(`/acme/entitlements/${id}/marketplace`, { action })
        expect(acted.status).toBeLessThan(500)
        const reported = await post(`/acme/entitlements/${id}/usage`, { quantity, when: action })
        expect(reported.status).toBeLessThan(500)
        const page = await fetch(`${sandbox.url}/acme/welcome?sugerEntitlementId=${id}`)
        expect(page.status).toBeLessThan(500)
      }),
      { numRuns: 40 },
    )
    const after = await api(`/entitlements/${entitlementId}`)
    expect(after).toEqual(before)
    // Only a positive number of calls was recorded (the broker refuses the rest, stores nothing).
    const usage = (await api(`/entitlements/${entitlementId}/usage?limit=1000`)).items as Array<{ quantity: number }>
    expect(usage.every((u) => u.quantity > 0)).toBe(true)
  })

  test('the webhook receiver refuses what the broker did not sign, and lists it as refused', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 200 }), fc.string({ maxLength: 60 }), async (body, signature) => {
        const response = await fetch(`${sandbox.url}/acme/webhooks`, {
          method: 'POST',
          headers: { 'webhook-id': 'msg_x', 'webhook-timestamp': String(Math.floor(Date.now() / 1000)), 'webhook-signature': signature },
          body,
        })
        expect(response.status).toBe(401)
      }),
      { numRuns: 30 },
    )
    const page = await (await fetch(`${sandbox.url}/acme`)).text()
    expect(page).toContain('refused:')
  })

  test('another site cannot drive the sandbox (its forms change purchases)', async () => {
    const before = await api(`/entitlements/${entitlementId}`)
    const response = await post(`/acme/entitlements/${entitlementId}/marketplace`, { action: 'suspend' }, { origin: 'https://evil.example' })
    expect(response.status).toBe(403)
    const crossSite = await post('/buy/azure', { plan: 'starter' }, { origin: '', 'sec-fetch-site': 'cross-site' })
    expect(crossSite.status).toBe(403)
    expect(await api(`/entitlements/${entitlementId}`)).toEqual(before)
    // The same action from the sandbox's own page works.
    expect((await post(`/acme/entitlements/${entitlementId}/marketplace`, { action: 'suspend' })).status).toBe(303)
    expect((await api(`/entitlements/${entitlementId}`)).status).toBe('SUSPENDED')
  })
})

test('the sandbox never empties a folder it did not make (e.g. the real ./data given as --data-dir)', async () => {
  const real = join(dir, 'real-data')
  mkdirSync(real)
  writeFileSync(join(real, 'marketbridge.db'), 'precious')
  await expect(startSandbox({ runtime: 'node', port: 0, dataDir: real })).rejects.toThrow(/not a sandbox folder/)
  expect(existsSync(join(real, 'marketbridge.db'))).toBe(true)
})

/** A GET to the sandbox with another Host header than its address (node:http: fetch does not let a caller set Host). */
function getWithHost(port: number, path: string, host: string) {
  return new Promise<{ status: number; headers: IncomingHttpHeaders; body: string }>((done, fail) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
      let body = ''
      res.on('data', (chunk) => (body += chunk))
      res.on('end', () => done({ status: res.statusCode!, headers: res.headers, body }))
    })
    req.on('error', fail)
    req.end()
  })
}

describe('the sandbox is reached as a browser reaches it', () => {
  test('a page opened at localhost:PORT may post (same origin); other hosts and origins may not', async () => {
    const port = new URL(sandbox.url).port
    const viaLocalhost = await post('/buy/azure', { plan: 'starter' }, { origin: `http://localhost:${port}` })
    expect(viaLocalhost.status).toBe(303)
    const sameOrigin = await post('/buy/azure', { plan: 'starter' }, { origin: `http://localhost:${port}`, 'sec-fetch-site': 'same-origin' })
    expect(sameOrigin.status).toBe(303)
    expect((await post('/buy/azure', { plan: 'starter' }, { origin: 'null' })).status).toBe(403)
    expect((await post('/buy/azure', { plan: 'starter' }, { origin: `http://localhost:${Number(port) + 1}` })).status).toBe(403)
    // A DNS-rebinding page (another Host name) reads nothing, the demo key included.
    const rebound = await getWithHost(Number(port), '/', `evil.example:${port}`)
    expect(rebound.status).toBe(421)
    expect(rebound.body).not.toContain('mbk_')
  })

  test('GET /console signs the browser in to the console as the demo org: the session cookie for 127.0.0.1 (the broker\'s host too), then the broker', async () => {
    // Cookies are per host name, not per port: the sandbox and the broker must share theirs.
    expect(new URL(sandbox.url).hostname).toBe(new URL(sandbox.brokerUrl).hostname)
    const answer = await fetch(`${sandbox.url}/console`, { redirect: 'manual' })
    expect(answer.status).toBe(303)
    expect(answer.headers.get('location')).toBe(`${sandbox.brokerUrl}/console/orgs/${orgId}`)
    const [cookie, ...others] = answer.headers.getSetCookie()
    expect(others).toEqual([])
    const attributes = cookie!.split(';').map((part) => part.trim().toLowerCase())
    expect(attributes[0]).toMatch(/^marketbridge_console=.{40,}$/)
    expect(attributes.slice(1).sort()).toEqual(['httponly', 'path=/', 'samesite=lax'])
    const overview = await fetch(answer.headers.get('location')!, { headers: { cookie: cookie!.split(';')[0]! }, redirect: 'manual' })
    expect(overview.status).toBe(200)
    const html = await overview.text()
    expect(html).toContain('<h1>Acme Analytics</h1>')
    expect(html).toContain('Key: ')
    // A new session each time (a sign-out in the console does not stop the link working).
    const again = await fetch(`${sandbox.url}/console`, { redirect: 'manual' })
    expect(again.headers.getSetCookie()[0]!.split(';')[0]).not.toBe(cookie!.split(';')[0])
    // Opened as localhost:PORT, the sandbox first moves to 127.0.0.1 (a cookie for localhost would not reach the broker).
    const port = new URL(sandbox.url).port
    const viaLocalhost = await getWithHost(Number(port), '/console', `localhost:${port}`)
    expect([viaLocalhost.status, viaLocalhost.headers.location, viaLocalhost.headers['set-cookie']]).toEqual([303, `http://127.0.0.1:${port}/console`, undefined])
  })

  test('Azure\'s auto-activated plan: Subscribe announces it, the buyer\'s landing finds it ACTIVE, created and activated once', async () => {
    expect(await (await fetch(sandbox.url)).text()).toContain('Instant')
    const buy = await post('/buy/azure', { plan: 'instant' })
    expect(buy.status).toBe(303)
    const landing = await fetch(buy.headers.get('location')!, { redirect: 'manual' })
    expect(landing.status).toBe(303)
    const id = new URL(landing.headers.get('location')!).searchParams.get('sugerEntitlementId')!
    expect(await api(`/entitlements/${id}`)).toMatchObject({ status: 'ACTIVE', planId: 'instant' })
    // The Subscribe and the landing may come in either order: one CREATE and one ACTIVATE either way.
    for (let i = 0; i < 100 && (await api(`/entitlements/${id}/events`)).items.length < 2; i++) await new Promise((r) => setTimeout(r, 20))
    expect((await api(`/entitlements/${id}/events`)).items.map((e: { type: string }) => e.type)).toEqual(['CREATE', 'ACTIVATE'])
  })

  test('the webhook receiver takes no browser request and no oversized body', async () => {
    const big = await fetch(`${sandbox.url}/acme/webhooks`, { method: 'POST', body: 'x'.repeat(300 * 1024) })
    expect(big.status).toBe(413)
    const fromPage = await fetch(`${sandbox.url}/acme/webhooks`, { method: 'POST', headers: { origin: 'https://evil.example' }, body: '{}' })
    expect(fromPage.status).toBe(403)
    const page = await (await fetch(`${sandbox.url}/acme`)).text()
    expect(page.length).toBeLessThan(200_000)
  })

  test('a second sandbox on the same folder is refused and leaves the running one\'s data alone', async () => {
    const db = join(dir, 'data', 'marketbridge.db')
    expect(existsSync(db)).toBe(true)
    await expect(startSandbox({ runtime: 'node', port: 0, dataDir: join(dir, 'data') })).rejects.toThrow(/another sandbox \(pid \d+\) is using/)
    expect(existsSync(db)).toBe(true)
    expect((await fetch(`${sandbox.brokerUrl}/healthz`)).status).toBe(200)
  })
})

describe('npm run sandbox stops its broker however it is stopped', () => {
  const script = join(import.meta.dirname, '../sandbox/run.ts')
  const run = (dataDir: string) => {
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), script, '--port', '0', '--data-dir', dataDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    })
    let output = ''
    child.stdout!.on('data', (chunk) => (output += chunk))
    child.stderr!.on('data', (chunk) => (output += chunk))
    const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)))
    return { child, output: () => output, exited }
  }
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  }
  const gone = async (pid: number) => {
    for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100))
    return !alive(pid)
  }

  test.each([
    ['Ctrl+C while it starts (SIGINT to the terminal\'s process group)', 'SIGINT', false],
    ['a closed terminal once it runs (SIGHUP)', 'SIGHUP', true],
    ['SIGKILL once it runs (no handler runs: the broker sees its stdin end)', 'SIGKILL', true],
  ] as const)('%s', async (_name, signal, waitForReady) => {
    const dataDir = join(dir, `cli-${signal}`)
    const sandbox = run(dataDir)
    const pidFile = join(dataDir, 'broker.pid')
    for (let i = 0; i < 300 && !(existsSync(pidFile) && (!waitForReady || sandbox.output().includes('Sandbox ready'))); i++) await new Promise((r) => setTimeout(r, 50))
    expect(existsSync(pidFile), sandbox.output()).toBe(true)
    const brokerPid = Number(readFileSync(pidFile, 'utf8'))
    expect(alive(brokerPid)).toBe(true)
    process.kill(-sandbox.child.pid!, signal)
    await Promise.race([sandbox.exited, new Promise((r) => setTimeout(r, 15_000))])
    expect(sandbox.child.exitCode ?? sandbox.child.signalCode, sandbox.output()).not.toBeNull()
    expect(await gone(brokerPid)).toBe(true)
  }, 40_000)
})
