import fc from 'fast-check'
import { expect } from 'vitest'
import { consoleUser } from './console'
import type { TestBroker } from './helpers'

/** What the console page tests (API keys, audit log, signup form, orgs) share. */

export type ConsoleUser = ReturnType<typeof consoleUser>

/** A console user of an in-process broker, signed in with `credential` (a full key or the admin token). */
export async function signedIn(broker: TestBroker, credential: string): Promise<ConsoleUser> {
  const user = consoleUser((url, init) => broker.app.request(url, init))
  await user.signIn(credential)
  return user
}

/** The JSON answer of an API GET that must succeed. */
export async function apiGet<T>(broker: TestBroker, path: string, token?: string): Promise<T> {
  const response = await broker.request(path, token ? { token } : {})
  const text = await response.text()
  expect(response.status, text).toBe(200)
  return JSON.parse(text) as T
}

/** The ids of a page's table rows, in order (`<tr id="{prefix}{id}">`). */
export const rowIds = (html: string, prefix = '') => [...html.matchAll(new RegExp(`<tr id="${prefix}([^"]+)"`, 'g'))].map((match) => match[1]!)

/** A read-only field's value on the page (a secret shown once, a URL to copy), or null. */
export const fieldValue = (html: string, id: string) => new RegExp(`id="${id}" value="([^"]*)"`).exec(html)?.[1] ?? null

/** One row of a page's table, by its id (for what it shows). */
export function rowOf(html: string, id: string): string {
  const at = html.indexOf(`<tr id="${id}"`)
  expect(at, `row ${id}`).toBeGreaterThanOrEqual(0)
  return html.slice(at, html.indexOf('</tr>', at))
}

/** Markup an attacker would try in a name or an email. */
export const HOSTILE = `<script>alert(1)</script><img src=x onerror="alert(2)">&amp;"'`

/** Form values: anything a person or a script might type, hostile and huge included. */
export const formText = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom('', ' ', '0', '-1', '1e3', '86400', '604801', '100001', 'full', 'read', 'admin', '2099-01-01T00:00', '2001-01-01T00:00', '2099-13-45T99:99', 'null', '[]', '{}', HOSTILE, 'javascript:alert(1)', 'https://ok.example/x', 'http://127.0.0.1:9/x', 'a@b.example', '\u0000', '%00', 'x'.repeat(3000)),
)

/** The statuses a form post may answer: a page (200), a redirect (303), a refusal (400, 404, 409). Never a 5xx. */
export function expectNoServerError(status: number, html: string) {
  expect(status, html.slice(0, 400)).toBeLessThan(500)
}
