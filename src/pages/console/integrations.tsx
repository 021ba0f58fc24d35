/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import { PARTNERS, type Partner } from '../../../providers/types'
import type { Integration, IntegrationCheck, Org } from '../../schemas'
import { Badge, CopyField, EmptyState, Notice, PageHead, SecretOnce, marketplaceName, time } from './components'
import { INTEGRATION_FIELDS, type IntegrationField, settingLabel, settingsOf } from './integration-forms'
import { CsrfField, type Viewer, orgPath } from './layout'

/** The Integrations page (contract §14, §3, §13): one card per marketplace, and each one's edit form. */

type NoticeText = { kind: 'ok' | 'bad' | 'warn'; text: string }

/** What a redirect's `?notice=` says on this page. */
export function integrationNotice(code: string | undefined): NoticeText | null {
  const saved = /^saved-(azure|aws|gcp)$/.exec(code ?? '')
  if (saved) return { kind: 'ok', text: `${marketplaceName(saved[1]!)} integration saved.` }
  return null
}

/** Where each marketplace's credentials come from, and where its two URLs go. */
const GUIDE: Record<Partner, { credentials: string; urls: string }> = {
  azure: {
    credentials:
      'In Partner Center, open your SaaS offer → Technical configuration: it names the Microsoft Entra app (tenant ID and application ID). Create a client secret for that app in the Entra admin center → App registrations → Certificates & secrets.',
    urls: 'Paste the signup URL as the Landing page URL and the notification URL as the Connection webhook, in the same Technical configuration.',
  },
  aws: {
    credentials:
      'In your AWS seller account, an IAM user’s access key (IAM → Users → Security credentials) or a role to assume, allowed to call the AWS Marketplace Metering and Entitlement APIs.',
    urls: 'Give the signup URL as the product’s Fulfillment URL (AWS Marketplace Management Portal). Subscribe the notification URL to your SNS topics (HTTPS), or use it as an EventBridge API destination with the notification secret as its bearer.',
  },
  gcp: {
    credentials:
      'In Producer Portal, your provider id and the signup JWT’s audience. In the Google Cloud console, a JSON key of a service account with the Commerce Partner Procurement roles (IAM & Admin → Service accounts → Keys).',
    urls: 'Give the signup URL as the product’s sign-up URL in Producer Portal, and the notification URL as the endpoint of a Pub/Sub push subscription to your marketplace topic.',
  },
}

export interface IntegrationsView {
  org: Org
  viewer: Viewer
  integrations: Integration[]
  notice?: NoticeText | null
  /** The answer of a Check credentials just made. */
  checked?: { partner: Partner; result: IntegrationCheck }
  /** An AWS notification secret to show this once (the integration just created, or rotated). */
  notificationSecret?: { value: string; rotated: boolean }
}

function SettingValue(props: { value: unknown }) {
  const { value } = props
  if (value === null || value === undefined) return <span class="muted">—</span>
  if (typeof value === 'boolean') return <>{value ? 'yes' : 'no'}</>
  if (Array.isArray(value)) {
    return value.length ? <ul class="plain">{value.map((item) => <li class="mono">{typeof item === 'string' ? item : JSON.stringify(item)}</li>)}</ul> : <span class="muted">none</span>
  }
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
    return entries.length ? (
      <ul class="plain">
        {entries.map(([key, inner]) => (
          <li class="mono">{`${key} = ${typeof inner === 'string' ? inner : JSON.stringify(inner)}`}</li>
        ))}
      </ul>
    ) : (
      <span class="muted">none</span>
    )
  }
  return <span class="mono">{String(value)}</span>
}

function Checks(props: { result: IntegrationCheck; partner: Partner }) {
  const { result, partner } = props
  return (
    <section class={`checks ${result.ok ? 'ok' : 'bad'}`} aria-labelledby={`${partner}-checks-title`}>
      <h3 id={`${partner}-checks-title`}>{result.ok ? 'Credentials work' : 'Credentials check failed'}</h3>
      <ul class="health">
        {result.checks.map((check) => (
          <li>
            <span>
              <code>{check.name}</code> <span>{check.message}</span>
            </span>
            <Badge value={check.ok ? 'ok' : 'bad'} label={check.ok ? 'passed' : 'failed'} />
          </li>
        ))}
      </ul>
    </section>
  )
}

function IntegrationCard(props: { view: IntegrationsView; partner: Partner }) {
  const { view, partner } = props
  const integration = view.integrations.find((item) => item.partner === partner)
  const base = `${orgPath(view.org.id, 'integrations')}/${partner}`
  const name = marketplaceName(partner)
  return (
    <section class={`card integration ${partner}`} aria-labelledby={`${partner}-title`}>
      <div class="card-head">
        <h2 id={`${partner}-title`}>{name}</h2>
        <Badge value={integration ? 'ok' : 'unset'} label={integration ? 'Configured' : 'Not configured'} />
      </div>
      {integration ? (
        <>
          <dl class="kv">
            <dt>Partner ID</dt>
            <dd class="mono">{integration.partnerId}</dd>
            {settingsOf(integration).map(([key, value]) => (
              <>
                <dt>{settingLabel(partner, key)}</dt>
                <dd>
                  <SettingValue value={value} />
                </dd>
              </>
            ))}
            <dt>Created</dt>
            <dd>{time(integration.createdAt)}</dd>
            <dt>Updated</dt>
            <dd>{time(integration.updatedAt)}</dd>
          </dl>
          <CopyField id={`${partner}-signup-url`} label="Signup URL" value={integration.signupUrl} />
          <CopyField id={`${partner}-notification-url`} label="Notification URL" value={integration.notificationUrl} />
          <p class="hint">{GUIDE[partner].urls}</p>
          {view.checked?.partner === partner ? <Checks partner={partner} result={view.checked.result} /> : null}
          <div class="buttons">
            <form method="post" action={`${base}/check`} class="inline">
              <CsrfField viewer={view.viewer} />
              <button type="submit">
                Check credentials<span class="sr-only"> of {name}</span>
              </button>
            </form>
            <a class="button secondary" href={`${base}/edit`}>
              Edit<span class="sr-only"> the {name} integration</span>
            </a>
            {partner === 'aws' ? (
              <form
                method="post"
                action={`${base}/notification-secret`}
                class="inline"
                data-confirm="Issue a new notification secret? The current one is refused from now on: update your EventBridge connection right away."
              >
                <CsrfField viewer={view.viewer} />
                <button type="submit" class="secondary">
                  Rotate notification secret
                </button>
              </form>
            ) : null}
          </div>
        </>
      ) : (
        <>
          <p class="small">{GUIDE[partner].credentials}</p>
          <p>
            <a class="button" href={`${base}/edit`}>
              Set up {name}
            </a>
          </p>
        </>
      )}
    </section>
  )
}

function NotificationSecret(props: { secret: { value: string; rotated: boolean } }) {
  return (
    <SecretOnce
      id="notification-secret"
      title={props.secret.rotated ? 'Your new AWS notification secret' : 'Your AWS notification secret'}
      label="Notification secret (mbn_…)"
      value={props.secret.value}
    >
      <p class="small">
        For an EventBridge API destination: a connection with API key authorization, header <code>Authorization</code>, value <code>Bearer</code> and this secret.
        {props.secret.rotated ? ' The previous secret is refused from now on.' : ''}
      </p>
    </SecretOnce>
  )
}

export function IntegrationsPage(props: { view: IntegrationsView }) {
  const { view } = props
  return (
    <>
      <PageHead title="Integrations" crumbs={view.org.name} />
      {view.notice ? <Notice kind={view.notice.kind}>{view.notice.text}</Notice> : null}
      {view.notificationSecret ? <NotificationSecret secret={view.notificationSecret} /> : null}
      {view.checked ? (
        <Notice kind={view.checked.result.ok ? 'ok' : 'bad'}>
          {view.checked.result.ok
            ? `${marketplaceName(view.checked.partner)}: every credentials check passed.`
            : `${marketplaceName(view.checked.partner)}: a credentials check failed; see below why.`}
        </Notice>
      ) : null}
      {view.integrations.length === 0 ? (
        <div class="card">
          <EmptyState title="No marketplace connected yet">
            <p>
              Pick the marketplace you sell on below and enter its credentials. The broker then gives you two URLs to paste into that marketplace: the signup URL,
              where buyers land after a purchase, and the notification URL, where the marketplace reports changes.
            </p>
          </EmptyState>
        </div>
      ) : null}
      {PARTNERS.map((partner) => (
        <IntegrationCard view={view} partner={partner} />
      ))}
    </>
  )
}

function Field(props: { partner: Partner; field: IntegrationField; value: string; existing: boolean }) {
  const { field, value, existing } = props
  const id = `${props.partner}-${field.name}`
  const secret = field.kind === 'secret' || field.kind === 'secret-json'
  const hint = secret && existing ? `${field.hint} Leave it blank to keep the stored one.` : field.hint
  const required = field.required && !(secret && existing)
  if (field.kind === 'checkbox') {
    return (
      <div class="check">
        <input type="checkbox" id={id} name={field.name} value="on" checked={value !== ''} aria-describedby={`${id}-hint`} />
        <label for={id}>{field.label}</label>
        <p class="hint" id={`${id}-hint`}>
          {hint}
        </p>
      </div>
    )
  }
  const common = { id, name: field.name, 'aria-describedby': `${id}-hint`, spellcheck: false, autocomplete: 'off' }
  return (
    <div>
      <label class="field" for={id}>
        {field.label}
        {required ? '' : <span class="muted"> (optional)</span>}
      </label>
      <p class="hint" id={`${id}-hint`}>
        {hint}
      </p>
      {field.kind === 'secret' ? (
        <input type="password" {...common} placeholder={existing ? '•••••••• (stored)' : undefined} />
      ) : field.kind === 'secret-json' ? (
        <textarea {...common} rows={6} placeholder={existing ? 'Stored. Paste a new key file to replace it.' : '{ "type": "service_account", … }'}></textarea>
      ) : field.kind === 'pairs' || field.kind === 'lines' ? (
        <textarea {...common} rows={3}>
          {value}
        </textarea>
      ) : (
        <input type="text" {...common} value={value} placeholder={field.placeholder} />
      )}
    </div>
  )
}

export interface IntegrationEditView {
  org: Org
  viewer: Viewer
  partner: Partner
  existing: Integration | undefined
  values: Record<string, string>
  error?: string
}

export function IntegrationEditPage(props: { view: IntegrationEditView }) {
  const { org, viewer, partner, existing, values, error } = props.view
  const name = marketplaceName(partner)
  const base = orgPath(org.id, 'integrations')
  return (
    <>
      <PageHead
        title={existing ? `Edit the ${name} integration` : `Set up ${name}`}
        crumbs={
          <>
            <a href={base}>Integrations</a> / {name}
          </>
        }
      />
      <div class="card">
        <p class="small">{GUIDE[partner].credentials}</p>
        {existing ? <p class="small muted">Secret fields are never shown. Leave them blank to keep what is stored; type a new value to replace it.</p> : null}
        {error ? (
          <div class="note bad" role="alert" id="integration-error">
            {error}
          </div>
        ) : null}
        <form method="post" action={`${base}/${partner}/edit`} class="stack" aria-describedby={error ? 'integration-error' : undefined}>
          <CsrfField viewer={viewer} />
          {INTEGRATION_FIELDS[partner].map((field) => (
            <Field partner={partner} field={field} value={values[field.name] ?? ''} existing={Boolean(existing)} />
          ))}
          <div class="buttons">
            <button type="submit">Save</button>
            <a class="button secondary" href={base}>
              Cancel
            </a>
          </div>
        </form>
      </div>
    </>
  )
}
