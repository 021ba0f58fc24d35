/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import { DELIVERY_STATUSES, type WebhookDelivery } from '../../domain/webhooks'
import type { Org } from '../../schemas'
import { Badge, EmptyState, Notice, PageHead, Pager, SecretOnce, query, time } from './components'
import { CsrfField, type Viewer, orgPath } from './layout'

/** The Webhooks page (contract §14, §8): the URL, its signing secret, a test ping, the deliveries. */

export type DeliveryFilter = (typeof DELIVERY_STATUSES)[number]

/** What a redirect's `?notice=` says on this page. */
export const WEBHOOK_NOTICES: Record<string, { kind: 'ok' | 'bad' | 'warn'; text: string }> = {
  'url-saved': { kind: 'ok', text: 'Webhook URL saved. New events are sent there from now on.' },
  'url-removed': { kind: 'ok', text: 'Webhook URL removed: no webhooks are sent until you set one again.' },
  'url-unchanged': { kind: 'ok', text: 'Nothing changed: that is the webhook URL already set.' },
  'ping-queued': { kind: 'ok', text: 'Test ping queued and sent right away: it is the newest delivery below.' },
  'retried-ok': { kind: 'ok', text: 'The delivery was sent again and your endpoint accepted it.' },
  'retried-failed': { kind: 'warn', text: 'The delivery was sent again and failed again: its last status code and error are below.' },
}

/** A lastError longer than this is shown folded (it can be up to 4 KiB of the receiver's answer). */
const LONG_ERROR = 100

export interface WebhooksView {
  org: Org
  viewer: Viewer
  deliveries: { items: WebhookDelivery[]; nextCursor: string | null }
  status: DeliveryFilter | null
  cursor: string | null
  notice?: { kind: 'ok' | 'bad' | 'warn'; text: string } | null
  /** The URL form as typed, with why it was refused. */
  urlForm?: { value: string; error: string }
  /** A signing secret to show this once: after a rotation, or the first one of a first URL. */
  secret?: { value: string; first: boolean }
}

function UrlForm(props: { view: WebhooksView }) {
  const { org, viewer, urlForm } = props.view
  const action = `${orgPath(org.id, 'webhooks')}/url`
  return (
    <form method="post" action={action} class="stack">
      <CsrfField viewer={viewer} />
      <label class="field" for="webhook-url">
        Webhook URL
      </label>
      <p class="hint" id="webhook-url-hint">
        An https: address of your app that answers 2xx (http: only for localhost and 127.0.0.1, while you test).
        {org.webhookUrl ? ' Leave it empty and save to stop webhooks.' : ''}
      </p>
      {urlForm ? (
        <p class="field-error" id="webhook-url-error" role="alert">
          {urlForm.error}
        </p>
      ) : null}
      <input
        type="text"
        inputmode="url"
        autocomplete="url"
        spellcheck={false}
        id="webhook-url"
        name="webhookUrl"
        placeholder="https://app.example.com/hooks/marketbridge"
        value={urlForm ? urlForm.value : (org.webhookUrl ?? '')}
        aria-describedby={urlForm ? 'webhook-url-hint webhook-url-error' : 'webhook-url-hint'}
        aria-invalid={urlForm ? 'true' : undefined}
      />
      <p>
        <button type="submit">Save webhook URL</button>
      </p>
    </form>
  )
}

function Endpoint(props: { view: WebhooksView }) {
  const { org, viewer } = props.view
  const base = orgPath(org.id, 'webhooks')
  if (!org.webhookUrl) {
    return (
      <section class="card">
        <EmptyState title="No webhook URL yet">
          <p>
            A webhook is a POST your app receives the moment something happens: an entitlement is created, activated, changed, suspended or cancelled, a buyer
            submits the signup form, usage is reported. Each one is JSON, signed per Standard Webhooks, and retried for 3 days until your endpoint answers 2xx.
          </p>
          <p>Enter the URL of an endpoint of your app below. Its signing secret (whsec_…) is shown once when you save it.</p>
        </EmptyState>
        <UrlForm view={props.view} />
      </section>
    )
  }
  return (
    <section class="card" aria-labelledby="endpoint-title">
      <h2 id="endpoint-title">Endpoint</h2>
      <UrlForm view={props.view} />
      <h3>Signing secret</h3>
      <p class="small muted">
        Every webhook carries webhook-id, webhook-timestamp and webhook-signature headers (Standard Webhooks); verify them with your whsec_ secret. A new secret is shown
        once; the old one keeps signing beside it for 24 hours, so your app can switch over.
      </p>
      <div class="buttons">
        <form method="post" action={`${base}/secret`} class="inline" data-confirm="Issue a new signing secret? The current one keeps signing beside it for 24 hours.">
          <CsrfField viewer={viewer} />
          <button type="submit" class="secondary">
            Rotate signing secret
          </button>
        </form>
        <form method="post" action={`${base}/test`} class="inline">
          <CsrfField viewer={viewer} />
          <button type="submit" class="secondary">
            Send a test ping
          </button>
        </form>
      </div>
    </section>
  )
}

function LastError(props: { text: string | null }) {
  if (props.text === null) return <span class="muted">—</span>
  if (props.text.length <= LONG_ERROR) return <span class="mono small">{props.text}</span>
  return (
    <details>
      <summary>
        <span class="mono small">{`${props.text.slice(0, LONG_ERROR)}…`}</span>
      </summary>
      <pre>{props.text}</pre>
    </details>
  )
}

function Deliveries(props: { view: WebhooksView }) {
  const { org, viewer, deliveries, status, cursor } = props.view
  const base = orgPath(org.id, 'webhooks')
  const back = { status, cursor }
  return (
    <section class="card" aria-labelledby="deliveries-title">
      <h2 id="deliveries-title">Deliveries</h2>
      <form method="get" action={base} class="filters narrow">
        <div>
          <label class="field" for="delivery-status">
            Status
          </label>
          <select id="delivery-status" name="status">
            <option value="" selected={status === null}>
              All
            </option>
            {DELIVERY_STATUSES.map((value) => (
              <option value={value} selected={status === value}>
                {value}
              </option>
            ))}
          </select>
        </div>
        <button type="submit" class="secondary">
          Filter
        </button>
      </form>
      {deliveries.items.length === 0 ? (
        status || cursor ? (
          <p class="empty">
            {status ? `No ${status} deliveries${cursor ? ' on this page' : ''}.` : 'No more deliveries.'} <a href={base}>Show every delivery</a>
          </p>
        ) : (
          <EmptyState title="No deliveries yet">
            <p>
              {org.webhookUrl
                ? 'Each webhook sent to your endpoint appears here with its status and attempts. Send a test ping to see one now.'
                : 'Each webhook sent to your endpoint will appear here. Set a webhook URL above first.'}
            </p>
          </EmptyState>
        )
      ) : (
        <table class="deliveries">
          <caption class="sr-only">Webhook deliveries, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Delivery</th>
              <th scope="col">Status</th>
              <th scope="col">Attempts</th>
              <th scope="col">Last status code</th>
              <th scope="col">Last error</th>
              <th scope="col">Next attempt</th>
              <th scope="col">Created</th>
              <th scope="col">
                <span class="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {deliveries.items.map((delivery) => (
              <tr>
                <td>
                  <b>{delivery.type}</b>
                  <br />
                  <span class="mono small">{delivery.id}</span>
                </td>
                <td>
                  <Badge value={delivery.status} />
                </td>
                <td>{delivery.attempts}</td>
                <td>{delivery.lastStatusCode ?? '—'}</td>
                <td>
                  <LastError text={delivery.lastError} />
                </td>
                <td class="when">{time(delivery.nextAttemptAt)}</td>
                <td class="when">{time(delivery.createdAt)}</td>
                <td>
                  {delivery.status === 'SUCCEEDED' ? null : (
                    <form method="post" action={`${base}/deliveries/${encodeURIComponent(delivery.id)}/retry${query(back)}`} class="inline">
                      <CsrfField viewer={viewer} />
                      <button type="submit" class="small">
                        Retry<span class="sr-only"> {delivery.id}</span>
                      </button>
                    </form>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <Pager next={deliveries.nextCursor ? `${base}${query({ status, cursor: deliveries.nextCursor })}` : null} first={cursor ? `${base}${query({ status })}` : null} />
    </section>
  )
}

export function WebhooksPage(props: { view: WebhooksView }) {
  const { view } = props
  return (
    <>
      <PageHead title="Webhooks" crumbs={view.org.name} />
      {view.notice ? <Notice kind={view.notice.kind}>{view.notice.text}</Notice> : null}
      {view.secret ? (
        <SecretOnce
          id="webhook-secret"
          title={view.secret.first ? 'Your webhook signing secret' : 'Your new webhook signing secret'}
          label="Signing secret (whsec_…)"
          value={view.secret.value}
          kept="the broker keeps it encrypted, never showing it again"
        >
          <p class="small">
            {view.secret.first
              ? 'Every webhook to your URL is signed with it from now on.'
              : 'Webhooks are signed with it from now on; for 24 hours they also carry a signature with the previous secret.'}
          </p>
        </SecretOnce>
      ) : null}
      <Endpoint view={view} />
      <Deliveries view={view} />
    </>
  )
}
