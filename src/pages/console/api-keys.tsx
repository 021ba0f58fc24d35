/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import type { Child } from 'hono/jsx'
import type { ApiKey } from '../../schemas'
import { TableScroll, PageHead, Badge, time, EmptyState, Notice, SecretOnce } from './components'
import { InputField, SelectField } from './parts'
import { CsrfField, type Viewer, orgPath } from './layout'

/** The API keys page (contract §13, §14): the org's keys, a new key's secret once, create, rotate, revoke. */

export type KeyForm = { name?: string; scope?: string; expiresAt?: string; rateLimitPerMinute?: string }
export type KeyFormErrors = Partial<Record<keyof KeyForm, string>> & { form?: string }

export interface ApiKeysViewProps {
  org: { id: string; name: string }
  viewer: Viewer
  keys: ApiKey[]
  /** The key this session signed in with (null: an operator). */
  sessionKeyId: string | null
  /** RATE_LIMIT_PER_MINUTE: what a key without its own limit gets (0: no limit). */
  defaultLimit: number
  notice?: Child
  /** A key just made (created, or the new key of a rotation): its secret, shown this once. */
  fresh?: { apiKey: ApiKey; key: string; replaced?: ApiKey }
  values?: KeyForm
  errors?: KeyFormErrors
  /** A rotation refused: for which key, why, and the grace period typed. */
  rotateError?: { keyId: string; message: string; value: string }
}

const SCOPES = [
  { value: 'full', label: 'full: everything the API allows the org' },
  { value: 'read', label: 'read: GET requests only' },
] as const

const limitText = (limit: number | null, defaultLimit: number) =>
  limit !== null ? `${limit.toLocaleString('en-US')} / min` : defaultLimit > 0 ? `default (${defaultLimit.toLocaleString('en-US')} / min)` : 'default (no limit)'

function FreshKey(props: { fresh: NonNullable<ApiKeysViewProps['fresh']>; sessionKeyId: string | null }) {
  const { apiKey, key, replaced } = props.fresh
  return (
    <SecretOnce id="new-key" title={replaced ? `New key for “${apiKey.name}”` : `API key “${apiKey.name}” created`} label={`The API key (${apiKey.scope} scope)`} value={key}>
      <p class="small">
        Send it as <code>Authorization: Bearer {apiKey.start}…</code> to <code>/api/v1</code>.
        {apiKey.scope === 'read' ? ' A read key may only call GET routes, and cannot sign in to this console.' : ''}
      </p>
      {replaced ? (
        <p class="small">
          The old key <code>{replaced.start}…</code> keeps working until {time(replaced.expiresAt)}: switch every client to the new one before then.
          {replaced.id === props.sessionKeyId ? ' This session was signed in with the old key, so it ends then too: sign in again with the new key.' : ''}
        </p>
      ) : null}
    </SecretOnce>
  )
}

function KeyActions(props: { apiKey: ApiKey; org: { id: string }; viewer: Viewer; own: boolean; rotateError?: ApiKeysViewProps['rotateError'] }) {
  const { apiKey, org, viewer, own } = props
  const base = `${orgPath(org.id, 'api-keys')}/${encodeURIComponent(apiKey.id)}`
  const error = props.rotateError?.keyId === apiKey.id ? props.rotateError : undefined
  if (apiKey.status === 'REVOKED') return <span class="muted small">—</span>
  const which = `${apiKey.name} (${apiKey.start}…)`
  const question = own
    ? `Revoke “${apiKey.name}”? It is the key this session signed in with: the API refuses it at once and you will be signed out.`
    : `Revoke “${apiKey.name}”? The API refuses it at once; this cannot be undone.`
  return (
    <div class="key-actions">
      {apiKey.status === 'ACTIVE' ? (
        <details open={Boolean(error)}>
          <summary>
            Rotate<span class="sr-only"> {which}</span>
          </summary>
          <form method="post" action={`${base}/rotate`} class="stack">
            <CsrfField viewer={viewer} />
            <InputField
              type="number"
              id={`grace-${apiKey.id}`}
              name="gracePeriodSeconds"
              label="Old key works for (seconds)"
              hint="0 to 604800; 86400 is a day."
              min={0}
              max={604800}
              value={error ? error.value : '86400'}
              error={error?.message}
            />
            <p>
              <button type="submit" class="small">
                Rotate now<span class="sr-only"> {which}</span>
              </button>
            </p>
          </form>
        </details>
      ) : null}
      <form method="post" action={`${base}/revoke`} class="inline" data-confirm={question}>
        <CsrfField viewer={viewer} />
        <button type="submit" class="danger small">
          Revoke<span class="sr-only"> {which}</span>
        </button>
      </form>
    </div>
  )
}

function KeyTable(props: ApiKeysViewProps) {
  return (
    <div class="card">
      <h2>Keys</h2>
      {props.keys.length === 0 ? (
        <EmptyState title="No API keys">
          <p>This org has no API key left. Create one below to call the API or to sign in to this console.</p>
        </EmptyState>
      ) : (
        <TableScroll label="API keys">
          <table class="wide keys">
            <caption class="sr-only">The org’s API keys, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Key</th>
                <th scope="col">Scope</th>
                <th scope="col">Status</th>
                <th scope="col">Rate limit</th>
                <th scope="col">Created</th>
                <th scope="col">Expires</th>
                <th scope="col">Last used</th>
                <th scope="col">Revoked</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {props.keys.map((apiKey) => {
                const own = apiKey.id === props.sessionKeyId
                return (
                  <tr id={`key-${apiKey.id}`}>
                    <th scope="row">
                      {apiKey.name}
                      {own ? (
                        <>
                          {' '}
                          <Badge value="own" label="this session" />
                        </>
                      ) : null}
                      <div class="muted small">
                        <code>{apiKey.id}</code>
                      </div>
                    </th>
                    <td class="when">
                      <code>{apiKey.start}…</code>
                    </td>
                    <td>{apiKey.scope}</td>
                    <td>
                      <Badge value={apiKey.status} />
                    </td>
                    <td>{limitText(apiKey.rateLimitPerMinute, props.defaultLimit)}</td>
                    <td class="when">{time(apiKey.createdAt)}</td>
                    <td class="when">{apiKey.expiresAt ? time(apiKey.expiresAt) : 'never'}</td>
                    <td class="when">{apiKey.lastUsedAt ? time(apiKey.lastUsedAt) : 'never'}</td>
                    <td class="when">{time(apiKey.revokedAt)}</td>
                    <td>
                      <KeyActions apiKey={apiKey} org={props.org} viewer={props.viewer} own={own} rotateError={props.rotateError} />
                    </td>
                  </tr>
                )
              })}
            </tbody>
          </table>
        </TableScroll>
      )}
      <p class="hint">“Last used” may lag up to a minute behind.</p>
    </div>
  )
}

function CreateKeyForm(props: ApiKeysViewProps) {
  const values = props.values ?? {}
  const errors = props.errors ?? {}
  return (
    <div class="card">
      <h2 id="create-key">Create a key</h2>
      {errors.form ? <Notice kind="bad">{errors.form}</Notice> : null}
      <form method="post" action={orgPath(props.org.id, 'api-keys')} class="stack" aria-labelledby="create-key">
        <CsrfField viewer={props.viewer} />
        <InputField id="key-name" name="name" label="Name" hint="What uses it, e.g. ci-deploy (1 to 100 characters)." required maxlength={100} value={values.name} error={errors.name} />
        <SelectField id="key-scope" name="scope" label="Scope" value={values.scope ?? 'full'} options={SCOPES} error={errors.scope} />
        <InputField
          id="key-expires"
          name="expiresAt"
          label="Expires (UTC, optional)"
          hint="A date and time in UTC, e.g. 2027-01-31 18:00; leave it empty for a key that does not expire."
          value={values.expiresAt}
          error={errors.expiresAt}
        />
        <InputField
          type="number"
          id="key-rate"
          name="rateLimitPerMinute"
          label="Rate limit per minute (optional)"
          hint={`1 to 100000 requests a minute; empty: the broker's ${props.defaultLimit > 0 ? `default of ${props.defaultLimit}` : 'default (no limit)'}.`}
          min={1}
          max={100000}
          value={values.rateLimitPerMinute}
          error={errors.rateLimitPerMinute}
        />
        <p>
          <button type="submit">Create key</button>
        </p>
      </form>
    </div>
  )
}

export function ApiKeysView(props: ApiKeysViewProps) {
  return (
    <>
      <PageHead title="API keys" crumbs={props.org.name} />
      {props.notice ?? null}
      {props.errors ? (
        <Notice kind="bad">
          No key was created: <a href="#create-key">see what to correct in the form</a>.
        </Notice>
      ) : null}
      {props.rotateError ? (
        <Notice kind="bad">
          The key was not rotated: {props.rotateError.message} <a href={`#key-${props.rotateError.keyId}`}>Back to its row</a>.
        </Notice>
      ) : null}
      {props.fresh ? <FreshKey fresh={props.fresh} sessionKeyId={props.sessionKeyId} /> : null}
      <KeyTable {...props} />
      <div class="two">
        <CreateKeyForm {...props} />
        <div class="card">
          <h2>About keys</h2>
          <p class="small">
            A <b>full</b> key may do everything the API allows this org, and sign in to this console. A <b>read</b> key may only read (GET): give it to dashboards and
            reports.
          </p>
          <p class="small">
            <b>Rotate</b> makes a new key with the same name, scope and limit; the old one keeps working for the grace period, so clients can switch without
            downtime. <b>Revoke</b> refuses a key at once and ends the console sessions signed in with it.
          </p>
          <p class="small">A key’s secret is shown only when it is made; the broker keeps only its hash.</p>
        </div>
      </div>
    </>
  )
}

/** After revoking the key this session signed in with: what happened, and the way back in. */
export function SignedOutByRevoke(props: { apiKey: ApiKey }) {
  return (
    <>
      <PageHead title="API key revoked" />
      <Notice kind="warn">
        You revoked <b>{props.apiKey.name}</b> (<code>{props.apiKey.start}…</code>), the key this session signed in with. The API refuses it from now on, and this session
        has ended: the next page you open asks you to sign in.
      </Notice>
      <p>
        <a class="button" href="/console/sign-in">
          Sign in with another key
        </a>
      </p>
    </>
  )
}
