/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import type { Child } from 'hono/jsx'
import type { Partner } from '../../providers/types'
import type { FormContext, FormErrors, FormField, FormValues } from '../domain/signups'
import { partnerNames } from '../domain/signups'
import { Layout } from './layout'

/**
 * The hosted signup form (contract §10): server-rendered, no script, one small stylesheet, the
 * ISV's logo as the only outside asset. Everything shown is escaped by hono/jsx.
 */

const styles = `
  :root { color-scheme: light dark; --accent: #2563eb; --muted: color-mix(in srgb, CanvasText 60%, Canvas); --line: color-mix(in srgb, CanvasText 18%, Canvas); --bad: #b91c1c; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: color-mix(in srgb, CanvasText 4%, Canvas); color: CanvasText; }
  main { max-width: 36rem; width: 100%; margin: 0 auto; padding: 1.5rem 1rem 3rem; }
  .card { background: Canvas; border: 1px solid var(--line); border-radius: 12px; padding: 1.5rem; }
  header { display: flex; align-items: center; gap: .9rem; margin-bottom: 1.25rem; }
  header img { max-height: 48px; max-width: 160px; object-fit: contain; }
  h1 { font-size: 1.35rem; margin: 0; line-height: 1.25; }
  .purchase { border: 1px solid var(--line); border-radius: 8px; padding: .75rem 1rem; margin: 0 0 1.25rem; }
  .purchase dl { display: grid; grid-template-columns: max-content 1fr; gap: .15rem .9rem; margin: 0; }
  .purchase dt { color: var(--muted); }
  .purchase dd { margin: 0; overflow-wrap: anywhere; }
  .notes { white-space: pre-line; margin: 0 0 1.25rem; }
  .field { margin-bottom: 1rem; }
  label { display: block; font-weight: 600; margin-bottom: .25rem; }
  .optional { font-weight: 400; color: var(--muted); }
  input, textarea { width: 100%; font: inherit; padding: .6rem .7rem; border: 1px solid var(--line); border-radius: 8px; background: Canvas; color: CanvasText; }
  input:focus, textarea:focus { outline: 2px solid var(--accent); outline-offset: 1px; }
  [aria-invalid="true"] { border-color: var(--bad); }
  .error { color: var(--bad); font-size: .92rem; margin-top: .25rem; }
  .summary { border: 1px solid var(--bad); color: var(--bad); border-radius: 8px; padding: .6rem .9rem; margin-bottom: 1rem; }
  button { width: 100%; font: inherit; font-weight: 600; padding: .75rem; border: 0; border-radius: 8px; background: var(--accent); color: #fff; cursor: pointer; }
  .muted { color: var(--muted); font-size: .9rem; }
  @media (min-width: 40rem) { main { padding-top: 3rem; } .card { padding: 2rem; } }
`

function Page(props: { title: string; children: Child }) {
  return (
    <Layout title={props.title} styles={styles} referrer="no-referrer">
      <div class="card">{props.children}</div>
    </Layout>
  )
}

function Brand(props: { context: FormContext }) {
  const { form, companyName } = props.context
  return (
    <header>
      {form.logo_url ? <img src={form.logo_url} alt={`${companyName} logo`} /> : null}
      <h1>{companyName}</h1>
    </header>
  )
}

function Purchase(props: { context: FormContext }) {
  const e = props.context.entitlement
  return (
    <section class="purchase" aria-label="Your purchase">
      <dl>
        <dt>Marketplace</dt>
        <dd>{partnerNames[e.partner as Partner] ?? e.partner}</dd>
        {e.product_id ? (
          <>
            <dt>Product</dt>
            <dd>{e.product_id}</dd>
          </>
        ) : null}
        {e.plan_id ? (
          <>
            <dt>Plan</dt>
            <dd>{e.plan_id}</dd>
          </>
        ) : null}
        <dt>Reference</dt>
        <dd>{e.id}</dd>
      </dl>
    </section>
  )
}

const LABELS: Record<FormField, { label: string; type: string; autocomplete: string }> = {
  name: { label: 'Your name', type: 'text', autocomplete: 'name' },
  email: { label: 'Work email', type: 'email', autocomplete: 'email' },
  company: { label: 'Company', type: 'text', autocomplete: 'organization' },
  phone: { label: 'Phone', type: 'tel', autocomplete: 'tel' },
  notes: { label: 'Anything we should know?', type: 'textarea', autocomplete: 'off' },
}
const MAX: Record<FormField, number> = { name: 200, email: 254, company: 200, phone: 40, notes: 2000 }

function Field(props: { field: FormField; value: string; error?: string }) {
  const { field, value, error } = props
  const meta = LABELS[field]
  const required = field === 'name' || field === 'email'
  const common = {
    id: `f-${field}`,
    name: field,
    autocomplete: meta.autocomplete,
    maxlength: MAX[field],
    required,
    'aria-invalid': error ? 'true' : undefined,
    'aria-describedby': error ? `e-${field}` : undefined,
  }
  return (
    <div class="field">
      <label for={`f-${field}`}>
        {meta.label} {required ? null : <span class="optional">(optional)</span>}
      </label>
      {meta.type === 'textarea' ? <textarea {...common} rows={4}>{value}</textarea> : <input {...common} type={meta.type} value={value} />}
      {error ? (
        <div class="error" id={`e-${field}`}>
          {error}
        </div>
      ) : null}
    </div>
  )
}

export function SignupFormPage(props: { context: FormContext; action: string; token: string; values?: FormValues; errors?: FormErrors; expired?: boolean }) {
  const { context, values = {}, errors = {} } = props
  const problems = Object.keys(errors).length
  return (
    <Page title={`Sign up — ${context.companyName}`}>
      <Brand context={context} />
      <p>Thank you for your purchase. Tell us who you are and we will set up your account.</p>
      <Purchase context={context} />
      {context.form.public_notes ? <p class="notes">{context.form.public_notes}</p> : null}
      {props.expired ? (
        <div class="summary" role="alert">
          This page was open for a while, so we could not accept it yet. Your details are kept: please check them and submit again.
        </div>
      ) : null}
      {problems ? (
        <div class="summary" role="alert">
          Please correct {problems === 1 ? 'the field' : `the ${problems} fields`} marked below.
        </div>
      ) : null}
      <form method="post" action={props.action} novalidate>
        <input type="hidden" name="csrf" value={props.token} />
        {context.fields.map((field) => (
          <Field field={field} value={values[field] ?? ''} error={errors[field]} />
        ))}
        <button type="submit">Complete signup</button>
      </form>
      <p class="muted">We use these details only to set up your account and contact you about it.</p>
    </Page>
  )
}

export function ThankYouPage(props: { context: FormContext; email: string; emailed: boolean }) {
  return (
    <Page title={`Thank you — ${props.context.companyName}`}>
      <Brand context={props.context} />
      <h2>Thank you, you're signed up</h2>
      <p>We have your details and will be in touch at {props.email}.</p>
      {props.emailed ? <p>A confirmation is on its way to your inbox.</p> : null}
      <Purchase context={props.context} />
    </Page>
  )
}

export function SignupProblemPage(props: { title: string; message: string; requestId: string }) {
  return (
    <Page title={props.title}>
      <h1>{props.title}</h1>
      <p>{props.message}</p>
      <p class="muted">Reference: {props.requestId}</p>
    </Page>
  )
}
