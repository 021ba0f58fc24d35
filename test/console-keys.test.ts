import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { time } from '../src/pages/console/components'
import { consoleUser, textOf } from './console'
import { HOSTILE, apiGet, expectNoServerError, fieldValue, formText, rowIds, rowOf, signedIn } from './console-pages'
import { ADMIN_TOKEN, type TestBroker, createTestBroker } from './helpers'

/**
 * The console's API keys page (contract §13, §14) over HTTP: what it lists is what
 * GET …/api-keys answers; create and rotate show the secret once, in the POST's own answer;
 * revoke refuses the key on the API at once and ends the console sessions signed in with it.
 */

interface ApiKey {
  id: string
  name: string
  start: string
  scope: 'full' | 'read'
  rateLimitPerMinute: number | null
  createdAt: string
  expiresAt: string | null
  lastUsedAt: string | null
  revokedAt: string | null
  status: string
}
interface Entry {
  action: string
  actor: { type: string; id: string | null; name: string | null }
  targetId: string | null
  changes: Record<string, { from: unknown; to: unknown }>
}

let broker: TestBroker
/** How far the broker's clock is ahead of the real one (moved by tests about expiry). */
let shift = 0
beforeAll(async () => {
  broker = await createTestBroker()
  broker.deps.now = () => new Date(Date.now() + shift)
})
afterAll(() => broker?.close())

const keysPage = (orgId: string) => `/console/orgs/${orgId}/api-keys`
const keysOf = async (orgId: string) => (await apiGet<{ items: ApiKey[] }>(broker, `/api/v1/orgs/${orgId}/api-keys`)).items
const auditOf = async (orgId: string) => (await apiGet<{ items: Entry[] }>(broker, `/api/v1/orgs/${orgId}/audit-log`)).items
/** What a key can do with its org on the API: 200 while it works, 401 once refused. */
const apiStatus = async (orgId: string, key: string) => (await broker.request(`/api/v1/orgs/${orgId}`, { token: key })).status

/** A fresh org, and a console user signed in with its first (`default`) key. */
async function orgSession() {
  const { org, apiKey } = await broker.createOrg()
  const user = await signedIn(broker, apiKey)
  const [own] = await keysOf(org.id)
  return { orgId: org.id, apiKey, user, ownKey: own! }
}

describe('the list', () => {
  test('shows every key as GET …/api-keys answers it, newest first, never a secret', async () => {
    const { orgId, apiKey, user } = await orgSession()
    const made = await broker.request(`/api/v1/orgs/${orgId}/api-keys`, {
      method: 'POST',
      token: apiKey,
      json: { name: 'reports', scope: 'read', expiresAt: '2099-05-06T07:08:09Z', rateLimitPerMinute: 42 },
    })
    const secret = ((await made.json()) as { key: string }).key
    const revoked = (await (await broker.request(`/api/v1/orgs/${orgId}/api-keys`, { method: 'POST', token: apiKey, json: { name: 'old' } })).json()) as { apiKey: ApiKey }
    await broker.request(`/api/v1/orgs/${orgId}/api-keys/${revoked.apiKey.id}`, { method: 'DELETE', token: apiKey })

    const page = await user.get(keysPage(orgId))
    expect(page.status).toBe(200)
    expect(page.response.headers.get('cache-control')).toBe('no-store')
    const keys = await keysOf(orgId)
    expect(keys).toHaveLength(3)
    expect(rowIds(page.html, 'key-')).toEqual(keys.map((key) => key.id))
    for (const key of keys) {
      const row = textOf(rowOf(page.html, `key-${key.id}`))
      expect(row).toContain(key.name)
      expect(row).toContain(`${key.start}…`)
      expect(row).toContain(key.scope)
      expect(row).toContain(key.status)
      expect(row).toContain(time(key.createdAt))
      expect(row).toContain(key.expiresAt ? time(key.expiresAt) : 'never')
      if (key.revokedAt) expect(row).toContain(time(key.revokedAt))
    }
    expect(textOf(rowOf(page.html, `key-${keys[1]!.id}`))).toContain('42 / min')
    expect(textOf(rowOf(page.html, `key-${keys[2]!.id}`))).toContain('default (1,200 / min)')
    // The session's own key is marked; a revoked key offers no action.
    expect(textOf(rowOf(page.html, `key-${keys[2]!.id}`))).toContain('this session')
    expect(rowOf(page.html, `key-${revoked.apiKey.id}`)).not.toContain('/revoke')
    expect(page.html).not.toContain(secret)
    expect(page.html).not.toContain(apiKey)
  })

  test('an ISV session cannot see another org’s keys, nor act on them through its own org', async () => {
    const { orgId, user } = await orgSession()
    const other = await broker.createOrg({ name: 'Other' })
    const [otherKey] = await keysOf(other.org.id)
    expect((await user.get(keysPage(other.org.id))).status).toBe(404)
    // Through the own org's path: the key is not found there (404), and nothing happened to it.
    for (const action of ['revoke', 'rotate']) {
      const answer = await user.submit(keysPage(orgId), `${keysPage(orgId)}/${otherKey!.id}/${action}`, { gracePeriodSeconds: '0' })
      expect(answer.status).toBe(404)
    }
    const posted = await user.submit(keysPage(orgId), keysPage(other.org.id), { name: 'intruder' })
    expect(posted.status).toBe(404)
    const after = await keysOf(other.org.id)
    expect(after.map((key) => [key.id, key.status, key.expiresAt])).toEqual([[otherKey!.id, 'ACTIVE', null]])
    expect(await apiStatus(other.org.id, other.apiKey)).toBe(200)
  })
})

describe('create', () => {
  test('shows the secret once in the POST’s own answer; it works on the API and is on no later page', async () => {
    const { orgId, user, ownKey } = await orgSession()
    const answer = await user.submit(keysPage(orgId), keysPage(orgId), { name: 'ci-deploy', scope: 'full', expiresAt: '2099-01-02T03:04', rateLimitPerMinute: '77' })
    expect(answer.status).toBe(200)
    expect(answer.location).toBeNull()
    expect(answer.response.headers.get('cache-control')).toBe('no-store')
    const secret = fieldValue(answer.html, 'new-key')!
    expect(secret).toMatch(/^mbk_/)
    expect(textOf(answer.html)).toContain('shown only this once')

    const keys = await keysOf(orgId)
    const made = keys.find((key) => key.name === 'ci-deploy')!
    expect(made).toMatchObject({ scope: 'full', expiresAt: '2099-01-02T03:04:00.000Z', rateLimitPerMinute: 77, status: 'ACTIVE', start: secret.slice(0, 8) })
    expect(await apiStatus(orgId, secret)).toBe(200)

    const [entry] = await auditOf(orgId)
    expect(entry).toMatchObject({ action: 'api_key.created', targetId: made.id, actor: { type: 'console', id: ownKey.id, name: 'default' } })
    for (const path of [keysPage(orgId), `/console/orgs/${orgId}/audit-log`, `/console/orgs/${orgId}`]) {
      const later = await user.get(path)
      expect(later.status).toBe(200)
      expect(later.html).not.toContain(secret)
    }
    expect(JSON.stringify(await auditOf(orgId))).not.toContain(secret)
  })

  test('a read key made on the page reads the API but cannot sign in to the console', async () => {
    const { orgId, user } = await orgSession()
    const answer = await user.submit(keysPage(orgId), keysPage(orgId), { name: 'dashboard', scope: 'read' })
    const secret = fieldValue(answer.html, 'new-key')!
    expect((await keysOf(orgId)).find((key) => key.name === 'dashboard')!.scope).toBe('read')
    expect(await apiStatus(orgId, secret)).toBe(200)
    expect((await broker.request(`/api/v1/orgs/${orgId}/api-keys`, { method: 'POST', token: secret, json: { name: 'x' } })).status).toBe(403)

    const reader = consoleUser((url, init) => broker.app.request(url, init))
    const refused = await reader.post('/console/sign-in', { credential: secret })
    expect(refused.status).toBe(401)
    expect(textOf(refused.html)).toContain('This API key may only read (scope read): sign in with a full key.')
    expect(reader.cookies.size).toBe(0)
  })

  test('a refused form is shown again with its message and the values typed; nothing is made', async () => {
    const { orgId, user } = await orgSession()
    const cases: Array<[Record<string, string>, string]> = [
      [{ name: '   ' }, 'Enter a name of 1 to 100 characters.'],
      [{ name: 'x'.repeat(101) }, 'Enter a name of 1 to 100 characters.'],
      [{ name: 'typed', scope: 'admin' }, 'Choose full or read.'],
      [{ name: 'typed', rateLimitPerMinute: 'lots' }, 'Enter a whole number from 1 to 100000'],
      [{ name: 'typed', rateLimitPerMinute: '100001' }, 'Enter a whole number from 1 to 100000'],
      [{ name: 'typed', expiresAt: 'tomorrow' }, 'Enter a date and time (UTC)'],
      [{ name: 'typed', expiresAt: '2001-01-01T00:00' }, 'expiresAt must be in the future.'],
    ]
    for (const [fields, message] of cases) {
      const answer = await user.submit(keysPage(orgId), keysPage(orgId), fields)
      expect(answer.status, JSON.stringify(fields)).toBe(400)
      expect(textOf(answer.html)).toContain(message)
      expect(answer.html).toContain('aria-invalid="true"')
      // What was typed stays in its field.
      for (const [name, value] of Object.entries(fields)) if (name !== 'scope') expect(answer.html).toContain(`name="${name}" value="${value}"`)
      expect(fieldValue(answer.html, 'new-key')).toBeNull()
    }
    expect(await keysOf(orgId)).toHaveLength(1)
  })

  test('a hostile name is shown as text, in the list, the confirm question and the audit log', async () => {
    const { orgId, user } = await orgSession()
    const answer = await user.submit(keysPage(orgId), keysPage(orgId), { name: HOSTILE.slice(0, 100) })
    expect(answer.status).toBe(200)
    for (const path of [keysPage(orgId), `/console/orgs/${orgId}/audit-log`]) {
      const { html } = await user.get(path)
      expect(html).not.toContain('<script>alert(1)')
      expect(html).not.toContain('<img src=x')
      expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;')
    }
    expect(textOf((await user.get(keysPage(orgId))).html)).toContain(HOSTILE)
  })
})

describe('rotate', () => {
  test('the new secret is shown once; the old key works for the grace period, then is refused', async () => {
    const { orgId, apiKey, user } = await orgSession()
    const made = (await (await broker.request(`/api/v1/orgs/${orgId}/api-keys`, { method: 'POST', token: apiKey, json: { name: 'worker', rateLimitPerMinute: 500 } })).json()) as {
      apiKey: ApiKey
      key: string
    }
    const before = Date.now() + shift
    const answer = await user.submit(keysPage(orgId), `${keysPage(orgId)}/${made.apiKey.id}/rotate`, { gracePeriodSeconds: '3600' })
    expect(answer.status).toBe(200)
    const secret = fieldValue(answer.html, 'new-key')!
    expect(secret).toMatch(/^mbk_/)
    expect(secret).not.toBe(made.key)

    const keys = await keysOf(orgId)
    const old = keys.find((key) => key.id === made.apiKey.id)!
    const fresh = keys.find((key) => key.start === secret.slice(0, 8) && key.id !== made.apiKey.id)!
    expect(fresh).toMatchObject({ name: 'worker', scope: 'full', rateLimitPerMinute: 500, expiresAt: null })
    expect(Date.parse(old.expiresAt!) - before).toBeGreaterThanOrEqual(3600_000 - 1000)
    expect(Date.parse(old.expiresAt!) - before).toBeLessThanOrEqual(3600_000 + 5000)
    expect(textOf(answer.html)).toContain(`keeps working until ${time(old.expiresAt)}`)
    const [entry] = await auditOf(orgId)
    expect(entry).toMatchObject({ action: 'api_key.rotated', targetId: old.id, actor: { type: 'console', name: 'default' }, changes: { replacedBy: { from: null, to: fresh.id } } })

    expect(await apiStatus(orgId, made.key)).toBe(200)
    expect(await apiStatus(orgId, secret)).toBe(200)
    shift += 3601_000
    try {
      expect(await apiStatus(orgId, made.key)).toBe(401)
      expect(await apiStatus(orgId, secret)).toBe(200)
      expect(textOf(rowOf((await user.get(keysPage(orgId))).html, `key-${old.id}`))).toContain('EXPIRED')
    } finally {
      shift -= 3601_000
    }
    expect((await user.get(keysPage(orgId))).html).not.toContain(secret)
  })

  test('the default grace is a day; a refused grace period or a key no longer active changes nothing', async () => {
    const { orgId, apiKey, user } = await orgSession()
    const made = (await (await broker.request(`/api/v1/orgs/${orgId}/api-keys`, { method: 'POST', token: apiKey, json: { name: 'batch' } })).json()) as { apiKey: ApiKey; key: string }
    for (const grace of ['-1', '604801', 'soon', '1.5']) {
      const answer = await user.submit(keysPage(orgId), `${keysPage(orgId)}/${made.apiKey.id}/rotate`, { gracePeriodSeconds: grace })
      expect(answer.status, grace).toBe(400)
      expect(textOf(answer.html)).toContain('Enter whole seconds from 0 to 604800')
      expect(answer.html).toContain(`value="${grace}"`)
    }
    expect(await keysOf(orgId)).toHaveLength(2)

    const before = Date.now() + shift
    const answer = await user.submit(keysPage(orgId), `${keysPage(orgId)}/${made.apiKey.id}/rotate`, { gracePeriodSeconds: '' })
    expect(answer.status).toBe(200)
    const old = (await keysOf(orgId)).find((key) => key.id === made.apiKey.id)!
    expect(Math.abs(Date.parse(old.expiresAt!) - before - 86_400_000)).toBeLessThan(5000)

    await broker.request(`/api/v1/orgs/${orgId}/api-keys/${made.apiKey.id}`, { method: 'DELETE', token: apiKey })
    const again = await user.submit(keysPage(orgId), `${keysPage(orgId)}/${made.apiKey.id}/rotate`, { gracePeriodSeconds: '0' })
    expect(again.status).toBe(409)
    expect(textOf(again.html)).toContain('Only an active API key can be rotated.')
    expect(await keysOf(orgId)).toHaveLength(3)
  })

  test('rotating the session’s own key says the session ends with the old key', async () => {
    const { orgId, user, ownKey } = await orgSession()
    const answer = await user.submit(keysPage(orgId), `${keysPage(orgId)}/${ownKey.id}/rotate`, { gracePeriodSeconds: '0' })
    expect(answer.status).toBe(200)
    expect(textOf(answer.html)).toContain('This session was signed in with the old key, so it ends then too')
    const next = await user.get(keysPage(orgId))
    expect(next.status).toBe(303)
    expect(next.location).toMatch(/^\/console\/sign-in\?next=/)
    const secret = fieldValue(answer.html, 'new-key')!
    expect((await signedIn(broker, secret).then((u) => u.get(keysPage(orgId)))).status).toBe(200)
  })
})

describe('revoke', () => {
  test('the key is refused on the API at once, and a console session signed in with it goes to sign-in', async () => {
    const { orgId, apiKey, user } = await orgSession()
    const made = (await (await broker.request(`/api/v1/orgs/${orgId}/api-keys`, { method: 'POST', token: apiKey, json: { name: 'laptop' } })).json()) as { apiKey: ApiKey; key: string }
    const other = await signedIn(broker, made.key)
    expect((await other.get(keysPage(orgId))).status).toBe(200)
    expect(await apiStatus(orgId, made.key)).toBe(200)

    const page = await user.get(keysPage(orgId))
    expect(rowOf(page.html, `key-${made.apiKey.id}`)).toContain('data-confirm="Revoke “laptop”? The API refuses it at once; this cannot be undone."')
    const answer = await user.submit(keysPage(orgId), `${keysPage(orgId)}/${made.apiKey.id}/revoke`)
    expect(answer.status).toBe(303)
    expect(answer.location).toBe(`${keysPage(orgId)}?notice=revoked`)
    expect(await apiStatus(orgId, made.key)).toBe(401)
    const shown = await user.get(answer.location!)
    expect(textOf(shown.html)).toContain('The key was revoked')
    expect(textOf(rowOf(shown.html, `key-${made.apiKey.id}`))).toContain('REVOKED')

    const next = await other.get(keysPage(orgId))
    expect(next.status).toBe(303)
    expect(next.location).toBe(`/console/sign-in?next=${encodeURIComponent(keysPage(orgId))}`)
    const [entry] = await auditOf(orgId)
    expect(entry).toMatchObject({ action: 'api_key.revoked', targetId: made.apiKey.id, actor: { type: 'console', name: 'default' } })
  })

  test('revoking the session’s own key ends the session, and the page says what happened', async () => {
    const { orgId, apiKey, user, ownKey } = await orgSession()
    const page = await user.get(keysPage(orgId))
    expect(rowOf(page.html, `key-${ownKey.id}`)).toContain('It is the key this session signed in with')
    const answer = await user.submit(keysPage(orgId), `${keysPage(orgId)}/${ownKey.id}/revoke`)
    expect(answer.status).toBe(200)
    expect(textOf(answer.html)).toContain('the key this session signed in with. The API refuses it from now on, and this session has ended')
    expect(answer.html).toContain('href="/console/sign-in"')
    expect(await apiStatus(orgId, apiKey)).toBe(401)
    const next = await user.get(`/console/orgs/${orgId}`)
    expect(next.status).toBe(303)
    expect(next.location).toMatch(/^\/console\/sign-in/)
    expect((await user.get('/console/sign-in')).status).toBe(200)
  })

  test('an operator’s changes are recorded as the console’s operator', async () => {
    const { orgId } = await orgSession()
    const operator = await signedIn(broker, ADMIN_TOKEN)
    const answer = await operator.submit(keysPage(orgId), keysPage(orgId), { name: 'by-operator' })
    expect(answer.status).toBe(200)
    const made = (await keysOf(orgId)).find((key) => key.name === 'by-operator')!
    await operator.submit(keysPage(orgId), `${keysPage(orgId)}/${made.id}/revoke`)
    const [revoked, created] = await auditOf(orgId)
    expect(created).toMatchObject({ action: 'api_key.created', actor: { type: 'console', id: null, name: 'operator' } })
    expect(revoked).toMatchObject({ action: 'api_key.revoked', actor: { type: 'console', id: null, name: 'operator' } })
  })
})

describe('forged posts', () => {
  test('without the session’s CSRF token, with another session’s, or from another site: refused, nothing changed', async () => {
    const { orgId, user, ownKey } = await orgSession()
    const stranger = await orgSession()
    const token = user.csrfOf((await user.get(keysPage(orgId))).html)!
    const foreignToken = stranger.user.csrfOf((await stranger.user.get(keysPage(stranger.orgId))).html)!
    const entries = (await auditOf(orgId)).length
    const attempts = [
      () => user.post(keysPage(orgId), { name: 'forged' }),
      () => user.post(keysPage(orgId), { _csrf: foreignToken, name: 'forged' }),
      () => user.post(keysPage(orgId), { _csrf: token, name: 'forged' }, { origin: 'https://evil.example' }),
      () => user.post(`${keysPage(orgId)}/${ownKey.id}/revoke`, { _csrf: foreignToken }),
      () => user.post(`${keysPage(orgId)}/${ownKey.id}/revoke`, { _csrf: token }, { origin: 'https://evil.example' }),
      () => user.post(`${keysPage(orgId)}/${ownKey.id}/rotate`, { gracePeriodSeconds: '0' }),
    ]
    for (const attempt of attempts) {
      const answer = await attempt()
      expect(answer.status).toBe(403)
    }
    expect(await keysOf(orgId)).toHaveLength(1)
    expect((await keysOf(orgId))[0]!.status).toBe('ACTIVE')
    expect((await auditOf(orgId)).length).toBe(entries)
  })
})

describe('any input', () => {
  test('a key id holding U+0000 (%00) is the 404 page for rotate and revoke on every database, and changes nothing', async () => {
    // PostgreSQL's text cannot hold it: the console refuses a %00 in any path before a page asks the database.
    const { orgId, user } = await orgSession()
    const token = user.csrfOf((await user.get(keysPage(orgId))).html)!
    const keys = await keysOf(orgId)
    for (const action of ['rotate', 'revoke']) {
      const answer = await user.post(`${keysPage(orgId)}/${encodeURIComponent('\u0000')}/${action}`, { _csrf: token, gracePeriodSeconds: '' })
      expectNoServerError(answer.status, answer.html)
      expect(answer.status).toBe(404)
    }
    expect(await keysOf(orgId)).toEqual(keys)
  })

  test('the create and rotate forms never answer a 5xx', async () => {
    const { orgId, user, ownKey } = await orgSession()
    const token = user.csrfOf((await user.get(keysPage(orgId))).html)!
    await fc.assert(
      fc.asyncProperty(fc.record({ name: formText, scope: formText, expiresAt: formText, rateLimitPerMinute: formText }, { requiredKeys: [] }), async (fields) => {
        const answer = await user.post(keysPage(orgId), { _csrf: token, ...fields })
        expectNoServerError(answer.status, answer.html)
        expect([200, 400]).toContain(answer.status)
      }),
      { numRuns: 60 },
    )
    await fc.assert(
      fc.asyncProperty(formText, fc.oneof(fc.constant(ownKey.id), formText), async (grace, keyId) => {
        const answer = await user.post(`${keysPage(orgId)}/${encodeURIComponent(keyId)}/rotate`, { _csrf: token, gracePeriodSeconds: grace })
        expectNoServerError(answer.status, answer.html)
      }),
      { numRuns: 30 },
    )
  })
})
