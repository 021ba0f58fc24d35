import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { AUDIT_ACTIONS } from '../src/domain/audit'
import { time } from '../src/pages/console/components'
import { textOf } from './console'
import { HOSTILE, apiGet, expectNoServerError, formText, rowIds, rowOf, signedIn } from './console-pages'
import { type TestBroker, createTestBroker } from './helpers'

/**
 * The console's audit log page (contract §13, §14) over HTTP: the entries, their order, filter
 * and pages are GET …/audit-log's; secrets stay "[redacted]"; values are shown as text.
 */

interface Entry {
  id: string
  action: string
  actor: { type: string; id: string | null; name: string | null }
  targetType: string
  targetId: string | null
  requestId: string | null
  changes: Record<string, { from: unknown; to: unknown }>
  createdAt: string
}
type Page = { items: Entry[]; nextCursor: string | null }

let broker: TestBroker
beforeAll(async () => {
  broker = await createTestBroker()
})
afterAll(() => broker?.close())

/** A page's text as read, a change's field name joined to its colon ("name: …"). */
const readable = (html: string) => textOf(html).replace(/ : /g, ': ')
const logPage = (orgId: string) => `/console/orgs/${orgId}/audit-log`
const apiLog = (orgId: string, query = '') => apiGet<Page>(broker, `/api/v1/orgs/${orgId}/audit-log${query}`)
const azure = { tenantId: '72f988bf-86f1-41af-91ab-2d7cd011db47', clientId: 'd3f1a1c2-0000-4000-8000-000000000001', clientSecret: 'Azure~Secret.Value_123' }

/** An org with a handful of changes made through the API (and its key). */
async function busyOrg() {
  const created = (await (
    await broker.request('/api/v1/orgs', { method: 'POST', json: { name: 'Acme', fulfillmentUrl: 'https://app.acme.example/signup', webhookUrl: 'https://hooks.acme.example/in' } })
  ).json()) as { org: { id: string }; apiKey: string; webhookSecret: string }
  const { org, apiKey } = created
  const change = async (path: string, method: string, json: unknown) => {
    const response = await broker.request(`/api/v1/orgs/${org.id}${path}`, { method, token: apiKey, json })
    expect(response.status, await response.clone().text()).toBeLessThan(300)
  }
  await change('', 'PATCH', { name: 'Acme 2' })
  await change('/integrations/azure', 'PUT', azure)
  await change('/signup-form', 'PUT', { companyName: 'Acme', ccEmails: ['ops@acme.example'] })
  await change('/api-keys', 'POST', { name: 'reports', scope: 'read' })
  return { ...created, user: await signedIn(broker, apiKey) }
}

describe('the entries', () => {
  test('are GET …/audit-log’s, in its order, each with its time, action, actor, target, request and changes', async () => {
    const { org, user } = await busyOrg()
    const page = await user.get(logPage(org.id))
    expect(page.status).toBe(200)
    const { items } = await apiLog(org.id)
    expect(items.length).toBe(5)
    expect(rowIds(page.html)).toEqual(items.map((entry) => entry.id))
    for (const entry of items) {
      const row = readable(rowOf(page.html, entry.id))
      expect(row).toContain(time(entry.createdAt))
      expect(row).toContain(entry.action)
      expect(row).toContain(entry.actor.type)
      if (entry.actor.name) expect(row).toContain(entry.actor.name)
      if (entry.actor.id) expect(row).toContain(entry.actor.id)
      expect(row).toContain(entry.targetType)
      if (entry.targetId) expect(row).toContain(entry.targetId)
      expect(row).toContain(entry.requestId!)
      for (const [field, change] of Object.entries(entry.changes)) {
        const shown = (value: unknown) => (value === null ? 'none' : JSON.stringify(value))
        expect(row).toContain(`${field}: ${shown(change.from)} → ${shown(change.to)}`)
      }
    }
    const patched = items.find((entry) => entry.action === 'org.updated')!
    expect(readable(rowOf(page.html, patched.id))).toContain('name: "Acme" → "Acme 2"')
  })

  test('secrets are never on the page: a changed one shows as "[redacted]"', async () => {
    const { org, user, webhookSecret, apiKey } = await busyOrg()
    const { html } = await user.get(logPage(org.id))
    expect(readable(html)).toContain('clientSecret: none → "[redacted]"')
    expect(readable(html)).toContain('webhookSecret: none → "[redacted]"')
    for (const secret of [azure.clientSecret, webhookSecret, apiKey]) expect(html).not.toContain(secret)
  })

  test('a console change is recorded with the console as its actor', async () => {
    const { org, user } = await busyOrg()
    const keys = (await apiGet<{ items: Array<{ id: string; name: string }> }>(broker, `/api/v1/orgs/${org.id}/api-keys`)).items
    const own = keys.find((key) => key.name === 'default')!
    await user.submit(`/console/orgs/${org.id}/api-keys`, `/console/orgs/${org.id}/api-keys`, { name: 'from-console' })
    const [entry] = (await apiLog(org.id)).items
    expect(entry!.actor).toEqual({ type: 'console', id: own.id, name: 'default' })
    const row = textOf(rowOf((await user.get(logPage(org.id))).html, entry!.id))
    expect(row).toContain(`console default ${own.id}`)
  })

  test('hostile values are shown as text', async () => {
    const { org, apiKey, user } = await busyOrg()
    await broker.request(`/api/v1/orgs/${org.id}`, { method: 'PATCH', token: apiKey, json: { name: HOSTILE } })
    const { html } = await user.get(logPage(org.id))
    expect(html).not.toContain('<script>alert(1)')
    expect(html).not.toContain('<img src=x')
    expect(readable(html)).toContain(`name: "Acme 2" → ${JSON.stringify(HOSTILE)}`)
  })
})

describe('filter and pages', () => {
  test('the action filter answers what ?action= answers; every known action can be chosen', async () => {
    const { org, apiKey, user } = await busyOrg()
    await broker.request(`/api/v1/orgs/${org.id}/api-keys`, { method: 'POST', token: apiKey, json: { name: 'second' } })
    const page = await user.get(`${logPage(org.id)}?action=api_key.created`)
    const { items } = await apiLog(org.id, '?action=api_key.created')
    expect(items).toHaveLength(2)
    expect(rowIds(page.html)).toEqual(items.map((entry) => entry.id))
    expect(page.html).toContain('<option value="api_key.created" selected="">')
    for (const action of Object.keys(AUDIT_ACTIONS)) expect(page.html).toContain(`<option value="${action}"`)
    // An action the list does not know stays selected as asked.
    const unknown = await user.get(`${logPage(org.id)}?action=entitlement.cancelled`)
    expect(unknown.html).toContain('<option value="entitlement.cancelled" selected="">')
    expect(textOf(unknown.html)).toContain('Nothing was recorded as entitlement.cancelled')
    expect(unknown.html).toContain(`href="${logPage(org.id)}"`)
  })

  test('pages of 50 follow the API’s cursor to the end, then offer the first page again', async () => {
    const { org, apiKey, user } = await busyOrg()
    for (let i = 0; i < 50; i++) await broker.request(`/api/v1/orgs/${org.id}/api-keys`, { method: 'POST', token: apiKey, json: { name: `k${i}` } })
    const first = await apiLog(org.id, '?limit=50')
    const page1 = await user.get(logPage(org.id))
    expect(rowIds(page1.html)).toEqual(first.items.map((entry) => entry.id))
    const next = /<a class="button secondary small" href="([^"]+)">Next page<\/a>/.exec(page1.html)![1]!.replace(/&amp;/g, '&')
    expect(new URL(next, 'http://x').searchParams.get('cursor')).toBe(first.nextCursor)
    const second = await apiLog(org.id, `?limit=50&cursor=${first.nextCursor}`)
    const page2 = await user.get(next)
    expect(rowIds(page2.html)).toEqual(second.items.map((entry) => entry.id))
    expect(second.items.length).toBe(5)
    expect(page2.html).not.toContain('Next page')
    expect(page2.html).toContain(`href="${logPage(org.id)}">First page</a>`)
    // The filter rides along in the pager.
    const filtered = await user.get(`${logPage(org.id)}?action=api_key.created`)
    expect(filtered.html).toMatch(/href="[^"]*\?action=api_key.created&amp;cursor=[^"]+">Next page/)
  })

  test('a filter with no entries, and a bad filter or cursor, are readable answers', async () => {
    const { org, user } = await busyOrg()
    const none = await user.get(`${logPage(org.id)}?action=webhook.test_sent`)
    expect(none.status).toBe(200)
    expect(textOf(none.html)).toContain('No entries for this action')
    const long = await user.get(`${logPage(org.id)}?action=${'a'.repeat(101)}`)
    expect(long.status).toBe(400)
    expect(textOf(long.html)).toContain('An action is at most 100 characters long.')
    const cursor = await user.get(`${logPage(org.id)}?cursor=not-a-cursor`)
    expect(cursor.status).toBe(400)
    expect(textOf(cursor.html)).toContain('cursor is not one this API returned.')
  })
})

describe('access', () => {
  test('an ISV session gets 404 for another org’s audit log', async () => {
    const { user } = await busyOrg()
    const other = await broker.createOrg({ name: 'Other' })
    const answer = await user.get(logPage(other.org.id))
    expect(answer.status).toBe(404)
    expect(answer.html).not.toContain(other.org.id.slice(4))
  })

  test('a NUL in the filter or the cursor is a 400 page on every database', async () => {
    const { org, user } = await busyOrg()
    for (const query of ['action=%00', 'cursor=%00', 'action=key.created&cursor=a%00b']) {
      const answer = await user.get(`${logPage(org.id)}?${query}`)
      expect(answer.status, query).toBe(400)
      expect(answer.html).toContain('NUL')
    }
  })

  test('any filter or cursor in the address answers no 5xx', async () => {
    const { org, user } = await busyOrg()
    await fc.assert(
      fc.asyncProperty(formText, formText, async (action, cursor) => {
        const answer = await user.get(`${logPage(org.id)}?action=${encodeURIComponent(action)}&cursor=${encodeURIComponent(cursor)}`)
        expectNoServerError(answer.status, answer.html)
        expect([200, 400]).toContain(answer.status)
      }),
      { numRuns: 80 },
    )
  })
})

test('every action written under src/domain is one the filter offers (AUDIT_ACTIONS)', () => {
  const dir = join(import.meta.dirname, '../src/domain')
  const written = new Set<string>()
  for (const file of readdirSync(dir).filter((name) => name.endsWith('.ts'))) {
    const source = readFileSync(join(dir, file), 'utf8')
    if (!source.includes('auditStatement(')) continue
    for (const line of source.split('\n').filter((text) => /\baction: /.test(text))) {
      for (const match of line.matchAll(/'([a-z_]+\.[a-z_]+)'/g)) written.add(match[1]!)
    }
  }
  expect(written.size).toBeGreaterThan(10)
  expect([...written].filter((action) => !Object.hasOwn(AUDIT_ACTIONS, action))).toEqual([])
})
