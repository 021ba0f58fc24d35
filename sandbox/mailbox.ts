import type { AddressInfo } from 'node:net'
import PostalMime from 'postal-mime'
import { SMTPServer } from 'smtp-server'

export interface ReceivedMail {
  from: string
  to: string[]
  raw: string
  receivedAt: string
  /** The user the session logged in as; null when it sent without AUTH. */
  user: string | null
}

/**
 * A real SMTP server on loopback (the `smtp-server` package): what the broker sends arrives here.
 * The sandbox's in-process mailbox and the tests' SMTP server.
 * With `credentials` it requires AUTH (PLAIN/LOGIN; no TLS on loopback) and the URL carries them;
 * without, it offers no AUTH at all, or (`offerAuth`) lists AUTH in its EHLO but lets anyone send
 * without it, as a relay that trusts its network does. `address` is another 127/8 address to listen
 * on (one the broker does not count as this machine). `authAttempts` counts every AUTH command.
 */
export async function startSmtpServer(options: { refuse?: () => boolean; credentials?: { user: string; pass: string }; offerAuth?: boolean; address?: string } = {}) {
  const mails: ReceivedMail[] = []
  const { credentials } = options
  const address = options.address ?? '127.0.0.1'
  let authAttempts = 0
  const server = new SMTPServer({
    size: 10 * 1024 * 1024,
    authOptional: !credentials,
    allowInsecureAuth: true,
    authMethods: ['PLAIN', 'LOGIN'],
    disabledCommands: credentials || options.offerAuth ? ['STARTTLS'] : ['STARTTLS', 'AUTH'],
    logger: false,
    onAuth(auth, _session, callback) {
      authAttempts++
      if (credentials && auth.username === credentials.user && auth.password === credentials.pass) return callback(null, { user: auth.username })
      callback(new Error('Invalid username or password'))
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = []
      stream.on('data', (chunk: Buffer) => chunks.push(chunk))
      stream.on('end', () => {
        // Decoded once, whole: a character split across chunks stays intact.
        const raw = Buffer.concat(chunks).toString('utf8')
        if (options.refuse?.()) return callback(Object.assign(new Error('mailbox unavailable, try later'), { responseCode: 451 }))
        mails.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw,
          receivedAt: new Date().toISOString(),
          user: typeof session.user === 'string' ? session.user : null,
        })
        callback()
      })
    },
  })
  await new Promise<void>((resolve) => server.listen(0, address, () => resolve()))
  const port = (server.server.address() as AddressInfo).port
  const userinfo = credentials ? `${encodeURIComponent(credentials.user)}:${encodeURIComponent(credentials.pass)}@` : ''
  return {
    url: `smtp://${userinfo}${address}:${port}`,
    port,
    mails,
    get authAttempts() {
      return authAttempts
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

/** A header of a raw message, unfolded. */
export function header(raw: string, name: string): string | null {
  const head = raw.split(/\r?\n\r?\n/)[0]!.replace(/\r?\n[ \t]+/g, ' ')
  const line = head.split(/\r?\n/).find((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`))
  return line ? line.slice(name.length + 1).trim() : null
}

export interface ParsedMail {
  from: string
  to: string[]
  cc: string[]
  subject: string
  date: string | null
  text: string
  html: string | null
}

const addresses = (list: Array<{ address?: string; name?: string; group?: unknown[] }> | undefined) =>
  (list ?? []).map((a) => (a.name ? `${a.name} <${a.address ?? ''}>` : (a.address ?? '')))

/** A received message as a person reads it (headers decoded, the text part), parsed with postal-mime. */
export async function parseMail(raw: string): Promise<ParsedMail> {
  const email = await PostalMime.parse(raw)
  return {
    from: addresses(email.from ? [email.from] : []).join(', '),
    to: addresses(email.to),
    cc: addresses(email.cc),
    subject: email.subject ?? '',
    date: email.date ?? null,
    text: email.text ?? '',
    html: email.html ?? null,
  }
}
