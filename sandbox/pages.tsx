/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import type { Child } from 'hono/jsx'
import { marketplaceName, time } from '../src/pages/console/components'
import { LISTINGS, type MarketplaceAction, PARTNERS, PRODUCT_NAME, type Partner, USAGE_DIMENSION } from './marketplaces'

/**
 * The sandbox's pages (hono/jsx, server-rendered): the marketplaces' shop window, the hand-off a
 * marketplace makes, the demo ISV app ("Acme Analytics") and the mailbox. One stylesheet, one
 * small script, nothing fetched from anywhere else.
 */
export interface Entitlement {
  id: string
  partner: Partner
  status: string
  offerType: string
  externalId: string
  productId: string | null
  planId: string | null
  quantity: number | null
  buyer: { accountId: string | null; customerId: string | null; email: string | null; tenantId: string | null; name: string | null }
  term: { start: string | null; end: string | null; unit: string | null; autoRenew: boolean | null }
  createdAt: string
  updatedAt: string
}

export interface EventView {
  id: string
  type: string
  source: string
  data: Record<string, unknown>
  createdAt: string
}

export interface UsageView {
  id: string
  dimension: string
  quantity: number
  timestamp: string
  status: string
  marketplaceStatus: string | null
  error: string | null
}

export interface ReceivedWebhook {
  id: string
  type: string
  verified: boolean
  problem: string | null
  entitlementId: string | null
  receivedAt: string
  /** The event's own time (the payload's createdAt), for ordering. */
  createdAt: string
  body: string
}

export interface MailView {
  from: string
  to: string[]
  cc: string[]
  subject: string
  receivedAt: string
  text: string
  raw: string
}

export interface ShellInfo {
  runtime: 'node' | 'workers'
  brokerUrl: string
  mails: number
  webhooks: number
}


function Head(props: { title: string; refresh?: number; children: Child }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{props.title}</title>
        <link rel="stylesheet" href="/assets/sandbox.css" />
        <script src="/assets/sandbox.js" defer></script>
      </head>
      <body data-refresh={props.refresh ? String(props.refresh) : undefined}>{props.children}</body>
    </html>
  )
}

/** The sandbox's own pages: the marketplaces, the mailbox. */
export function Shell(props: { title: string; info: ShellInfo; current: 'home' | 'mailbox'; refresh?: number; children: Child }) {
  const { info } = props
  return (
    <Head title={`${props.title} · marketbridge sandbox`} refresh={props.refresh}>
      <header class="top">
        <div class="bar">
          <a class="logo" href="/">
            marketbridge <span>sandbox</span>
          </a>
          <nav aria-label="Sandbox">
            <a href="/" aria-current={props.current === 'home' ? 'page' : undefined}>
              Marketplaces
            </a>
            <a href="/acme">Acme app ({info.webhooks} webhooks)</a>
            <a href="/mailbox" aria-current={props.current === 'mailbox' ? 'page' : undefined}>
              Mailbox ({info.mails})
            </a>
            <a href="/console">Console</a>
            <a href={`${info.brokerUrl}/api/docs`}>API docs</a>
          </nav>
          <span class="runtime">broker: {info.runtime === 'workers' ? 'Workers + D1 (wrangler dev)' : 'Node + SQLite'}</span>
        </div>
      </header>
      <main>{props.children}</main>
    </Head>
  )
}

/** The demo ISV's pages: a different product, on the fulfillment URL the org registered. */
export function IsvShell(props: { title: string; info: ShellInfo; refresh?: number; children: Child }) {
  return (
    <Head title={`${props.title} · Acme Analytics (demo ISV)`} refresh={props.refresh}>
      <header class="top isv-top">
        <div class="bar">
          <a class="logo" href="/acme">
            Acme <span>Analytics</span>
          </a>
          <nav aria-label="Acme">
            <a href="/acme">Customers &amp; webhooks</a>
            <a href="/">← Sandbox marketplaces</a>
            <a href="/mailbox">Mailbox ({props.info.mails})</a>
          </nav>
          <span class="runtime">demo ISV app</span>
        </div>
      </header>
      <div class="isv-banner">
        <div>
          This is the <b>seller's own app</b> (the org's fulfillment URL). It knows only what marketbridge tells it: the <code>sugerEntitlementId</code> in the
          redirect, the REST API (with the org's API key) and signed webhooks.
        </div>
      </div>
      <main>{props.children}</main>
    </Head>
  )
}

const STEPS: Array<[string, string]> = [
  ['Buy on a marketplace', 'Azure, AWS or Google Cloud (emulated here)'],
  ['The marketplace sends you to the broker', 'with its token: /public/signup/{partner}/orgId/{orgId}'],
  ['The broker resolves and activates', 'calls the marketplace API, stores one Entitlement'],
  ["The seller's app takes over", 'redirect with sugerEntitlementId, REST API, webhooks'],
]

export function Steps(props: { done: number }) {
  return (
    <ol class="steps" aria-label="How a purchase flows">
      {STEPS.map(([title, detail], i) => (
        <li class={i < props.done ? 'done' : i === props.done ? 'now' : ''}>
          <b>{title}</b>
          <span>{detail}</span>
        </li>
      ))}
    </ol>
  )
}

export function Badge(props: { value: string | null; kind?: string }) {
  if (!props.value) return <span class="muted">—</span>
  return <span class={`badge ${props.kind ?? props.value}`}>{props.value}</span>
}

export function HomePage(props: {
  info: ShellInfo
  orgId: string
  apiKey: string
  fulfillment: 'acme' | 'hosted'
  entitlements: Entitlement[]
  error?: string
}) {
  const { info } = props
  return (
    <Shell title="Buy on three marketplaces" info={info} current="home">
      <h1>Buy {PRODUCT_NAME} on three marketplaces</h1>
      <p class="lead">
        Everything here runs on your machine: emulators of Azure, AWS and Google Cloud Marketplace that speak their real protocols, the marketbridge broker, and
        Acme Analytics, a demo seller. Pick a plan and press Buy; you land on Acme's app with your entitlement.
      </p>
      <Steps done={0} />
      {props.error ? <p class="note bad">{props.error}</p> : null}
      <section class="grid" aria-label="Marketplaces">
        {PARTNERS.map((partner) => {
          const listing = LISTINGS[partner]
          return (
            <article class={`card market ${partner}`} aria-labelledby={`mk-${partner}`}>
              <div class="mk">{listing.marketplace}</div>
              <h2 id={`mk-${partner}`}>{PRODUCT_NAME}</h2>
              <p class="handoff">{listing.handoff}</p>
              <form method="post" action={`/buy/${partner}`}>
                <fieldset style="border:0;padding:0;margin:0">
                  <legend class="small muted">Plan</legend>
                  {listing.plans.map((plan, i) => (
                    <label class="plan">
                      <input type="radio" name="plan" value={plan.id} checked={i === 0} />
                      <span>
                        <b>{plan.name}</b>
                        <span class="price">{plan.price}</span>
                        <br />
                        <span class="small muted">{plan.detail}</span>
                      </span>
                    </label>
                  ))}
                </fieldset>
                <button type="submit">Buy on {marketplaceName(partner)}</button>
              </form>
            </article>
          )
        })}
      </section>

      <div class="two" style="margin-top:16px">
        <section class="card" aria-labelledby="purchases">
          <h2 id="purchases">Purchases in this sandbox</h2>
          {props.entitlements.length === 0 ? (
            <p class="empty">Nothing bought yet.</p>
          ) : (
            <EntitlementTable entitlements={props.entitlements} />
          )}
        </section>
        <section class="card" aria-labelledby="after">
          <h2 id="after">After the purchase, send buyers to…</h2>
          <form method="post" action="/settings/fulfillment" class="actions">
            <label class="plan">
              <input type="radio" name="target" value="acme" checked={props.fulfillment === 'acme'} />
              <span>
                <b>Acme's own app</b>
                <span class="small muted">The org's fulfillmentUrl is Acme's welcome page, which reads the entitlement over the REST API.</span>
              </span>
            </label>
            <label class="plan">
              <input type="radio" name="target" value="hosted" checked={props.fulfillment === 'hosted'} />
              <span>
                <b>The broker's hosted signup form</b>
                <span class="small muted">For sellers without a signup page: the buyer fills in a form, gets a confirmation email (see the Mailbox).</span>
              </span>
            </label>
            <button type="submit" class="secondary">
              Save
            </button>
          </form>
        </section>
      </div>

      <section class="card" aria-labelledby="api">
        <h2 id="api">Try the REST API yourself</h2>
        <p class="small muted">
          The demo org <code>{props.orgId}</code> and its API key exist only in this sandbox (a fresh broker database each start).
        </p>
        <pre>
          {`curl -s ${info.brokerUrl}/api/v1/orgs/${props.orgId}/entitlements \\\n  -H "Authorization: Bearer ${props.apiKey}"`}
        </pre>
        <p class="small">
          <a href={`${info.brokerUrl}/api/docs`}>API reference</a> · <a href={`${info.brokerUrl}/api/openapi.json`}>OpenAPI document</a>
        </p>
        <p class="small">
          Or see it all in the <a href="/console">broker's console</a>, signed in as the demo org with its API key: the purchases, webhook deliveries, integrations,
          keys and audit log.
        </p>
      </section>
    </Shell>
  )
}

/** What a marketplace's page does after the purchase: a form posted to the seller's landing page. */
export function HandoffPage(props: { partner: Partner; url: string; fields: Record<string, string> }) {
  const listing = LISTINGS[props.partner]
  return (
    <Head title={`${listing.marketplace}: setting up your account`}>
      <main>
        <section class={`card market ${props.partner}`} style="max-width:560px;margin:40px auto">
          <div class="mk">{listing.marketplace}</div>
          <h1>Thank you for subscribing to {PRODUCT_NAME}</h1>
          <p class="muted">The marketplace now sends you to the seller to set up your account, posting its token as a form field, exactly as {marketplaceName(props.partner)} does.</p>
          <form method="post" action={props.url} data-autosubmit="">
            {Object.entries(props.fields).map(([name, value]) => (
              <input type="hidden" name={name} value={value} />
            ))}
            <button type="submit">Set up your account</button>
          </form>
        </section>
      </main>
    </Head>
  )
}

export function WelcomePage(props: {
  info: ShellInfo
  orgId: string
  entitlement: Entitlement
  raw: string
  events: EventView[]
  usage: UsageView[]
  webhooks: ReceivedWebhook[]
  actions: MarketplaceAction[]
  sent: Array<{ at: string; what: string; status: number }>
  note: string | null
  noteBad: boolean
  hostedFormUrl: string | null
  refresh?: number
}) {
  const e = props.entitlement
  const path = `/acme/entitlements/${encodeURIComponent(e.id)}`
  const meterable = e.status === 'ACTIVE' || e.status === 'PENDING_CANCEL'
  return (
    <IsvShell title={`Welcome (${e.id})`} info={props.info} refresh={props.refresh}>
      <Steps done={4} />
      {props.note ? <p class={props.noteBad ? 'note bad' : 'note'}>{props.note}</p> : null}
      <div class="hero">
        <div>
          <div class="small muted">
            Purchased on {marketplaceName(e.partner)} · {e.offerType}
          </div>
          <h1>Welcome to {PRODUCT_NAME}</h1>
          <p class="muted" style="margin:0">
            Entitlement <code data-testid="entitlement-id">{e.id}</code> <Badge value={e.status} />
          </p>
        </div>
        {props.hostedFormUrl ? (
          <a class="button secondary" href={props.hostedFormUrl}>
            Try the hosted signup form for this purchase
          </a>
        ) : null}
      </div>
      {e.status === 'PENDING_START' ? (
        <p class="note">
          Waiting for the marketplace: {e.partner === 'gcp' ? 'Google approves the order once the broker approves the entitlement (Pub/Sub).' : 'activation is in progress.'} This page
          refreshes.
        </p>
      ) : null}

      <div class="two" style="margin-top:16px">
        <div>
          <section class="card" aria-labelledby="ent">
            <h2 id="ent">What the broker says</h2>
            <p class="small muted">
              <code>
                GET /api/v1/orgs/{props.orgId}/entitlements/{e.id}
              </code>{' '}
              with the org's API key:
            </p>
            <dl class="kv">
              <dt>Status</dt>
              <dd>
                <Badge value={e.status} />
              </dd>
              <dt>Marketplace</dt>
              <dd>{marketplaceName(e.partner)}</dd>
              <dt>Product</dt>
              <dd class="mono">{e.productId ?? '—'}</dd>
              <dt>Plan</dt>
              <dd>{e.planId ?? '—'}</dd>
              <dt>Quantity</dt>
              <dd>{e.quantity ?? '—'}</dd>
              <dt>Marketplace id</dt>
              <dd class="mono">{e.externalId}</dd>
              <dt>Buyer</dt>
              <dd>{[e.buyer.email, e.buyer.accountId].filter(Boolean).join(' · ') || '—'}</dd>
              <dt>Term</dt>
              <dd>
                {time(e.term.start)} → {time(e.term.end)}
              </dd>
              <dt>Updated</dt>
              <dd>{time(e.updatedAt)}</dd>
            </dl>
            <details style="margin-top:12px">
              <summary>Raw JSON</summary>
              <pre>{props.raw}</pre>
            </details>
          </section>

          <section class="card" aria-labelledby="usage">
            <h2 id="usage">Report usage</h2>
            <form method="post" action={`${path}/usage`}>
              <div class="row">
                <div>
                  <label class="field" for="quantity">
                    API calls ({USAGE_DIMENSION})
                  </label>
                  <input id="quantity" name="quantity" type="number" min="1" step="1" value="100" required />
                </div>
                <div>
                  <label class="field" for="when">
                    Dated
                  </label>
                  <select id="when" name="when">
                    <option value="last-hour">the last hour</option>
                    <option value="now">now</option>
                  </select>
                </div>
                <button type="submit" disabled={!meterable}>
                  Report usage
                </button>
              </div>
            </form>
            <p class="small muted">
              <code>POST …/entitlements/{e.id}/usage</code>. The broker sums each hour and reports it to {marketplaceName(e.partner)} once the hour has closed: usage
              dated in the last hour is reported within a minute, usage dated now when this hour ends.
              {meterable ? '' : ' Usage is accepted only while the entitlement is ACTIVE or PENDING_CANCEL.'}
            </p>
            {props.usage.length === 0 ? (
              <p class="empty">No usage recorded.</p>
            ) : (
              <table>
                <thead>
                  <tr>
                    <th>Hour of</th>
                    <th>Quantity</th>
                    <th>Status</th>
                    <th>Marketplace</th>
                  </tr>
                </thead>
                <tbody>
                  {props.usage.map((u) => (
                    <tr>
                      <td>{time(u.timestamp)}</td>
                      <td>{u.quantity}</td>
                      <td>
                        <Badge value={u.status} />
                      </td>
                      <td>{u.marketplaceStatus ?? u.error ?? '—'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </section>

          <section class="card" aria-labelledby="events">
            <h2 id="events">History</h2>
            <table>
              <thead>
                <tr>
                  <th>When</th>
                  <th>Event</th>
                  <th>Source</th>
                  <th>Detail</th>
                </tr>
              </thead>
              <tbody>
                {props.events.map((ev) => (
                  <tr>
                    <td>{time(ev.createdAt)}</td>
                    <td>
                      <b>{ev.type}</b>
                    </td>
                    <td>{ev.source}</td>
                    <td class="small">{typeof ev.data.action === 'string' ? ev.data.action : ''}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        </div>

        <div>
          <section class="card" aria-labelledby="market">
            <h2 id="market">Act as {marketplaceName(e.partner)}</h2>
            <p class="small muted">The emulator changes the purchase and sends the broker the real notification; the broker verifies it, asks the marketplace, and updates the entitlement.</p>
            {props.actions.length === 0 ? (
              <p class="empty">Nothing the marketplace can do now.</p>
            ) : (
              <div class="actions">
                {props.actions.map((action) => (
                  <form method="post" action={`${path}/marketplace`}>
                    <input type="hidden" name="action" value={action.id} />
                    <button type="submit" class={action.id === 'cancel' || action.id === 'end' || action.id === 'suspend' ? 'danger' : 'secondary'}>
                      {action.label}
                    </button>
                    <span class="small muted">sends {action.sends}</span>
                  </form>
                ))}
              </div>
            )}
            {props.sent.length ? (
              <details style="margin-top:12px">
                <summary>Notifications sent to the broker ({props.sent.length})</summary>
                <table>
                  <tbody>
                    {props.sent.map((s) => (
                      <tr>
                        <td class="small">{time(s.at)}</td>
                        <td class="small">{s.what}</td>
                        <td>
                          <Badge value={`HTTP ${s.status}`} kind={s.status >= 200 && s.status < 300 ? 'ok' : 'bad'} />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </details>
            ) : null}
          </section>

          <section class="card" aria-labelledby="hooks">
            <h2 id="hooks">Webhooks Acme received</h2>
            <Webhooks items={props.webhooks} />
          </section>
        </div>
      </div>
    </IsvShell>
  )
}

/** Entitlements, each linked to its page in the demo ISV app. */
function EntitlementTable(props: { entitlements: Entitlement[]; since?: boolean }) {
  return (
    <table>
      <thead>
        <tr>
          <th>Entitlement</th>
          <th>Marketplace</th>
          <th>Plan / quantity</th>
          <th>Status</th>
          {props.since ? <th>Since</th> : null}
        </tr>
      </thead>
      <tbody>
        {props.entitlements.map((e) => (
          <tr>
            <td>
              <a class="mono" href={`/acme/welcome?sugerEntitlementId=${encodeURIComponent(e.id)}`}>
                {e.id}
              </a>
            </td>
            <td>
              <Badge value={marketplaceName(e.partner)} kind={e.partner} />
            </td>
            <td>{e.planId ?? (e.quantity !== null ? `${e.quantity} units` : '—')}</td>
            <td>
              <Badge value={e.status} />
            </td>
            {props.since ? <td class="small">{time(e.createdAt)}</td> : null}
          </tr>
        ))}
      </tbody>
    </table>
  )
}

export function Webhooks(props: { items: ReceivedWebhook[] }) {
  if (!props.items.length) return <p class="empty">None yet.</p>
  return (
    <table>
      <thead>
        <tr>
          <th>Type, received</th>
          <th>Signature</th>
        </tr>
      </thead>
      <tbody>
        {props.items.map((hook) => (
          <tr>
            <td>
              <details>
                <summary class="mono" style="overflow-wrap:normal">{hook.type}</summary>
                <pre>{hook.body}</pre>
              </details>
              <span class="small muted">{time(hook.receivedAt)}</span>
            </td>
            <td>{hook.verified ? <Badge value="verified ✓" kind="ok" /> : <Badge value={`refused: ${hook.problem}`} kind="bad" />}</td>
          </tr>
        ))}
      </tbody>
    </table>
  )
}

export function AcmePage(props: { info: ShellInfo; entitlements: Entitlement[]; webhooks: ReceivedWebhook[] }) {
  return (
    <IsvShell title="Customers" info={props.info}>
      <h1>Acme's customers</h1>
      <p class="lead">
        Every entitlement of the org (<code>GET /api/v1/orgs/…/entitlements</code>) and every webhook the broker signed for Acme, checked with the
        <code> standardwebhooks</code> library against the org's secret.
      </p>
      <section class="card">
        <h2>Entitlements</h2>
        {props.entitlements.length === 0 ? (
          <p class="empty">
            No customers yet: <a href="/">buy something</a>.
          </p>
        ) : (
          <EntitlementTable entitlements={props.entitlements} since />
        )}
      </section>
      <section class="card">
        <h2>Webhooks received</h2>
        <Webhooks items={props.webhooks} />
      </section>
    </IsvShell>
  )
}

export function MailboxPage(props: { info: ShellInfo; mails: MailView[]; smtp: string }) {
  return (
    <Shell title="Mailbox" info={props.info} current="mailbox">
      <h1>Mailbox</h1>
      <p class="lead">
        An SMTP server inside the sandbox (<code>{props.smtp}</code>) receives every email the broker sends: the hosted signup form's confirmations. Choose
        "the broker's hosted signup form" on the <a href="/">marketplaces page</a>, buy, and fill in the form.
      </p>
      {props.mails.length === 0 ? (
        <p class="empty">No email yet.</p>
      ) : (
        props.mails.map((mail) => (
          <article class="card">
            <h2>{mail.subject || '(no subject)'}</h2>
            <dl class="kv small">
              <dt>From</dt>
              <dd>{mail.from}</dd>
              <dt>To</dt>
              <dd>{mail.to.join(', ')}</dd>
              {mail.cc.length ? (
                <>
                  <dt>Cc</dt>
                  <dd>{mail.cc.join(', ')}</dd>
                </>
              ) : null}
              <dt>Received</dt>
              <dd>{time(mail.receivedAt)}</dd>
            </dl>
            <pre style="background:#f6f7fb;color:var(--ink);margin-top:12px">{mail.text}</pre>
            <details>
              <summary>Raw message</summary>
              <pre>{mail.raw}</pre>
            </details>
          </article>
        ))
      )}
    </Shell>
  )
}

export function ProblemPage(props: { info: ShellInfo; title: string; message: string; status?: number }) {
  return (
    <Shell title={props.title} info={props.info} current="home">
      <h1>{props.title}</h1>
      <p class="note bad">{props.message}</p>
      <p>
        <a href="/">Back to the marketplaces</a>
      </p>
    </Shell>
  )
}
