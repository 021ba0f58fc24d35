import { WorkerMailer, type WorkerMailerOptions } from 'worker-mailer'
import type { EmailMessage } from './deps'

/**
 * SMTP on Workers: `worker-mailer`, an SMTP client over `cloudflare:sockets` (`connect()`).
 * `smtps://` is implicit TLS; `smtp://` upgrades with STARTTLS when the server offers it.
 * Without credentials in SMTP_URL no AUTH is attempted, as nodemailer does on Node.
 * Only the Workers entry imports this module (Node uses nodemailer, src/node/email.ts).
 */
export function createWorkerEmailSender(smtpUrl: string) {
  const url = new URL(smtpUrl)
  const secure = url.protocol === 'smtps:'
  const loopback = url.hostname === 'localhost' || url.hostname === '127.0.0.1' || url.hostname === '[::1]'
  // worker-mailer logs in even when a server offers no STARTTLS: a password goes only over smtps://
  // (implicit TLS), except to a server on this machine.
  const refusal = url.username && !secure && !loopback ? 'SMTP_URL has credentials but is not smtps://: on Workers the password is sent only over implicit TLS (smtps://host:465)' : null
  const options = {
    host: url.hostname,
    port: Number(url.port || (secure ? 465 : 587)),
    secure,
    startTls: !secure,
    ...(url.username ? { credentials: { username: decodeURIComponent(url.username), password: decodeURIComponent(url.password) } } : {}),
    // worker-mailer tries none unless told which it may use.
    authType: ['plain', 'login', 'cram-md5'] as Array<'plain' | 'login' | 'cram-md5'>,
    socketTimeoutMs: 20_000,
    responseTimeoutMs: 10_000,
    // Its own log lines name hosts and recipients outside the broker's logger.
    logLevel: 4 as never,
  }
  return async (message: EmailMessage) => {
    // "Name <address>" as worker-mailer takes it.
    const named = /^\s*(.*?)\s*<([^<>]+)>\s*$/.exec(message.from)
    const from = named ? { name: named[1]!.replace(/^"|"$/g, '') || undefined, email: named[2]! } : message.from
    if (refusal) throw new Error(refusal)
    const mailer = await connectMailer(options)
    try {
      await mailer.send({ from, to: message.to, cc: message.cc.length ? message.cc : undefined, subject: message.subject, text: message.text, html: message.html })
    } finally {
      await mailer.close().catch(() => undefined)
    }
  }
}

/** The steps of worker-mailer's `connect()`, private in its types. */
interface SessionSteps {
  auth(): Promise<void>
  initializeSmtpSession(): Promise<void>
  start(): Promise<void>
}

/**
 * `WorkerMailer.connect()`, except that without credentials the session skips AUTH. worker-mailer
 * (1.2.1, its latest release) logs in whenever the server's EHLO lists AUTH and throws "smtp server
 * requires authentication, but no credentials found" when it has none, with no option to skip it:
 * a relay that advertises AUTH but lets this host send without it (a relay trusting its network)
 * would be unusable, while nodemailer sends. `connect()` is just: construct (opens the socket),
 * run the session (greeting, EHLO, STARTTLS, AUTH), start the send loop; here the AUTH step of
 * this one instance is empty. With credentials, worker-mailer's own `connect()` runs unchanged.
 */
async function connectMailer(options: WorkerMailerOptions): Promise<WorkerMailer> {
  if (options.credentials) return WorkerMailer.connect(options)
  const steps = WorkerMailer.prototype as unknown as Partial<SessionSteps>
  // A worker-mailer that renamed its steps fails loudly here, before a socket is opened.
  if (typeof steps.auth !== 'function' || typeof steps.initializeSmtpSession !== 'function' || typeof steps.start !== 'function') {
    throw new Error('worker-mailer no longer has the session steps src/worker-email.ts relies on (auth, initializeSmtpSession, start)')
  }
  const Mailer = WorkerMailer as unknown as new (options: WorkerMailerOptions) => WorkerMailer
  const mailer = new Mailer(options)
  const session = mailer as unknown as SessionSteps
  session.auth = async () => undefined
  await session.initializeSmtpSession()
  // As connect() does: the loop runs on; a send's own failure rejects that send().
  void session.start().catch(() => undefined)
  return mailer
}
