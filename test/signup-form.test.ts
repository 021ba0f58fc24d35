import { Webhook } from 'standardwebhooks'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { runJobs } from '../src/domain/jobs'
import { createLandingService } from '../src/domain/landing'
import { type AzureSetup, type TestBroker, createTestBroker, sleep, startAzure, startHookReceiver } from './helpers'
import { header, startSmtpServer } from './smtp'

/**
 * The hosted signup form (contract §10) on the in-process Node broker: form settings, the page a
 * buyer gets after the landing, CSRF, validation, the stored signup, the confirmation email at a
 * real SMTP server on loopback (never a mock of the sender), and signup.submitted.
 */
let azure: AzureSetup
let smtp: Awaited<ReturnType<typeof startSmtpServer>>
let hooks: Awaited<ReturnType<typeof startHookReceiver>>
let broker: TestBroker
let smtpDown = false

beforeAll(async () => {
  azure = await startAzure()
  smtp = await startSmtpServer({ refuse: () => smtpDown })
  hooks = await startHookReceiver()
  broker = await createTestBroker({ AZURE_MARKETPLACE_API_URL: azure.url, AZURE_LOGIN_URL: azure.url, SMTP_URL: smtp.url, EMAIL_FROM: 'Acme <hello@acme.example>' })
}, 30_000)
afterAll(async () => {
  await broker?.close()
  await smtp?.close()
  await hooks?.close()
  await azure?.close()
})

const job = () => runJobs(broker.deps, createLandingService(broker.deps), broker.deps.logger)
/** The submission sends its email right after the answer; the job sends whatever that missed. */
async function until<T>(find: () => T | undefined | Promise<T | undefined>, what: string): Promise<T> {
  for (let i = 0; i < 100; i++) {
    const found = await find()
    if (found) return found
    await job()
    await sleep(30)
  }
  throw new Error(`timed out waiting for ${what}`)
}

async function setup(form: Record<string, unknown> = {}) {
  const created = (await broker.createOrg({ webhookUrl: hooks.url })) as unknown as { org: { id: string }; apiKey: string; webhookSecret: string }
  const { org, apiKey } = created
  await broker.request(`/api/v1/orgs/${org.id}/integrations/azure`, { method: 'PUT', token: apiKey, json: { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret } })
  const put = await broker.request(`/api/v1/orgs/${org.id}/signup-form`, {
    method: 'PUT',
    token: apiKey,
    json: { companyName: 'Acme Analytics', logoUrl: 'https://cdn.acme.example/logo.png', publicNotes: 'Setup takes about a day.', ccEmails: ['sales@acme.example'], ...form },
  })
  expect(put.status, await put.clone().text()).toBe(200)
  const { signupForm } = (await put.json()) as { signupForm: { url: string; signupId: string } }
  await broker.request(`/api/v1/orgs/${org.id}`, { method: 'PATCH', token: apiKey, json: { fulfillmentUrl: signupForm.url.replace('http://broker.test', 'http://localhost') } })
  const land = async () => {
    const sub = azure.emulator.addSubscription({ appId: azure.clientId, planId: 'gold' })
    const landing = await broker.request(`/public/signup/azure/orgId/${org.id}?token=${encodeURIComponent(azure.emulator.issuePurchaseToken(sub.id))}`, { token: null })
    expect(landing.status).toBe(303)
    const location = new URL(landing.headers.get('location')!)
    expect(location.pathname).toBe(`/public/signup/newclient/${signupForm.signupId}`)
    return { path: location.pathname + location.search, entitlementId: location.searchParams.get('sugerEntitlementId')! }
  }
  return { org, apiKey, webhookSecret: created.webhookSecret, signupForm, land }
}

const page = (path: string) => broker.request(path, { token: null })
const csrfOf = (html: string) => /name="csrf" value="([^"]+)"/.exec(html)?.[1] ?? ''
const submit = (path: string, fields: Record<string, string>) =>
  broker.request(path, { method: 'POST', token: null, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString() })

describe('form settings', () => {
  test('PUT validates, GET returns it, a later PUT keeps the signupId and url', async () => {
    const { org, apiKey, signupForm } = await setup()
    expect(signupForm.url).toMatch(/\/public\/signup\/newclient\/sgn_[0-9a-z]{26}$/)
    const bad = async (json: unknown) => (await broker.request(`/api/v1/orgs/${org.id}/signup-form`, { method: 'PUT', token: apiKey, json })).status
    expect(await bad({ companyName: 'A', ccEmails: ['not-an-email'] })).toBe(400)
    expect(await bad({ companyName: 'A', ccEmails: Array.from({ length: 11 }, (_, i) => `a${i}@b.example`) })).toBe(400)
    expect(await bad({ companyName: 'A', logoUrl: 'http://evil.example/x.png' })).toBe(400)
    expect(await bad({ companyName: '' })).toBe(400)
    expect(await bad({ companyName: 'A', fields: ['ssn'] })).toBe(400)
    const again = await broker.request(`/api/v1/orgs/${org.id}/signup-form`, { method: 'PUT', token: apiKey, json: { companyName: 'Acme 2', fields: ['phone'] } })
    const { signupForm: second } = (await again.json()) as { signupForm: { signupId: string; url: string; fields: string[]; companyName: string } }
    expect([second.signupId, second.url]).toEqual([signupForm.signupId, signupForm.url])
    expect(second.fields).toEqual(['name', 'email', 'phone'])
    const got = (await (await broker.request(`/api/v1/orgs/${org.id}/signup-form`, { token: apiKey })).json()) as { signupForm: { companyName: string } }
    expect(got.signupForm.companyName).toBe('Acme 2')
    const other = await broker.createOrg()
    expect((await broker.request(`/api/v1/orgs/${org.id}/signup-form`, { token: other.apiKey })).status).toBe(404)
  })
})

describe('the buyer’s form', () => {
  test('landing → form → submission: stored, emailed with the CC, signup.submitted signed; the signups API shows it', async () => {
    const s = await setup()
    const { path, entitlementId } = await s.land()
    const form = await page(path)
    expect(form.status).toBe(200)
    const html = await form.text()
    for (const text of ['Acme Analytics', 'https://cdn.acme.example/logo.png', 'Setup takes about a day.', 'Microsoft Azure Marketplace', 'gold', entitlementId]) expect(html).toContain(text)
    expect(html).toMatch(/<label for="f-email">/)
    expect(html).not.toMatch(/<script/i)

    const done = await submit(path, { csrf: csrfOf(html), name: 'Ada Lovelace', email: 'ada@buyer.example', company: 'Analytical Engines', phone: '+44 20 7946 0000', notes: 'Hi' })
    expect(done.status).toBe(200)
    expect(await done.text()).toContain('ada@buyer.example')

    const mail = await until(() => smtp.mails.find((m) => m.to.includes('ada@buyer.example')), 'the email')
    expect(mail.to.sort()).toEqual(['ada@buyer.example', 'sales@acme.example'])
    expect(header(mail.raw, 'cc')).toContain('sales@acme.example')
    expect(header(mail.raw, 'from')).toContain('hello@acme.example')
    expect(header(mail.raw, 'subject')).toContain('Acme Analytics')
    expect(mail.raw).toMatch(/text\/plain/)
    expect(mail.raw).toMatch(/text\/html/)

    const list = async () => ((await (await broker.request(`/api/v1/orgs/${s.org.id}/signups`, { token: s.apiKey })).json()) as { items: Array<Record<string, unknown>> }).items
    const items = await until(async () => { const now = await list(); return now[0]?.emailStatus === 'SENT' ? now : undefined }, 'SENT')
    expect(items).toHaveLength(1)
    expect(items[0]).toMatchObject({ entitlementId, name: 'Ada Lovelace', email: 'ada@buyer.example', company: 'Analytical Engines', phone: '+44 20 7946 0000', notes: 'Hi', emailStatus: 'SENT' })
    expect(items[0]!.id).toMatch(/^sup_/)

    let sent: { body: string; headers: Record<string, string> } | undefined
    for (let i = 0; i < 50 && !sent; i++) {
      sent = hooks.received.find((r) => r.body.includes('"signup.submitted"') && r.body.includes(entitlementId))
      await sleep(20)
    }
    const event = new Webhook(s.webhookSecret).verify(sent!.body, sent!.headers) as Record<string, any>
    expect(event).toMatchObject({ type: 'signup.submitted', entityType: 'SIGNUP', entityId: items[0]!.id, action: 'SUBMIT', partner: 'azure' })
    expect(event.data.signup.email).toBe('ada@buyer.example')
    expect(event.data.entitlement.id).toBe(entitlementId)

    // A second submission for the same entitlement updates the signup.
    const again = await submit(path, { csrf: csrfOf(await (await page(path)).text()), name: 'Ada King', email: 'ada@buyer.example' })
    expect(again.status).toBe(200)
    const after = (await (await broker.request(`/api/v1/orgs/${s.org.id}/signups`, { token: s.apiKey })).json()) as { items: Array<{ id: string; name: string }> }
    expect(after.items.map((i) => [i.id, i.name])).toEqual([[items[0]!.id, 'Ada King']])
  })

  test('errors re-render the form with the values kept and the message by the field (400); nothing is stored', async () => {
    const s = await setup()
    const { path } = await s.land()
    const token = csrfOf(await (await page(path)).text())
    const response = await submit(path, { csrf: token, name: '', email: 'not an email', company: 'Kept Co' })
    expect(response.status).toBe(400)
    const html = await response.text()
    expect(html).toContain('value="Kept Co"')
    expect(html).toContain('value="not an email"')
    expect(html).toMatch(/id="e-name"[^>]*>Please enter your name/)
    expect(html).toMatch(/aria-invalid="true"/)
    const long = await submit(path, { csrf: token, name: 'x'.repeat(5000), email: 'a@b.example' })
    expect(long.status).toBe(400)
    // Line breaks only in notes: elsewhere they could shape the confirmation email's text.
    expect((await submit(path, { csrf: token, name: 'Ada\nVisit https://spam.example', email: 'a@b.example' })).status).toBe(400)
    const { items } = (await (await broker.request(`/api/v1/orgs/${s.org.id}/signups`, { token: s.apiKey })).json()) as { items: unknown[] }
    expect(items).toEqual([])
  })

  test('hostile input: markup stays text, a replayed or foreign token is refused, another org’s entitlement is 404, a huge body is 413', async () => {
    const s = await setup({ companyName: '<script>alert("co")</script>', publicNotes: '<img src=x onerror=alert(1)>' })
    const { path, entitlementId } = await s.land()
    const html = await (await page(path)).text()
    expect(html).not.toContain('<script>alert')
    expect(html).toContain('&lt;script&gt;alert')
    expect(html).not.toContain('<img src=x')
    const token = csrfOf(html)
    const ok = await submit(path, { csrf: token, name: '<b>Mallory</b>', email: 'm@buyer.example', company: '__ENTITLEMENT__ $& $`' })
    expect(ok.status).toBe(200)
    expect(await ok.text()).not.toContain('<b>Mallory</b>')
    const replay = await submit(path, { csrf: token, name: 'Replay', email: 'r@buyer.example' })
    expect(replay.status).toBe(403)
    expect((await submit(path, { name: 'No token', email: 'n@buyer.example' })).status).toBe(403)

    // A token for another entitlement of the same form.
    const second = await s.land()
    const foreignToken = csrfOf(await (await page(second.path)).text())
    expect((await submit(path, { csrf: foreignToken, name: 'X', email: 'x@buyer.example' })).status).toBe(403)

    // Another org's entitlement under this form.
    const other = await setup()
    const theirs = await other.land()
    expect((await page(`/public/signup/newclient/${s.signupForm.signupId}?sugerEntitlementId=${theirs.entitlementId}`)).status).toBe(404)
    expect((await page(`/public/signup/newclient/sgn_00000000000000000000000000?sugerEntitlementId=${entitlementId}`)).status).toBe(404)
    const huge = await broker.request(path, { method: 'POST', token: null, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `name=${'a'.repeat(70_000)}` })
    expect(huge.status).toBe(413)

    const { items } = (await (await broker.request(`/api/v1/orgs/${s.org.id}/signups`, { token: s.apiKey })).json()) as { items: Array<{ name: string }> }
    expect(items.map((i) => i.name)).toEqual(['<b>Mallory</b>'])
    // The webhook's body stays the buyer's text and the entitlement whatever they typed.
    const hook = await until(() => hooks.received.find((r) => r.body.includes('"signup.submitted"') && r.body.includes(entitlementId)), 'signup.submitted')
    const event = JSON.parse(hook.body) as { data: { signup: { company: string }; entitlement: { id: string } } }
    expect([event.data.signup.company, event.data.entitlement.id]).toEqual(['__ENTITLEMENT__ $& $`', entitlementId])
    const sentMail = await until(() => smtp.mails.find((m) => m.to.includes('m@buyer.example')), 'the email')
    // Plain text carries the name as typed; the HTML part only escaped.
    const htmlPart = sentMail.raw.slice(sentMail.raw.indexOf('text/html'))
    expect(htmlPart).not.toContain('<b>Mallory')
    expect(htmlPart).toContain('&lt;b&gt;Mallory')
  })

  test('the SMTP server refuses for a while: the email stays PENDING and is retried until it is SENT', async () => {
    const s = await setup()
    const { path } = await s.land()
    smtpDown = true
    try {
      await submit(path, { csrf: csrfOf(await (await page(path)).text()), name: 'Retry', email: 'retry@buyer.example' })
      const status = async () => ((await (await broker.request(`/api/v1/orgs/${s.org.id}/signups`, { token: s.apiKey })).json()) as { items: Array<{ emailStatus: string }> }).items[0]!.emailStatus
      const email = await until(() => broker.deps.db.selectFrom('emails').selectAll().where('to_address', '=', 'retry@buyer.example').where('last_error', 'is not', null).executeTakeFirst(), 'a failed attempt')
      expect(email.last_error).toMatch(/451|try later/)
      expect(await status()).toBe('PENDING')
      smtpDown = false
      await broker.deps.db.updateTable('emails').set({ next_attempt_at: new Date().toISOString() }).where('id', '=', email.id).execute()
      await until(async () => ((await status()) === 'SENT' ? true : undefined), 'SENT')
    } finally {
      smtpDown = false
    }
  })
})

describe('without SMTP_URL', () => {
  test('the email is SKIPPED, the signup stored', async () => {
    const plain = await createTestBroker({ AZURE_MARKETPLACE_API_URL: azure.url, AZURE_LOGIN_URL: azure.url })
    try {
      const { org, apiKey } = await plain.createOrg()
      await plain.request(`/api/v1/orgs/${org.id}/integrations/azure`, { method: 'PUT', token: apiKey, json: { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret } })
      const { signupForm } = (await (await plain.request(`/api/v1/orgs/${org.id}/signup-form`, { method: 'PUT', token: apiKey, json: { companyName: 'NoMail' } })).json()) as { signupForm: { url: string } }
      await plain.request(`/api/v1/orgs/${org.id}`, { method: 'PATCH', token: apiKey, json: { fulfillmentUrl: signupForm.url.replace('http://broker.test', 'http://localhost') } })
      const sub = azure.emulator.addSubscription({ appId: azure.clientId })
      const landing = await plain.request(`/public/signup/azure/orgId/${org.id}?token=${encodeURIComponent(azure.emulator.issuePurchaseToken(sub.id))}`, { token: null })
      const location = new URL(landing.headers.get('location')!)
      const path = location.pathname + location.search
      const html = await (await plain.request(path, { token: null })).text()
      const done = await plain.request(path, { method: 'POST', token: null, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ csrf: csrfOf(html), name: 'N', email: 'n@buyer.example' }).toString() })
      expect(done.status).toBe(200)
      const { items } = (await (await plain.request(`/api/v1/orgs/${org.id}/signups`, { token: apiKey })).json()) as { items: Array<{ emailStatus: string }> }
      expect(items.map((i) => i.emailStatus)).toEqual(['SKIPPED'])
    } finally {
      await plain.close()
    }
  })
})
