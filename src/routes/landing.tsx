/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import { Hono } from 'hono'
import type { Context } from 'hono'
import type { Metrics } from '../deps'
import type { LandingService } from '../domain/landing'
import { partnerLabel } from '../../providers/shared/telemetry'
import type { AppEnv } from '../env'
import { LandingFailurePage, failureStatus } from '../pages/landing'

/**
 * Query parameters decoded exactly once, with a literal `+` kept as `+`: Azure's tokens are
 * base64, and form-style decoding (`+` -> space) breaks them. Both `&` and `?` separate
 * pairs, because a landing URL that already has `?partnerId=` gets Azure's `?token=`
 * appended after it. A value that is not valid percent-encoding becomes U+FFFD, which no
 * provider accepts as a token.
 */
export function parseRawQuery(url: string): Map<string, string> {
  const query = new Map<string, string>()
  const start = url.indexOf('?')
  if (start === -1) return query
  const hash = url.indexOf('#', start)
  const raw = url.slice(start + 1, hash === -1 ? undefined : hash)
  for (const pair of raw.split(/[&?]/)) {
    if (!pair) continue
    const eq = pair.indexOf('=')
    const name = decodeOnce(eq === -1 ? pair : pair.slice(0, eq))
    if (query.has(name)) continue
    query.set(name, eq === -1 ? '' : decodeOnce(pair.slice(eq + 1)))
  }
  return query
}

function decodeOnce(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return '\uFFFD'
  }
}

const FORM_TYPES = ['application/x-www-form-urlencoded', 'multipart/form-data']

async function readForm(c: Context<AppEnv>): Promise<Map<string, string> | null> {
  if (c.req.method !== 'POST') return null
  const type = (c.req.header('content-type') ?? '').toLowerCase()
  if (!FORM_TYPES.some((form) => type.startsWith(form))) return null
  try {
    const body = await c.req.parseBody()
    const form = new Map<string, string>()
    for (const [name, value] of Object.entries(body)) {
      if (typeof value === 'string') form.set(name, value)
    }
    return form
  } catch {
    // An unparseable form is treated like a form without the token: the buyer gets the 400 page.
    return new Map()
  }
}

const noStore = { 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' }

/** `landing.land`, counted in `metrics` by outcome (`success`, a refusal's reason, or `error` when it throws) and timed. */
async function measured(landing: LandingService, metrics: Metrics | undefined, request: Parameters<LandingService['land']>[0]) {
  if (!metrics) return landing.land(request)
  const started = performance.now()
  let outcome = 'error'
  try {
    const result = await landing.land(request)
    outcome = result.kind === 'redirect' ? 'success' : result.reason
    return result
  } finally {
    metrics.landing(partnerLabel(request.partner), outcome, (performance.now() - started) / 1000)
  }
}

export function landingRoutes(landing: LandingService, metrics?: Metrics) {
  const app = new Hono<AppEnv>()

  app.on(['GET', 'POST'], '/:partner/orgId/:orgId', async (c) => {
    const query = parseRawQuery(c.req.url)
    const partner = c.req.param('partner')
    const orgId = c.req.param('orgId')
    c.set('logFields', { orgId, partner })
    const outcome = await measured(landing, metrics, {
      partner,
      orgId,
      partnerId: query.get('partnerId') ?? null,
      input: { query, form: await readForm(c) },
      log: c.get('log'),
    })
    if (outcome.kind === 'redirect') {
      c.set('logFields', { orgId, partner, outcome: outcome.replay ? 'replay' : 'redirect', entitlementId: outcome.entitlementId })
      return c.body(null, 303, { ...noStore, location: outcome.location })
    }
    c.set('logFields', { orgId, partner, outcome: outcome.reason })
    const status = failureStatus[outcome.reason]
    return c.html(<LandingFailurePage reason={outcome.reason} partner={outcome.partner} requestId={c.get('requestId')} />, status, noStore)
  })

  return app
}
