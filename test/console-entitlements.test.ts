import { randomUUID } from 'node:crypto'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { listEntitlementsJson } from '../src/domain/entitlements'
import { kickDeliveries } from '../src/domain/webhooks'
import { type AwsEmulator, createAwsEmulator } from '../sandbox/emulators/aws'
import { consoleUser, textOf } from './console'
import { type AzureSetup, type TestBroker, createTestBroker, landAwsBuyer, startAzure, startHookReceiver } from './helpers'

/**
 * The console's Entitlements pages (contract §14) against the API: the list with its filters,
 * search and paging, one entitlement's page, and Refresh from marketplace, for buyers who landed
 * through the Azure and AWS emulators.
 */

interface Entitlement {
  id: string
  orgId: string
  partner: string
  partnerId: string
  status: string
  offerType: string
  externalId: string
  productId: string | null
  planId: string | null
  quantity: number | null
  buyer: Record<string, string | null>
  term: { start: string | null; end: string | null; unit: string | null; autoRenew: boolean | null }
  isFreeTrial: boolean
  isTest: boolean
  info: Record<string, unknown>
  createdAt: string
  updatedAt: string
}

const HOSTILE_EMAIL = '"<img src=x onerror=alert(1)>"@evil.example'
const HOSTILE_ORG = 'Acme <script>alert("org")</script> & Co'

let azure: AzureSetup
let aws: AwsEmulator
let closeAws: () => Promise<void>
let hooks: Awaited<ReturnType<typeof startHookReceiver>>
let broker: TestBroker
let orgId: string
let apiKey: string
let user: ReturnType<typeof consoleUser>
/** The landed buyers, oldest first. */
const landed: Array<{ id: string; partner: 'azure' | 'aws'; subscriptionId?: string; email?: string }> = []
const awsSeller = { accessKeyId: 'AKIACONSOLE000000001', secretAccessKey: 'console/secret+key=' }

const party = (emailId: string) => ({ emailId, objectId: randomUUID(), tenantId: randomUUID(), puid: '10037FFE8D3C0000' })

async function landAzure(email: string) {
  const sub = azure.emulator.addSubscription({ appId: azure.clientId, beneficiary: party(email), purchaser: party(email) })
  const landing = await broker.request(`/public/signup/azure/orgId/${orgId}?token=${encodeURIComponent(azure.emulator.issuePurchaseToken(sub.id))}`, { token: null })
  expect(landing.status).toBe(303)
  const id = new URL(landing.headers.get('location')!).searchParams.get('sugerEntitlementId')!
  landed.push({ id, partner: 'azure', subscriptionId: sub.id, email })
  return { id, sub }
}

async function api<T>(path: string): Promise<T> {
  const response = await broker.request(`/api/v1/orgs/${orgId}${path}`, { token: apiKey })
  expect(response.status).toBe(200)
  return (await response.json()) as T
}
const apiList = async (query = '') => (await api<{ items: Entitlement[]; nextCursor: string | null }>(`/entitlements${query}`)).items

/** The entitlement ids of a list page's table, in order. */
const rowIds = (html: string) => [...html.matchAll(/<tr data-id="(ent_[^"]+)"/g)].map((m) => m[1]!)
const listPath = (query = '') => `/console/orgs/${orgId}/entitlements${query}`
const detailPath = (id: string, id2 = orgId) => `/console/orgs/${id2}/entitlements/${id}`
/** The href of a link whose text is `label`, as the page wrote it (entities decoded). */
const linkTo = (html: string, label: string) => {
  const found = new RegExp(`<a class="[^"]*" href="([^"]+)">${label}</a>`).exec(html)
  return found ? found[1]!.replace(/&amp;/g, '&') : null
}
const auditEntries = async () => (await api<{ items: Array<{ action: string; actor: { type: string; id: string | null }; targetId: string; changes: Record<string, unknown> }> }>('/audit-log')).items

beforeAll(async () => {
  azure = await startAzure()
  aws = createAwsEmulator()
  let awsUrl: string
  ;({ url: awsUrl, close: closeAws } = await aws.listen())
  aws.addCredentials(awsSeller.accessKeyId, awsSeller.secretAccessKey)
  hooks = await startHookReceiver()
  broker = await createTestBroker({
    AZURE_MARKETPLACE_API_URL: azure.url,
    AZURE_LOGIN_URL: azure.url,
    AWS_MARKETPLACE_METERING_URL: awsUrl,
    AWS_MARKETPLACE_ENTITLEMENT_URL: awsUrl,
    AWS_STS_URL: awsUrl,
  })
  ;({ org: { id: orgId }, apiKey } = await broker.createOrg({ name: HOSTILE_ORG, webhookUrl: hooks.url }))
  const azurePut = await broker.request(`/api/v1/orgs/${orgId}/integrations/azure`, {
    method: 'PUT',
    token: apiKey,
    json: { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret },
  })
  expect(azurePut.status).toBe(200)
  const awsPut = await broker.request(`/api/v1/orgs/${orgId}/integrations/aws`, { method: 'PUT', token: apiKey, json: { credentials: awsSeller } })
  expect(awsPut.status).toBe(200)

  await landAzure('ada@contoso.example')
  await landAzure('grace@contoso.example')
  await landAzure(HOSTILE_EMAIL)
  for (let i = 0; i < 2; i++) {
    const { token } = aws.addCustomer({ ProductCode: 'prod-console' })
    landed.push({ id: await landAwsBuyer(broker, orgId, token), partner: 'aws' })
  }
  await landAzure('linus@kernel.example')
  // One suspended at the marketplace and told so by a refresh through the API: a second status to filter by.
  azure.emulator.subscriptions.get(landed[1]!.subscriptionId!)!.saasSubscriptionStatus = 'Suspended'
  expect((await broker.request(`/api/v1/orgs/${orgId}/entitlements/${landed[1]!.id}/refresh`, { method: 'POST', token: apiKey })).status).toBe(200)
  await kickDeliveries(broker.deps, broker.deps.logger)

  user = consoleUser((url, init) => broker.app.request(url, init))
  await user.signIn(apiKey)
})
afterAll(async () => {
  await broker?.close()
  await hooks?.close()
  await closeAws?.()
  await azure?.close()
})

describe('the list', () => {
  test('shows what the API lists, newest first, with each one’s marketplace, status, product/plan and buyer', async () => {
    const page = await user.get(listPath())
    expect(page.status).toBe(200)
    const items = await apiList()
    expect(items).toHaveLength(landed.length)
    expect(rowIds(page.html)).toEqual(items.map((item) => item.id))
    for (const item of items) {
      const row = new RegExp(`<tr data-id="${item.id}">([\\s\\S]*?)</tr>`).exec(page.html)![1]!
      const text = textOf(row)
      expect(row).toContain(`href="/console/orgs/${orgId}/entitlements/${item.id}"`)
      expect(row).toContain(`class="badge ${item.status}"`)
      expect(row).toContain(`class="badge ${item.partner}"`)
      expect(text).toContain(item.productId ?? '—')
      if (item.buyer.email) expect(text).toContain(item.buyer.email)
      expect(text).toContain(item.createdAt.replace('T', ' ').replace(/\.\d+Z$/, ' UTC'))
    }
    // Every control labelled, every header cell scoped.
    for (const id of ['filter-partner', 'filter-status', 'filter-q']) expect(page.html).toContain(`<label class="field" for="${id}">`)
    expect(page.html).toContain('<th scope="col">')
    expect(page.html).not.toMatch(/<th(?=[\s>])(?![^>]*scope=)[^>]*>/)
  })

  test('filters by marketplace and by status exactly as the API does, and the selects show the filter', async () => {
    for (const query of ['?partner=aws', '?partner=azure', '?status=SUSPENDED', '?status=ACTIVE', '?partner=azure&status=SUSPENDED', '?partner=gcp']) {
      const page = await user.get(listPath(query))
      expect(page.status).toBe(200)
      expect(rowIds(page.html)).toEqual((await apiList(query)).map((item) => item.id))
    }
    expect(rowIds((await user.get(listPath('?partner=aws'))).html)).toHaveLength(2)
    expect(rowIds((await user.get(listPath('?status=SUSPENDED'))).html)).toEqual([landed[1]!.id])
    const html = (await user.get(listPath('?partner=aws&status=ACTIVE'))).html
    expect(html).toContain('<option value="aws" selected="">AWS</option>')
    expect(html).toContain('<option value="ACTIVE" selected="">ACTIVE</option>')
    // Values the selects do not offer filter nothing (and the selects say "All").
    expect(rowIds((await user.get(listPath('?partner=ebay&status=active'))).html)).toEqual((await apiList()).map((item) => item.id))
  })

  test('searches by ent_ id, by marketplace id (any case, or part of it) and by buyer email', async () => {
    const items = await apiList()
    const target = items.find((item) => item.id === landed[0]!.id)!
    expect(rowIds((await user.get(listPath(`?q=${target.id}`))).html)).toEqual([target.id])
    expect(rowIds((await user.get(listPath(`?q=${encodeURIComponent(`  ${target.id} `)}`))).html)).toEqual([target.id])
    expect(rowIds((await user.get(listPath(`?q=${target.externalId.toUpperCase()}`))).html)).toEqual([target.id])
    expect(rowIds((await user.get(listPath(`?q=${target.externalId.slice(4, 20)}`))).html)).toEqual([target.id])
    const aws = items.filter((item) => item.partner === 'aws')
    expect(rowIds((await user.get(listPath(`?q=${encodeURIComponent(aws[0]!.externalId)}`))).html)).toEqual([aws[0]!.id])
    expect(rowIds((await user.get(listPath('?q=prod-console:'))).html)).toEqual(aws.map((item) => item.id))
    expect(rowIds((await user.get(listPath('?q=GRACE@contoso.EXAMPLE'))).html)).toEqual([landed[1]!.id])
    const contoso = items.filter((item) => item.buyer.email?.endsWith('@contoso.example')).map((item) => item.id)
    expect(contoso).toHaveLength(2)
    expect(rowIds((await user.get(listPath('?q=%40contoso.example'))).html)).toEqual(contoso)
    // With the other filters.
    expect(rowIds((await user.get(listPath('?q=%40contoso.example&status=ACTIVE'))).html)).toEqual([landed[0]!.id])
    // LIKE's wildcards are taken literally, and an id is matched whole: what the search finds is
    // exactly the entitlements whose id is the text, or whose marketplace id or buyer email contains it.
    const matches = (q: string) =>
      items.filter((item) => item.id === q || item.externalId.toLowerCase().includes(q.toLowerCase()) || (item.buyer.email ?? '').toLowerCase().includes(q.toLowerCase()))
    for (const q of ['%', '_', '!', '-', 'ent_', target.id.slice(0, -1), '*', 'a', 'E', '.', '"', '<']) {
      expect(rowIds((await user.get(listPath(`?q=${encodeURIComponent(q)}`))).html), q).toEqual(matches(q).map((item) => item.id))
    }
    for (const q of ['%', '!', 'ent_', target.id.slice(0, -1), '*']) expect(matches(q), q).toEqual([])
    // The domain's search, as the API could use it.
    const json = JSON.parse(await listEntitlementsJson(broker.deps, orgId, { q: 'linus@', limit: 10 })) as { items: Entitlement[] }
    expect(json.items.map((item) => item.id)).toEqual([landed[5]!.id])
  })

  test('pages with the API’s cursor: every entitlement once, in order, with a way back to the first page', async () => {
    const all = (await apiList()).map((item) => item.id)
    const seen: string[] = []
    let path: string | null = listPath('?limit=2')
    let pages = 0
    while (path) {
      const page = await user.get(path)
      expect(page.status).toBe(200)
      seen.push(...rowIds(page.html))
      if (pages > 0) expect(linkTo(page.html, 'First page')).toBe(listPath('?limit=2'))
      path = linkTo(page.html, 'Next page')
      if (path) expect(path).toMatch(/limit=2&cursor=/)
      pages++
      expect(pages).toBeLessThan(10)
    }
    expect(pages).toBe(3)
    expect(seen).toEqual(all)
    // The filters ride along with the cursor.
    const first = await user.get(listPath('?partner=azure&limit=1'))
    const next = linkTo(first.html, 'Next page')!
    expect(next).toContain('partner=azure')
    const second = await user.get(next)
    expect(rowIds(second.html)).toEqual([(await apiList('?partner=azure'))[1]!.id])
  })

  test('says whether there are no entitlements at all or none that match', async () => {
    const fresh = await broker.createOrg({ name: 'Fresh' })
    const other = consoleUser((url, init) => broker.app.request(url, init))
    await other.signIn(fresh.apiKey)
    const empty = await other.get(`/console/orgs/${fresh.org.id}/entitlements`)
    expect(empty.status).toBe(200)
    expect(textOf(empty.html)).toContain('No entitlements yet')
    expect(empty.html).toContain(`href="/console/orgs/${fresh.org.id}/integrations"`)
    const none = await user.get(listPath('?q=nobody%40nowhere.example'))
    expect(none.status).toBe(200)
    expect(textOf(none.html)).toContain('No entitlement matches')
    expect(textOf(none.html)).toContain('“nobody@nowhere.example”')
    expect(textOf(none.html)).not.toContain('No entitlements yet')
  })

  test('a search that is too long, or a cursor that is not one, is a readable 400 with the form kept', async () => {
    const long = await user.get(listPath(`?q=${'x'.repeat(201)}`))
    expect(long.status).toBe(400)
    expect(textOf(long.html)).toContain('at most 200 characters')
    expect(long.html).toContain('aria-invalid="true"')
    const cursor = await user.get(listPath('?cursor=not-a-cursor'))
    expect(cursor.status).toBe(400)
    expect(textOf(cursor.html)).toContain('This page link is not valid')
  })

  test('property: whatever the query string, the list never answers a 5xx', async () => {
    // Cursors that decode, but to what the API never hands out (a NUL PostgreSQL cannot compare, the wrong shape).
    const forged = [['2026\u0000', 'x'], ['2026-01-01T00:00:00.000Z'], { a: 1 }, ['x', 'y']].map((value) => Buffer.from(JSON.stringify(value)).toString('base64url'))
    const value = fc.oneof(
      fc.string(),
      fc.constantFrom('aws', 'azure', 'gcp', 'ACTIVE', 'SUSPENDED', '', '%', '_', 'ent_', '0', '-1', '1001', 'NaN', '\u0000', 'a\u0000b', ...forged),
      fc.string({ unit: 'binary' }),
    )
    await fc.assert(
      fc.asyncProperty(fc.record({ partner: value, status: value, q: value, cursor: value, limit: value }, { requiredKeys: [] }), async (params) => {
        const page = await user.get(listPath(`?${new URLSearchParams(params as Record<string, string>)}`))
        expect([200, 400]).toContain(page.status)
        expect(page.html).not.toContain('<script>alert')
      }),
      { numRuns: 60 },
    )
  })
})

describe('one entitlement', () => {
  test('shows every field of the API’s Entitlement, its history, usage and webhook deliveries', async () => {
    const id = landed[0]!.id
    const usage = [
      { dimension: 'api_calls', quantity: 12, idempotencyKey: `k-${randomUUID()}` },
      { dimension: 'seats', quantity: 1.5, idempotencyKey: `k-${randomUUID()}` },
    ]
    for (const record of usage) {
      const recorded = await broker.request(`/api/v1/orgs/${orgId}/entitlements/${id}/usage`, { method: 'POST', token: apiKey, json: record })
      expect(recorded.status).toBe(202)
    }
    const entitlement = await api<Entitlement>(`/entitlements/${id}`)
    const events = (await api<{ items: Array<{ id: string; type: string; source: string }> }>(`/entitlements/${id}/events`)).items
    const records = (await api<{ items: Array<{ id: string; dimension: string; idempotencyKey: string; status: string }> }>(`/entitlements/${id}/usage`)).items
    const deliveries = (await api<{ items: Array<{ id: string; eventId: string; status: string; type: string }> }>('/webhook-deliveries?limit=1000')).items.filter((delivery) =>
      events.some((event) => event.id === delivery.eventId),
    )
    expect(events.map((event) => event.type)).toEqual(['CREATE', 'ACTIVATE'])
    expect(deliveries).toHaveLength(2)

    const page = await user.get(detailPath(id))
    expect(page.status).toBe(200)
    const text = textOf(page.html)
    // The JSON the API answers, as it is.
    const shown = /<pre id="entitlement-json"[^>]*>([\s\S]*?)<\/pre>/.exec(page.html)![1]!
    expect(JSON.parse(textOf(shown))).toEqual(entitlement)
    // Each field where people read it.
    for (const value of [entitlement.id, entitlement.partnerId, entitlement.offerType, entitlement.externalId, entitlement.productId!, entitlement.planId!, entitlement.orgId]) {
      expect(text).toContain(value)
    }
    for (const value of Object.values(entitlement.buyer)) if (value) expect(text).toContain(value)
    expect(page.html).toContain(`class="badge ${entitlement.status}"`)
    expect(text).toContain(entitlement.term.unit!)
    expect(text).toContain(entitlement.createdAt.replace('T', ' ').replace(/\.\d+Z$/, ' UTC'))
    // History, oldest first, as the API's events.
    expect([...page.html.matchAll(/<tr data-id="(evt_[^"]+)"/g)].map((m) => m[1])).toEqual(events.map((event) => event.id))
    // Usage, newest first, as the API's.
    expect([...page.html.matchAll(/<tr data-id="(use_[^"]+)"/g)].map((m) => m[1])).toEqual(records.map((record) => record.id))
    for (const record of usage) expect(text).toContain(record.idempotencyKey)
    // The deliveries of its events.
    const shownDeliveries = [...page.html.matchAll(/<tr data-id="(msg_[^"]+)">([\s\S]*?)<\/tr>/g)]
    expect(shownDeliveries.map((m) => m[1]).sort()).toEqual(deliveries.map((delivery) => delivery.id).sort())
    for (const [, deliveryId, row] of shownDeliveries) expect(row).toContain(`class="badge ${deliveries.find((delivery) => delivery.id === deliveryId)!.status}"`)
    // Another entitlement's deliveries are not among them.
    const otherEvents = (await api<{ items: Array<{ id: string }> }>(`/entitlements/${landed[2]!.id}/events`)).items
    const otherDeliveries = (await api<{ items: Array<{ id: string; eventId: string }> }>('/webhook-deliveries?limit=1000')).items.filter((d) => otherEvents.some((e) => e.id === d.eventId))
    expect(otherDeliveries.length).toBeGreaterThan(0)
    for (const delivery of otherDeliveries) expect(page.html).not.toContain(delivery.id)
    // The Refresh form carries the session's CSRF token.
    expect(page.html).toMatch(new RegExp(`<form method="post" action="/console/orgs/${orgId}/entitlements/${id}/refresh"[^>]*><input type="hidden" name="_csrf" value="[^"]+"`))
  })

  test('buyer emails and org names with markup are shown as text', async () => {
    const hostile = landed.find((entry) => entry.email === HOSTILE_EMAIL)!
    for (const path of [listPath(), detailPath(hostile.id), listPath(`?q=${encodeURIComponent('<img')}`)]) {
      const page = await user.get(path)
      expect(page.status).toBe(200)
      expect(page.html).not.toContain('<img src=x')
      expect(page.html).not.toContain('<script>alert')
      expect(textOf(page.html)).toContain('Acme <script>alert("org")</script> & Co')
    }
    expect(textOf((await user.get(detailPath(hostile.id))).html)).toContain(HOSTILE_EMAIL)
    expect(rowIds((await user.get(listPath(`?q=${encodeURIComponent('<img')}`))).html)).toEqual([hostile.id])
  })

  test('another org’s entitlement, or none, is a 404 page, however it is asked for', async () => {
    const other = await broker.createOrg({ name: 'Other' })
    const otherUser = consoleUser((url, init) => broker.app.request(url, init))
    await otherUser.signIn(other.apiKey)
    const id = landed[0]!.id
    // Through the other org's own pages.
    const asOwn = await otherUser.get(detailPath(id, other.org.id))
    expect(asOwn.status).toBe(404)
    expect(asOwn.html).not.toContain(id.slice(4))
    // Through this org's pages (not theirs to see).
    expect((await otherUser.get(detailPath(id))).status).toBe(404)
    expect((await otherUser.get(listPath())).status).toBe(404)
    // Refreshing it through their own org: 404, and nothing asked or written.
    const before = await auditEntries()
    const refused = await otherUser.submit(`/console/orgs/${other.org.id}/entitlements`, `${detailPath(id, other.org.id)}/refresh`)
    expect(refused.status).toBe(404)
    expect(await auditEntries()).toEqual(before)
    for (const missing of ['ent_nope', 'x'.repeat(300), '%3Cscript%3E']) expect((await user.get(detailPath(missing))).status).toBe(404)
  })
})

describe('Refresh from marketplace', () => {
  test('applies what changed, says so, and writes an audit entry by the console; unchanged and upstream failures are told too', async () => {
    const { id, sub } = await landAzure('refresh@contoso.example')
    const before = await auditEntries()
    azure.emulator.subscriptions.get(sub.id)!.saasSubscriptionStatus = 'Suspended'
    const changed = await user.submit(detailPath(id), `${detailPath(id)}/refresh`)
    expect(changed.status).toBe(303)
    expect(changed.location).toBe(`${detailPath(id)}?notice=refreshed`)
    expect((await api<Entitlement>(`/entitlements/${id}`)).status).toBe('SUSPENDED')
    const after = await user.get(changed.location!)
    expect(textOf(after.html)).toContain('it had changed')
    expect(after.html).toContain('class="badge SUSPENDED"')
    expect(after.html).toContain('class="badge SUSPEND"')
    const entries = await auditEntries()
    expect(entries.length).toBe(before.length + 1)
    expect(entries[0]).toMatchObject({ action: 'entitlement.refreshed', targetId: id, actor: { type: 'console' }, changes: { status: { from: 'ACTIVE', to: 'SUSPENDED' } } })

    const same = await user.submit(detailPath(id), `${detailPath(id)}/refresh`)
    expect(same.location).toBe(`${detailPath(id)}?notice=unchanged`)
    expect(textOf((await user.get(same.location!)).html)).toContain('nothing had changed')
    expect((await auditEntries())[0]).toMatchObject({ action: 'entitlement.refreshed', targetId: id, actor: { type: 'console' }, changes: {} })

    // The marketplace down: a readable error, nothing written, the entitlement as it was.
    const count = (await auditEntries()).length
    azure.emulator.subscriptions.get(sub.id)!.saasSubscriptionStatus = 'Subscribed'
    // Each of the three attempts a call gets.
    azure.emulator.failNext('get', 503, 3)
    const down = await user.submit(detailPath(id), `${detailPath(id)}/refresh`)
    expect(down.status).toBe(303)
    expect(down.location).toBe(`${detailPath(id)}?notice=refresh-failed`)
    const downPage = await user.get(down.location!)
    expect(downPage.status).toBe(200)
    expect(textOf(downPage.html)).toContain('could not be asked just now, so nothing was changed')
    expect(downPage.html).toContain('role="alert"')
    expect((await api<Entitlement>(`/entitlements/${id}`)).status).toBe('SUSPENDED')
    expect(await auditEntries()).toHaveLength(count)
  })

  test('a notice code the page does not know shows nothing', async () => {
    const page = await user.get(`${detailPath(landed[0]!.id)}?notice=${encodeURIComponent('<b>pwned</b>')}`)
    expect(page.status).toBe(200)
    expect(page.html).not.toContain('pwned')
  })

  test('a forged refresh (no token, another session’s token, another site) is refused and changes nothing', async () => {
    const { id, sub } = await landAzure('forged@contoso.example')
    azure.emulator.subscriptions.get(sub.id)!.saasSubscriptionStatus = 'Suspended'
    const before = await auditEntries()
    const events = async () => (await api<{ items: unknown[] }>(`/entitlements/${id}/events`)).items.length
    const eventsBefore = await events()
    const another = consoleUser((url, init) => broker.app.request(url, init))
    await another.signIn(apiKey)
    const theirToken = another.csrfOf((await another.get(detailPath(id))).html)!
    const ownToken = user.csrfOf((await user.get(detailPath(id))).html)!
    expect(theirToken).not.toBe(ownToken)
    const attempts = [
      await user.post(`${detailPath(id)}/refresh`, {}),
      await user.post(`${detailPath(id)}/refresh`, { _csrf: '' }),
      await user.post(`${detailPath(id)}/refresh`, { _csrf: theirToken }),
      await user.post(`${detailPath(id)}/refresh`, { _csrf: ownToken }, { origin: 'https://evil.example' }),
      await user.post(`${detailPath(id)}/refresh`, { _csrf: ownToken }, { origin: 'null' }),
    ]
    for (const attempt of attempts) {
      expect(attempt.status).toBe(403)
      expect(textOf(attempt.html)).toContain('Nothing was changed')
    }
    expect(await auditEntries()).toEqual(before)
    expect(await events()).toBe(eventsBefore)
    expect((await api<Entitlement>(`/entitlements/${id}`)).status).toBe('ACTIVE')
    // The real form still works.
    expect((await user.submit(detailPath(id), `${detailPath(id)}/refresh`)).location).toBe(`${detailPath(id)}?notice=refreshed`)
  })

  test('property: whatever the refresh form carries, never a 5xx; without this session’s token nothing is written', async () => {
    const token = user.csrfOf((await user.get(detailPath(landed[0]!.id))).html)!
    const ids = fc.oneof(fc.constantFrom(...landed.map((entry) => entry.id), 'ent_missing', '', 'ent_\u0000', 'x'.repeat(65)), fc.string({ minLength: 1, maxLength: 80 }), fc.string({ unit: 'binary', maxLength: 20 }))
    await fc.assert(
      fc.asyncProperty(ids, fc.dictionary(fc.string({ maxLength: 20 }), fc.string({ maxLength: 100 }), { maxKeys: 5 }), fc.boolean(), async (id, fields, withToken) => {
        const before = (await auditEntries()).length
        const path = `${detailPath(encodeURIComponent(id))}/refresh`
        const answer = await user.post(path, withToken ? { ...fields, _csrf: token } : fields)
        if (withToken) {
          expect([303, 404]).toContain(answer.status)
        } else {
          expect(answer.status).toBe(403)
          expect((await auditEntries()).length).toBe(before)
        }
      }),
      { numRuns: 40 },
    )
  })
})
