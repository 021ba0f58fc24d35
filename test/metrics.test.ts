import { mkdtempSync, rmSync } from 'node:fs'
import { networkInterfaces, tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type AzureSetup, createAzureOrg, startAzure, startHookReceiver, waitFor } from './helpers'
import { type Running, startServer } from './node-process'

/*
 * Contract §16's GET /metrics, end to end: a real `npm start` process with the Azure emulator as
 * the marketplace and an ISV webhook receiver, scraped as Prometheus would, its exposition parsed
 * here from the text format's rules (not with prom-client), and every counter checked by the exact
 * delta what was done to the broker must add.
 */

interface Family {
  help: string
  type: string
  samples: Array<{ name: string; labels: Record<string, string>; value: number }>
}

/** The Prometheus text format 0.0.4: `# HELP`, `# TYPE`, then `name{label="value",…} value [timestamp]`. */
function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>()
  const family = (name: string) => {
    if (!families.has(name)) families.set(name, { help: '', type: 'untyped', samples: [] })
    return families.get(name)!
  }
  // The family a sample belongs to: its own name, or a histogram's/summary's with a suffix.
  const owner = (name: string) => {
    for (const suffix of ['_bucket', '_count', '_sum', '']) {
      const base = suffix ? name.slice(0, -suffix.length) : name
      if (name.endsWith(suffix) && families.has(base) && (suffix === '' || ['histogram', 'summary'].includes(families.get(base)!.type))) return base
    }
    return name
  }
  for (const line of text.split('\n')) {
    if (line === '') continue
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) ?(.*)$/.exec(line)
    if (meta) {
      const [, kind, name, text] = meta as unknown as [string, string, string, string]
      if (kind === 'HELP') family(name).help = text
      else family(name).type = text
      continue
    }
    if (line.startsWith('#')) continue
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(line)
    if (!sample) throw new Error(`not a sample line: ${line}`)
    const [, sampleName, labelText, valueText] = sample as unknown as [string, string, string | undefined, string]
    const labels: Record<string, string> = {}
    const pairs = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/gy
    const body = labelText ?? ''
    let consumed = 0
    for (let match = pairs.exec(body); match; match = pairs.exec(body)) {
      labels[match[1]!] = match[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
      consumed = pairs.lastIndex
    }
    if (consumed !== body.length) throw new Error(`bad labels in: ${line}`)
    // Values are Go floats: `NaN`, `+Inf`, `-Inf` in any letter case.
    const word = valueText.toLowerCase()
    const value = word === '+inf' || word === 'inf' ? Infinity : word === '-inf' ? -Infinity : word === 'nan' ? NaN : Number(valueText)
    if (Number.isNaN(value) && word !== 'nan') throw new Error(`bad value in: ${line}`)
    family(owner(sampleName)).samples.push({ name: sampleName, labels, value })
  }
  return families
}

const ADMIN = 'metrics-test-admin-token-0123456789'
const METRICS_TOKEN = 'metrics-scrape-token-abcdef0123456789'

let azure: AzureSetup
let hooks: Awaited<ReturnType<typeof startHookReceiver>>
let accepting = true
const dirs: string[] = []

beforeAll(async () => {
  azure = await startAzure()
  hooks = await startHookReceiver(() => accepting)
})
afterAll(async () => {
  await Promise.all([azure.close(), hooks.close()])
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

async function broker(env: Record<string, string>): Promise<Running> {
  const cwd = mkdtempSync(join(tmpdir(), 'mb-metrics-'))
  dirs.push(cwd)
  return startServer(cwd, { ADMIN_TOKEN: ADMIN, AZURE_MARKETPLACE_API_URL: azure.url, AZURE_LOGIN_URL: azure.url, JOB_INTERVAL_MS: '300', ...env })
}

/** An org with the webhook receiver and an Azure integration on the emulator. */
const azureOrg = (server: Running) => createAzureOrg(server.url, ADMIN, azure, hooks.url)

const land = (server: Running, orgId: string, query: string) => fetch(`${server.url}/public/signup/azure/orgId/${orgId}${query}`, { redirect: 'manual' })
const purchaseToken = () => azure.emulator.issuePurchaseToken(azure.emulator.addSubscription({ appId: azure.clientId }).id)

describe('GET /metrics with METRICS_TOKEN', () => {
  let server: Running
  let orgId: string
  const scrape = async () => {
    const answer = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })
    expect(answer.status).toBe(200)
    return parseExposition(await answer.text())
  }
  /** The value of one sample (0 when the series does not exist yet). */
  const value = (families: Map<string, Family>, name: string, labels: Record<string, string>) => {
    const family = families.get(name.replace(/_(count|sum)$/, '')) ?? families.get(name)
    const sample = family?.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v) && Object.keys(s.labels).length === Object.keys(labels).length)
    return sample?.value ?? 0
  }

  beforeAll(async () => {
    server = await broker({ METRICS_TOKEN })
    orgId = await azureOrg(server)
  })
  afterAll(async () => {
    await server.stop()
  })

  test('refused without the token or with another, with WWW-Authenticate and no metric in the answer', async () => {
    for (const headers of [{} as Record<string, string>, { authorization: 'Bearer nope' }, { authorization: `Basic ${btoa(`x:${METRICS_TOKEN}`)}` }, { authorization: `Bearer ${METRICS_TOKEN}x` }]) {
      const answer = await fetch(`${server.url}/metrics`, { headers })
      expect(answer.status).toBe(401)
      expect(answer.headers.get('www-authenticate')).toMatch(/^Bearer/)
      const body = await answer.text()
      expect(body).not.toContain('marketbridge_')
      expect(body).not.toContain(METRICS_TOKEN)
    }
  })

  test('the exposition: text format 0.0.4, every family of §16 with its type, the process metrics, well-formed histograms', async () => {
    const answer = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })
    expect(answer.status).toBe(200)
    expect(answer.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    // A landing and a webhook first, so that every family has samples.
    expect((await land(server, orgId, `?token=${encodeURIComponent(purchaseToken())}`)).status).toBe(303)
    await waitFor('a webhook', () => hooks.received.some((hook) => hook.body.includes(orgId)))
    const families = await scrape()
    const types = {
      marketbridge_landings_total: 'counter',
      marketbridge_landing_duration_seconds: 'histogram',
      marketbridge_marketplace_requests_total: 'counter',
      marketbridge_marketplace_request_duration_seconds: 'histogram',
      marketbridge_notifications_total: 'counter',
      marketbridge_webhook_deliveries_total: 'counter',
      marketbridge_outbox_pending: 'gauge',
      marketbridge_outbox_oldest_pending_seconds: 'gauge',
      process_cpu_seconds_total: 'counter',
      process_resident_memory_bytes: 'gauge',
      process_start_time_seconds: 'gauge',
    }
    for (const [name, type] of Object.entries(types)) {
      expect(families.get(name)?.type, name).toBe(type)
      expect(families.get(name)?.help, name).not.toBe('')
    }
    for (const name of ['marketbridge_outbox_pending', 'marketbridge_outbox_oldest_pending_seconds']) {
      expect(families.get(name)!.samples.map((s) => s.labels.queue).sort()).toEqual(['emails', 'notifications', 'usage', 'webhooks'])
    }
    for (const name of ['marketbridge_landing_duration_seconds', 'marketbridge_marketplace_request_duration_seconds']) {
      const samples = families.get(name)!.samples
      const series = new Set(samples.map((s) => JSON.stringify({ ...s.labels, le: undefined })))
      expect(series.size).toBeGreaterThan(0)
      for (const key of series) {
        const labels = JSON.parse(key) as Record<string, string>
        const mine = samples.filter((s) => JSON.stringify({ ...s.labels, le: undefined }) === key)
        const buckets = mine.filter((s) => s.name.endsWith('_bucket'))
        const bounds = buckets.map((s) => (s.labels.le === '+Inf' ? Infinity : Number(s.labels.le)))
        expect(bounds, 'ascending bounds').toEqual([...bounds].sort((a, b) => a - b))
        expect(bounds.at(-1)).toBe(Infinity)
        for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value)
        const count = mine.find((s) => s.name.endsWith('_count'))!.value
        expect(buckets.at(-1)!.value, `${name} ${JSON.stringify(labels)}: +Inf equals _count`).toBe(count)
        expect(mine.find((s) => s.name.endsWith('_sum'))!.value).toBeGreaterThan(0)
      }
    }
  })

  test('each landing counted once by its outcome, and timed; the marketplace calls it made counted by call and status', async () => {
    const before = await scrape()
    const good = purchaseToken()
    expect((await land(server, orgId, `?token=${encodeURIComponent(good)}`)).status).toBe(303)
    // The same purchase again (the buyer's second click): a success too, no marketplace call.
    expect((await land(server, orgId, `?token=${encodeURIComponent(good)}`)).status).toBe(303)
    expect((await land(server, orgId, '')).status).toBe(400)
    expect((await land(server, orgId, '?token=not-a-purchase-token')).status).toBe(400)
    expect((await land(server, 'org_does_not_exist', `?token=${encodeURIComponent(purchaseToken())}`)).status).toBe(404)
    const after = await scrape()

    const delta = (name: string, labels: Record<string, string>) => value(after, name, labels) - value(before, name, labels)
    expect(delta('marketbridge_landings_total', { partner: 'azure', outcome: 'success' })).toBe(2)
    expect(delta('marketbridge_landings_total', { partner: 'azure', outcome: 'missing-token' })).toBe(1)
    expect(delta('marketbridge_landings_total', { partner: 'azure', outcome: 'invalid-token' })).toBe(1)
    expect(delta('marketbridge_landings_total', { partner: 'azure', outcome: 'not-found' })).toBe(1)
    const total = (families: Map<string, Family>) => families.get('marketbridge_landings_total')!.samples.reduce((sum, s) => sum + s.value, 0)
    expect(total(after) - total(before)).toBe(5)
    expect(delta('marketbridge_landing_duration_seconds_count', { partner: 'azure' })).toBe(5)

    // One resolve for the good token and one for the bad (answered 400 by Microsoft), one activate.
    expect(delta('marketbridge_marketplace_requests_total', { partner: 'azure', call: 'resolve', status: '200' })).toBe(1)
    expect(delta('marketbridge_marketplace_requests_total', { partner: 'azure', call: 'resolve', status: '400' })).toBe(1)
    expect(delta('marketbridge_marketplace_requests_total', { partner: 'azure', call: 'activate', status: '200' })).toBe(1)
    expect(delta('marketbridge_marketplace_request_duration_seconds_count', { partner: 'azure', call: 'activate' })).toBe(1)
  })

  test('a retried call counts once, with its final status', async () => {
    const before = await scrape()
    azure.emulator.failNext('resolve', 503)
    expect((await land(server, orgId, `?token=${encodeURIComponent(purchaseToken())}`)).status).toBe(303)
    const after = await scrape()
    expect(value(after, 'marketbridge_marketplace_requests_total', { partner: 'azure', call: 'resolve', status: '200' }) - value(before, 'marketbridge_marketplace_requests_total', { partner: 'azure', call: 'resolve', status: '200' })).toBe(1)
    expect(value(after, 'marketbridge_marketplace_requests_total', { partner: 'azure', call: 'resolve', status: '503' })).toBe(value(before, 'marketbridge_marketplace_requests_total', { partner: 'azure', call: 'resolve', status: '503' }))
  })

  test('a notification refused for want of authentication is counted as unauthorized', async () => {
    const before = await scrape()
    const answer = await fetch(`${server.url}/public/notifications/azure/orgId/${orgId}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"action":"Unsubscribe"}' })
    expect(answer.status).toBe(401)
    const after = await scrape()
    expect(value(after, 'marketbridge_notifications_total', { partner: 'azure', outcome: 'unauthorized' }) - value(before, 'marketbridge_notifications_total', { partner: 'azure', outcome: 'unauthorized' })).toBe(1)
  })

  test('webhook attempts by outcome, and the webhook outbox backlog while the ISV refuses', async () => {
    // Nothing waits before we start.
    await waitFor('an empty webhook outbox', async () => value(await scrape(), 'marketbridge_outbox_pending', { queue: 'webhooks' }) === 0)
    const before = await scrape()
    const received = hooks.received.length
    accepting = false
    try {
      expect((await land(server, orgId, `?token=${encodeURIComponent(purchaseToken())}`)).status).toBe(303)
      const refused = await waitFor('refused attempts counted', async () => {
        const now = await scrape()
        return value(now, 'marketbridge_webhook_deliveries_total', { outcome: 'failure' }) > value(before, 'marketbridge_webhook_deliveries_total', { outcome: 'failure' }) ? now : null
      })
      expect(value(refused, 'marketbridge_outbox_pending', { queue: 'webhooks' })).toBeGreaterThan(0)
      expect(value(refused, 'marketbridge_outbox_oldest_pending_seconds', { queue: 'webhooks' })).toBeGreaterThanOrEqual(0)
      expect(value(refused, 'marketbridge_webhook_deliveries_total', { outcome: 'success' })).toBe(value(before, 'marketbridge_webhook_deliveries_total', { outcome: 'success' }))
    } finally {
      accepting = true
    }
    // The retries (about 5 s later) succeed: the backlog is gone and each 2xx counted once.
    const drained = await waitFor('the backlog drained', async () => {
      const now = await scrape()
      return value(now, 'marketbridge_outbox_pending', { queue: 'webhooks' }) === 0 ? now : null
    }, { timeoutMs: 20_000, everyMs: 200 })
    expect(value(drained, 'marketbridge_outbox_oldest_pending_seconds', { queue: 'webhooks' })).toBe(0)
    const delivered = hooks.received.length - received
    expect(delivered).toBeGreaterThan(0)
    expect(value(drained, 'marketbridge_webhook_deliveries_total', { outcome: 'success' }) - value(before, 'marketbridge_webhook_deliveries_total', { outcome: 'success' })).toBe(delivered)
  })

  test('label values stay within fixed sets whatever was asked', async () => {
    await land(server, orgId, '?token=x')
    await fetch(`${server.url}/public/signup/not-a-marketplace/orgId/${orgId}?token=x`, { redirect: 'manual' })
    await fetch(`${server.url}/public/notifications/nowhere/orgId/org_x`, { method: 'POST', body: '{}' })
    const families = await scrape()
    // Each label's values, as the README lists them.
    const allowed: Record<string, (value: string) => boolean> = {
      partner: (v) => ['aws', 'azure', 'gcp', 'other'].includes(v),
      outcome: (v) => ['success', 'not-found', 'missing-token', 'invalid-token', 'configuration', 'upstream', 'activation-pending', 'error', 'stored', 'duplicate', 'unauthorized', 'invalid', 'failure'].includes(v),
      status: (v) => /^([1-5]\d\d|error)$/.test(v),
      call: (v) => /^[A-Za-z][A-Za-z.]{0,39}$/.test(v),
      queue: (v) => ['webhooks', 'notifications', 'emails', 'usage'].includes(v),
      le: (v) => v === '+Inf' || Number.isFinite(Number(v)),
    }
    for (const [name, family] of families) {
      if (!name.startsWith('marketbridge_')) continue
      for (const sample of family.samples) {
        for (const [label, labelValue] of Object.entries(sample.labels)) {
          expect(allowed[label], `${name}: label ${label}`).toBeDefined()
          expect(allowed[label]!(labelValue), `${name}{${label}="${labelValue}"}`).toBe(true)
        }
      }
    }
    expect(value(families, 'marketbridge_landings_total', { partner: 'other', outcome: 'not-found' })).toBeGreaterThanOrEqual(1)
  })
})

describe('GET /metrics without METRICS_TOKEN', () => {
  test('open to a loopback peer, refused to any other address', async () => {
    // Bound to every address, so that the same process can be reached over a non-loopback one.
    const server = await broker({ HOST: '0.0.0.0' })
    try {
      const local = await fetch(`${server.url}/metrics`)
      expect(local.status).toBe(200)
      expect(await local.text()).toContain('marketbridge_landings_total')
      const port = new URL(server.url).port
      const external = Object.values(networkInterfaces())
        .flat()
        .find((address) => address && address.family === 'IPv4' && !address.internal)
      // A machine with no network interface but loopback has no other address to ask from.
      if (!external) return
      const remote = await fetch(`http://${external.address}:${port}/metrics`)
      expect(remote.status).toBe(403)
      expect(await remote.text()).not.toContain('marketbridge_landings_total')
      // The rest of the broker answers on that address as usual.
      expect((await fetch(`http://${external.address}:${port}/healthz`)).status).toBe(200)
    } finally {
      await server.stop()
    }
  })
})
