import nodemailer from 'nodemailer'
import type { EmailMessage } from '../deps'

/**
 * SMTP on Node with nodemailer: one transport per SMTP_URL (`smtp://user:pass@host:port`,
 * `smtps://…` for implicit TLS; STARTTLS is used when the server offers it). Timeouts are short so
 * the outbox, not the caller, waits for a slow server.
 */
export function createNodeEmailSender(smtpUrl: string) {
  const url = new URL(smtpUrl)
  const loopback = url.hostname === 'localhost' || url.hostname === '127.0.0.1' || url.hostname === '[::1]'
  // One object with the URL in it: createTransport(url, options) would take these options as
  // message defaults and silently drop them (requireTLS included). A connection per email (no
  // pool): the outbox sends little, and an idle pooled connection would hold the server open.
  const transport = nodemailer.createTransport({
    url: smtpUrl,
    // A password never goes over a connection without TLS (STARTTLS is required), except to this machine.
    requireTLS: Boolean(url.username) && url.protocol === 'smtp:' && !loopback,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 20_000,
  } as never)
  return async (message: EmailMessage) => {
    await transport.sendMail({ from: message.from, to: message.to, cc: message.cc.length ? message.cc : undefined, subject: message.subject, text: message.text, html: message.html })
  }
}
