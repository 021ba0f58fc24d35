import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { time } from '../src/pages/console/components'
import { consoleUser, textOf } from './console'
import { HOSTILE, apiGet, expectNoServerError, fieldValue, formText, rowIds, rowOf, signedIn } from './console-pages'
import { type AzureSetup, type TestBroker, createTestBroker, startAzure, submitSignupForm } from './helpers'

/**
 * The console's signup form page (contract §10, §14) over HTTP: the settings are
 * GET …/signup-form's, saved through PUT's rules; "send buyers to it" is PATCH …/orgs' change;
 * the submissions are GET …/signups'.
 */

interface SignupForm {
  companyName: string
  logoUrl: string | null
  publicNotes: string | null
  ccEmails: string[]
  fields: string[]
  signupId: string
  url: string
  createdAt: string
  updatedAt: string
}
interface Signup {
  id: string
  entitlementId: string
  name: string
  email: string
  company: string | null
  phone: string | null
  notes: string | null
  createdAt: string
  emailStatus: string
}

let azure: AzureSetup
let broker: TestBroker
beforeAll(async () => {
  azure = await startAzure()
  broker = await createTestBroker({ AZURE_MARKETPLACE_API_URL: azure.url, AZURE_LOGIN_URL: azure.url })
})
afterAll(async () => {
  await broker?.close()
  await azure?.close()
})

const formPage = (orgId: string) => `/console/orgs/${orgId}/signup-form`
const apiForm = async (b: TestBroker, orgId: string) => {
  const response = await b.request(`/api/v1/orgs/${orgId}/signup-form`)
  return response.status === 200 ? ((await response.json()) as { signupForm: SignupForm }).signupForm : response.status
}
const auditOf = async (b: TestBroker, orgId: string) => (await apiGet<{ items: Array<{ action: string; actor: unknown }> }>(b, `/api/v1/orgs/${orgId}/audit-log`)).items
const fields = (values: Record<string, string>) => ({ companyName: 'Acme Cloud', logoUrl: '', publicNotes: '', ccEmails: '', ...values })

async function orgSession(b = broker, name = 'Acme') {
  const { org, apiKey } = await b.createOrg({ name })
  return { orgId: org.id, apiKey, user: await signedIn(b, apiKey) }
}

describe('settings', () => {
  test('a new org sees what the form does, how to turn it on, and that nothing was submitted yet', async () => {
    const { orgId, user } = await orgSession(broker, 'Umbrella')
    expect(await apiForm(broker, orgId)).toBe(404)
    const page = await user.get(formPage(orgId))
    expect(page.status).toBe(200)
    const text = textOf(page.html)
    expect(text).toContain('No signup form yet')
    expect(text).toContain('To turn it on: create the form below, then send buyers to it')
    expect(text).toContain('Create the form above first')
    expect(page.html).toContain('name="companyName" value="Umbrella"')
    for (const field of ['company', 'phone', 'notes']) expect(page.html).toMatch(new RegExp(`name="field_${field}" value="on" checked`))
  })

  test('saving the form makes what PUT makes, and the page shows GET’s answer', async () => {
    const { orgId, user } = await orgSession()
    const saved = await user.submit(
      formPage(orgId),
      formPage(orgId),
      fields({ logoUrl: 'https://cdn.acme.example/logo.png', publicNotes: 'Setup takes a day.\nCall us.', ccEmails: 'sales@acme.example\nops@acme.example, sales@acme.example', field_company: 'on', field_notes: 'on' }),
    )
    expect(saved.status).toBe(303)
    expect(saved.location).toBe(`${formPage(orgId)}?notice=saved`)
    const form = (await apiForm(broker, orgId)) as SignupForm
    expect(form).toMatchObject({
      companyName: 'Acme Cloud',
      logoUrl: 'https://cdn.acme.example/logo.png',
      publicNotes: 'Setup takes a day.\nCall us.',
      ccEmails: ['sales@acme.example', 'ops@acme.example'],
      fields: ['name', 'email', 'company', 'notes'],
    })
    const page = await user.get(saved.location!)
    const text = textOf(page.html)
    expect(text).toContain('The signup form was saved.')
    expect(fieldValue(page.html, 'signup-form-url')).toBe(form.url)
    for (const shown of [form.companyName, form.logoUrl!, 'sales@acme.example, ops@acme.example', 'Name, Email, Company, Notes', form.signupId, time(form.updatedAt)]) expect(text).toContain(shown)
    expect(page.html).toContain('Setup takes a day.\nCall us.')
    expect(page.html).not.toContain('name="field_phone" value="on" checked')
    const [created] = await auditOf(broker, orgId)
    expect(created).toMatchObject({ action: 'signup_form.created', actor: { type: 'console', name: 'default' } })

    // Edited: the same signupId and URL; no optional field asked any more.
    const edited = await user.submit(formPage(orgId), formPage(orgId), fields({ companyName: 'Acme Cloud Ltd' }))
    expect(edited.status).toBe(303)
    const after = (await apiForm(broker, orgId)) as SignupForm
    expect(after).toMatchObject({ companyName: 'Acme Cloud Ltd', signupId: form.signupId, url: form.url, fields: ['name', 'email'], logoUrl: null, publicNotes: null, ccEmails: [] })
    expect((await auditOf(broker, orgId))[0]).toMatchObject({ action: 'signup_form.updated' })
    // Saved again unchanged: no entry, as for PUT.
    const entries = (await auditOf(broker, orgId)).length
    expect((await user.submit(formPage(orgId), formPage(orgId), fields({ companyName: 'Acme Cloud Ltd' }))).status).toBe(303)
    expect((await auditOf(broker, orgId)).length).toBe(entries)
  })

  test('a refused form is shown again with its message and what was typed; nothing is saved', async () => {
    const { orgId, user } = await orgSession()
    const eleven = Array.from({ length: 11 }, (_, i) => `cc${i}@acme.example`).join('\n')
    const cases: Array<[Record<string, string>, string]> = [
      [fields({ companyName: '  ' }), 'Enter the company name buyers see'],
      [fields({ companyName: 'x'.repeat(201) }), 'Enter the company name buyers see'],
      [fields({ ccEmails: 'sales@acme.example\nnot-an-email' }), '“not-an-email” is not an email address.'],
      [fields({ ccEmails: eleven }), 'Enter at most 10 email addresses'],
      [fields({ publicNotes: 'n'.repeat(2001) }), 'Keep the public notes under 2000 characters.'],
      [fields({ logoUrl: 'javascript:alert(1)' }), 'The logo URL must be an https: URL'],
      [fields({ logoUrl: 'not a url' }), 'The logo URL must be an absolute URL.'],
    ]
    for (const [values, message] of cases) {
      const answer = await user.submit(formPage(orgId), formPage(orgId), values)
      expect(answer.status, message).toBe(400)
      expect(textOf(answer.html)).toContain(message)
      expect(answer.html).toContain('aria-invalid="true"')
      expect(answer.html).toContain(`value="${values.companyName}"`)
      if (values.ccEmails) expect(answer.html).toContain(`${values.ccEmails}</textarea>`)
    }
    expect(await apiForm(broker, orgId)).toBe(404)
    expect((await auditOf(broker, orgId)).map((entry) => entry.action)).toEqual(['org.created'])
  })

  test('hostile settings are shown as text', async () => {
    const { orgId, user } = await orgSession()
    expect((await user.submit(formPage(orgId), formPage(orgId), fields({ companyName: HOSTILE, publicNotes: HOSTILE }))).status).toBe(303)
    const { html } = await user.get(formPage(orgId))
    expect(html).not.toContain('<script>alert(1)')
    expect(html).not.toContain('<img src=x')
    expect(textOf(html)).toContain(HOSTILE)
  })
})

describe('sending buyers to the form', () => {
  test('makes the form’s URL the org’s fulfillment URL (as PATCH would), and says it is in use', async () => {
    const local = await createTestBroker({ PUBLIC_URL: 'http://localhost:8787' })
    try {
      const { org, apiKey } = await local.createOrg()
      const user = consoleUser((url, init) => local.app.request(url, init), 'http://localhost:8787')
      await user.signIn(apiKey)
      await user.submit(formPage(org.id), formPage(org.id), fields({}))
      const form = (await apiForm(local, org.id)) as SignupForm
      const before = await user.get(formPage(org.id))
      expect(textOf(before.html)).toContain('Not in use: buyers are sent to the org’s fulfillment URL, https://app.acme.example/signup?source=marketplace')
      const answer = await user.submit(formPage(org.id), `${formPage(org.id)}/use`)
      expect(answer.status).toBe(303)
      expect(answer.location).toBe(`${formPage(org.id)}?notice=in-use`)
      expect((await apiGet<{ fulfillmentUrl: string }>(local, `/api/v1/orgs/${org.id}`)).fulfillmentUrl).toBe(form.url)
      const after = await user.get(answer.location!)
      expect(textOf(after.html)).toContain('In use: the org’s fulfillment URL is this form')
      expect(after.html).not.toContain(`${formPage(org.id)}/use"`)
      expect((await auditOf(local, org.id))[0]).toMatchObject({ action: 'org.updated', actor: { type: 'console', name: 'default' } })
    } finally {
      await local.close()
    }
  })

  test('refused with the reason when the broker’s URL cannot be a fulfillment URL; nothing changed', async () => {
    const { orgId, user } = await orgSession()
    await user.submit(formPage(orgId), formPage(orgId), fields({}))
    const answer = await user.submit(formPage(orgId), `${formPage(orgId)}/use`)
    expect(answer.status).toBe(400)
    expect(textOf(answer.html)).toContain('fulfillmentUrl must be an https: URL')
    expect((await apiGet<{ fulfillmentUrl: string }>(broker, `/api/v1/orgs/${orgId}`)).fulfillmentUrl).toBe('https://app.acme.example/signup?source=marketplace')
    // Without a form there is nothing to send buyers to.
    const bare = await orgSession()
    expect((await bare.user.submit(formPage(bare.orgId), `${formPage(bare.orgId)}/use`)).status).toBe(404)
  })
})

describe('submissions', () => {
  test('are GET …/signups’ answer; a hostile name is shown as text', async () => {
    const { org, apiKey } = await submitSignupForm(broker, azure, { companyName: 'Acme' })
    const user = await signedIn(broker, apiKey)
    const [first] = (await apiGet<{ items: Signup[] }>(broker, `/api/v1/orgs/${org.id}/signups`)).items
    // The buyer submits again, with markup for a name: the signup is updated.
    const form = (await apiForm(broker, org.id)) as SignupForm
    const path = `/public/signup/newclient/${form.signupId}?sugerEntitlementId=${first!.entitlementId}`
    const csrf = /name="csrf" value="([^"]+)"/.exec(await (await broker.request(path, { token: null })).text())![1]!
    const again = await broker.request(path, {
      method: 'POST',
      token: null,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ csrf, name: HOSTILE, email: first!.email, company: 'Initech <b>', notes: 'line 1\nline 2' }).toString(),
    })
    expect(again.status).toBe(200)

    const { items } = await apiGet<{ items: Signup[] }>(broker, `/api/v1/orgs/${org.id}/signups`)
    const page = await user.get(formPage(org.id))
    expect(rowIds(page.html)).toEqual(items.map((signup) => signup.id))
    const signup = items[0]!
    const row = rowOf(page.html, signup.id)
    expect(row).not.toContain('<script>alert(1)')
    expect(row).toContain(`href="/console/orgs/${org.id}/entitlements/${signup.entitlementId}"`)
    const text = textOf(row)
    for (const shown of [HOSTILE, signup.email, 'Initech <b>', 'line 1 line 2', signup.entitlementId, signup.emailStatus, time(signup.createdAt)]) expect(text).toContain(shown)
  })

  test('come in pages of 50 that follow the API’s cursor', async () => {
    const { orgId, user } = await orgSession()
    const at = Date.parse('2026-01-01T00:00:00.000Z')
    const rows = Array.from({ length: 55 }, (_, i) => {
      const when = new Date(at + i * 1000).toISOString()
      const suffix = `${orgId.slice(-10)}${String(i).padStart(16, '0')}`
      return { id: `sup_${suffix}`, org_id: orgId, entitlement_id: `ent_${suffix}`, name: `Buyer ${i}`, email: `b${i}@buyer.example`, company: null, phone: null, notes: null, email_status: 'SKIPPED' as const, created_at: when, updated_at: when }
    })
    await broker.deps.db.insertInto('signups').values(rows).execute()
    const first = await apiGet<{ items: Signup[]; nextCursor: string }>(broker, `/api/v1/orgs/${orgId}/signups?limit=50`)
    const page1 = await user.get(formPage(orgId))
    expect(rowIds(page1.html)).toEqual(first.items.map((signup) => signup.id))
    const next = /href="([^"]+)">Next page<\/a>/.exec(page1.html)![1]!
    expect(next).toBe(`${formPage(orgId)}?cursor=${first.nextCursor}`)
    const second = await apiGet<{ items: Signup[] }>(broker, `/api/v1/orgs/${orgId}/signups?limit=50&cursor=${first.nextCursor}`)
    const page2 = await user.get(next)
    expect(rowIds(page2.html)).toEqual(second.items.map((signup) => signup.id))
    expect(second.items).toHaveLength(5)
    expect(page2.html).toContain(`href="${formPage(orgId)}">First page</a>`)
    expect((await user.get(`${formPage(orgId)}?cursor=junk`)).status).toBe(400)
  })
})

describe('access and forged posts', () => {
  test('an ISV session gets 404 for another org’s signup form, and cannot save it', async () => {
    const { orgId, user } = await orgSession()
    const other = await orgSession(broker, 'Other')
    expect((await user.get(formPage(other.orgId))).status).toBe(404)
    expect((await user.submit(formPage(orgId), formPage(other.orgId), fields({}))).status).toBe(404)
    expect((await user.submit(formPage(orgId), `${formPage(other.orgId)}/use`)).status).toBe(404)
    expect(await apiForm(broker, other.orgId)).toBe(404)
  })

  test('without the CSRF token, with another session’s, or cross-site: refused, nothing saved', async () => {
    const { orgId, user } = await orgSession()
    const stranger = await orgSession()
    const token = user.csrfOf((await user.get(formPage(orgId))).html)!
    const foreign = stranger.user.csrfOf((await stranger.user.get(formPage(stranger.orgId))).html)!
    expect((await user.post(formPage(orgId), fields({}))).status).toBe(403)
    expect((await user.post(formPage(orgId), { _csrf: foreign, ...fields({}) })).status).toBe(403)
    expect((await user.post(formPage(orgId), { _csrf: token, ...fields({}) }, { origin: 'https://evil.example' })).status).toBe(403)
    expect(await apiForm(broker, orgId)).toBe(404)
  })

  test('any values in the form answer no 5xx', async () => {
    const { orgId, user } = await orgSession()
    const token = user.csrfOf((await user.get(formPage(orgId))).html)!
    const checkbox = fc.option(fc.oneof(fc.constant('on'), formText), { nil: undefined })
    await fc.assert(
      fc.asyncProperty(
        fc.record({ companyName: formText, logoUrl: formText, publicNotes: formText, ccEmails: fc.oneof(formText, fc.array(formText, { maxLength: 12 }).map((list) => list.join('\n'))) }, { requiredKeys: [] }),
        fc.record({ field_company: checkbox, field_phone: checkbox, field_notes: checkbox, field_name: checkbox }),
        async (values, boxes) => {
          const posted = Object.fromEntries(Object.entries({ ...values, ...boxes }).filter((entry): entry is [string, string] => entry[1] !== undefined))
          const answer = await user.post(formPage(orgId), { _csrf: token, ...posted })
          expectNoServerError(answer.status, answer.html)
          expect([303, 400]).toContain(answer.status)
        },
      ),
      { numRuns: 80 },
    )
    const use = await user.post(`${formPage(orgId)}/use`, { _csrf: token })
    expectNoServerError(use.status, use.html)
  })
})
