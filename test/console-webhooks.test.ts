import { type IncomingMessage, type ServerResponse, createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import fc from 'fast-check'
import { Webhook } from 'standardwebhooks'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { runJobs } from '../src/domain/jobs'
import { createLandingService } from '../src/domain/landing'
import { time } from '../src/pages/console/components'
import { consoleUser, textOf } from './console'
import { ADMIN_TOKEN, type TestBroker, createTestBroker, sleep, waitFor } from './helpers'

/**
 * The console's Webhooks page (contract §14, §8) over HTTP, as a browser without scripts uses it:
 * what it shows is what the JSON API answers, the secret is shown once and then signs (checked
 * with the `standardwebhooks` package), pings and retries reach a real receiver on loopback, and
 * forged, cross-site or another org's posts change nothing.
 */

interface Received {
  headers: Record<string, string>
  body: string
}

/** An ISV endpoint on loopback: records every request, answers `answer` (a status and a body). */
function receiver() {
  const received: Received[] = []
  let answer = { status: 204, body: '' }
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = ''
    req.on('data', (chunk) => (body += chunk))
    req.on('end', () => {
      received.push({ headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)])), body })
      res.writeHead(answer.status, { 'content-type': 'text/plain' }).end(answer.body)
    })
  })
  return {
    received,
    answer: (status: number, body = '') => (answer = { status, body }),
    listen: () => new Promise<string>((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`))),
    close: () => {
      server.closeAllConnections()
      return new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

interface Delivery {
  id: string
  eventId: string | null
  type: string
  status: string
  attempts: number
  lastStatusCode: number | null
  lastError: string | null
  nextAttemptAt: string | null
  createdAt: string
}

let broker: TestBroker
const hooks = receiver()
let hookUrl: string

beforeAll(async () => {
  hookUrl = await hooks.listen()
  broker = await createTestBroker()
})
afterAll(async () => {
  await hooks.close()
  await broker.close()
})

/** An org (with a webhook URL given at creation, or none) and a console user signed in with its key. */
async function signedIn(create: Record<string, unknown> = {}) {
  hooks.answer(204)
  const response = await broker.request('/api/v1/orgs', { method: 'POST', json: { name: 'Acme', fulfillmentUrl: 'https://app.acme.example/signup', ...create } })
  expect(response.status).toBe(201)
  const created = (await response.json()) as { org: { id: string }; apiKey: string; webhookSecret?: string }
  const user = consoleUser((url, init) => broker.app.request(url, init))
  await user.signIn(created.apiKey)
  const orgId = created.org.id
  const path = `/console/orgs/${orgId}/webhooks`
  const api = async <T,>(route: string, init: { method?: string; json?: unknown } = {}) => {
    const answer = await broker.request(`/api/v1/orgs/${orgId}${route}`, { token: created.apiKey, ...init })
    return { status: answer.status, body: (await answer.json()) as T }
  }
  const deliveries = async (search = '') => (await api<{ items: Delivery[]; nextCursor: string | null }>(`/webhook-deliveries${search}`)).body
  const org = async () => (await api<{ webhookUrl: string | null }>('')).body
  const audit = async () => (await api<{ items: Array<{ action: string; actor: { type: string; id: string | null; name: string | null }; changes: Record<string, unknown> }> }>('/audit-log')).body.items
  const forOrg = () => hooks.received.filter((hook) => JSON.parse(hook.body).orgId === orgId)
  const secretRow = async () => (await broker.deps.db.selectFrom('orgs').select(['webhook_secret', 'webhook_url']).where('id', '=', orgId).executeTakeFirstOrThrow())
  return { ...created, orgId, user, path, api, deliveries, org, audit, forOrg, secretRow }
}

const secretsIn = (html: string) => html.match(/whsec_[A-Za-z0-9+/=]+/g) ?? []

/** The rows of the deliveries table, as text. */
const rowsOf = (html: string) => [...(html.split('<tbody>')[1]?.split('</tbody>')[0] ?? '').matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((match) => textOf(match[1]!))

/** What one delivery's row reads, field by field as the API answers it. */
const rowText = (d: Delivery) =>
  [d.type, d.id, d.status, d.attempts, d.lastStatusCode ?? '—', d.lastError ?? '—', time(d.nextAttemptAt), time(d.createdAt), d.status === 'SUCCEEDED' ? null : `Retry ${d.id}`]
    .filter((part) => part !== null)
    .join(' ')

/** Makes the org's deliveries FAILED as three days of failures would (the schedule then gives up). */
async function failForGood(orgId: string) {
  await broker.deps.db.updateTable('webhook_deliveries').set({ created_at: new Date(Date.now() - 4 * 24 * 3600_000).toISOString(), next_attempt_at: '2000-01-01T00:00:00.000Z' }).where('org_id', '=', orgId).where('status', '=', 'PENDING').execute()
  await runJobs(broker.deps, createLandingService(broker.deps), broker.deps.logger)
}

describe('the Webhooks page', () => {
  test('a new org: empty states say what a webhook is, what to enter, and that no delivery was sent yet; no secret or ping buttons', async () => {
    const s = await signedIn()
    const page = await s.user.get(s.path)
    expect(page.status).toBe(200)
    const text = textOf(page.html)
    expect(text).toContain('No webhook URL yet')
    expect(text).toMatch(/A webhook is a POST your app receives/)
    expect(text).toContain('Enter the URL of an endpoint')
    expect(text).toContain('No deliveries yet')
    expect(text).toContain('Set a webhook URL above first')
    expect(page.html).toMatch(/<label class="field" for="webhook-url">/)
    expect(page.html).not.toContain('Rotate signing secret')
    expect(page.html).not.toContain('Send a test ping')
    expect(page.html).toContain('aria-current="page">Webhooks</a>')
  })

  test('a first webhook URL: its signing secret shown once in the answer (no-store, no redirect), never again; a test ping arrives signed with it', async () => {
    const s = await signedIn()
    const saved = await s.user.submit(s.path, `${s.path}/url`, { webhookUrl: hookUrl })
    expect(saved.status).toBe(200)
    expect(saved.location).toBeNull()
    expect(saved.response.headers.get('cache-control')).toBe('no-store')
    const [secret, ...more] = secretsIn(saved.html)
    expect(secret).toMatch(/^whsec_/)
    expect(more).toEqual([])
    expect(textOf(saved.html)).toContain('Your webhook signing secret')
    expect((await s.org()).webhookUrl).toBe(hookUrl)

    const again = await s.user.get(s.path)
    expect(secretsIn(again.html)).toEqual([])
    expect(again.html).toContain(`value="${hookUrl}"`)
    // The org's one change, made by the console's key, the secret redacted.
    const [entry] = await s.audit()
    expect(entry).toMatchObject({ action: 'org.updated', actor: { type: 'console', name: 'default' }, changes: { webhookUrl: { from: null, to: hookUrl }, webhookSecret: { from: null, to: '[redacted]' } } })
    expect(JSON.stringify(await s.audit())).not.toContain(secret)

    const ping = await s.user.submit(s.path, `${s.path}/test`)
    expect(ping.status).toBe(303)
    expect(ping.location).toBe(`${s.path}?notice=ping-queued`)
    const arrived = await waitFor('the ping at the receiver', () => s.forOrg()[0])
    expect(new Webhook(secret!).verify(arrived.body, arrived.headers)).toMatchObject({ type: 'ping', orgId: s.orgId })
    const [delivery] = (await s.deliveries()).items
    expect(delivery).toMatchObject({ id: arrived.headers['webhook-id'], type: 'ping' })
    const listed = await s.user.get(ping.location!)
    expect(textOf(listed.html)).toContain('Test ping queued')
    expect(listed.html).toContain(delivery!.id)
    expect((await s.audit())[0]).toMatchObject({ action: 'webhook.test_sent', actor: { type: 'console' } })
  })

  test('rotate: the new secret once, in the answer; a reload does not show it; webhooks carry its signature beside the old one', async () => {
    const s = await signedIn({ webhookUrl: hookUrl })
    const rotated = await s.user.submit(s.path, `${s.path}/secret`)
    expect(rotated.status).toBe(200)
    expect(rotated.location).toBeNull()
    expect(rotated.response.headers.get('cache-control')).toBe('no-store')
    const [secret] = secretsIn(rotated.html)
    expect(secret).toMatch(/^whsec_/)
    expect(secret).not.toBe(s.webhookSecret)
    expect(textOf(rotated.html)).toContain('Your new webhook signing secret')
    expect(textOf(rotated.html)).toContain('shown only this once')
    expect(rotated.html).not.toContain(s.webhookSecret!)
    expect(secretsIn((await s.user.get(s.path)).html)).toEqual([])
    expect((await s.audit())[0]).toMatchObject({ action: 'webhook_secret.rotated', actor: { type: 'console' }, changes: { webhookSecret: { from: '[redacted]', to: '[redacted]' } } })

    await s.user.submit(s.path, `${s.path}/test`)
    const arrived = await waitFor('the ping', () => s.forOrg()[0])
    expect(arrived.headers['webhook-signature']!.split(' ')).toHaveLength(2)
    expect(new Webhook(secret!).verify(arrived.body, arrived.headers)).toMatchObject({ type: 'ping' })
    expect(new Webhook(s.webhookSecret!).verify(arrived.body, arrived.headers)).toMatchObject({ type: 'ping' })
  })

  test('an operator (the admin token) sees any org’s page and acts on it; the audit log names the operator', async () => {
    const s = await signedIn({ webhookUrl: hookUrl })
    const operator = consoleUser((url, init) => broker.app.request(url, init))
    await operator.signIn(ADMIN_TOKEN)
    expect((await operator.get(s.path)).status).toBe(200)
    const rotated = await operator.submit(s.path, `${s.path}/secret`)
    expect(secretsIn(rotated.html)).toHaveLength(1)
    expect((await s.audit())[0]).toMatchObject({ action: 'webhook_secret.rotated', actor: { type: 'console', id: null, name: 'operator' } })
  })

  test('a refused URL: the form again with the API’s message and the value as typed, escaped; nothing changed', async () => {
    const s = await signedIn({ webhookUrl: hookUrl })
    for (const typed of ['http://hooks.example.com/<b>x</b>', 'not a url "quoted"', 'https://user:pw@hooks.example.com/', `https://${'a'.repeat(2050)}.example`]) {
      const api = await s.api<{ error: { message: string } }>('', { method: 'PATCH', json: { webhookUrl: typed } })
      expect(api.status).toBe(400)
      const refused = await s.user.submit(s.path, `${s.path}/url`, { webhookUrl: typed })
      expect(refused.status, typed).toBe(400)
      expect(textOf(refused.html)).toContain(api.body.error.message)
      expect(refused.html).toContain('aria-invalid="true"')
      // The typed value is the field's value, as text.
      expect(refused.html).toContain(`value="${typed.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')}"`)
      expect(refused.html).not.toContain('<b>x</b>')
    }
    expect((await s.org()).webhookUrl).toBe(hookUrl)
    expect((await s.audit()).filter((entry) => entry.action === 'org.updated')).toEqual([])
  })

  test('an empty URL removes it (PATCH with null); the same URL again changes nothing', async () => {
    const s = await signedIn({ webhookUrl: hookUrl })
    const same = await s.user.submit(s.path, `${s.path}/url`, { webhookUrl: ` ${hookUrl} ` })
    expect(same.location).toBe(`${s.path}?notice=url-unchanged`)
    expect(await s.audit()).toHaveLength(1) // org.created only
    const removed = await s.user.submit(s.path, `${s.path}/url`, { webhookUrl: '  ' })
    expect(removed.status).toBe(303)
    expect(removed.location).toBe(`${s.path}?notice=url-removed`)
    expect((await s.org()).webhookUrl).toBeNull()
    const page = await s.user.get(removed.location!)
    expect(textOf(page.html)).toContain('Webhook URL removed')
    expect(textOf(page.html)).toContain('No webhook URL yet')
    expect((await s.audit())[0]).toMatchObject({ action: 'org.updated', actor: { type: 'console' }, changes: { webhookUrl: { from: hookUrl, to: null } } })
    // Set again: the org keeps its signing secret, so none is shown.
    const back = await s.user.submit(s.path, `${s.path}/url`, { webhookUrl: hookUrl })
    expect(back.location).toBe(`${s.path}?notice=url-saved`)
  })

  test('the deliveries are what GET …/webhook-deliveries answers: every field, newest first, the status filter and the pages', async () => {
    const s = await signedIn({ webhookUrl: hookUrl })
    hooks.answer(500, 'boom')
    for (let i = 0; i < 3; i++) expect((await s.api('/webhooks/test', { method: 'POST' })).status).toBe(202)
    await waitFor('three failed attempts', async () => (await s.deliveries()).items.every((d) => d.attempts === 1))
    await failForGood(s.orgId)
    hooks.answer(204)
    for (let i = 0; i < 52; i++) expect((await s.api('/webhooks/test', { method: 'POST' })).status).toBe(202)
    await waitFor('every ping sent', async () => (await s.deliveries('?status=SUCCEEDED&limit=100')).items.length === 52)
    // One left PENDING: its attempt failed, the next is due later.
    hooks.answer(503, 'later')
    await s.api('/webhooks/test', { method: 'POST' })
    await waitFor('the pending one attempted', async () => (await s.deliveries('?limit=1')).items[0]!.attempts === 1)

    const first = await s.deliveries('?limit=50')
    const page = await s.user.get(s.path)
    expect(rowsOf(page.html)).toEqual(first.items.map(rowText))
    const pending = first.items[0]!
    expect(pending).toMatchObject({ status: 'PENDING', lastStatusCode: 503, lastError: 'HTTP 503: later' })
    expect(rowsOf(page.html)[0]).toContain(time(pending.nextAttemptAt))
    // The next page, by the pager's link, is the API's next page.
    const next = /<a class="button secondary small" href="([^"]+)">Next page<\/a>/.exec(page.html)![1]!.replace(/&amp;/g, '&')
    expect(next).toBe(`${s.path}?cursor=${first.nextCursor}`)
    const second = await s.deliveries(`?limit=50&cursor=${first.nextCursor}`)
    const secondPage = await s.user.get(next)
    expect(rowsOf(secondPage.html)).toEqual(second.items.map(rowText))
    expect(second.nextCursor).toBeNull()
    expect(secondPage.html).not.toContain('>Next page<')
    expect(secondPage.html).toContain(`href="${s.path}">First page</a>`)

    for (const status of ['FAILED', 'PENDING', 'SUCCEEDED'] as const) {
      const api = await s.deliveries(`?status=${status}&limit=50`)
      const filtered = await s.user.get(`${s.path}?status=${status}`)
      expect(rowsOf(filtered.html), status).toEqual(api.items.map(rowText))
      expect(filtered.html).toContain(`<option value="${status}" selected="">`)
    }
    expect(rowsOf((await s.user.get(`${s.path}?status=FAILED`)).html)).toHaveLength(3)
    const unknown = await s.user.get(`${s.path}?status=NOPE`)
    expect(unknown.status).toBe(400)
    expect((await s.user.get(`${s.path}?cursor=not-a-cursor`)).status).toBe(400)
    hooks.answer(204)
  })

  test('Retry on a FAILED delivery sends it again now, with the same webhook-id; the list shows it SUCCEEDED; one audit entry', async () => {
    const s = await signedIn({ webhookUrl: hookUrl })
    hooks.answer(500, 'boom')
    await s.api('/webhooks/test', { method: 'POST' })
    await waitFor('the failed attempt', async () => (await s.deliveries()).items[0]?.attempts === 1)
    await failForGood(s.orgId)
    const [failed] = (await s.deliveries()).items
    expect(failed).toMatchObject({ status: 'FAILED', attempts: 2 })
    const sent = s.forOrg().length
    hooks.answer(204)
    const filtered = `${s.path}?status=FAILED`
    const page = await s.user.get(filtered)
    const action = `${s.path}/deliveries/${failed!.id}/retry?status=FAILED`
    expect(page.html).toContain(`action="${action}"`)
    const retried = await s.user.submit(filtered, action)
    expect(retried.status).toBe(303)
    expect(retried.location).toBe(`${s.path}?status=FAILED&notice=retried-ok`)
    expect(s.forOrg()).toHaveLength(sent + 1)
    expect(s.forOrg().at(-1)!.headers['webhook-id']).toBe(failed!.id)
    expect(new Webhook(s.webhookSecret!).verify(s.forOrg().at(-1)!.body, s.forOrg().at(-1)!.headers)).toMatchObject({ type: 'ping' })
    const [after] = (await s.deliveries()).items
    expect(after).toMatchObject({ id: failed!.id, status: 'SUCCEEDED', attempts: 3, lastStatusCode: 204 })
    const back = await s.user.get(retried.location!)
    expect(textOf(back.html)).toContain('your endpoint accepted it')
    expect(rowsOf((await s.user.get(s.path)).html)).toEqual([rowText(after!)])
    expect((await s.audit()).filter((entry) => entry.action === 'webhook_delivery.retried')).toEqual([
      expect.objectContaining({ actor: { type: 'console', id: expect.stringMatching(/^key_/), name: 'default' } }),
    ])

    // A retry that fails again says so.
    hooks.answer(500, 'still down')
    const again = await s.user.submit(s.path, `${s.path}/deliveries/${failed!.id}/retry`)
    expect(again.location).toBe(`${s.path}?notice=retried-failed`)
    expect(textOf((await s.user.get(again.location!)).html)).toContain('HTTP 500: still down')
    hooks.answer(204)
  })

  test('hostile values are text: markup in the org name and in a receiver’s answer', async () => {
    const s = await signedIn({ name: '<img src=x onerror=alert(1)>Acme', webhookUrl: hookUrl })
    hooks.answer(500, '<script>alert("hook")</script><b onmouseover=alert(2)>x</b>')
    await s.api('/webhooks/test', { method: 'POST' })
    await waitFor('the failed attempt', async () => (await s.deliveries()).items[0]?.attempts === 1)
    const page = await s.user.get(s.path)
    expect(page.html).not.toMatch(/<img src=x|<script>alert|<b onmouseover/)
    expect(page.html).toContain('&lt;script&gt;alert(&quot;hook&quot;)&lt;/script&gt;')
    expect(page.html).toContain('&lt;img src=x onerror=alert(1)&gt;Acme')
    expect(textOf(page.html)).toContain('HTTP 500: <script>alert("hook")</script><b onmouseover=alert(2)>x</b>')
    hooks.answer(204)
  })

  test('another org’s delivery or page is 404, and nothing is sent', async () => {
    const a = await signedIn({ webhookUrl: hookUrl })
    const b = await signedIn({ webhookUrl: hookUrl })
    hooks.answer(500, 'boom')
    await b.api('/webhooks/test', { method: 'POST' })
    await waitFor('b’s attempt', async () => (await b.deliveries()).items[0]?.attempts === 1)
    const [theirs] = (await b.deliveries()).items
    const sent = hooks.received.length
    const csrf = a.user.csrfOf((await a.user.get(a.path)).html)!
    const cross = await a.user.post(`${a.path}/deliveries/${theirs!.id}/retry`, { _csrf: csrf })
    expect(cross.status).toBe(404)
    const theirPage = await a.user.post(`${b.path}/deliveries/${theirs!.id}/retry`, { _csrf: csrf })
    expect(theirPage.status).toBe(404)
    expect((await a.user.get(b.path)).status).toBe(404)
    for (const action of ['url', 'secret', 'test']) expect((await a.user.post(`${b.path}/${action}`, { _csrf: csrf, webhookUrl: '' })).status).toBe(404)
    await sleep(50)
    expect(hooks.received.length).toBe(sent)
    expect((await b.deliveries()).items).toEqual([theirs])
    expect((await b.org()).webhookUrl).toBe(hookUrl)
    expect(await b.audit()).toHaveLength(2) // org.created, webhook.test_sent
    hooks.answer(204)
  })

  test('forged posts (no token, another session’s token, a cross-site Origin) are refused and change nothing', async () => {
    const s = await signedIn({ webhookUrl: hookUrl })
    hooks.answer(500, 'boom')
    await s.api('/webhooks/test', { method: 'POST' })
    await waitFor('the attempt', async () => (await s.deliveries()).items[0]?.attempts === 1)
    hooks.answer(204)
    const [delivery] = (await s.deliveries()).items
    const other = consoleUser((url, init) => broker.app.request(url, init))
    await other.signIn(s.apiKey)
    const othersToken = other.csrfOf((await other.get(s.path)).html)!
    const ownToken = s.user.csrfOf((await s.user.get(s.path)).html)!
    const before = { secret: await s.secretRow(), audit: await s.audit(), deliveries: await s.deliveries(), sent: s.forOrg().length }
    const actions: Array<[string, Record<string, string>]> = [
      [`${s.path}/url`, { webhookUrl: 'https://evil.example/hooks' }],
      [`${s.path}/secret`, {}],
      [`${s.path}/test`, {}],
      [`${s.path}/deliveries/${delivery!.id}/retry`, {}],
    ]
    for (const [action, fields] of actions) {
      expect((await s.user.post(action, fields)).status, action).toBe(403)
      expect((await s.user.post(action, { ...fields, _csrf: othersToken })).status, action).toBe(403)
      const crossSite = await s.user.post(action, { ...fields, _csrf: ownToken }, { origin: 'https://evil.example' })
      expect(crossSite.status, action).toBe(403)
      expect(secretsIn(crossSite.html)).toEqual([])
    }
    await sleep(50)
    expect(await s.secretRow()).toEqual(before.secret)
    expect(await s.audit()).toEqual(before.audit)
    expect(await s.deliveries()).toEqual(before.deliveries)
    expect(s.forOrg().length).toBe(before.sent)
  })

  test('fast-check: whatever the URL form, the filter or the retry address carry, never a 5xx', async () => {
    const s = await signedIn({ webhookUrl: hookUrl })
    const csrf = s.user.csrfOf((await s.user.get(s.path)).html)!
    const text = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.webUrl(),
      fc.constantFrom('', ' ', 'javascript:alert(1)', 'http://127.0.0.1:1/x', 'https://[::1]/', 'https://a\u0000b.example/', '<script>x</script>', 'https://%zz.example/', 'https://例え.テスト/'),
    )
    await fc.assert(
      fc.asyncProperty(text, fc.string({ maxLength: 40 }), fc.string({ maxLength: 80 }), async (webhookUrl, status, id) => {
        const saved = await s.user.post(`${s.path}/url`, { _csrf: csrf, webhookUrl })
        expect(saved.status, webhookUrl).toBeLessThan(500)
        expect([200, 303, 400]).toContain(saved.status)
        const listed = await s.user.get(`${s.path}?status=${encodeURIComponent(status)}&cursor=${encodeURIComponent(id)}`)
        expect(listed.status).toBeLessThan(500)
        const retried = await s.user.post(`${s.path}/deliveries/${encodeURIComponent(id || 'x')}/retry?status=${encodeURIComponent(status)}`, { _csrf: csrf })
        expect(retried.status).toBeLessThan(500)
      }),
      { numRuns: 60 },
    )
  })
})
