import nodemailer from 'nodemailer'
import type { EmailMessage } from '../deps'

/**
 * SMTP on Node with nodemailer: one pooled transport per SMTP_URL (`smtp://user:pass@host:port`,
 * `smtps://…` for implicit TLS; STARTTLS is used when the server offers it). Timeouts are short so
 * the outbox, not the caller, waits for a slow server.
 */
export function createNodeEmailSender(smtpUrl: string) {
  const transport = nodemailer.createTransport(smtpUrl, {
    pool: true,
    maxConnections: 2,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 20_000,
  } as never)
  return async (message: EmailMessage) => {
    await transport.sendMail({ from: message.from, to: message.to, cc: message.cc.length ? message.cc : undefined, subject: message.subject, text: message.text, html: message.html })
  }
}
