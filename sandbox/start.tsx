/** @jsxRuntime automatic @jsxImportSource hono/jsx */
import { randomBytes, randomUUID } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { serve } from '@hono/node-server'
import { type Context, Hono } from 'hono'
import { Webhook } from 'standardwebhooks'
import { THEME_CSS } from '../src/pages/theme'
import { type RunningBroker, startBroker } from './broker'
import { parseMail, startSmtpServer } from './mailbox'
import { type ActionId, type Marketplaces, PARTNERS, type Partner, USAGE_DIMENSION, startMarketplaces } from './marketplaces'
import {
  AcmePage,
  type Entitlement,
  type EventView,
  HandoffPage,
  HomePage,
  MailboxPage,
  ProblemPage,
  type ReceivedWebhook,
  type ShellInfo,
  type UsageView,
  WelcomePage,
} from './pages'

/**
 * The sandbox: the marketplace emulators, a real broker (Node + SQLite, or Workers + D1 through
 * wrangler dev) with a demo org using all three, an SMTP mailbox, and the demo ISV app that
 * receives the buyers and the webhooks. Everything on loopback; no network, no configuration.
 */
const here = dirname(fileURLToPath(import.meta.url))
const ASSETS: Record<string, { type: string; body: string }> = {
  'sandbox.css': { type: 'text/css; charset=utf-8', body: `${THEME_CSS}\n${readFileSync(join(here, 'assets/sandbox.css'), 'utf8')}` },
  'sandbox.js': { type: 'text/javascript; charset=utf-8', body: readFileSync(join(here, 'assets/sandbox.js'), 'utf8') },
}
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; form-action 'self' http://127.0.0.1:* http://localhost:*; frame-ancestors 'none'"

export interface SandboxOptions {
  runtime: 'node' | 'workers'
  /** Where the broker's database and log go (emptied at start: each start is a fresh sandbox). */
  dataDir: string
  /** On 127.0.0.1 (the sandbox shows the demo org's key: loopback only). 0: any free port. */
  port: number
  /** Called if the broker stops by itself while the sandbox runs. */
  onBrokerExit?: (how: string) => void
}

export interface Sandbox {
  url: string
  brokerUrl: string
  stop(): Promise<void>
}

/** The sandbox's own port is taken (not one of the ports it picks for the broker). */
export class PortTakenError extends Error {
  override name = 'PortTakenError'
}

const HOUR_MS = 3600_000
/** When the current UTC hour began (ms): the broker reports an hour once it has closed. */
const thisHour = () => Math.floor(Date.now() / HOUR_MS) * HOUR_MS
/** Acme's webhook receiver takes bodies up to this (the broker's are a few KB). */
const WEBHOOK_BODY_LIMIT = 256 * 1024
const MARKER = '.marketbridge-sandbox'
const LOCK = '.lock'

/**
 * Each start is a fresh sandbox: its folder is emptied — only a folder the sandbox made (it holds
 * the marker file) or an empty one, never, say, the `./data` of `npm start` given by mistake, and
 * never while another sandbox uses it (a lock file with its pid). Answers the lock's release.
 */
function claimDataDir(dir: string): () => void {
  if (existsSync(dir) && readdirSync(dir).length > 0 && !existsSync(join(dir, MARKER))) {
    throw new Error(`${dir} is not a sandbox folder (no ${MARKER} in it): refusing to empty it. Pick another --data-dir (or delete that folder yourself if it is an old sandbox's).`)
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const lock = join(dir, LOCK)
  try {
    writeFileSync(lock, String(process.pid), { flag: 'wx', mode: 0o600 })
  } catch {
    const pid = Number(readFileSync(lock, 'utf8'))
    if (pidAlive(pid)) throw new Error(`another sandbox (pid ${pid}) is using ${dir}; stop it first, or give this one another --data-dir`)
    writeFileSync(lock, String(process.pid), { mode: 0o600 })
  }
  for (const entry of readdirSync(dir)) if (entry !== LOCK) rmSync(join(dir, entry), { recursive: true, force: true })
  writeFileSync(join(dir, MARKER), 'This folder belongs to `npm run sandbox`, which empties it at every start.\n', { mode: 0o600 })
  return () => rmSync(lock, { force: true })
}

function pidAlive(pid: number) {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** An entitlement id as the broker makes them: nothing else goes into a broker API path. */
const ENTITLEMENT_ID = /^ent_[A-Za-z0-9]{1,64}$/

export async function startSandbox(options: SandboxOptions): Promise<Sandbox> {
  // The sandbox's own server first (its URL is the org's fulfillment and webhook URL; a taken
  // port stops here, before anything is touched), then the data folder.
  const app = new Hono()
  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const s = serve({ fetch: (request) => app.fetch(request), hostname: '127.0.0.1', port: options.port }, () => resolve(s))
    s.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'EADDRINUSE' ? new PortTakenError(`port ${options.port} is taken; pick another with npm run sandbox -- --port <n>`) : error),
    )
  })
  const port = (server.address() as { port: number }).port
  const url = `http://127.0.0.1:${port}`

  const stops: Array<() => Promise<void>> = [() => new Promise<void>((done) => server.close(() => done()))]
  let stopping: Promise<void> | null = null
  const stop = () =>
    (stopping ??= (async () => {
      for (const fn of [...stops].reverse()) await fn().catch(() => undefined)
    })())
  try {
    const release = claimDataDir(options.dataDir)
    stops.push(async () => release())
    const marketplaces = await startMarketplaces()
    stops.push(() => marketplaces.close())
    const smtpCredentials = { user: 'sandbox', pass: randomBytes(12).toString('base64url') }
    const mailbox = await startSmtpServer({ credentials: smtpCredentials })
    stops.push(mailbox.close)
    const adminToken = `mba_${randomBytes(32).toString('base64url')}`
    const broker = await startBroker({
      runtime: options.runtime,
      dataDir: options.dataDir,
      env: {
        ...marketplaces.env,
        ADMIN_TOKEN: adminToken,
        ENCRYPTION_KEY: randomBytes(32).toString('base64'),
        SMTP_URL: mailbox.url,
        EMAIL_FROM: 'Acme Analytics <hello@acme.example>',
      },
      onExit: options.onBrokerExit,
    })
    stops.push(() => broker.stop())
    const demo = await setUpDemoOrg(broker, adminToken, url, marketplaces)
    mountRoutes(app, { url, port, logFile: join(options.dataDir, 'broker.log'), broker, marketplaces, mailbox, demo })
    return { url, brokerUrl: broker.url, stop }
  } catch (error) {
    await stop()
    throw error
  }
}

interface Demo {
  orgId: string
  apiKey: string
  webhook: Webhook
  hostedFormUrl: string
  fulfillment: 'acme' | 'hosted'
  /** Everything the broker sent to Acme's webhook URL, newest first. */
  received: ReceivedWebhook[]
}

async function brokerApi(broker: RunningBroker, token: string, path: string, init: { method?: string; json?: unknown } = {}) {
  const response = await fetch(`${broker.url}${path}`, {
    method: init.method ?? 'GET',
    headers: { authorization: `Bearer ${token}`, ...(init.json === undefined ? {} : { 'content-type': 'application/json' }) },
    body: init.json === undefined ? undefined : JSON.stringify(init.json),
  })
  const text = await response.text()
  let body: any = null
  try {
    body = text ? JSON.parse(text) : null
  } catch {
    body = { error: { message: text.slice(0, 200) } }
  }
  return { status: response.status, body }
}

/** The demo seller, set up through the public API exactly as an ISV would. */
async function setUpDemoOrg(broker: RunningBroker, adminToken: string, url: string, marketplaces: Marketplaces): Promise<Demo> {
  const must = (step: string, result: { status: number; body: any }) => {
    if (result.status >= 300) throw new Error(`${step}: HTTP ${result.status} ${JSON.stringify(result.body)}`)
    return result.body
  }
  const created = must(
    'create the demo org',
    await brokerApi(broker, adminToken, '/api/v1/orgs', {
      method: 'POST',
      json: { name: 'Acme Analytics', fulfillmentUrl: `${url}/acme/welcome`, webhookUrl: `${url}/acme/webhooks` },
    }),
  )
  const orgId: string = created.org.id
  const apiKey: string = created.apiKey
  const notificationUrls = {} as Record<Partner, string>
  for (const partner of PARTNERS) {
    const body = must(`configure ${partner}`, await brokerApi(broker, apiKey, `/api/v1/orgs/${orgId}/integrations/${partner}`, { method: 'PUT', json: marketplaces.integrations[partner] }))
    notificationUrls[partner] = body.integration.notificationUrl
  }
  await marketplaces.setNotificationUrls(notificationUrls)
  const form = must(
    'set up the hosted form',
    await brokerApi(broker, apiKey, `/api/v1/orgs/${orgId}/signup-form`, {
      method: 'PUT',
      json: {
        companyName: 'Acme Analytics',
        publicNotes: 'Your workspace is ready within one business day. Questions? sales@acme.example',
        ccEmails: ['sales@acme.example'],
        fields: ['name', 'email', 'company', 'phone'],
      },
    }),
  )
  return { orgId, apiKey, webhook: new Webhook(created.webhookSecret), hostedFormUrl: form.signupForm.url, fulfillment: 'acme', received: [] }
}

function mountRoutes(
  app: Hono,
  ctx: { url: string; port: number; logFile: string; broker: RunningBroker; marketplaces: Marketplaces; mailbox: Awaited<ReturnType<typeof startSmtpServer>>; demo: Demo },
) {
  const { broker, marketplaces, mailbox, demo } = ctx
  const api = (path: string, init?: { method?: string; json?: unknown }) => brokerApi(broker, demo.apiKey, `/api/v1/orgs/${demo.orgId}${path}`, init)
  const info = (): ShellInfo => ({ runtime: broker.runtime, brokerUrl: broker.url, mails: mailbox.mails.length, webhooks: demo.received.length })
  // The names this server is reached by: loopback only. Another Host is a DNS-rebinding page.
  const hosts = new Set([`127.0.0.1:${ctx.port}`, `localhost:${ctx.port}`, `[::1]:${ctx.port}`])
  const refuse = (c: Context, message: string) => c.html(<ProblemPage info={info()} title="Refused" message={message} />, 403)

  app.use('*', async (c, next) => {
    if (!hosts.has(c.req.header('host') ?? '')) return c.text('This sandbox answers on 127.0.0.1 or localhost only.', 421)
    const site = c.req.header('sec-fetch-site')
    const from = c.req.header('origin')
    if (c.req.method === 'POST' && c.req.path === '/acme/webhooks') {
      // The broker's deliveries: never from a browser page.
      if (from !== undefined || site !== undefined) return c.text('webhooks come from the broker, not from a browser', 403)
    } else if (c.req.method === 'POST') {
      // A page of another site must not drive the sandbox (its forms change purchases).
      const sameSite = site === 'same-origin' || (site === undefined && from !== undefined && hosts.has(from.replace(/^http:\/\//, '')))
      if (!sameSite) return refuse(c, 'This form was not sent from the sandbox’s own page.')
    }
    await next()
    if (c.res.headers.get('content-type')?.startsWith('text/html')) {
      c.res.headers.set('content-security-policy', CSP)
      c.res.headers.set('cache-control', 'no-store')
    }
  })

  app.get('/assets/:file', (c) => {
    const asset = ASSETS[c.req.param('file')]
    if (!asset) return c.notFound()
    return c.body(asset.body, 200, { 'content-type': asset.type, 'cache-control': 'no-cache' })
  })

  // The console, signed in as the demo org. The console refuses a sign-in posted by another
  // origin (the sandbox is one: another port), so the sandbox signs in itself, server-side with
  // the broker's own Origin, and hands the browser the session cookie. Cookies are per host name,
  // not per port: set here for 127.0.0.1, the browser sends it to the broker on 127.0.0.1 too.
  // (Anyone who can open this page reads the demo key on the home page anyway: loopback only.)
  app.get('/console', async (c) => {
    const brokerHost = new URL(broker.url).host.replace(/:\d+$/, '')
    if (c.req.header('host') !== `${brokerHost}:${ctx.port}`) return c.redirect(`http://${brokerHost}:${ctx.port}/console`, 303)
    const signedIn = await fetch(`${broker.url}/console/sign-in`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: new URL(broker.url).origin },
      body: new URLSearchParams({ credential: demo.apiKey, next: `/console/orgs/${demo.orgId}` }).toString(),
    })
    const cookie = signedIn.headers.getSetCookie().find((line) => /^(__Host-)?marketbridge_console=[^;]/.test(line))
    const location = signedIn.headers.get('location')
    await signedIn.body?.cancel()
    if (signedIn.status !== 303 || !cookie || !location?.startsWith('/console')) {
      return c.html(<ProblemPage info={info()} title="The console did not sign in" message={`The broker answered the sign-in with HTTP ${signedIn.status}. Its log: ${ctx.logFile}`} />, 502)
    }
    c.header('set-cookie', cookie)
    c.header('cache-control', 'no-store')
    return c.redirect(`${broker.url}${location}`, 303)
  })

  const handoffs = new Map<string, { partner: Partner; url: string; fields: Record<string, string> }>()
  const listEntitlements = async (): Promise<Entitlement[]> => {
    const { status, body } = await api('/entitlements?limit=50')
    return status === 200 ? body.items : []
  }

  app.get('/', async (c) =>
    c.html(<HomePage info={info()} orgId={demo.orgId} apiKey={demo.apiKey} fulfillment={demo.fulfillment} entitlements={await listEntitlements()} error={c.req.query('error')} />),
  )

  app.post('/buy/:partner', async (c) => {
    const partner = c.req.param('partner') as Partner
    if (!PARTNERS.includes(partner)) return c.notFound()
    const form = await c.req.parseBody()
    const plan = typeof form.plan === 'string' ? form.plan : ''
    const landing = `${broker.url}/public/signup/${partner}/orgId/${demo.orgId}`
    let handoff
    try {
      handoff = await marketplaces.buy(partner, plan, landing)
    } catch (error) {
      return c.redirect(`/?error=${encodeURIComponent(error instanceof Error ? error.message : String(error))}`, 303)
    }
    if (handoff.method === 'GET') return c.redirect(handoff.url, 303)
    // Post/redirect/get: the marketplace's page is a GET, so Back never re-posts the purchase.
    const id = randomUUID()
    handoffs.set(id, { partner, ...handoff })
    if (handoffs.size > 100) handoffs.delete(handoffs.keys().next().value!)
    return c.redirect(`/handoff/${id}`, 303)
  })

  app.get('/handoff/:id', (c) => {
    const handoff = handoffs.get(c.req.param('id'))
    if (!handoff) return c.html(<ProblemPage info={info()} title="Purchase not found" message="This hand-off page is gone (the sandbox was restarted?). Buy again." />, 404)
    return c.html(<HandoffPage partner={handoff.partner} url={handoff.url} fields={handoff.fields} />)
  })

  app.post('/settings/fulfillment', async (c) => {
    const target = (await c.req.parseBody()).target === 'hosted' ? 'hosted' : 'acme'
    const fulfillmentUrl = target === 'hosted' ? demo.hostedFormUrl : `${ctx.url}/acme/welcome`
    const result = await api('', { method: 'PATCH', json: { fulfillmentUrl } })
    if (result.status !== 200) return c.redirect(`/?error=${encodeURIComponent(result.body?.error?.message ?? 'could not save')}`, 303)
    demo.fulfillment = target
    return c.redirect('/', 303)
  })

  // The demo ISV: its fulfillment page, its webhook receiver, its customer list.
  app.post('/acme/webhooks', async (c) => {
    const length = Number(c.req.header('content-length') ?? 0)
    if (length > WEBHOOK_BODY_LIMIT) return c.text('too large', 413)
    const body = await c.req.text()
    if (body.length > WEBHOOK_BODY_LIMIT) return c.text('too large', 413)
    const headers = Object.fromEntries(['webhook-id', 'webhook-timestamp', 'webhook-signature'].map((name) => [name, c.req.header(name) ?? '']))
    let payload: any = null
    let problem: string | null = null
    try {
      payload = demo.webhook.verify(body, headers)
    } catch (error) {
      problem = error instanceof Error ? error.message : 'bad signature'
    }
    const id = headers['webhook-id']!
    // A redelivery (same webhook-id) is acknowledged and not shown twice: the ISV's idempotency.
    if (payload && demo.received.some((hook) => hook.verified && hook.id === id)) return c.body(null, 204)
    let pretty = body.slice(0, payload ? WEBHOOK_BODY_LIMIT : 2000)
    try {
      if (payload) pretty = JSON.stringify(payload, null, 2)
    } catch {
      // shown as it came
    }
    const hook: ReceivedWebhook = {
      id,
      type: payload?.type ?? '(unverified)',
      verified: payload !== null,
      problem,
      entitlementId: payload?.data?.entitlement?.id ?? payload?.data?.entitlementId ?? (payload?.entityType === 'ENTITLEMENT' ? payload?.entityId : null) ?? null,
      receivedAt: new Date().toISOString(),
      createdAt: typeof payload?.createdAt === 'string' ? payload.createdAt : new Date().toISOString(),
      body: pretty,
    }
    // Newest first by the event's own time: deliveries may arrive out of order.
    const at = demo.received.findIndex((other) => other.createdAt < hook.createdAt)
    demo.received.splice(at < 0 ? demo.received.length : at, 0, hook)
    const refused = demo.received.filter((other) => !other.verified)
    if (refused.length > 20) demo.received.splice(demo.received.indexOf(refused.at(-1)!), 1)
    if (demo.received.length > 500) demo.received.length = 500
    return payload ? c.body(null, 204) : c.json({ error: 'invalid signature' }, 401)
  })

  app.get('/acme', async (c) => c.html(<AcmePage info={info()} entitlements={await listEntitlements()} webhooks={demo.received} />))

  app.get('/acme/welcome', async (c) => {
    const id = c.req.query('sugerEntitlementId') ?? ''
    if (!ENTITLEMENT_ID.test(id)) {
      return c.html(<ProblemPage info={info()} title="No entitlement" message="Acme's welcome page is opened by the broker's redirect, with ?sugerEntitlementId=ent_…" />, 400)
    }
    const read = await api(`/entitlements/${id}`)
    if (read.status !== 200) {
      return c.html(<ProblemPage info={info()} title="Unknown entitlement" message={`The broker answered ${read.status}: ${read.body?.error?.message ?? ''}`} />, 404)
    }
    const entitlement = read.body as Entitlement
    const [events, usage] = await Promise.all([api(`/entitlements/${id}/events`), api(`/entitlements/${id}/usage?limit=20`)])
    const usageItems: UsageView[] = usage.status === 200 ? usage.body.items : []
    const closedHour = thisHour()
    // Keep the page live while something is on its way: a pending activation, usage of a closed hour.
    // (`since`: a marketplace action the broker had not applied yet when the page was sent.)
    const since = c.req.query('since')
    const waiting =
      entitlement.status === 'PENDING_START' ||
      (since !== undefined && since === entitlement.updatedAt) ||
      usageItems.some((u) => u.status === 'PENDING' && Date.parse(u.timestamp) < closedHour)
    const hosted = new URL(demo.hostedFormUrl)
    hosted.searchParams.set('sugerEntitlementId', id)
    hosted.searchParams.set('partner', entitlement.partner)
    return c.html(
      <WelcomePage
        info={info()}
        orgId={demo.orgId}
        entitlement={entitlement}
        raw={JSON.stringify(entitlement, null, 2)}
        events={events.status === 200 ? (events.body.items as EventView[]) : []}
        usage={usageItems}
        webhooks={demo.received.filter((hook) => hook.entitlementId === id)}
        actions={marketplaces.actionsFor(entitlement)}
        sent={marketplaces.sent.filter((s) => s.externalId === entitlement.externalId || entitlement.externalId.endsWith(`/${s.externalId}`))}
        note={c.req.query('note') ?? null}
        noteBad={c.req.query('bad') === '1'}
        hostedFormUrl={hosted.toString()}
        refresh={waiting ? 2 : undefined}
      />,
    )
  })

  const back = (id: string, note: string, bad = false) => `/acme/welcome?sugerEntitlementId=${encodeURIComponent(id)}&note=${encodeURIComponent(note)}${bad ? '&bad=1' : ''}`

  // The entitlement actions take ids from the URL: only well-formed ones.
  app.use('/acme/entitlements/:id/*', async (c, next) => {
    if (!ENTITLEMENT_ID.test(c.req.param('id') ?? '')) return c.html(<ProblemPage info={info()} title="Unknown entitlement" message="That is not an entitlement id." />, 404)
    await next()
  })

  app.post('/acme/entitlements/:id/marketplace', async (c) => {
    const id = c.req.param('id')
    const action = (await c.req.parseBody()).action as ActionId
    const before = await api(`/entitlements/${id}`)
    if (before.status !== 200) return c.redirect(back(id, 'Unknown entitlement.', true), 303)
    const entitlement = before.body as Entitlement
    if (!marketplaces.actionsFor(entitlement).some((a) => a.id === action)) return c.redirect(back(id, `"${action}" is not possible now.`, true), 303)
    let result
    try {
      result = await marketplaces.act(entitlement, action)
    } catch (error) {
      return c.redirect(back(id, error instanceof Error ? error.message : String(error), true), 303)
    }
    const ok = result.status >= 200 && result.status < 300
    // The broker answers the marketplace at once and applies the change right after: wait for it.
    let applied = !ok
    for (let i = 0; i < 50 && !applied; i++) {
      await new Promise((r) => setTimeout(r, 100))
      const now = await api(`/entitlements/${id}`)
      applied = now.status === 200 && now.body.updatedAt !== entitlement.updatedAt
    }
    const note = `${result.sent}: the broker answered HTTP ${result.status}.${applied ? '' : ' It has not applied it yet; this page refreshes until it has.'}`
    return c.redirect(`${back(id, note, !ok)}${applied ? '' : `&since=${encodeURIComponent(entitlement.updatedAt)}`}`, 303)
  })

  app.post('/acme/entitlements/:id/usage', async (c) => {
    const id = c.req.param('id')
    const form = await c.req.parseBody()
    const quantity = Number(form.quantity)
    if (typeof form.quantity !== 'string' || !Number.isFinite(quantity)) return c.redirect(back(id, 'Enter a number of API calls.', true), 303)
    // "In the last hour": one second before this hour began, so the hour is already closed and the
    // broker's reporter sends it on its next run. Real usage carries its real time.
    const timestamp = form.when === 'now' ? undefined : new Date(thisHour() - 1000).toISOString()
    const result = await api(`/entitlements/${id}/usage`, {
      method: 'POST',
      json: { dimension: USAGE_DIMENSION, quantity, ...(timestamp ? { timestamp } : {}), idempotencyKey: `sandbox-${randomUUID()}` },
    })
    if (result.status !== 202) return c.redirect(back(id, `The broker refused the usage: ${result.body?.error?.message ?? `HTTP ${result.status}`}`, true), 303)
    return c.redirect(back(id, `Recorded ${quantity} ${USAGE_DIMENSION} (${result.body.usageRecord.id}); the broker reports the hour to the marketplace once it has closed.`), 303)
  })

  app.get('/mailbox', async (c) => {
    const mails = await Promise.all(
      [...mailbox.mails].reverse().map(async (mail) => {
        const parsed = await parseMail(mail.raw)
        return { ...parsed, receivedAt: mail.receivedAt, raw: mail.raw }
      }),
    )
    return c.html(<MailboxPage info={info()} mails={mails} smtp={`smtp://127.0.0.1:${mailbox.port}`} />)
  })

  app.notFound((c) => c.html(<ProblemPage info={info()} title="Not found" message="There is nothing at this address in the sandbox." />, 404))
  app.onError((error, c) => {
    // The one likely failure: the broker is gone (it logs why).
    const brokerDown = error instanceof TypeError && /fetch failed/.test(error.message)
    const message = brokerDown ? `The broker is not answering at ${broker.url}: it may have stopped. Its log: ${ctx.logFile}` : error.message
    return c.html(<ProblemPage info={info()} title={brokerDown ? 'The broker is not answering' : 'Something went wrong'} message={message} />, brokerDown ? 502 : 500)
  })
}
