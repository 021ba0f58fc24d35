/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import type { AppDeps } from '../../deps'
import { OPTIONAL_FIELDS, type SignupForm, SignupFormInputSchema, getSignupForm, listSignups, putSignupForm } from '../../domain/signups'
import { updateOrg } from '../../domain/orgs'
import { ApiError } from '../../errors'
import { Notice } from '../../pages/console/components'
import { orgPath } from '../../pages/console/layout'
import { type SignupFormErrors, type SignupFormValues, SignupFormView, type SignupFormViewProps } from '../../pages/console/signup-form'
import { type ConsoleApp, type ConsoleContext, auditOf, page, redirectTo } from './app'

/**
 * Signup form (contract §10, §14): the hosted form's settings as GET …/signup-form answers them,
 * their edit form (PUT's rules, through the same domain function), and GET …/signups' submissions.
 */

const PAGE_SIZE = 50

const MESSAGES: Record<keyof SignupFormValues, string> = {
  companyName: 'Enter the company name buyers see (1 to 200 characters).',
  logoUrl: 'Enter the address of an image (at most 2048 characters), or leave it empty.',
  publicNotes: 'Keep the public notes under 2000 characters.',
  ccEmails: 'Enter at most 10 email addresses, one a line.',
  fields: 'Choose among company, phone and notes.',
}

const NOTICES: Record<string, string> = {
  saved: 'The signup form was saved.',
  'in-use': 'Buyers who land from a marketplace are now sent to this form (the org’s fulfillment URL was changed).',
}

/** The form's fields as typed (strings only; the checkboxes by name). */
function valuesOf(form: Record<string, string>): SignupFormValues {
  return {
    companyName: form.companyName ?? '',
    logoUrl: form.logoUrl ?? '',
    publicNotes: form.publicNotes ?? '',
    ccEmails: form.ccEmails ?? '',
    fields: OPTIONAL_FIELDS.filter((field) => form[`field_${field}`] !== undefined),
  }
}

/** The PUT body the form stands for: empty optional fields are none; addresses split on lines, commas or spaces. */
function bodyOf(values: SignupFormValues) {
  return {
    companyName: values.companyName,
    logoUrl: values.logoUrl.trim() || null,
    publicNotes: values.publicNotes.trim() || null,
    ccEmails: values.ccEmails.split(/[\s,;]+/).filter(Boolean),
    fields: ['name', 'email', ...values.fields],
  }
}

/** The refused fields, worded for the page (SignupFormInputSchema judges, as for PUT). */
function errorsOf(body: ReturnType<typeof bodyOf>): SignupFormErrors | null {
  const parsed = SignupFormInputSchema.safeParse(body)
  if (parsed.success) return null
  const errors: SignupFormErrors = {}
  for (const issue of parsed.error.issues) {
    const [field, index] = issue.path
    if (field === 'ccEmails' && typeof index === 'number') errors.ccEmails ??= `“${body.ccEmails[index]}” is not an email address.`
    else if (typeof field === 'string' && Object.hasOwn(MESSAGES, field)) errors[field as keyof SignupFormValues] ??= MESSAGES[field as keyof SignupFormValues]
  }
  return errors
}

export function signupFormPages(app: ConsoleApp, deps: AppDeps) {
  async function view(c: ConsoleContext, props: Partial<SignupFormViewProps>, status = 200) {
    const org = c.get('org')
    const cursor = c.req.method === 'GET' ? c.req.query('cursor') : undefined
    if (cursor && cursor.length > 512) throw new ApiError('INVALID_CURSOR', 'This page link is not one the console made. Go back to the first page.')
    const [form, signups] = await Promise.all([formOf(org.id), listSignups(deps, org.id, { limit: PAGE_SIZE, ...(cursor ? { cursor } : {}) })])
    return page(c, {
      title: 'Signup form',
      current: 'signup-form',
      status,
      children: <SignupFormView org={org} viewer={c.get('viewer')} form={form} signups={signups} paged={Boolean(cursor)} {...props} />,
    })
  }
  /** GET …/signup-form's answer, or null for its 404 (no form yet). */
  async function formOf(orgId: string): Promise<SignupForm | null> {
    try {
      return await getSignupForm(deps, orgId)
    } catch (error) {
      if (error instanceof ApiError && error.code === 'NOT_FOUND') return null
      throw error
    }
  }

  app.get('/orgs/:orgId/signup-form', (c) => {
    const notice = NOTICES[c.req.query('notice') ?? '']
    return view(c, notice ? { notice: <Notice kind="ok">{notice}</Notice> } : {})
  })

  app.post('/orgs/:orgId/signup-form', async (c) => {
    const values = valuesOf(c.get('form'))
    const body = bodyOf(values)
    const errors = errorsOf(body)
    if (errors) return view(c, { values, errors }, 400)
    try {
      await putSignupForm(deps, c.get('org').id, body, auditOf(c))
    } catch (error) {
      if (!(error instanceof ApiError && error.code === 'VALIDATION_ERROR')) throw error
      // The domain's own rules (the logo's URL): its message, the values kept.
      const refused = error.message.startsWith('logoUrl') ? { logoUrl: error.message.replace(/^logoUrl/, 'The logo URL') } : { form: error.message }
      return view(c, { values, errors: refused }, 400)
    }
    return redirectTo(c, orgPath(c.get('org').id, 'signup-form'), 'saved')
  })

  // Turning the form on: its URL becomes the org's fulfillment URL (PATCH …/orgs/{orgId}'s rules and audit entry).
  app.post('/orgs/:orgId/signup-form/use', async (c) => {
    const org = c.get('org')
    const form = await getSignupForm(deps, org.id)
    try {
      await updateOrg(deps, org.id, { fulfillmentUrl: form.url }, auditOf(c))
    } catch (error) {
      if (!(error instanceof ApiError && error.code === 'VALIDATION_ERROR')) throw error
      const notice = (
        <Notice kind="bad">
          This form’s URL cannot be the fulfillment URL: {error.message} (The broker’s PUBLIC_URL must be https, or localhost while developing.)
        </Notice>
      )
      return view(c, { notice }, 400)
    }
    return redirectTo(c, orgPath(org.id, 'signup-form'), 'in-use')
  })

  app.get('/orgs/:orgId/signup-form/use', (c) => c.redirect(orgPath(c.get('org').id, 'signup-form'), 303))
}
