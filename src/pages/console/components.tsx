/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import type { Child } from 'hono/jsx'

/** The console's building blocks, shared by its pages. */

const MARKETPLACES: Record<string, string> = { azure: 'Azure', aws: 'AWS', gcp: 'Google Cloud' }
export const marketplaceName = (partner: string) => MARKETPLACES[partner] ?? partner

/** An ISO time as people read it, in UTC; `—` for none. */
export const time = (iso: string | null | undefined) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC') : '—')

/** A status or marketplace badge (its class colours it: ACTIVE, PENDING, FAILED, azure, …). */
export const Badge = (props: { value: string; label?: string }) => <span class={`badge ${props.value.replace(/[^A-Za-z0-9_-]/g, '')}`}>{props.label ?? props.value}</span>

export const MarketplaceBadge = (props: { partner: string }) => <Badge value={props.partner} label={marketplaceName(props.partner)} />

/** A notice at the top of a page: ok (done), bad (refused), warn, or plain. */
export const Notice = (props: { kind?: 'ok' | 'bad' | 'warn'; children: Child }) => (
  <div class={`note${props.kind ? ` ${props.kind}` : ''}`} role={props.kind === 'bad' ? 'alert' : 'status'}>
    {props.children}
  </div>
)

/**
 * A read-only value with a copy button (the button appears with the script; without it the field
 * can be selected and copied by hand). `id` must be unique on the page.
 */
export function CopyField(props: { id: string; label: string; value: string }) {
  return (
    <div>
      <label class="field" for={props.id}>
        {props.label}
      </label>
      <div class="copy">
        <input type="text" id={props.id} value={props.value} readonly />
        <button type="button" class="secondary" data-copy={props.id} hidden>
          Copy
        </button>
      </div>
    </div>
  )
}

/**
 * A secret shown this once (a new API key, a webhook secret): what it is and that it will not be
 * shown again. `kept`: how the broker keeps it, when not as a hash (a webhook secret is encrypted).
 */
export function SecretOnce(props: { id: string; title: string; label: string; value: string; kept?: string; children?: Child }) {
  return (
    <section class="secret" aria-labelledby={`${props.id}-title`}>
      <h2 id={`${props.id}-title`}>{props.title}</h2>
      <p class="small">Copy it now: it is shown only this once, and {props.kept ?? 'only a hash of it is kept'}.</p>
      <CopyField id={props.id} label={props.label} value={props.value} />
      {props.children ?? null}
    </section>
  )
}

/** What a page shows when it has nothing yet: what it is for and what to do next. */
export const EmptyState = (props: { title: string; children: Child }) => (
  <div class="empty-state">
    <h2>{props.title}</h2>
    {props.children}
  </div>
)

/** "Next page" for a cursor-paged list: `href` is the same page with the cursor, or null at the end. */
export const Pager = (props: { next: string | null; first?: string | null }) =>
  props.next || props.first ? (
    <nav class="pager" aria-label="Pages">
      {props.first ? (
        <a class="button secondary small" href={props.first}>
          First page
        </a>
      ) : null}
      {props.next ? (
        <a class="button secondary small" href={props.next}>
          Next page
        </a>
      ) : null}
    </nav>
  ) : null

/** A page's heading, with the place it is in above it and actions beside it. */
export const PageHead = (props: { title: string; crumbs?: Child; children?: Child }) => (
  <div class="page-head">
    <div>
      {props.crumbs ? <p class="crumbs">{props.crumbs}</p> : null}
      <h1>{props.title}</h1>
    </div>
    {props.children ? <div class="buttons">{props.children}</div> : null}
  </div>
)

/** A query string from the values that are set (for filter links and pagers). */
export function query(values: Record<string, string | number | null | undefined>): string {
  const params = new URLSearchParams()
  for (const [name, value] of Object.entries(values)) if (value !== undefined && value !== null && value !== '') params.set(name, String(value))
  const text = params.toString()
  return text ? `?${text}` : ''
}

/**
 * A wide table's box: it keeps its columns and scrolls sideways inside its own region on a narrow
 * screen (the page never does), which the keyboard can reach (focusable, named by `label`).
 */
export const TableScroll = (props: { label: string; children: Child }) => (
  <div class="table-scroll" tabindex={0} role="region" aria-label={props.label}>
    {props.children}
  </div>
)
