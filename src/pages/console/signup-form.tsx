/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import type { Child } from 'hono/jsx'
import { OPTIONAL_FIELDS, type Signup, type SignupForm } from '../../domain/signups'
import { TableScroll, PageHead, Pager, Badge, CopyField, time, EmptyState, Notice, query } from './components'
import { InputField, TextAreaField } from './parts'
import { CsrfField, type Viewer, orgPath } from './layout'

/** The signup form page (contract §10, §14): the hosted form's settings, their edit form, and the submissions. */

export type OptionalField = (typeof OPTIONAL_FIELDS)[number]
export interface SignupFormValues {
  companyName: string
  logoUrl: string
  publicNotes: string
  /** One address a line, as typed. */
  ccEmails: string
  fields: OptionalField[]
}
export type SignupFormErrors = Partial<Record<keyof SignupFormValues, string>> & { form?: string }

export interface SignupFormViewProps {
  org: { id: string; name: string; fulfillmentUrl: string }
  viewer: Viewer
  /** The settings as GET …/signup-form answers them; null while the org has none. */
  form: SignupForm | null
  signups: { items: Signup[]; nextCursor: string | null }
  paged: boolean
  values?: SignupFormValues
  errors?: SignupFormErrors
  notice?: Child
}

const FIELD_LABELS: Record<string, string> = { name: 'Name', email: 'Email', company: 'Company', phone: 'Phone', notes: 'Notes' }

/** What the edit form starts with: the saved settings, or for a new form the org's name and every field. */
export function initialValues(form: SignupForm | null, orgName: string): SignupFormValues {
  if (!form) return { companyName: orgName, logoUrl: '', publicNotes: '', ccEmails: '', fields: [...OPTIONAL_FIELDS] }
  return {
    companyName: form.companyName,
    logoUrl: form.logoUrl ?? '',
    publicNotes: form.publicNotes ?? '',
    ccEmails: form.ccEmails.join('\n'),
    fields: OPTIONAL_FIELDS.filter((field) => form.fields.includes(field)),
  }
}

function Settings(props: SignupFormViewProps & { form: SignupForm }) {
  const { form, org, viewer } = props
  const inUse = org.fulfillmentUrl === form.url
  return (
    <div class="card">
      <h2>The form</h2>
      <CopyField id="signup-form-url" label="Form URL" value={form.url} />
      {inUse ? (
        <Notice kind="ok">In use: the org’s fulfillment URL is this form, so buyers who land from a marketplace are sent here.</Notice>
      ) : (
        <div class="note warn" role="status">
          <p>
            Not in use: buyers are sent to the org’s fulfillment URL, <code>{org.fulfillmentUrl}</code>. To send them to this form instead, make it the fulfillment URL.
          </p>
          <form method="post" action={`${orgPath(org.id, 'signup-form')}/use`} class="inline" data-confirm="Send every buyer who lands from a marketplace to this form from now on?">
            <CsrfField viewer={viewer} />
            <button type="submit" class="small">
              Send buyers to this form
            </button>
          </form>
        </div>
      )}
      <dl class="kv">
        <dt>Company name</dt>
        <dd>{form.companyName}</dd>
        <dt>Logo</dt>
        <dd>{form.logoUrl ? <code>{form.logoUrl}</code> : <span class="muted">none</span>}</dd>
        <dt>Public notes</dt>
        <dd class="pre">{form.publicNotes ?? <span class="muted">none</span>}</dd>
        <dt>CC</dt>
        <dd>{form.ccEmails.length ? form.ccEmails.join(', ') : <span class="muted">nobody</span>}</dd>
        <dt>Fields asked</dt>
        <dd>{form.fields.map((field) => FIELD_LABELS[field] ?? field).join(', ')}</dd>
        <dt>Signup id</dt>
        <dd>
          <code>{form.signupId}</code>
        </dd>
        <dt>Created</dt>
        <dd>{time(form.createdAt)}</dd>
        <dt>Updated</dt>
        <dd>{time(form.updatedAt)}</dd>
      </dl>
    </div>
  )
}

function EditForm(props: SignupFormViewProps) {
  const values = props.values ?? initialValues(props.form, props.org.name)
  const errors = props.errors ?? {}
  return (
    <div class="card">
      <h2 id="edit-signup-form">{props.form ? 'Edit the form' : 'Create the form'}</h2>
      {errors.form ? <Notice kind="bad">{errors.form}</Notice> : null}
      <form method="post" action={orgPath(props.org.id, 'signup-form')} class="stack" aria-labelledby="edit-signup-form">
        <CsrfField viewer={props.viewer} />
        <InputField id="sf-company" name="companyName" label="Company name" hint="Shown at the top of the form and in the confirmation email." required maxlength={200} value={values.companyName} error={errors.companyName} />
        <InputField type="url" id="sf-logo" name="logoUrl" label="Logo URL (optional)" hint="An https: address of an image." maxlength={2048} value={values.logoUrl} error={errors.logoUrl} />
        <TextAreaField id="sf-notes" name="publicNotes" label="Public notes (optional)" hint="Shown to buyers above the form, as plain text." maxlength={2000} value={values.publicNotes} error={errors.publicNotes} />
        <TextAreaField
          id="sf-cc"
          name="ccEmails"
          label="CC the confirmation to (optional)"
          hint="Up to 10 email addresses, one a line: they get a copy of every buyer's confirmation."
          rows={3}
          value={values.ccEmails}
          error={errors.ccEmails}
        />
        <fieldset class="checks" aria-describedby="sf-fields-hint">
          <legend>Fields asked</legend>
          <p class="hint" id="sf-fields-hint">
            Name and email are always asked.
          </p>
          {OPTIONAL_FIELDS.map((field) => (
            <label for={`sf-field-${field}`}>
              <input type="checkbox" id={`sf-field-${field}`} name={`field_${field}`} value="on" checked={values.fields.includes(field)} /> {FIELD_LABELS[field]}
            </label>
          ))}
        </fieldset>
        <p>
          <button type="submit">{props.form ? 'Save' : 'Create the form'}</button>
        </p>
      </form>
    </div>
  )
}

function Submissions(props: SignupFormViewProps) {
  const { org, signups, form } = props
  const base = orgPath(org.id, 'signup-form')
  return (
    <div class="card">
      <h2>Submissions</h2>
      {signups.items.length === 0 ? (
        <EmptyState title={props.paged ? 'No more submissions' : 'No submissions yet'}>
          {props.paged ? (
            <p>
              That was the last page. <a href={base}>Back to the newest</a>.
            </p>
          ) : form ? (
            <p>
              When a buyer fills in the form after buying on a marketplace, what they entered shows up here (and, with a webhook URL, as <code>signup.submitted</code>). To
              try it, open the form from the sandbox or land a test purchase.
            </p>
          ) : (
            <p>Create the form above first; buyers’ submissions then show up here.</p>
          )}
        </EmptyState>
      ) : (
        <TableScroll label="Submissions">
          <table class="wide signups">
            <caption class="sr-only">Signup form submissions, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Email</th>
                <th scope="col">Company</th>
                <th scope="col">Phone</th>
                <th scope="col">Notes</th>
                <th scope="col">Entitlement</th>
                <th scope="col">Confirmation</th>
                <th scope="col">Submitted</th>
                <th scope="col">Updated</th>
              </tr>
            </thead>
            <tbody>
              {signups.items.map((signup) => (
                <tr id={signup.id}>
                  <th scope="row">{signup.name}</th>
                  <td>{signup.email}</td>
                  <td>{signup.company ?? <span class="muted">—</span>}</td>
                  <td>{signup.phone ?? <span class="muted">—</span>}</td>
                  <td class="pre">{signup.notes ?? <span class="muted">—</span>}</td>
                  <td>
                    <a href={orgPath(org.id, `entitlements/${encodeURIComponent(signup.entitlementId)}`)}>
                      <code>{signup.entitlementId}</code>
                    </a>
                  </td>
                  <td>
                    <Badge value={signup.emailStatus} />
                  </td>
                  <td class="when">{time(signup.createdAt)}</td>
                  <td class="when">{time(signup.updatedAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableScroll>
      )}
      <Pager next={signups.nextCursor ? `${base}${query({ cursor: signups.nextCursor })}` : null} first={props.paged ? base : null} />
    </div>
  )
}

export function SignupFormView(props: SignupFormViewProps) {
  return (
    <>
      <PageHead title="Signup form" crumbs={props.org.name} />
      {props.notice ?? null}
      {props.errors ? (
        <Notice kind="bad">
          Nothing was saved: <a href="#edit-signup-form">see what to correct in the form</a>.
        </Notice>
      ) : null}
      {props.form ? null : (
        <div class="card">
          <EmptyState title="No signup form yet">
            <p>
              No signup page of your own? The broker hosts one: a buyer who lands from Azure, AWS or Google Cloud fills in their name, email and the fields you choose;
              you see each submission here and by webhook, and they get a confirmation email.
            </p>
            <p>
              To turn it on: create the form below, then <b>send buyers to it</b> (the form’s URL becomes the org’s fulfillment URL).
            </p>
          </EmptyState>
        </div>
      )}
      {props.form ? (
        <div class="two">
          <Settings {...props} form={props.form} />
          <EditForm {...props} />
        </div>
      ) : (
        <EditForm {...props} />
      )}
      <Submissions {...props} />
    </>
  )
}
