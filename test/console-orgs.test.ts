import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { time } from '../src/pages/console/components'
import { textOf } from './console'
import { HOSTILE, apiGet, expectNoServerError, fieldValue, formText, signedIn } from './console-pages'
import { ADMIN_TOKEN, type TestBroker, createTestBroker } from './helpers'

/**
 * The operator's org list and org creation in the console (contract §3, §14) over HTTP: every
 * org, a page at a time; creation as POST /api/v1/orgs makes it (its rules, its first key shown
 * once, its org.created entry naming the console's operator); an ISV session is told 404.
 */

interface Org {
  id: string
  name: string
  fulfillmentUrl: string
  webhookUrl: string | null
  createdAt: string
}
interface Entry {
  action: string
  actor: { type: string; id: string | null; name: string | null }
  changes: Record<string, { from: unknown; to: unknown }>
}

let broker: TestBroker
beforeAll(async () => {
  broker = await createTestBroker()
})
afterAll(() => broker?.close())

/** The org ids a page of the list shows, in order. */
const listed = (html: string) => [...html.matchAll(/<th scope="row"><a href="\/console\/orgs\/(org_[^"]+)">/g)].map((match) => match[1]!)
const orgCount = async () => Number((await broker.deps.db.selectFrom('orgs').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n)

describe('the org list', () => {
  test('an operator signing in lands on it; it shows every org, newest first, with its name, id and creation time', async () => {
    const made: Org[] = []
    for (const name of ['First', HOSTILE, 'Third']) made.push((await broker.createOrg({ name })).org as Org)
    const operator = await signedIn(broker, ADMIN_TOKEN)
    const home = await operator.get('/console')
    expect(home.status).toBe(303)
    expect(home.location).toBe('/console/orgs')
    const page = await operator.get('/console/orgs')
    expect(page.status).toBe(200)
    expect(page.html).toContain('<a href="/console/orgs" aria-current="page">Orgs</a>')
    const ids = listed(page.html)
    expect(ids.slice(0, 3)).toEqual(made.map((org) => org.id).reverse())
    const text = textOf(page.html)
    for (const org of made) {
      const full = await apiGet<Org>(broker, `/api/v1/orgs/${org.id}`)
      expect(text).toContain(`${full.name} ${full.id} ${time(full.createdAt)}`)
    }
    expect(page.html).not.toContain('<script>alert(1)')
    expect(page.html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;')
  })

  test('comes in pages of 50, each org once, to the end', async () => {
    const fresh = await createTestBroker()
    try {
      for (let i = 0; i < 53; i++) await fresh.createOrg({ name: `Org ${i}` })
      const operator = await signedIn(fresh, ADMIN_TOKEN)
      const page1 = await operator.get('/console/orgs')
      expect(listed(page1.html)).toHaveLength(50)
      const next = /href="([^"]+)">Next page<\/a>/.exec(page1.html)![1]!
      const page2 = await operator.get(next)
      expect(listed(page2.html)).toHaveLength(3)
      expect(page2.html).not.toContain('Next page')
      expect(page2.html).toContain('href="/console/orgs">First page</a>')
      const all = [...listed(page1.html), ...listed(page2.html)]
      const rows = await fresh.deps.db.selectFrom('orgs').select(['id']).orderBy('created_at', 'desc').orderBy('id', 'desc').execute()
      expect(all).toEqual(rows.map((row) => row.id))
      expect((await operator.get('/console/orgs?cursor=junk')).status).toBe(400)
    } finally {
      await fresh.close()
    }
  })

  test('an ISV session gets 404 for the list and for creating an org', async () => {
    const { org, apiKey } = await broker.createOrg()
    const user = await signedIn(broker, apiKey)
    const list = await user.get('/console/orgs')
    expect(list.status).toBe(404)
    expect(textOf(list.html)).not.toContain('Create an org')
    const before = await orgCount()
    const create = await user.submit(`/console/orgs/${org.id}`, '/console/orgs', { name: 'Sneaky', fulfillmentUrl: 'https://sneaky.example/signup' })
    expect(create.status).toBe(404)
    expect(await orgCount()).toBe(before)
    // Its own nav has no Orgs link.
    expect((await user.get(`/console/orgs/${org.id}`)).html).not.toContain('href="/console/orgs"')
  })
})

describe('creating an org', () => {
  test('makes what POST /api/v1/orgs makes; its key and webhook secret are shown once and work', async () => {
    const operator = await signedIn(broker, ADMIN_TOKEN)
    const answer = await operator.submit('/console/orgs', '/console/orgs', { name: 'Initech', fulfillmentUrl: ' https://app.initech.example/signup ', webhookUrl: 'https://hooks.initech.example/in' })
    expect(answer.status).toBe(200)
    expect(answer.response.headers.get('cache-control')).toBe('no-store')
    const apiKey = fieldValue(answer.html, 'org-api-key')!
    const webhookSecret = fieldValue(answer.html, 'org-webhook-secret')!
    expect(apiKey).toMatch(/^mbk_/)
    expect(webhookSecret).toMatch(/^whsec_/)
    const orgId = /\(\s*(org_[0-9a-z]+)\s*\)/.exec(textOf(answer.html))![1]!
    expect(answer.html).toContain(`href="/console/orgs/${orgId}">Open its overview</a>`)

    const org = await apiGet<Org>(broker, `/api/v1/orgs/${orgId}`, apiKey)
    expect(org).toMatchObject({ name: 'Initech', fulfillmentUrl: 'https://app.initech.example/signup', webhookUrl: 'https://hooks.initech.example/in' })
    const keys = (await apiGet<{ items: Array<{ name: string; scope: string }> }>(broker, `/api/v1/orgs/${orgId}/api-keys`)).items
    expect(keys).toMatchObject([{ name: 'default', scope: 'full' }])
    const { items } = await apiGet<{ items: Entry[] }>(broker, `/api/v1/orgs/${orgId}/audit-log`)
    expect(items).toHaveLength(1)
    expect(items[0]).toMatchObject({
      action: 'org.created',
      actor: { type: 'console', id: null, name: 'operator' },
      changes: {
        name: { from: null, to: 'Initech' },
        fulfillmentUrl: { from: null, to: 'https://app.initech.example/signup' },
        webhookUrl: { from: null, to: 'https://hooks.initech.example/in' },
        webhookSecret: { from: null, to: '[redacted]' },
      },
    })
    // The key signs in to the console; neither secret is on any later page.
    expect((await (await signedIn(broker, apiKey)).get(`/console/orgs/${orgId}`)).status).toBe(200)
    for (const path of ['/console/orgs', `/console/orgs/${orgId}/audit-log`, `/console/orgs/${orgId}/api-keys`]) {
      const { html } = await operator.get(path)
      expect(html).not.toContain(apiKey)
      expect(html).not.toContain(webhookSecret)
    }
  })

  test('without a webhook URL there is no webhook secret', async () => {
    const operator = await signedIn(broker, ADMIN_TOKEN)
    const answer = await operator.submit('/console/orgs', '/console/orgs', { name: 'Plain', fulfillmentUrl: 'http://localhost:3000/signup', webhookUrl: '' })
    expect(answer.status).toBe(200)
    expect(fieldValue(answer.html, 'org-api-key')).toMatch(/^mbk_/)
    expect(fieldValue(answer.html, 'org-webhook-secret')).toBeNull()
  })

  test('a refused form is shown again with the reason at its field and the values typed; no org is made', async () => {
    const operator = await signedIn(broker, ADMIN_TOKEN)
    const before = await orgCount()
    const cases: Array<[Record<string, string>, string]> = [
      [{ name: '', fulfillmentUrl: 'https://ok.example/signup' }, 'Enter a name of 1 to 200 characters.'],
      [{ name: 'x'.repeat(201), fulfillmentUrl: 'https://ok.example/signup' }, 'Enter a name of 1 to 200 characters.'],
      [{ name: 'Evil', fulfillmentUrl: '' }, 'Enter the URL buyers are sent to'],
      [{ name: 'Evil', fulfillmentUrl: 'http://evil.example/signup' }, 'fulfillmentUrl must be an https: URL (http: is allowed only for localhost and 127.0.0.1).'],
      [{ name: 'Evil', fulfillmentUrl: 'https://user:pw@evil.example/' }, 'fulfillmentUrl must not contain credentials.'],
      [{ name: 'Evil', fulfillmentUrl: 'https://ok.example/signup', webhookUrl: 'javascript:alert(1)' }, 'webhookUrl must be an https: URL'],
    ]
    for (const [values, message] of cases) {
      const answer = await operator.submit('/console/orgs', '/console/orgs', values)
      expect(answer.status, message).toBe(400)
      expect(textOf(answer.html)).toContain(message)
      expect(answer.html).toContain('aria-invalid="true"')
      for (const [name, value] of Object.entries(values)) expect(answer.html).toContain(`name="${name}" value="${value}"`)
      expect(fieldValue(answer.html, 'org-api-key')).toBeNull()
    }
    expect(await orgCount()).toBe(before)
  })

  test('forged posts (no token, another session’s, cross-site) make no org', async () => {
    const operator = await signedIn(broker, ADMIN_TOKEN)
    const other = await signedIn(broker, ADMIN_TOKEN)
    const token = operator.csrfOf((await operator.get('/console/orgs')).html)!
    const foreign = other.csrfOf((await other.get('/console/orgs')).html)!
    const body = { name: 'Forged', fulfillmentUrl: 'https://forged.example/signup' }
    const before = await orgCount()
    expect((await operator.post('/console/orgs', body)).status).toBe(403)
    expect((await operator.post('/console/orgs', { _csrf: foreign, ...body })).status).toBe(403)
    expect((await operator.post('/console/orgs', { _csrf: token, ...body }, { origin: 'https://evil.example' })).status).toBe(403)
    expect(await orgCount()).toBe(before)
  })

  test('any values in the form answer no 5xx', async () => {
    const operator = await signedIn(broker, ADMIN_TOKEN)
    const token = operator.csrfOf((await operator.get('/console/orgs')).html)!
    await fc.assert(
      fc.asyncProperty(fc.record({ name: formText, fulfillmentUrl: formText, webhookUrl: formText }, { requiredKeys: [] }), async (values) => {
        const answer = await operator.post('/console/orgs', { _csrf: token, ...values })
        expectNoServerError(answer.status, answer.html)
        expect([200, 400]).toContain(answer.status)
      }),
      { numRuns: 80 },
    )
  })
})
