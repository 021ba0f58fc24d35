import { WorkerMailer } from 'worker-mailer'
import type { EmailMessage } from './deps'

/**
 * SMTP on Workers: `worker-mailer`, an SMTP client over `cloudflare:sockets` (`connect()`).
 * `smtps://` is implicit TLS; `smtp://` upgrades with STARTTLS when the server offers it.
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
    const mailer = await WorkerMailer.connect(options)
    try {
      await mailer.send({ from, to: message.to, cc: message.cc.length ? message.cc : undefined, subject: message.subject, text: message.text, html: message.html })
    } finally {
      await mailer.close().catch(() => undefined)
    }
  }
}
