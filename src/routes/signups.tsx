/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi'
import { Hono } from 'hono'
import type { Context } from 'hono'
import type { AppDeps } from '../deps'
import {
  SignupFormInputSchema,
  checkFormToken,
  formContext,
  getSignupForm,
  issueFormToken,
  listSignups,
  putSignupForm,
  saveSignup,
  sendEmail,
  validateSubmission,
} from '../domain/signups'
import type { AppEnv } from '../env'
import { validationHook } from '../errors'
import { SignupFormPage, SignupProblemPage, ThankYouPage } from '../pages/signup-form'
import { auditContext } from './audit'
import { assertOrgAccess } from './auth'
import { OrgIdParam, errorResponses, jsonBody, jsonResponse } from './common'

const security = [{ bearer: [] }]

const SignupFormSchema = z
  .object({
    companyName: z.string(),
    logoUrl: z.string().nullable(),
    publicNotes: z.string().nullable(),
    ccEmails: z.array(z.string()),
    fields: z.array(z.string()),
    signupId: z.string().openapi({ example: 'sgn_01jd0000000000000000000000' }),
    url: z.string().openapi({ description: 'Set the org’s fulfillmentUrl to this to send buyers to the form.' }),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('SignupForm')

const SignupSchema = z
  .object({
    id: z.string(),
    entitlementId: z.string(),
    name: z.string(),
    email: z.string(),
    company: z.string().nullable(),
    phone: z.string().nullable(),
    notes: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
    emailStatus: z.enum(['SENT', 'PENDING', 'SKIPPED', 'FAILED']),
  })
  .openapi('Signup')

const putRoute = createRoute({
  method: 'put',
  path: '/{orgId}/signup-form',
  tags: ['Signup form'],
  summary: 'Create or replace the org’s hosted signup form (the signupId and url stay)',
  security,
  request: { params: z.object({ orgId: OrgIdParam }), body: jsonBody(SignupFormInputSchema.openapi('SignupFormInput')) },
  responses: { 200: jsonResponse(z.object({ signupForm: SignupFormSchema }), 'The form'), ...errorResponses(400, 401, 404) },
})

const getRoute = createRoute({
  method: 'get',
  path: '/{orgId}/signup-form',
  tags: ['Signup form'],
  summary: 'The org’s hosted signup form',
  security,
  request: { params: z.object({ orgId: OrgIdParam }) },
  responses: { 200: jsonResponse(z.object({ signupForm: SignupFormSchema }), 'The form'), ...errorResponses(401, 404) },
})

const listRoute = createRoute({
  method: 'get',
  path: '/{orgId}/signups',
  tags: ['Signup form'],
  summary: 'Signups submitted through the hosted form, newest first',
  security,
  request: {
    params: z.object({ orgId: OrgIdParam }),
    query: z.object({
      limit: z.coerce.number().int().min(1).max(1000).default(100).openapi({ type: 'integer', minimum: 1, maximum: 1000, default: 100 }),
      cursor: z.string().min(1).max(512).optional(),
    }),
  },
  responses: { 200: jsonResponse(z.object({ items: z.array(SignupSchema), nextCursor: z.string().nullable() }), 'A page of signups'), ...errorResponses(400, 401, 404) },
})

export function signupApiRoutes(deps: AppDeps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  app.openapi(putRoute, async (c) => {
    const { orgId } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    return c.json({ signupForm: await putSignupForm(deps, orgId, c.req.valid('json'), auditContext(c)) }, 200)
  })
  app.openapi(getRoute, async (c) => {
    const { orgId } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    return c.json({ signupForm: await getSignupForm(deps, orgId) }, 200)
  })
  app.openapi(listRoute, async (c) => {
    const { orgId } = c.req.valid('param')
    assertOrgAccess(c.get('caller'), orgId)
    return c.json(await listSignups(deps, orgId, c.req.valid('query')), 200)
  })
  return app
}

const noStore = { 'cache-control': 'no-store', 'x-frame-options': 'DENY', 'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; img-src https: http://localhost:* http://127.0.0.1:*; form-action 'self'; frame-ancestors 'none'; base-uri 'none'" }

function problem(c: Context<AppEnv>, status: 400 | 403 | 404, title: string, message: string) {
  return c.html(<SignupProblemPage title={title} message={message} requestId={c.get('requestId')} />, status, noStore)
}

/** The buyer-facing form: `GET`/`POST /public/signup/newclient/{signupId}?sugerEntitlementId=…`. */
export function signupPageRoutes(deps: AppDeps) {
  const app = new Hono<AppEnv>()
  const notFound = (c: Context<AppEnv>) => problem(c, 404, 'Signup link not found', 'This signup link does not match a purchase. Please open it again from the marketplace, or contact the seller.')
  const action = (c: Context<AppEnv>, entitlementId: string, partner?: string, offerType?: string) => {
    const query = new URLSearchParams({ sugerEntitlementId: entitlementId, ...(partner ? { partner } : {}), ...(offerType ? { offerType } : {}) })
    return `${new URL(c.req.url).pathname}?${query}`
  }

  app.get('/:signupId', async (c) => {
    const entitlementId = c.req.query('sugerEntitlementId') ?? ''
    const context = await formContext(deps, c.req.param('signupId'), entitlementId)
    if (!context) return notFound(c)
    const token = await issueFormToken(deps, context.form.signup_id, entitlementId)
    return c.html(<SignupFormPage context={context} action={action(c, entitlementId, c.req.query('partner'), c.req.query('offerType'))} token={token} />, 200, noStore)
  })

  app.post('/:signupId', async (c) => {
    const entitlementId = c.req.query('sugerEntitlementId') ?? ''
    const context = await formContext(deps, c.req.param('signupId'), entitlementId)
    if (!context) return notFound(c)
    const type = c.req.header('content-type') ?? ''
    if (!type.startsWith('application/x-www-form-urlencoded') && !type.startsWith('multipart/form-data')) {
      return problem(c, 400, 'Please use the form', 'This page accepts the signup form only.')
    }
    const body = (await c.req.parseBody()) as Record<string, unknown>
    const token = typeof body.csrf === 'string' ? body.csrf : ''
    const genuine = token ? await checkFormToken(deps, token, context.form.signup_id, entitlementId) : null
    if (!genuine) return problem(c, 403, 'This form has expired', 'Please reload the signup page and submit the form again.')
    const { values, errors } = validateSubmission(context.fields, body)
    const formAction = action(c, entitlementId, c.req.query('partner'), c.req.query('offerType'))
    if (genuine.expired) {
      // A form left open too long: the values are kept, with a fresh token, for one more click.
      const fresh = await issueFormToken(deps, context.form.signup_id, entitlementId)
      return c.html(<SignupFormPage context={context} action={formAction} token={fresh} values={values} errors={errors} expired />, 400, noStore)
    }
    if (Object.keys(errors).length) {
      // The same token stays valid for the corrected submission (it is spent only by a stored one).
      return c.html(<SignupFormPage context={context} action={formAction} token={token} values={values} errors={errors} />, 400, noStore)
    }
    const saved = await saveSignup(deps, context, values, genuine)
    if (!saved) return problem(c, 403, 'This form was already submitted', 'Your signup was received already. To change your details, reload the signup page and submit it again.')
    if (saved.emailId) {
      // This signup's email, right after the answer (Workers: inside waitUntil); the job sends the rest.
      const log = c.get('log')
      const sending = sendEmail(deps, saved.emailId, log).catch((error) => log.error('confirmation email send failed; the job retries it', { error: error instanceof Error ? error.message : String(error) }))
      try {
        c.executionCtx.waitUntil(sending)
      } catch {
        // Node: the send runs on after the answer.
      }
    }
    return c.html(<ThankYouPage context={context} email={saved.signup.email} emailed={saved.signup.email_status !== 'SKIPPED'} />, 200, noStore)
  })

  return app
}
