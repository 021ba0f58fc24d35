import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { runJobs } from '../src/domain/jobs'
import { createLandingService } from '../src/domain/landing'
import { consoleUser, textOf } from './console'
import { ADMIN_TOKEN, PUBLIC_URL, type TestBroker, createTestBroker } from './helpers'

/**
 * The console's sessions and forms over HTTP (contract §14), on the in-process broker: the
 * cookie and what the database keeps of it, the 12 h idle expiry, what ends a session (sign-out,
 * a revoked or expired key, a new ADMIN_TOKEN), the sign-in throttle, `next=`, forged posts, the
 * job's pruning, and the sign-in form under arbitrary input. The browser suite
 * (console-browser.test.ts) does the same things through Chromium on both runtimes.
 */

const HOUR = 3600_000
const COOKIE = 'marketbridge_console'

/** A broker whose clock a test sets (`at(ms)`) or moves (`later(ms)`); the real clock underneath until set. */
async function clockedBroker(env: Record<string, string> = {}) {
  const broker = await createTestBroker(env)
  let shift = 0
  broker.deps.now = () => new Date(Date.now() + shift)
  return Object.assign(broker, {
    later: (ms: number) => void (shift += ms),
    /** Moves the clock to `ms` (epoch) exactly, from the real time now. */
    at: (ms: number) => void (shift = ms - Date.now()),
  })
}
type Clocked = Awaited<ReturnType<typeof clockedBroker>>

/** A user of this broker; `address` is the TCP peer the Node server would see. */
function userOf(broker: Pick<TestBroker, 'app'>, options: { base?: string; address?: string } = {}) {
  const env = options.address ? { incoming: { socket: { remoteAddress: options.address } } } : undefined
  return consoleUser((url, init) => broker.app.request(url, init, env), options.base)
}

const sessionRows = (broker: TestBroker) => broker.deps.db.selectFrom('console_sessions').selectAll().execute()
const sha256 = (value: string) => createHash('sha256').update(value).digest('hex')

async function keyIdOf(broker: TestBroker, orgId: string, token = ADMIN_TOKEN) {
  const response = await broker.request(`/api/v1/orgs/${orgId}/api-keys`, { token })
  const { items } = (await response.json()) as { items: Array<{ id: string; name: string }> }
  return items[0]!.id
}

/** Whether the user's session still opens the page (200), or it was sent to sign in. */
async function signedIn(user: ReturnType<typeof userOf>, path: string) {
  const answer = await user.get(path)
  if (answer.status === 200) return true
  expect(answer.status).toBe(303)
  expect(answer.location).toMatch(/^\/console\/sign-in\?next=/)
  return false
}

let broker: Clocked
beforeAll(async () => {
  broker = await clockedBroker()
})
afterAll(async () => {
  await broker?.close()
})

describe('sign-in', () => {
  test('a full key: a 303 to the org, an HttpOnly SameSite=Lax cookie on Path=/ (not Secure over http); only its hash is stored', async () => {
    const { org, apiKey } = await broker.createOrg({ name: 'Sessions Inc' })
    const user = userOf(broker)
    const answer = await user.signIn(apiKey)
    expect(answer.location).toBe('/console')
    const [line, ...others] = answer.response.headers.getSetCookie()
    expect(others).toEqual([])
    const attributes = line!.split(';').map((part) => part.trim())
    const value = attributes[0]!.slice(`${COOKIE}=`.length)
    expect(attributes[0]).toBe(`${COOKIE}=${value}`)
    expect(value.length).toBeGreaterThanOrEqual(40)
    expect(attributes.slice(1).map((a) => a.toLowerCase()).sort()).toEqual(['httponly', 'path=/', 'samesite=lax'])
    expect((await user.get('/console')).location).toBe(`/console/orgs/${org.id}`)
    const overview = await user.get(`/console/orgs/${org.id}`)
    expect(overview.status).toBe(200)
    expect(textOf(overview.html)).toContain('Sessions Inc')

    // The database holds the cookie's SHA-256, never the cookie itself.
    const rows = await sessionRows(broker)
    const row = rows.find((r) => r.id_hash === sha256(value))
    expect(row).toBeDefined()
    expect(row!.org_id).toBe(org.id)
    for (const r of rows) expect(JSON.stringify(r)).not.toContain(value)
    // Nor is the key in the session (it is the api_keys row's, by id).
    expect(JSON.stringify(row)).not.toContain(apiKey)
  })

  test('over https the cookie is __Host-marketbridge_console, Secure, Path=/, no Domain', async () => {
    const secure = await createTestBroker({ PUBLIC_URL: 'https://console.example' })
    try {
      const { org, apiKey } = await secure.createOrg()
      const user = userOf(secure, { base: 'https://console.example' })
      const answer = await user.signIn(apiKey)
      const line = answer.response.headers.getSetCookie()[0]!
      const attributes = line.split(';').map((part) => part.trim().toLowerCase())
      expect(line.startsWith('__Host-marketbridge_console=')).toBe(true)
      expect(attributes).toContain('secure')
      expect(attributes).toContain('path=/')
      expect(attributes).toContain('httponly')
      expect(attributes).toContain('samesite=lax')
      expect(attributes.some((a) => a.startsWith('domain='))).toBe(false)
      expect((await user.get(`/console/orgs/${org.id}`)).status).toBe(200)
      // Signing out clears the same cookie (its name and attributes, or the browser keeps it).
      const out = await user.submit(`/console/orgs/${org.id}`, '/console/sign-out')
      const cleared = out.response.headers.getSetCookie()[0]!
      expect(cleared).toMatch(/^__Host-marketbridge_console=;/)
      expect(cleared.toLowerCase()).toContain('secure')
      expect(cleared.toLowerCase()).toContain('path=/')
    } finally {
      await secure.close()
    }
  })

  test('the admin token: an operator, sent to the org list, who may open any org', async () => {
    const { org } = await broker.createOrg({ name: 'Any Org' })
    const user = userOf(broker)
    await user.signIn(ADMIN_TOKEN)
    expect((await user.get('/console')).location).toBe('/console/orgs')
    const overview = await user.get(`/console/orgs/${org.id}`)
    expect(overview.status).toBe(200)
    expect(overview.html).toContain('Operator')
  })

  test("an ISV session sees its own org only: another org's pages are 404, as a missing one", async () => {
    const mine = await broker.createOrg({ name: 'Mine' })
    const theirs = await broker.createOrg({ name: 'Theirs' })
    const user = userOf(broker)
    await user.signIn(mine.apiKey)
    for (const path of [`/console/orgs/${theirs.org.id}`, `/console/orgs/${theirs.org.id}/entitlements`, '/console/orgs/org_missing']) {
      const answer = await user.get(path)
      expect(answer.status, path).toBe(404)
      expect(answer.html).not.toContain('Theirs')
    }
  })

  test('a wrong key, a read key, nothing: a readable error, no cookie, no session', async () => {
    const { org } = await broker.createOrg()
    const read = await broker.request(`/api/v1/orgs/${org.id}/api-keys`, { method: 'POST', json: { name: 'reader', scope: 'read' } })
    const { key: readKey } = (await read.json()) as { key: string }
    const before = (await sessionRows(broker)).length
    const cases: Array<[string, number, RegExp]> = [
      ['mbk_not-a-real-key', 401, /not a valid API key or admin token/],
      [`${ADMIN_TOKEN}x`, 401, /not a valid API key or admin token/],
      [readKey, 401, /may only read/],
      ['', 400, /Enter an API key or the admin token/],
      ['   ', 400, /Enter an API key or the admin token/],
    ]
    for (const [credential, status, message] of cases) {
      const user = userOf(broker, { address: `192.0.2.${cases.findIndex((c) => c[0] === credential) + 1}` })
      const answer = await user.post('/console/sign-in', { credential })
      expect(answer.status, credential).toBe(status)
      expect(answer.response.headers.getSetCookie()).toEqual([])
      expect(textOf(answer.html)).toMatch(message)
      expect(answer.html).toContain('role="alert"')
      // The form again, the field empty (a key is never echoed back).
      expect(answer.html).toContain('name="credential"')
      if (credential.trim()) expect(answer.html).not.toContain(credential.trim())
    }
    expect((await sessionRows(broker)).length).toBe(before)
  })
})

describe('what ends a session', () => {
  test('sign-out: the row is gone, the old cookie leads to sign-in', async () => {
    const { org, apiKey } = await broker.createOrg()
    const user = userOf(broker)
    await user.signIn(apiKey)
    const cookie = user.cookies.get(COOKIE)!
    const out = await user.submit(`/console/orgs/${org.id}`, '/console/sign-out')
    expect(out.status).toBe(303)
    expect(out.location).toBe('/console/sign-in')
    expect(user.cookies.has(COOKIE)).toBe(false)
    expect((await sessionRows(broker)).some((r) => r.id_hash === sha256(cookie))).toBe(false)
    // The old cookie, replayed (a copy kept, the back button): sign in again.
    const replay = userOf(broker)
    replay.cookies.set(COOKIE, cookie)
    expect(await signedIn(replay, `/console/orgs/${org.id}`)).toBe(false)
  })

  test('12 h idle: a session in use stays, one idle for 12 h ends (and its row with it)', async () => {
    const { org, apiKey } = await broker.createOrg()
    const page = `/console/orgs/${org.id}`
    const used = userOf(broker)
    await used.signIn(apiKey)
    const idle = userOf(broker)
    await idle.signIn(apiKey)
    const idleCookie = idle.cookies.get(COOKIE)!
    try {
      broker.later(11 * HOUR)
      expect(await signedIn(used, page)).toBe(true)
      broker.later(11 * HOUR)
      // 22 h after sign-in, 11 h after its last use: still signed in.
      expect(await signedIn(used, page)).toBe(true)
      // The other one, untouched for 22 h, has ended.
      expect(await signedIn(idle, page)).toBe(false)
      expect((await sessionRows(broker)).some((r) => r.id_hash === sha256(idleCookie))).toBe(false)
      broker.later(12 * HOUR - 1000)
      expect(await signedIn(used, page)).toBe(true)
      broker.later(12 * HOUR)
      expect(await signedIn(used, page)).toBe(false)
    } finally {
      broker.at(Date.now())
    }
  })

  test('its key revoked, or past its expiry: the session ends at its next page', async () => {
    const { org, apiKey } = await broker.createOrg()
    const page = `/console/orgs/${org.id}`
    const user = userOf(broker)
    await user.signIn(apiKey)
    expect(await signedIn(user, page)).toBe(true)
    const revoked = await broker.request(`/api/v1/orgs/${org.id}/api-keys/${await keyIdOf(broker, org.id)}`, { method: 'DELETE' })
    expect(revoked.status).toBeLessThan(300)
    expect(await signedIn(user, page)).toBe(false)

    const expiresAt = new Date(Date.now() + 2 * HOUR).toISOString()
    const created = await broker.request(`/api/v1/orgs/${org.id}/api-keys`, { method: 'POST', json: { name: 'short-lived', expiresAt } })
    expect(created.status).toBe(201)
    const { key } = (await created.json()) as { key: string }
    const other = userOf(broker)
    await other.signIn(key)
    try {
      broker.later(HOUR)
      expect(await signedIn(other, page)).toBe(true)
      broker.later(HOUR + 1000)
      expect(await signedIn(other, page)).toBe(false)
    } finally {
      broker.at(Date.now())
    }
  })

  test('a new ADMIN_TOKEN (a restart with another one) ends operator sessions, not ISV ones', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'marketbridge-console-'))
    const env = { DATABASE_URL: `sqlite:${join(dir, 'marketbridge.db')}`, ENCRYPTION_KEY: Buffer.alloc(32, 3).toString('base64') }
    const first = await createTestBroker(env)
    let second: TestBroker | undefined
    try {
      const { org, apiKey } = await first.createOrg()
      const operator = userOf(first)
      await operator.signIn(ADMIN_TOKEN)
      const isv = userOf(first)
      await isv.signIn(apiKey)
      const page = `/console/orgs/${org.id}`
      expect(await signedIn(operator, page)).toBe(true)
      await first.close()
      second = await createTestBroker({ ...env, ADMIN_TOKEN: `${ADMIN_TOKEN}-rotated` })
      const again = (user: ReturnType<typeof userOf>) => {
        const moved = userOf(second!)
        for (const [name, value] of user.cookies) moved.cookies.set(name, value)
        return moved
      }
      expect(await signedIn(again(operator), page)).toBe(false)
      expect(await signedIn(again(isv), page)).toBe(true)
      // The new token signs in.
      const fresh = userOf(second)
      await fresh.signIn(`${ADMIN_TOKEN}-rotated`)
      expect(await signedIn(fresh, page)).toBe(true)
    } finally {
      await first.close()
      await second?.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })

  test('the background job prunes sessions past their idle expiry, and only those', async () => {
    const { apiKey } = await broker.createOrg()
    const stale = userOf(broker)
    await stale.signIn(apiKey)
    const staleHash = sha256(stale.cookies.get(COOKIE)!)
    const job = () => runJobs(broker.deps, createLandingService(broker.deps), broker.deps.logger)
    try {
      broker.later(6 * HOUR)
      const live = userOf(broker)
      await live.signIn(apiKey)
      const liveHash = sha256(live.cookies.get(COOKIE)!)
      broker.later(6 * HOUR + 1000)
      await job()
      const left = (await sessionRows(broker)).map((r) => r.id_hash)
      expect(left).not.toContain(staleHash)
      expect(left).toContain(liveHash)
    } finally {
      broker.at(Date.now())
    }
  })
})

describe('the sign-in throttle', () => {
  test('10 wrong attempts a minute from one address: the 11th, even right, is a 429 with Retry-After; other addresses are not held; the next minute is open', async () => {
    const { org, apiKey } = await broker.createOrg()
    const minute = Math.ceil(Date.now() / 60_000) * 60_000 + 60_000
    try {
      broker.at(minute + 20_000)
      const attacker = userOf(broker, { address: '203.0.113.7' })
      for (let i = 0; i < 10; i++) expect((await attacker.post('/console/sign-in', { credential: `mbk_wrong-${i}` })).status).toBe(401)
      const held = await attacker.post('/console/sign-in', { credential: apiKey })
      expect(held.status).toBe(429)
      expect(held.response.headers.get('retry-after')).toBe('40')
      expect(textOf(held.html)).toMatch(/Too many wrong attempts from your address\. Try again in 40 seconds/)
      expect(held.response.headers.getSetCookie()).toEqual([])
      expect(attacker.cookies.size).toBe(0)
      // Another address signs in.
      const neighbour = userOf(broker, { address: '203.0.113.8' })
      expect((await neighbour.post('/console/sign-in', { credential: apiKey })).status).toBe(303)
      // Still held at the minute's last second; open in the next one.
      broker.at(minute + 59_500)
      const late = await attacker.post('/console/sign-in', { credential: apiKey })
      expect(late.status).toBe(429)
      expect(late.response.headers.get('retry-after')).toBe('1')
      broker.at(minute + 60_000)
      const open = await attacker.post('/console/sign-in', { credential: apiKey })
      expect(open.status).toBe(303)
      expect((await attacker.get(`/console/orgs/${org.id}`)).status).toBe(200)
    } finally {
      broker.at(Date.now())
    }
  })

  test('right sign-ins are not counted: 10 wrong ones after them still leave the 10th refused as wrong, not held', async () => {
    const { apiKey } = await broker.createOrg()
    const user = userOf(broker, { address: '203.0.113.20' })
    const minute = Math.ceil(Date.now() / 60_000) * 60_000 + 120_000
    try {
      broker.at(minute + 1000)
      for (let i = 0; i < 5; i++) expect((await user.post('/console/sign-in', { credential: apiKey })).status).toBe(303)
      for (let i = 0; i < 10; i++) expect((await user.post('/console/sign-in', { credential: 'nope' })).status).toBe(401)
      expect((await user.post('/console/sign-in', { credential: 'nope' })).status).toBe(429)
    } finally {
      broker.at(Date.now())
    }
  })
})

describe('the sign-in throttle under parallel attempts', () => {
  test('40 wrong attempts at once from one address: exactly 10 are checked (401), the rest held (429), on every database', async () => {
    const minute = Math.ceil(Date.now() / 60_000) * 60_000 + 180_000
    try {
      broker.at(minute + 1000)
      const statuses = await Promise.all(
        Array.from({ length: 40 }, (_, i) => userOf(broker, { address: '203.0.113.30' }).post('/console/sign-in', { credential: `mbk_parallel-${i}` }).then((a) => a.status)),
      )
      expect(statuses.filter((s) => s === 401)).toHaveLength(10)
      expect(statuses.filter((s) => s === 429)).toHaveLength(30)
    } finally {
      broker.at(Date.now())
    }
  })
})

describe('signing in again', () => {
  test("ends the browser's previous session: its row is gone, its cookie replayed leads to sign-in", async () => {
    const { org, apiKey } = await broker.createOrg()
    const user = userOf(broker)
    await user.signIn(apiKey)
    const first = user.cookies.get(COOKIE)!
    await user.signIn(apiKey)
    const second = user.cookies.get(COOKIE)!
    expect(second).not.toBe(first)
    const hashes = (await sessionRows(broker)).map((r) => r.id_hash)
    expect(hashes).toContain(sha256(second))
    expect(hashes).not.toContain(sha256(first))
    const replay = userOf(broker)
    replay.cookies.set(COOKIE, first)
    expect(await signedIn(replay, `/console/orgs/${org.id}`)).toBe(false)
    expect(await signedIn(user, `/console/orgs/${org.id}`)).toBe(true)
  })

  test('/console/ is /console', async () => {
    const answer = await userOf(broker).get('/console/')
    expect(answer.status).toBe(308)
    expect(answer.location).toBe('/console')
  })
})

describe('next= after sign-in', () => {
  test('a page of the console is returned to; anything else (another site, another path of the broker) is /console', async () => {
    const { org, apiKey } = await broker.createOrg()
    const page = `/console/orgs/${org.id}?notice=x`
    // Sent to sign in from a page: the page comes back as next=.
    const anonymous = userOf(broker)
    const sent = await anonymous.get(page)
    expect(sent.location).toBe(`/console/sign-in?next=${encodeURIComponent(page)}`)
    const form = await anonymous.get(sent.location!)
    expect(form.html).toContain(`name="next" value="/console/orgs/${org.id}?notice=x"`)
    const cases: Array<[string, string]> = [
      [page, page],
      ['/console/orgs', '/console/orgs'],
      ['//evil.example', '/console'],
      ['//evil.example/console', '/console'],
      ['https://evil.example', '/console'],
      ['https://evil.example/console', '/console'],
      ['/\\evil.example', '/console'],
      ['/console/../api/v1/orgs', '/console'],
      ['/console/%2e%2e/api/docs', '/console'],
      ['/console/.%2E/.%2e/evil', '/console'],
      ['/consolex', '/console'],
      ['/console\\..\\x', '/console'],
      ['javascript:alert(1)', '/console'],
      ['/console/\n//evil.example', '/console'],
      ['', '/console'],
    ]
    for (const [next, expected] of cases) {
      const user = userOf(broker)
      const answer = await user.post('/console/sign-in', { credential: apiKey, next })
      expect(answer.status, next).toBe(303)
      expect(answer.location, JSON.stringify(next)).toBe(expected)
      // The same for GET /console/sign-in?next= of a signed-in user, and in the form's hidden field.
      expect((await user.get(`/console/sign-in?next=${encodeURIComponent(next)}`)).location, JSON.stringify(next)).toBe(expected)
      const shown = await userOf(broker).get(`/console/sign-in?next=${encodeURIComponent(next)}`)
      expect(/name="next" value="([^"]*)"/.exec(shown.html)?.[1]?.replace(/&amp;/g, '&'), JSON.stringify(next)).toBe(expected)
    }
  })
})

describe('forged posts', () => {
  /** A signed-in user and a check that the session is untouched (sign-out is the change a forged post would make). */
  async function victim() {
    const { org, apiKey } = await broker.createOrg()
    const user = userOf(broker)
    await user.signIn(apiKey)
    const page = `/console/orgs/${org.id}`
    const token = user.csrfOf((await user.get(page)).html)!
    expect(token).toBeTruthy()
    return { user, page, token, apiKey }
  }
  const refused = (answer: { status: number; html: string }) => {
    expect(answer.status).toBe(403)
    expect(textOf(answer.html)).toMatch(/This form was refused/)
    expect(textOf(answer.html)).toMatch(/Nothing was changed/)
  }

  test("no _csrf, an empty one, another session's: 403, nothing changed", async () => {
    const { user, page } = await victim()
    const other = await victim()
    for (const fields of [{}, { _csrf: '' }, { _csrf: other.token }, { _csrf: `${other.token}x` }] as Array<Record<string, string>>) {
      refused(await user.post('/console/sign-out', fields))
      expect(await signedIn(user, page)).toBe(true)
    }
    // A JSON body carries no form field: refused too.
    refused(await user.post('/console/sign-out', {}, { 'content-type': 'application/json' }))
    expect(await signedIn(user, page)).toBe(true)
  })

  test('a cross-site Origin, or no Origin with Sec-Fetch-Site cross-site or same-site: 403 before anything is read, nothing changed', async () => {
    const { user, page, token } = await victim()
    for (const headers of [
      { origin: 'https://evil.example' },
      { origin: 'http://broker.test:8080' },
      { origin: 'null' },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' },
      { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
    ] as Array<Record<string, string>>) {
      refused(await postAs(user, '/console/sign-out', { _csrf: token }, headers))
      expect(await signedIn(user, page), JSON.stringify(headers)).toBe(true)
    }
    // A login-CSRF: another site posting a key of its own is refused as well (no cookie).
    const { apiKey } = await broker.createOrg()
    const forged = await userOf(broker).post('/console/sign-in', { credential: apiKey }, { origin: 'https://evil.example' })
    refused(forged)
    expect(forged.response.headers.getSetCookie()).toEqual([])
    // The same post from the console's own page (Origin its own) does sign out.
    expect((await user.post('/console/sign-out', { _csrf: token })).status).toBe(303)
    expect(await signedIn(user, page)).toBe(false)
  })

  test('a form larger than 64 KiB: 413, nothing changed', async () => {
    const { user, page, token } = await victim()
    const answer = await user.post('/console/sign-out', { _csrf: token, filler: 'x'.repeat(70 * 1024) })
    expect(answer.status).toBe(413)
    expect(await signedIn(user, page)).toBe(true)
  })
})

/** A form post with the user's cookies and exactly these headers (no Origin unless given). */
async function postAs(user: ReturnType<typeof userOf>, path: string, fields: Record<string, string>, headers: Record<string, string>) {
  const cookie = [...user.cookies].map(([name, value]) => `${name}=${value}`).join('; ')
  const response = await broker.app.request(`${PUBLIC_URL}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie, ...headers },
    body: new URLSearchParams(fields).toString(),
    redirect: 'manual',
  })
  return { status: response.status, html: await response.text() }
}

describe('the sign-in form under arbitrary input', () => {
  test('never a 5xx; a cookie only for a right key; next= never leaves /console', async () => {
    const { apiKey } = await broker.createOrg()
    const hostile = fc.constantFrom('<script>alert(1)</script>', '"><img src=x>', '\u0000', '%00', '../..', '//evil.example', 'mbk_', 'mba_', 'x'.repeat(5000), '\ud800', ADMIN_TOKEN.slice(0, -1))
    const value = fc.oneof(fc.string({ maxLength: 60 }), fc.string({ unit: 'binary', maxLength: 20 }), hostile, fc.constant(apiKey))
    let address = 0
    await fc.assert(
      fc.asyncProperty(
        value,
        fc.option(value, { nil: undefined }),
        fc.dictionary(fc.constantFrom('_csrf', 'extra', 'credential[]', 'next[]'), value, { maxKeys: 2 }),
        fc.constantFrom('application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'text/plain', 'application/json', ''),
        async (credential, next, extra, type) => {
          // Each run from its own address: the throttle is tested above, not here.
          const user = userOf(broker, { address: `198.51.100.${++address % 250}` })
          const fields: Record<string, string> = { ...extra, credential, ...(next === undefined ? {} : { next }) }
          const answer = await user.post('/console/sign-in', fields, type ? { 'content-type': type } : {})
          expect(answer.status).toBeLessThan(500)
          if (answer.status === 303) {
            expect(credential.trim()).toBe(apiKey)
            expect(answer.location === '/console' || answer.location!.startsWith('/console/')).toBe(true)
            expect(answer.response.headers.getSetCookie()).toHaveLength(1)
          } else {
            expect(answer.response.headers.getSetCookie()).toEqual([])
          }
          expect(answer.html).not.toContain('<script>alert(1)')
          expect(answer.html).not.toContain('<img src=x>')
        },
      ),
      { numRuns: 120 },
    )
    // A multipart body that is not one, a form with a file: no 5xx either.
    const user = userOf(broker, { address: '198.51.100.251' })
    const broken = await user.post('/console/sign-in', {}, { 'content-type': 'multipart/form-data; boundary=zzz' })
    expect(broken.status).toBeLessThan(500)
    const withFile = new FormData()
    withFile.set('credential', new Blob([apiKey]), 'key.txt')
    const filed = await broker.app.request(`${PUBLIC_URL}/console/sign-in`, { method: 'POST', body: withFile, headers: { origin: PUBLIC_URL }, redirect: 'manual' })
    expect(filed.status).toBe(400)
  })
})
