/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import type { Org } from '../../schemas'
import { TableScroll, PageHead, Pager, CopyField, time, EmptyState, Notice, query, SecretOnce } from './components'
import { InputField } from './parts'
import { CsrfField, type Viewer, orgPath } from './layout'

/** The operator's org list and org creation (contract §3, §14). */

export type OrgForm = { name: string; fulfillmentUrl: string; webhookUrl: string }
export type OrgFormErrors = Partial<Record<keyof OrgForm, string>> & { form?: string }

export interface OrgsViewProps {
  viewer: Viewer
  orgs: { items: Org[]; nextCursor: string | null }
  paged: boolean
  /** An org just created: it and its first API key (and webhook secret), shown this once. */
  created?: { org: Org; apiKey: string; webhookSecret?: string }
  values?: OrgForm
  errors?: OrgFormErrors
}

function Created(props: { created: NonNullable<OrgsViewProps['created']> }) {
  const { org, apiKey, webhookSecret } = props.created
  return (
    <>
      <Notice kind="ok">
        Org <b>{org.name}</b> (<code>{org.id}</code>) was created. <a href={orgPath(org.id)}>Open its overview</a>.
      </Notice>
      <SecretOnce id="org-api-key" title="Its first API key" label={`API key “default” of ${org.name} (full scope)`} value={apiKey}>
        <p class="small">Hand it to the org’s team: they sign in to this console with it and call the API with it. More keys can be made on the org’s API keys page.</p>
      </SecretOnce>
      {webhookSecret ? (
        // Not SecretOnce: this secret is kept (encrypted, to sign deliveries), not only its hash.
        <section class="secret" aria-labelledby="org-webhook-secret-title">
          <h2 id="org-webhook-secret-title">Its webhook signing secret</h2>
          <p class="small">Copy it now: it is shown only this once. The broker keeps it encrypted and signs the org’s webhook deliveries with it.</p>
          <CopyField id="org-webhook-secret" label="Webhook signing secret" value={webhookSecret} />
          <p class="small">The org’s webhook receiver checks each delivery’s signature with it (Standard Webhooks).</p>
        </section>
      ) : null}
    </>
  )
}

function OrgList(props: OrgsViewProps) {
  const { items, nextCursor } = props.orgs
  return (
    <div class="card">
      <h2>Orgs</h2>
      {items.length === 0 ? (
        <EmptyState title={props.paged ? 'No more orgs' : 'No orgs yet'}>
          {props.paged ? (
            <p>
              That was the last page. <a href="/console/orgs">Back to the newest</a>.
            </p>
          ) : (
            <p>An org is one ISV selling through the marketplaces. Create the first one with the form on this page: you get its first API key to hand over.</p>
          )}
        </EmptyState>
      ) : (
        <TableScroll label="Orgs">
          <table class="wide orgs">
            <caption class="sr-only">Every org, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Id</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {items.map((org) => (
                <tr>
                  <th scope="row">
                    <a href={orgPath(org.id)}>{org.name}</a>
                  </th>
                  <td>
                    <code>{org.id}</code>
                  </td>
                  <td class="when">{time(org.createdAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      )}
      <Pager next={nextCursor ? `/console/orgs${query({ cursor: nextCursor })}` : null} first={props.paged ? '/console/orgs' : null} />
    </div>
  )
}

function CreateOrgForm(props: OrgsViewProps) {
  const values = props.values ?? { name: '', fulfillmentUrl: '', webhookUrl: '' }
  const errors = props.errors ?? {}
  return (
    <div class="card">
      <h2 id="create-org">Create an org</h2>
      {errors.form ? <Notice kind="bad">{errors.form}</Notice> : null}
      <form method="post" action="/console/orgs" class="stack" aria-labelledby="create-org">
        <CsrfField viewer={props.viewer} />
        <InputField id="org-name" name="name" label="Name" hint="1 to 200 characters." required maxlength={200} value={values.name} error={errors.name} />
        <InputField
          type="url"
          id="org-fulfillment"
          name="fulfillmentUrl"
          label="Fulfillment URL"
          hint="Where buyers are sent after a purchase: an https: address (http: only for localhost)."
          required
          maxlength={2048}
          value={values.fulfillmentUrl}
          error={errors.fulfillmentUrl}
        />
        <InputField
          type="url"
          id="org-webhook"
          name="webhookUrl"
          label="Webhook URL (optional)"
          hint="Where the broker sends the org’s events; its signing secret is shown once."
          maxlength={2048}
          value={values.webhookUrl}
          error={errors.webhookUrl}
        />
        <p>
          <button type="submit">Create org</button>
        </p>
      </form>
    </div>
  )
}

export function OrgsView(props: OrgsViewProps) {
  return (
    <>
      <PageHead title="Orgs" crumbs="Operator" />
      {props.created ? <Created created={props.created} /> : null}
      {props.errors ? (
        <Notice kind="bad">
          No org was created: <a href="#create-org">see what to correct in the form</a>.
        </Notice>
      ) : null}
      <div class="two">
        <OrgList {...props} />
        <CreateOrgForm {...props} />
      </div>
    </>
  )
}
