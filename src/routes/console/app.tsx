/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import { type Context, Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { deleteCookie, getCookie, setCookie } from 'hono/cookie'
import { csrf } from 'hono/csrf'
import { HTTPException } from 'hono/http-exception'
import type { Child } from 'hono/jsx'
import type { AppDeps } from '../../deps'
import { type ConsoleSession, consoleAudit, csrfMatches, endSessionOf, loadSession, maySee, signIn, signOut } from '../../domain/console-sessions'
import { getOrg } from '../../domain/orgs'
import type { AppEnv } from '../../env'
import { ApiError } from '../../errors'
import { ownFile } from '../../pages/docs'
import { BarePage, CONSOLE_ASSETS, ConsolePage, type OrgPage, type Viewer, orgPath } from '../../pages/console/layout'
import { CONSOLE_CSS, CONSOLE_JS } from '../../pages/console/styles'
import type { Org } from '../../schemas'
import { nulInUrl } from '../common'

/**
 * The console (contract §14): server-rendered pages for people, on the same domain code as the
 * API. This module is its frame — assets, sign-in and sign-out, the session, CSRF, the org a page
 * belongs to, errors — and each page group registers its routes on the app it builds
 * (see ./index.ts).
 */

export type ConsoleEnv = {
  Variables: AppEnv['Variables'] & {
    session: ConsoleSession
    viewer: Viewer
    /** The org of an /orgs/{orgId}/… page, read once its access is checked. */
    org: Org
    /** A POSTed form's fields (strings only), its CSRF token already checked. */
    form: Record<string, string>
  }
}
export type ConsoleContext = Context<ConsoleEnv>
export type ConsoleApp = Hono<ConsoleEnv>

const FORM_BODY_LIMIT = 64 * 1024

/** Pages that hold secrets or personal data: never stored by a cache, never framed, no other origin. */
export const CONSOLE_CSP =
  "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
const PAGE_HEADERS = {
  'content-security-policy': CONSOLE_CSP,
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'same-origin',
}

/** The console's stylesheet and script, with their ETags (the API docs' own files are served the same way). */
const ASSETS: Readonly<Record<string, { type: string; body: string; etag: string }>> = {
  'console.css': ownFile('text/css; charset=utf-8', CONSOLE_CSS),
  'console.js': ownFile('text/javascript; charset=utf-8', CONSOLE_JS),
}

/** The session cookie's name: `__Host-` (Secure, Path=/, no Domain) whenever the broker is served over https. */
export function cookieName(deps: AppDeps) {
  return secure(deps) ? '__Host-marketbridge_console' : 'marketbridge_console'
}
const secure = (deps: AppDeps) => deps.config.PUBLIC_URL.startsWith('https:')

/**
 * The address wrong sign-ins are counted by: the TCP peer on Node, Cloudflare's CF-Connecting-IP
 * on Workers (set by the platform, not the client). Behind a reverse proxy on Node every client
 * shares the proxy's address: the limit then holds for all of them together.
 */
function clientAddress(c: Context): string {
  const incoming = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming
  return incoming?.socket?.remoteAddress ?? c.req.header('cf-connecting-ip') ?? 'unknown'
}

/**
 * Only a path inside the console may be returned to after sign-in (no open redirect, no way out
 * of /console by dot segments, `%2e%2e` included): the path as a browser resolves it.
 */
function safeNext(next: string | undefined): string {
  if (!next || !/^\/console(\/[A-Za-z0-9._~%!$&'()*+,;=:@\/?-]*)?$/.test(next)) return '/console'
  const resolved = new URL(next, 'http://console.invalid')
  const path = resolved.pathname + resolved.search
  return resolved.origin === 'http://console.invalid' && (resolved.pathname === '/console' || resolved.pathname.startsWith('/console/')) && path === next ? next : '/console'
}

export function viewerOf(session: ConsoleSession): Viewer {
  return { operator: session.orgId === null, keyName: session.keyName, csrfToken: session.csrfToken }
}

/** The audit context of a change made by this request's session. */
export const auditOf = (c: ConsoleContext) => consoleAudit(c.get('session'), c.get('requestId') ?? null)

/** Renders a signed-in page of the current org (or, without `current`'s org, a page of its own). */
export function page(c: ConsoleContext, props: { title: string; current?: OrgPage | 'orgs'; status?: number; children: Child }) {
  const org = c.get('org')
  return c.html(
    <ConsolePage title={props.title} viewer={c.get('viewer')} org={org ? { id: org.id, name: org.name } : undefined} current={props.current}>
      {props.children}
    </ConsolePage>,
    (props.status ?? 200) as 200,
    PAGE_HEADERS,
  )
}

/** After a change: back to a page (303, so a reload does not post again), with a notice code it knows. */
export function redirectTo(c: ConsoleContext, path: string, notice?: string) {
  const url = notice ? `${path}${path.includes('?') ? '&' : '?'}notice=${encodeURIComponent(notice)}` : path
  return c.redirect(url, 303)
}

function SignInPage(props: { next: string; error?: string }) {
  return (
    <BarePage title="Sign in">
      <div class="card signin">
        <h1>Sign in to the console</h1>
        <p class="muted small">With one of your org's API keys (scope full), or the broker's admin token if you run it.</p>
        {props.error ? (
          <div class="note bad" role="alert" id="sign-in-error">
            {props.error}
          </div>
        ) : null}
        <form method="post" action="/console/sign-in" class="stack">
          <input type="hidden" name="next" value={props.next} />
          <label class="field" for="credential">
            API key or admin token
          </label>
          <input
            type="password"
            id="credential"
            name="credential"
            required
            autocomplete="off"
            spellcheck={false}
            aria-describedby={props.error ? 'sign-in-error' : undefined}
            aria-invalid={props.error ? 'true' : undefined}
          />
          <p>
            <button type="submit">Sign in</button>
          </p>
        </form>
      </div>
    </BarePage>
  )
}

function ProblemPage(props: { title: string; message: string; requestId?: string; signedIn: boolean }) {
  return (
    <BarePage title={props.title}>
      <div class="card">
        <h1>{props.title}</h1>
        <p>{props.message}</p>
        {props.requestId ? <p class="muted small">Reference: {props.requestId}</p> : null}
        <p>
          <a href="/console">{props.signedIn ? 'Back to the console' : 'Sign in'}</a>
        </p>
      </div>
    </BarePage>
  )
}

/** The strings of a parsed form (files and repeated names dropped to their last string value). */
function formStrings(body: Record<string, unknown>): Record<string, string> {
  const form: Record<string, string> = {}
  for (const [name, value] of Object.entries(body)) {
    const last = Array.isArray(value) ? value.at(-1) : value
    if (typeof last === 'string') form[name] = last
  }
  return form
}

/** Builds the console app (mounted at /console) and lets each page group add its routes. */
export function createConsoleApp(deps: AppDeps, register: Array<(app: ConsoleApp, deps: AppDeps) => void>) {
  const app = new Hono<ConsoleEnv>()
  const publicOrigin = new URL(deps.config.PUBLIC_URL).origin

  app.get('/assets/:file', (c) => {
    const file = c.req.param('file')
    const asset = Object.hasOwn(ASSETS, file) ? ASSETS[file]! : null
    if (!asset) return c.text('Not found', 404)
    const { etag } = asset
    const headers = { 'content-type': asset.type, 'cache-control': 'no-cache', etag, 'x-content-type-options': 'nosniff' }
    if (c.req.header('if-none-match')?.split(',').some((t) => t.trim() === etag)) return c.body(null, 304, headers)
    return c.body(asset.body, 200, headers)
  })

  // Cross-site posts are refused before anything is read (the browser's Origin, or Sec-Fetch-Site).
  app.use('*', csrf({ origin: (origin, c) => origin === publicOrigin || origin === new URL(c.req.url).origin }))
  const limit = bodyLimit({
    maxSize: FORM_BODY_LIMIT,
    onError: () => {
      throw new ApiError('PAYLOAD_TOO_LARGE', 'This form is larger than 64 KiB.')
    },
  })
  app.use('*', (c, next) => (c.req.method === 'POST' ? limit(c, next) : next()))
  app.use('*', async (c, next) => {
    if (c.req.method === 'POST') {
      const type = c.req.header('content-type') ?? ''
      let body: Record<string, unknown> = {}
      if (/^(application\/x-www-form-urlencoded|multipart\/form-data)/i.test(type)) {
        try {
          body = await c.req.parseBody({ all: true })
        } catch (error) {
          // A body that is not the form it says it is (a broken multipart): refused, not a 5xx.
          if (error instanceof ApiError) throw error
          throw new ApiError('VALIDATION_ERROR', 'This form could not be read. Reload the page and try again.')
        }
      }
      c.set('form', formStrings(body))
    }
    await next()
  })

  app.get('/sign-in', async (c) => {
    if (await loadSession(deps, getCookie(c, cookieName(deps)))) return c.redirect(safeNext(c.req.query('next')), 303)
    return c.html(<SignInPage next={safeNext(c.req.query('next'))} />, 200, PAGE_HEADERS)
  })
  app.post('/sign-in', async (c) => {
    const form = c.get('form')
    const next = safeNext(form.next)
    const credential = form.credential ?? ''
    if (!credential.trim()) return c.html(<SignInPage next={next} error="Enter an API key or the admin token." />, 400, PAGE_HEADERS)
    const result = await signIn(deps, credential, clientAddress(c))
    if (!result.ok) {
      if (result.reason === 'throttled') {
        const message = `Too many wrong attempts from your address. Try again in ${result.retryAfterSeconds} seconds.`
        return c.html(<SignInPage next={next} error={message} />, 429, { ...PAGE_HEADERS, 'retry-after': String(result.retryAfterSeconds) })
      }
      const message = result.reason === 'read-key' ? 'This API key may only read (scope read): sign in with a full key.' : 'That is not a valid API key or admin token.'
      return c.html(<SignInPage next={next} error={message} />, 401, PAGE_HEADERS)
    }
    await endSessionOf(deps, getCookie(c, cookieName(deps)))
    setCookie(c, cookieName(deps), result.cookieValue, { httpOnly: true, sameSite: 'Lax', secure: secure(deps), path: '/' })
    c.get('log').info('console sign-in', { operator: result.session.orgId === null, orgId: result.session.orgId, keyId: result.session.keyId })
    return c.redirect(next, 303)
  })

  // Everything else needs a live session; a form also needs this session's CSRF token.
  app.use('*', async (c, next) => {
    const session = await loadSession(deps, getCookie(c, cookieName(deps)))
    if (!session) {
      deleteCookie(c, cookieName(deps), { path: '/', secure: secure(deps) })
      const back = c.req.method === 'GET' ? c.req.path + (new URL(c.req.url).search || '') : '/console'
      return c.redirect(`/console/sign-in?next=${encodeURIComponent(safeNext(back))}`, 303)
    }
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD' && !csrfMatches(session, c.get('form')?._csrf)) {
      throw new HTTPException(403, { message: 'csrf-token' })
    }
    c.set('session', session)
    c.set('viewer', viewerOf(session))
    // As in the JSON API: PostgreSQL's text cannot hold U+0000, so a field with it is refused
    // on every database alike (after the CSRF check: a forged post is refused as forged).
    if (Object.values(c.get('form') ?? {}).some((value) => value.includes('\u0000'))) {
      throw new ApiError('VALIDATION_ERROR', 'A field holds the NUL character (U+0000), which is not allowed: nothing was changed.')
    }
    // The same for the address: `%00` in the path matches no page or id (a key's or a delivery's
    // too: 404), in the query it is a bad filter or cursor (400).
    const nul = nulInUrl(c.req.url)
    if (nul === 'path') throw new ApiError('NOT_FOUND', 'There is nothing at this address.')
    if (nul === 'query') throw new ApiError('VALIDATION_ERROR', 'The address holds the NUL character (U+0000) in a filter, which is not allowed.')
    await next()
  })

  app.post('/sign-out', async (c) => {
    await signOut(deps, c.get('session'))
    deleteCookie(c, cookieName(deps), { path: '/', secure: secure(deps) })
    return c.redirect('/console/sign-in', 303)
  })

  app.get('/', (c) => {
    const session = c.get('session')
    return c.redirect(session.orgId ? orgPath(session.orgId) : '/console/orgs', 303)
  })

  // An org's pages: its own session's org, or any for an operator; another org's is 404 as a missing one.
  const orgAccess = async (c: ConsoleContext, next: () => Promise<void>) => {
    const orgId = c.req.param('orgId') ?? ''
    // U+0000 matches no id, and PostgreSQL's text could not even be asked for it.
    if (orgId.includes('\u0000') || !maySee(c.get('session'), orgId)) throw new ApiError('NOT_FOUND', 'Org was not found.')
    c.set('org', await getOrg(deps, orgId))
    await next()
  }
  app.use('/orgs/:orgId/*', orgAccess)
  app.use('/orgs/:orgId', orgAccess)

  for (const add of register) add(app, deps)

  app.notFound((c) => c.html(<ProblemPage title="Page not found" message="There is nothing at this address." signedIn />, 404, PAGE_HEADERS))
  app.onError((error, c) => {
    const requestId = c.get('requestId')
    if (error instanceof HTTPException && error.status === 403) {
      c.get('log')?.warn('console form refused', { reason: error.message === 'csrf-token' ? 'csrf token' : 'cross-site' })
      return c.html(
        <ProblemPage
          title="This form was refused"
          message="It did not come from this console's own page (it was sent from another site, or the page was open from an earlier session). Nothing was changed: reload the page and try again."
          requestId={requestId}
          signedIn
        />,
        403,
        PAGE_HEADERS,
      )
    }
    if (error instanceof ApiError && error.status < 500) {
      const title = error.status === 404 ? 'Not found' : error.status === 409 ? 'Not possible now' : 'That did not work'
      return c.html(<ProblemPage title={title} message={error.message} requestId={requestId} signedIn />, error.status as 400, PAGE_HEADERS)
    }
    c.get('log')?.error('console error', { error: `${error.name}: ${error.message}` })
    const message = error instanceof ApiError && error.status >= 502 ? error.message : 'Something went wrong on our side. Please try again shortly.'
    return c.html(<ProblemPage title="Please try again shortly" message={message} requestId={requestId} signedIn />, (error instanceof ApiError ? error.status : 500) as 500, PAGE_HEADERS)
  })
  return app
}
