/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import { OpenAPIHono, createRoute, z } from '@hono/zod-openapi'
import type { Context, MiddlewareHandler, Next } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { HTTPException } from 'hono/http-exception'
import { requestId } from 'hono/request-id'
import { ping } from './db/entitlements'
import type { AppDeps } from './deps'
import { type LandingService, createLandingService } from './domain/landing'
import { kickDeliveries } from './domain/webhooks'
import type { AppEnv } from './env'
import { ApiError, codeForStatus, type ErrorCode, validationHook } from './errors'
import { serverSpan, tracingRequests } from './telemetry'
import { ASSET_CACHE_CONTROL, ASSETS_PATH, DOCS_CSP, DocsPage, OWN_FILES, SWAGGER_UI_FILES } from './pages/docs'
import { ErrorPage } from './pages/landing'
import { apiKeyRoutes } from './routes/api-keys'
import { auditRoutes } from './routes/audit'
import { consoleRoutes } from './routes/console/index'
import { guardApi } from './routes/auth'
import { nulInUrl } from './routes/common'
import { entitlementRoutes } from './routes/entitlements'
import { landingRoutes } from './routes/landing'
import { metricsRoutes } from './routes/metrics'
import { notificationRoutes } from './routes/notifications'
import { orgRoutes } from './routes/orgs'
import { signupApiRoutes, signupPageRoutes } from './routes/signups'
import { sugerRoutes } from './routes/suger'
import { usageRoutes } from './routes/usage'
import { webhookRoutes } from './routes/webhooks'

const API_BODY_LIMIT = 1024 * 1024
const LANDING_BODY_LIMIT = 64 * 1024

const NOTIFICATION_BODY_LIMIT = 256 * 1024

/** Paths whose errors are JSON in the contract's shape (the marketplaces' notification route is a JSON API too). */
/**
 * How long /healthz waits for the database. A load balancer needs a prompt answer: a PostgreSQL
 * server that hangs (or a pool whose connections are all busy) would otherwise hold the check
 * until the balancer's own timeout, which it reads as "unknown" rather than "out of rotation".
 */
const HEALTH_TIMEOUT_MS = 2_000

/** `work`, or a rejection once `ms` have passed (the work itself carries on and is ignored). */
function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const expired = new Promise<never>((_, fail) => {
    timer = setTimeout(() => fail(new Error(`no answer within ${ms} ms`)), ms)
  })
  return Promise.race([work, expired]).finally(() => clearTimeout(timer))
}

const isApiPath = (path: string) => path === '/api' || path.startsWith('/api/') || path === '/healthz' || path === '/metrics' || path.startsWith('/public/notifications/')

/** The Suger-compatible API (contract §15), whose errors are Suger's: a JSON string body. */
const isSugerPath = (path: string) => path === '/suger' || path.startsWith('/suger/')

function errorJson(c: Context<AppEnv>, code: ErrorCode, message: string, status: number) {
  if (isSugerPath(c.req.path)) return c.json(message, status as 400)
  return c.json({ error: { code, message, requestId: c.get('requestId') } }, status as 400)
}

const healthRoute = createRoute({
  method: 'get',
  path: '/healthz',
  tags: ['Operations'],
  summary: 'Liveness and database check',
  responses: {
    200: { description: 'The database answers', content: { 'application/json': { schema: z.object({ status: z.literal('ok') }) } } },
    503: { description: 'The database does not answer' },
  },
})

/** `\u0000` in JSON text not preceded by an escaped backslash: a string holding the NUL character. */
const JSON_NUL = /(?<!\\)(?:\\\\)*\\u0000/i

/**
 * A JSON body whose strings hold U+0000 is refused (400) on every database alike: PostgreSQL's text
 * cannot store it (SQLite can), so it would be a 500 there and a stored value elsewhere. The body
 * is read as text once (it stays cached for the validators). Not JSON, or not JSON at all: the
 * route's own validation answers.
 */
const refuseNulInJson: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.req.method === 'GET' || c.req.method === 'HEAD' || !/json/i.test(c.req.header('content-type') ?? '')) return next()
  const text = await c.req.text().catch(() => '')
  if (text.includes('\\') && JSON_NUL.test(text)) {
    return errorJson(c, 'VALIDATION_ERROR', 'Invalid request: strings may not contain the NUL character (U+0000).', 400)
  }
  return next()
}

/**
 * A URL holding U+0000 (`%00`) is refused the same way on every database: PostgreSQL's text
 * cannot hold it, so an id or a filter with one was a 500 there and a plain miss on SQLite. In
 * the path nothing can match it (404); in the query it is a bad parameter (400). (The console
 * checks its ids itself, after its session and CSRF checks.)
 */
function refuseNulInUrl(c: Context<AppEnv>): void {
  const nul = nulInUrl(c.req.url)
  if (nul === 'path') throw new ApiError('NOT_FOUND', 'No such route.')
  if (nul === 'query') throw new ApiError('VALIDATION_ERROR', 'Invalid request: parameters may not contain the NUL character (U+0000).')
}

/**
 * Applies a body limit to requests that can carry a body: looking at a GET's body would make
 * the Node adapter build a full Request object for nothing, on every read.
 */
function limitBodies(limit: MiddlewareHandler<AppEnv>): MiddlewareHandler<AppEnv> {
  return (c, next) => (c.req.method === 'GET' || c.req.method === 'HEAD' || c.get('bodyRead') ? next() : limit(c, next))
}

/**
 * The body middlewares of an API as one: they run in order for requests that can carry a body,
 * and a GET or HEAD (most API requests) skips them all in one step instead of passing each
 * (every middleware of Hono's costs a dispatch). A handler's answer without next() is passed up
 * as Hono's own chain would.
 */
function forBodies(...handlers: Array<MiddlewareHandler<AppEnv> | undefined>): MiddlewareHandler<AppEnv> {
  const chain = handlers.filter((h): h is MiddlewareHandler<AppEnv> => h !== undefined)
  return (c, next) => {
    if (c.req.method === 'GET' || c.req.method === 'HEAD') return next()
    const run = (i: number): Promise<Response | void> => (i === chain.length ? next() : chain[i]!(c, () => run(i + 1) as Promise<void>))
    return run(0)
  }
}

/**
 * A file of the API docs page: the app's own (initializer, stylesheet) or an allow-listed one of
 * swagger-ui-dist from the runtime (`deps.docsAsset`); anything else is 404. Cached for a day by
 * browsers, then revalidated with the ETag (the runtime's, or the app's for its own files).
 */
async function docsAsset(c: Context<AppEnv>, deps: AppDeps, file: string) {
  const own = Object.hasOwn(OWN_FILES, file) ? OWN_FILES[file] : undefined
  const type = own?.type ?? (Object.hasOwn(SWAGGER_UI_FILES, file) ? SWAGGER_UI_FILES[file] : undefined)
  const found = own ? new Response(own.body, { headers: { etag: own.etag } }) : type ? await deps.docsAsset?.(file) : null
  if (!type || !found) return errorJson(c, 'NOT_FOUND', 'No such route.', 404)
  const etag = found.headers.get('etag')
  const headers: Record<string, string> = { 'content-type': type, 'cache-control': ASSET_CACHE_CONTROL, 'x-content-type-options': 'nosniff', ...(etag ? { etag } : {}) }
  const ifNoneMatch = c.req.header('if-none-match')
  if (etag && ifNoneMatch && ifNoneMatch.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag.replace(/^W\//, ''))) {
    await found.body?.cancel()
    return c.body(null, 304, headers)
  }
  return c.body(found.body ?? '', 200, headers)
}

/**
 * The one app factory: the Node entry, the Workers entry and the tests all build their
 * dependencies and call this.
 */
export function createApp(deps: AppDeps, landing: LandingService = createLandingService(deps)) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })

  app.use('*', requestId())
  // One structured line per request. The path is logged without its query: landing URLs carry tokens.
  // When tracing is on, the request is a span (and every line logged inside it carries its ids).
  const logged = async (c: Context<AppEnv>, next: Next) => {
    const started = Date.now()
    c.set('log', deps.logger.child({ requestId: c.get('requestId') }))
    await next()
    deps.logger.info('request', {
      requestId: c.get('requestId'),
      method: c.req.method,
      route: c.req.routePath,
      status: c.res.status,
      latencyMs: Date.now() - started,
      ...c.get('logFields'),
    })
  }
  app.use('*', (c, next) =>
    tracingRequests()
      ? serverSpan(c.req.method, c.req.path, c.req.raw.headers, () => logged(c, next), () => ({ route: c.req.routePath, status: c.res.status }))
      : logged(c, next),
  )

  const apiTooLarge = (c: Context<AppEnv>) => errorJson(c, 'PAYLOAD_TOO_LARGE', 'The request body is larger than 1 MiB.', 413)
  // JSON read straight from Node's request where it can be, the 1 MiB limit, no NUL in the JSON.
  const apiBodies = forBodies(deps.jsonBodies?.(API_BODY_LIMIT, apiTooLarge), limitBodies(bodyLimit({ maxSize: API_BODY_LIMIT, onError: apiTooLarge })), refuseNulInJson)
  app.use(
    '/public/notifications/*',
    bodyLimit({ maxSize: NOTIFICATION_BODY_LIMIT, onError: (c) => errorJson(c, 'PAYLOAD_TOO_LARGE', 'The notification is larger than 256 KiB.', 413) }),
  )
  app.use(
    '/public/signup/*',
    limitBodies(
      bodyLimit({
        maxSize: LANDING_BODY_LIMIT,
        onError: (c) =>
          c.html(<ErrorPage title="Request too large" message="This request is larger than a marketplace sends." requestId={c.get('requestId')} />, 413, {
            'cache-control': 'no-store',
          }),
      }),
    ),
  )
  // The caller, its rate limit, then a NUL in the URL (after the key check: a request without a
  // valid key learns nothing of the routes).
  app.use('/api/v1/*', guardApi(deps, { check: refuseNulInUrl }))
  // After the caller is known: a request without a valid key is refused before its body is read.
  // (The other /api routes are GETs: the docs and the OpenAPI document.)
  app.use('/api/v1/*', apiBodies)
  // The Suger-compatible API: the same keys (Suger's `Authorization: Key <key>` too), scopes,
  // limits and body rules as /api/v1.
  app.use('/suger/*', guardApi(deps, { schemes: ['Key', 'Bearer'] }))
  app.use('/suger/*', apiBodies)
  // A request that may have written events (landing, notification, API) sends their webhooks right
  // after it is answered (Workers: inside waitUntil); the job sends whatever this misses.
  app.use('*', async (c, next) => {
    await next()
    // Reads write nothing, except the landing, which buyers reach with a GET (Azure) as well as a POST.
    // Recording usage writes no event either (its webhooks come from the job's reporter).
    const reads = (c.req.method === 'GET' || c.req.method === 'HEAD') && !c.req.path.startsWith('/public/')
    if (reads || c.res.status >= 400 || c.req.path.endsWith('/usage') || /usageRecordGroups?$/.test(c.req.path)) return
    const sending = kickDeliveries(deps, c.get('log'))
    try {
      c.executionCtx.waitUntil(sending)
    } catch {
      // Node: no execution context; the promise runs on after the answer.
    }
  })

  app.openapi(healthRoute, async (c) => {
    try {
      await withTimeout(ping(deps.db), HEALTH_TIMEOUT_MS)
      return c.json({ status: 'ok' as const }, 200)
    } catch (error) {
      deps.logger.error('health check: database unavailable', { error: error instanceof Error ? error.message : String(error) })
      return errorJson(c, 'SERVICE_UNAVAILABLE', 'The database is not answering.', 503) as never
    }
  })

  app.route('/api/v1/orgs', orgRoutes(deps))
  app.route('/api/v1/orgs', apiKeyRoutes(deps))
  app.route('/api/v1/orgs', entitlementRoutes(deps))
  app.route('/api/v1/orgs', webhookRoutes(deps))
  app.route('/api/v1/orgs', usageRoutes(deps))
  app.route('/api/v1/orgs', signupApiRoutes(deps))
  app.route('/api/v1/orgs', auditRoutes(deps))
  app.route('/public/signup/newclient', signupPageRoutes(deps))
  app.route('/public/signup', landingRoutes(landing, deps.metrics))
  app.route('/public/notifications', notificationRoutes(deps))
  // Before the console's own routes, which would take /console/ as a page of theirs (and find none).
  app.get('/console/', (c) => c.redirect('/console', 308))
  app.route('/console', consoleRoutes(deps))
  app.route('/suger', sugerRoutes(deps))
  // Node only (contract §16): Workers has no metrics, and the path is a 404 there.
  if (deps.metrics) app.route('/metrics', metricsRoutes({ ...deps, metrics: deps.metrics }))

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    description: 'An org API key (mbk_…), or the ADMIN_TOKEN for creating orgs.',
  })
  app.openAPIRegistry.registerComponent('securitySchemes', 'sugerKey', {
    type: 'apiKey',
    in: 'header',
    name: 'Authorization',
    description: 'Suger’s scheme: `Key <org API key>` (`Bearer <key>` works too).',
  })
  app.doc31('/api/openapi.json', {
    openapi: '3.1.0',
    info: {
      title: 'marketbridge',
      version: '0.1.0',
      description:
        'Multi-marketplace signup redirect broker. Buyers land on /public/signup/{partner}/orgId/{orgId} (not part of this JSON API) and are 303-redirected to the org’s fulfillment URL with sugerEntitlementId, partner and offerType.',
    },
    servers: [{ url: deps.config.PUBLIC_URL }],
  })
  app.get('/api/docs', (c) =>
    c.html(<DocsPage viewer={Boolean(deps.docsAsset)} />, 200, {
      'content-security-policy': DOCS_CSP,
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
    }),
  )
  app.get(`${ASSETS_PATH}/:file`, (c) => docsAsset(c, deps, c.req.param('file')))

  app.notFound((c) => {
    if (isApiPath(c.req.path) || isSugerPath(c.req.path)) return errorJson(c, 'NOT_FOUND', 'No such route.', 404)
    return c.html(<ErrorPage title="Page not found" message="There is nothing at this address." requestId={c.get('requestId')} />, 404, {
      'cache-control': 'no-store',
    })
  })

  app.onError((error, c) => {
    let code: ErrorCode = 'INTERNAL_ERROR'
    let status = 500
    let message = 'Something went wrong on our side.'
    if (error instanceof ApiError) {
      ;({ code, status, message } = error)
    } else if (error instanceof HTTPException && error.status === 415) {
      // The contract has no 415: a body that is not JSON is a validation error.
      code = 'VALIDATION_ERROR'
      status = 400
      message = 'Send the body as JSON (Content-Type: application/json).'
    } else if (error instanceof HTTPException && codeForStatus[error.status]) {
      code = codeForStatus[error.status]!
      status = error.status
      message = status === 400 ? 'The request body is not valid JSON.' : error.message || code
    } else {
      // Name and message only: a stack trace never reaches a response or a log line.
      c.get('log')?.error('unhandled error', { error: `${error.name}: ${error.message}` })
    }
    if (isApiPath(c.req.path) || isSugerPath(c.req.path)) return errorJson(c, code, message, status)
    return c.html(
      <ErrorPage
        title={status >= 500 ? 'Please try again shortly' : 'Bad request'}
        message={status >= 500 ? 'Something went wrong on our side. Please try again in a few minutes.' : 'This request could not be understood.'}
        requestId={c.get('requestId')}
      />,
      status as 500,
      { 'cache-control': 'no-store' },
    )
  })

  return app
}

export type App = ReturnType<typeof createApp>
