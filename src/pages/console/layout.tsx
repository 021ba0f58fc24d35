/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import type { Child } from 'hono/jsx'

/** Where the console's stylesheet and script are served (one each; versioned by their content's hash). */
export const CONSOLE_ASSETS = '/console/assets'

/** The org pages of the navigation bar, in order: each key is the page's path under /console/orgs/{orgId}. */
export const ORG_PAGES = [
  { key: '', label: 'Overview' },
  { key: 'entitlements', label: 'Entitlements' },
  { key: 'webhooks', label: 'Webhooks' },
  { key: 'integrations', label: 'Integrations' },
  { key: 'api-keys', label: 'API keys' },
  { key: 'audit-log', label: 'Audit log' },
  { key: 'signup-form', label: 'Signup form' },
] as const
export type OrgPage = (typeof ORG_PAGES)[number]['key']

/** Who is signed in, as the pages need it. */
export interface Viewer {
  /** An operator (admin token): sees every org and the org list. */
  operator: boolean
  /** The API key's name for an ISV user. */
  keyName: string | null
  /** This session's CSRF token, for every form that changes something. */
  csrfToken: string
}

export const orgPath = (orgId: string, page = '') => `/console/orgs/${encodeURIComponent(orgId)}${page ? `/${page}` : ''}`

/** The hidden field every state-changing form carries (checked against the session's token). */
export const CsrfField = (props: { viewer: Viewer }) => <input type="hidden" name="_csrf" value={props.viewer.csrfToken} />

function Document(props: { title: string; children: Child }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="robots" content="noindex" />
        <meta name="referrer" content="same-origin" />
        <title>{`${props.title} · marketbridge console`}</title>
        {/* No favicon: without this line every page asks for /favicon.ico, a 404. */}
        <link rel="icon" href="data:," />
        <link rel="stylesheet" href={`${CONSOLE_ASSETS}/console.css`} />
        <script src={`${CONSOLE_ASSETS}/console.js`} defer></script>
      </head>
      <body>{props.children}</body>
    </html>
  )
}

/** A page outside any org (sign-in, errors) : the top bar without navigation. */
export function BarePage(props: { title: string; children: Child }) {
  return (
    <Document title={props.title}>
      <header class="top">
        <div class="bar">
          <a class="logo" href="/console">
            marketbridge <span>console</span>
          </a>
        </div>
      </header>
      <main id="main" tabindex={-1}>{props.children}</main>
    </Document>
  )
}

/**
 * A signed-in page: the top bar (the org list for an operator, who is signed in, sign-out), the
 * org's navigation bar when the page belongs to an org, then the page.
 */
export function ConsolePage(props: { title: string; viewer: Viewer; org?: { id: string; name: string }; current?: OrgPage | 'orgs'; children: Child }) {
  const { viewer, org } = props
  return (
    <Document title={org ? `${props.title} · ${org.name}` : props.title}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <div class="bar">
          <a class="logo" href="/console">
            marketbridge <span>console</span>
          </a>
          <nav aria-label="Console">
            {viewer.operator ? (
              <a href="/console/orgs" aria-current={props.current === 'orgs' ? 'page' : undefined}>
                Orgs
              </a>
            ) : null}
            {org ? <a href={orgPath(org.id)}>{org.name}</a> : null}
            <a href="/api/docs">API docs</a>
          </nav>
          <div class="who">
            <span>{viewer.operator ? 'Operator' : `Key: ${viewer.keyName ?? ''}`}</span>
            <form method="post" action="/console/sign-out">
              <CsrfField viewer={viewer} />
              <button type="submit">Sign out</button>
            </form>
          </div>
        </div>
      </header>
      {org ? (
        <div class="orgbar">
          <nav aria-label={`${org.name} pages`}>
            {ORG_PAGES.map((page) => (
              <a href={orgPath(org.id, page.key)} aria-current={props.current === page.key ? 'page' : undefined}>
                {page.label}
              </a>
            ))}
          </nav>
        </div>
      ) : null}
      <main id="main" tabindex={-1}>{props.children}</main>
    </Document>
  )
}
