import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { reportUsage } from '../src/domain/usage-reporter'
import { kickDeliveries } from '../src/domain/webhooks'
import { type AwsEmulator, createAwsEmulator } from '../sandbox/emulators/aws'
import { consoleUser, textOf } from './console'
import { type AzureSetup, type TestBroker, createTestBroker, landAwsBuyer, startAzure, startHookReceiver } from './helpers'

/**
 * The console's Overview (contract §14) against the API and against what landed: entitlements by
 * status and marketplace, the 30-day landings chart (on the broker's clock, UTC days), webhook
 * deliveries failing or pending, usage records pending or rejected, integration health, and the
 * first steps a new org sees.
 */

const DAY = 86_400_000
const HOSTILE_ORG = 'Shop <img src=x onerror=alert(1)> & "Co"'

let azure: AzureSetup
let aws: AwsEmulator
let closeAws: () => Promise<void>
let awsUrl: string
const awsSeller = { accessKeyId: 'AKIAOVERVIEW00000001', secretAccessKey: 'overview/secret+key=' }
const brokers: TestBroker[] = []

beforeAll(async () => {
  azure = await startAzure()
  aws = createAwsEmulator()
  ;({ url: awsUrl, close: closeAws } = await aws.listen())
  aws.addCredentials(awsSeller.accessKeyId, awsSeller.secretAccessKey)
})
afterAll(async () => {
  for (const broker of brokers) await broker.close()
  await closeAws?.()
  await azure?.close()
})

/** A broker on a clock the test moves (`clock.ms`), with one org and its Azure (and optionally AWS) integration. */
async function scenario(options: { name?: string; webhookUrl?: string; aws?: boolean; azure?: boolean } = {}) {
  const clock = { ms: Date.now() }
  const broker = await createTestBroker({
    AZURE_MARKETPLACE_API_URL: azure.url,
    AZURE_LOGIN_URL: azure.url,
    AWS_MARKETPLACE_METERING_URL: awsUrl,
    AWS_MARKETPLACE_ENTITLEMENT_URL: awsUrl,
    AWS_STS_URL: awsUrl,
  })
  brokers.push(broker)
  broker.deps.now = () => new Date(clock.ms)
  const { org, apiKey } = await broker.createOrg({ name: options.name ?? 'Acme', ...(options.webhookUrl ? { webhookUrl: options.webhookUrl } : {}) })
  if (options.azure !== false) {
    const put = await broker.request(`/api/v1/orgs/${org.id}/integrations/azure`, {
      method: 'PUT',
      token: apiKey,
      json: { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret },
    })
    expect(put.status).toBe(200)
  }
  if (options.aws) expect((await broker.request(`/api/v1/orgs/${org.id}/integrations/aws`, { method: 'PUT', token: apiKey, json: { credentials: awsSeller } })).status).toBe(200)
  const user = consoleUser((url, init) => broker.app.request(url, init))
  await user.signIn(apiKey)
  const azureToken = () => {
    const sub = azure.emulator.addSubscription({ appId: azure.clientId })
    return { sub, token: azure.emulator.issuePurchaseToken(sub.id) }
  }
  const landWith = async (token: string) => {
    const landing = await broker.request(`/public/signup/azure/orgId/${org.id}?token=${encodeURIComponent(token)}`, { token: null })
    expect(landing.status).toBe(303)
    return new URL(landing.headers.get('location')!).searchParams.get('sugerEntitlementId')!
  }
  const landAzure = async () => {
    const { sub, token } = azureToken()
    return { id: await landWith(token), sub, token }
  }
  const landAws = () => landAwsBuyer(broker, org.id, aws.addCustomer({ ProductCode: 'prod-overview' }).token)
  const api = async <T,>(path: string): Promise<T> => {
    const response = await broker.request(`/api/v1/orgs/${org.id}${path}`, { token: apiKey })
    expect(response.status).toBe(200)
    return (await response.json()) as T
  }
  const overview = async () => {
    const page = await user.get(`/console/orgs/${org.id}`)
    expect(page.status).toBe(200)
    return page.html
  }
  return { broker, clock, org, apiKey, user, landAzure, landAws, landWith, api, overview }
}

/** The chart's bars: day and count of each, in order. */
const bars = (html: string) => [...html.matchAll(/<rect class="bar[^"]*"[^>]*data-day="([^"]+)" data-count="(\d+)"><title>([^<]*)<\/title><\/rect>/g)].map((m) => ({ day: m[1]!, count: Number(m[2]), title: m[3]! }))
/** A stat's number by its id. */
const stat = (html: string, id: string) => Number(new RegExp(`id="${id}"><b>(\\d+)</b>`).exec(html)?.[1] ?? Number.NaN)
const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10)

describe('the landings chart', () => {
  test('one bar per UTC day for the last 30 days, each the number of buyers who landed that day', async () => {
    const s = await scenario({ aws: true })
    // "Today" is noon UTC 40 days ahead, so that "n days ago" are whole days whatever time the
    // test runs, and every landing is later than the real time (a landing's deadline is set by the
    // broker's clock, its marketplace calls are timed by the real one).
    const today = Math.floor(Date.now() / DAY) * DAY + 40 * DAY + 12 * 3600_000
    const expected = new Map<string, number>()
    const landOn = async (daysAgo: number, count: number, at = today - daysAgo * DAY, partner: 'azure' | 'aws' = 'azure') => {
      s.clock.ms = at
      for (let i = 0; i < count; i++) await (partner === 'aws' ? s.landAws() : s.landAzure())
      if (daysAgo <= 29) expected.set(utcDay(at), (expected.get(utcDay(at)) ?? 0) + count)
    }
    await landOn(0, 3)
    await landOn(0, 1, today, 'aws')
    await landOn(1, 1)
    await landOn(9, 2)
    await landOn(29, 1)
    // Out of the chart: 30 days ago.
    await landOn(30, 2)
    // Either side of a UTC midnight: two days.
    const midnight = Math.floor(today / DAY) * DAY - 5 * DAY
    await landOn(5, 1, midnight - 1)
    await landOn(5, 1, midnight)
    // A reload of the same landing (the same token again) counts once; a refused token not at all.
    s.clock.ms = today - 2 * DAY
    const again = await s.landAzure()
    expected.set(utcDay(s.clock.ms), 1)
    expect(await s.landWith(again.token)).toBe(again.id)
    const refused = await s.broker.request(`/public/signup/azure/orgId/${s.org.id}?token=${encodeURIComponent('bm90LWEtcmVhbC10b2tlbg==')}`, { token: null })
    expect(refused.status).toBe(400)

    s.clock.ms = today
    // (A session idle for more than 12 h by the broker's clock is over.)
    await s.user.signIn(s.apiKey)
    const html = await s.overview()
    const shown = bars(html)
    expect(shown).toHaveLength(30)
    const days = Array.from({ length: 30 }, (_, i) => utcDay(today - (29 - i) * DAY))
    expect(shown.map((bar) => bar.day)).toEqual(days)
    expect(shown.map((bar) => bar.count)).toEqual(days.map((day) => expected.get(day) ?? 0))
    expect(shown.find((bar) => bar.day === utcDay(today))!.title).toBe(`${utcDay(today)}: 4 landings (Azure 3, AWS 1)`)
    expect(shown.find((bar) => bar.day === utcDay(today - DAY))!.title).toBe(`${utcDay(today - DAY)}: 1 landing (Azure 1)`)
    // The midnight pair landed on two days.
    expect(expected.get(utcDay(midnight - 1))).toBe(1)
    expect(expected.get(utcDay(midnight))).toBe(1)
    const total = [...expected.values()].reduce((a, b) => a + b, 0)
    expect(total).toBe(11)
    // Named and described, and the same numbers as a table.
    expect(html).toMatch(/<svg class="chart" viewBox="[^"]+" role="img" aria-labelledby="landings-chart-title landings-chart-desc">/)
    expect(textOf(html)).toContain(`${total} landings from ${days[0]} to ${days[29]} (UTC); the most in one day: 4, on ${utcDay(today)}.`)
    const table = /<details class="chart-table">([\s\S]*?)<\/details>/.exec(html)![1]!
    const rows = [...table.matchAll(/<tr><th scope="row">([^<]+)<\/th><td>(\d+)<\/td><td>(\d+)<\/td><td>(\d+)<\/td><td>(\d+)<\/td><\/tr>/g)]
    expect(rows.map((row) => row[1])).toEqual(days)
    expect(rows.map((row) => Number(row[5]))).toEqual(days.map((day) => expected.get(day) ?? 0))
    expect(rows.map((row) => Number(row[2]) + Number(row[3]) + Number(row[4]))).toEqual(days.map((day) => expected.get(day) ?? 0))
    expect(Number(rows.at(-1)![3])).toBe(1)
    expect(textOf(html)).toContain(`${total} landings in these 30 days`)

    // Tomorrow the oldest day leaves the chart and today's bar moves one to the left.
    s.clock.ms = today + DAY
    await s.user.signIn(s.apiKey)
    const tomorrow = bars(await s.overview())
    expect(tomorrow[0]!.day).toBe(days[1])
    expect(tomorrow.at(-1)).toMatchObject({ day: utcDay(today + DAY), count: 0 })
    expect(tomorrow.at(-2)).toMatchObject({ day: utcDay(today), count: 4 })
    expect(tomorrow.reduce((sum, bar) => sum + bar.count, 0)).toBe(total - (expected.get(days[0]!) ?? 0))
  })
})

describe('the counts', () => {
  test('entitlements by status and marketplace, deliveries failing or pending, usage pending or rejected: as the API answers', async () => {
    // The ISV's endpoint is down: every delivery stays PENDING, and FAILED after 3 days.
    const hooks = await startHookReceiver(() => false)
    try {
      const s = await scenario({ webhookUrl: hooks.url, aws: true })
      const a = await s.landAzure()
      const b = await s.landAzure()
      const c = await s.landAzure()
      await s.landAws()
      // One suspended (a refresh through the API), one cancelled at the marketplace and told so.
      azure.emulator.subscriptions.get(b.sub.id)!.saasSubscriptionStatus = 'Suspended'
      expect((await s.broker.request(`/api/v1/orgs/${s.org.id}/entitlements/${b.id}/refresh`, { method: 'POST', token: s.apiKey })).status).toBe(200)
      azure.emulator.subscriptions.get(c.sub.id)!.saasSubscriptionStatus = 'Unsubscribed'
      expect((await s.broker.request(`/api/v1/orgs/${s.org.id}/entitlements/${c.id}/refresh`, { method: 'POST', token: s.apiKey })).status).toBe(200)

      // Usage: two records of an hour that has ended, for a subscription the marketplace has
      // suspended meanwhile (REJECTED when reported), and one of the current hour (PENDING).
      const record = (id: string, body: Record<string, unknown>) =>
        s.broker.request(`/api/v1/orgs/${s.org.id}/entitlements/${id}/usage`, { method: 'POST', token: s.apiKey, json: { dimension: 'api', idempotencyKey: randomUUID(), ...body } })
      // (Two hours back: the hour before the current one may still be in its closing grace.)
      const hourAgo = new Date(Math.floor(s.clock.ms / 3600_000) * 3600_000 - 2 * 3600_000 + 60_000).toISOString()
      expect((await record(a.id, { quantity: 5, timestamp: hourAgo })).status).toBe(202)
      expect((await record(a.id, { quantity: 2, timestamp: hourAgo })).status).toBe(202)
      const d = await s.landAzure()
      expect((await record(d.id, { quantity: 1 })).status).toBe(202)
      azure.emulator.subscriptions.get(a.sub.id)!.saasSubscriptionStatus = 'Suspended'
      await reportUsage(s.broker.deps, s.broker.deps.logger)

      // Every delivery attempted (503), then 4 days later given up on, then one more landing's.
      await kickDeliveries(s.broker.deps, s.broker.deps.logger)
      s.clock.ms += 4 * DAY
      await kickDeliveries(s.broker.deps, s.broker.deps.logger)
      await s.landAzure()
      await kickDeliveries(s.broker.deps, s.broker.deps.logger)

      await s.user.signIn(s.apiKey)
      const html = await s.overview()
      // Entitlements, against the API's lists.
      const all = (await s.api<{ items: Array<{ id: string; partner: string; status: string }> }>('/entitlements')).items
      expect(all).toHaveLength(6)
      expect(stat(html, 'count-all')).toBe(all.length)
      for (const status of ['PENDING_START', 'ACTIVE', 'SUSPENDED', 'PENDING_CANCEL', 'CANCELLED']) {
        const listed = (await s.api<{ items: unknown[] }>(`/entitlements?status=${status}`)).items.length
        expect(stat(html, `count-${status}`), status).toBe(listed)
      }
      expect(stat(html, 'count-ACTIVE')).toBe(4)
      expect(stat(html, 'count-SUSPENDED')).toBe(1)
      expect(stat(html, 'count-CANCELLED')).toBe(1)
      for (const partner of ['azure', 'aws', 'gcp']) {
        for (const status of ['ACTIVE', 'SUSPENDED', 'CANCELLED']) {
          const listed = (await s.api<{ items: unknown[] }>(`/entitlements?partner=${partner}&status=${status}`)).items.length
          expect(html, `${partner} ${status}`).toContain(`<td data-partner="${partner}" data-status="${status}">${listed}</td>`)
        }
        const listed = (await s.api<{ items: unknown[] }>(`/entitlements?partner=${partner}`)).items.length
        expect(html).toContain(`<td data-partner="${partner}" data-status="total">${listed}</td>`)
      }
      expect(html).toContain('<td data-partner="aws" data-status="total">1</td>')
      // Each count links to the list it counts.
      expect(html).toContain(`href="/console/orgs/${s.org.id}/entitlements?status=SUSPENDED" id="count-SUSPENDED"`)

      // Deliveries, against the API's lists.
      const deliveries = async (status: string) => (await s.api<{ items: unknown[] }>(`/webhook-deliveries?status=${status}&limit=1000`)).items.length
      const failed = await deliveries('FAILED')
      const pending = await deliveries('PENDING')
      expect(failed).toBeGreaterThan(0)
      expect(pending).toBe(2)
      expect(stat(html, 'deliveries-FAILED')).toBe(failed)
      expect(stat(html, 'deliveries-PENDING')).toBe(pending)
      expect(html).toContain(`href="/console/orgs/${s.org.id}/webhooks?status=FAILED" id="deliveries-FAILED"`)

      // Usage, against the API's records.
      const usage = [
        ...(await s.api<{ items: Array<{ status: string }> }>(`/entitlements/${a.id}/usage`)).items,
        ...(await s.api<{ items: Array<{ status: string }> }>(`/entitlements/${d.id}/usage`)).items,
      ]
      expect(usage.map((item) => item.status).sort()).toEqual(['PENDING', 'REJECTED', 'REJECTED'])
      expect(stat(html, 'usage-REJECTED')).toBe(2)
      expect(stat(html, 'usage-PENDING')).toBe(1)

      // Integration health: Azure and AWS configured, Google not.
      expect(html).toMatch(/<li id="health-azure">[^]*?Configured<\/span><\/li>/)
      expect(html).toMatch(/<li id="health-aws">[^]*?Configured<\/span><\/li>/)
      expect(html).toMatch(/<li id="health-gcp">[^]*?Not configured<\/span><\/li>/)
      expect(html).toContain(`href="/console/orgs/${s.org.id}/integrations"`)
      // With purchases there are no first steps.
      expect(textOf(html)).not.toContain('No purchases yet')
    } finally {
      await hooks.close()
    }
  })

  test('another org’s counts are not counted', async () => {
    const s = await scenario()
    await s.landAzure()
    const other = await s.broker.createOrg({ name: 'Other' })
    const otherUser = consoleUser((url, init) => s.broker.app.request(url, init))
    await otherUser.signIn(other.apiKey)
    const page = await otherUser.get(`/console/orgs/${other.org.id}`)
    expect(stat(page.html, 'count-all')).toBe(0)
    expect(bars(page.html).every((bar) => bar.count === 0)).toBe(true)
    // And their overview is not ours to see.
    expect((await otherUser.get(`/console/orgs/${s.org.id}`)).status).toBe(404)
    expect(stat(await s.overview(), 'count-all')).toBe(1)
  })
})

describe('a new org', () => {
  test('without an integration: says so and links to Integrations', async () => {
    const s = await scenario({ azure: false, name: HOSTILE_ORG })
    const html = await s.overview()
    const text = textOf(html)
    expect(text).toContain('No purchases yet')
    expect(text).toContain('No marketplace is connected yet')
    expect(html).toContain(`<a class="button" href="/console/orgs/${s.org.id}/integrations">Configure an integration</a>`)
    expect(bars(html)).toHaveLength(30)
    // The hostile name as text.
    expect(html).not.toContain('<img src=x')
    expect(text).toContain(HOSTILE_ORG)
  })

  test('with integrations: each one’s signup and notification URL to paste, as the API gives them', async () => {
    const s = await scenario({ aws: true })
    const { items } = await s.api<{ items: Array<{ partner: string; signupUrl: string; notificationUrl: string }> }>('/integrations')
    expect(items.map((item) => item.partner).sort()).toEqual(['aws', 'azure'])
    const html = await s.overview()
    expect(textOf(html)).toContain('No purchases yet')
    for (const item of items) {
      const escape = (url: string) => url.replace(/&/g, '&amp;')
      expect(html).toContain(`<input type="text" id="first-signup-url-${item.partner}" value="${escape(item.signupUrl)}" readonly=""/>`)
      expect(html).toContain(`<input type="text" id="first-notification-url-${item.partner}" value="${escape(item.notificationUrl)}" readonly=""/>`)
      expect(html).toContain(`<label class="field" for="first-signup-url-${item.partner}">`)
    }
    expect(textOf(html)).toContain('Not connected: Google Cloud.')
    // The first purchase ends the first steps.
    await s.landAzure()
    expect(textOf(await s.overview())).not.toContain('No purchases yet')
  })
})
