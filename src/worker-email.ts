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
  }
  return async (message: EmailMessage) => {
    // "Name <address>" as worker-mailer takes it.
    const named = /^\s*(.*?)\s*<([^<>]+)>\s*$/.exec(message.from)
    const from = named ? { name: named[1]!.replace(/^"|"$/g, '') || undefined, email: named[2]! } : message.from
    await WorkerMailer.send(options, { from, to: message.to, cc: message.cc.length ? message.cc : undefined, subject: message.subject, text: message.text, html: message.html })
  }
}
