import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { runJobs } from '../src/domain/jobs'
import { createLandingService } from '../src/domain/landing'
import { type AzureSetup, type TestBroker, createTestBroker, sleep, startAzure, submitSignupForm } from './helpers'
import { startSmtpServer } from './smtp'
import { type WorkerProcess, httpBroker, startWorker } from './worker-process'

/**
 * The confirmation email on both runtimes, through the signup form, to two kinds of SMTP server:
 * - a relay that lists AUTH in its EHLO but lets this host send without it (`authOptional`), with
 *   `SMTP_URL=smtp://relay:port` (no credentials): both send, without AUTH (worker-mailer on its own
 *   would insist on logging in and fail);
 * - a server with credentials in SMTP_URL but no TLS at all, on 127.0.0.2 (not a host the broker
 *   counts as this machine): neither runtime sends the password (Node requires STARTTLS, Workers
 *   refuses smtp:// with credentials), so no AUTH reaches it and the email is not sent.
 */
let azure: AzureSetup
let relay: Awaited<ReturnType<typeof startSmtpServer>>
let plain: Awaited<ReturnType<typeof startSmtpServer>>
let node: { relay: TestBroker; plain: TestBroker }
let worker: { relay: WorkerProcess; plain: WorkerProcess }
const dirs: string[] = []

beforeAll(async () => {
  azure = await startAzure()
  relay = await startSmtpServer({ offerAuth: true })
  plain = await startSmtpServer({ credentials: { user: 'mailer@acme.example', pass: 'secret' }, address: '127.0.0.2' })
  const env = (smtpUrl: string) => ({ AZURE_MARKETPLACE_API_URL: azure.url, AZURE_LOGIN_URL: azure.url, SMTP_URL: smtpUrl, EMAIL_FROM: 'Acme <hello@acme.example>' })
  node = { relay: await createTestBroker(env(relay.url)), plain: await createTestBroker(env(plain.url)) }
  const start = (smtpUrl: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'marketbridge-smtp-'))
    dirs.push(dir)
    return startWorker(dir, env(smtpUrl))
  }
  worker = { relay: await start(relay.url), plain: await start(plain.url) }
}, 180_000)

afterAll(async () => {
  await worker?.relay?.stop()
  await worker?.plain?.stop()
  await node?.relay?.close()
  await node?.plain?.close()
  await relay?.close()
  await plain?.close()
  await azure?.close()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

type Server = 'relay' | 'plain'
const runtimes: Array<[string, (server: Server) => Pick<TestBroker, 'request' | 'createOrg'>, (server: Server) => Promise<unknown>, (server: Server) => string[]]> = [
  ['node + SQLite', (server) => node[server], (server) => runJobs(node[server].deps, createLandingService(node[server].deps), node[server].deps.logger), (server) => node[server].logs],
  ['workerd + D1', (server) => httpBroker(worker[server].url), (server) => fetch(`${worker[server].url}/__scheduled?cron=${encodeURIComponent('* * * * *')}`), (server) => worker[server].output().split('\n')],
]

describe.each(runtimes)('%s', (name, client, job, logs) => {
  test('SMTP_URL without credentials, a relay that advertises AUTH: the confirmation is sent without AUTH, emailStatus SENT', async () => {
    const attempts = relay.authAttempts
    const signup = await submitSignupForm(client('relay'), azure, { companyName: `Relay on ${name}` })
    let mail = relay.mails.find((m) => m.to.includes(signup.buyer))
    for (let i = 0; i < 100 && !mail; i++) {
      await job('relay')
      await sleep(100)
      mail = relay.mails.find((m) => m.to.includes(signup.buyer))
    }
    expect(mail, `the confirmation email; the broker said: ${logs('relay').filter((l) => /email/i.test(l)).slice(-3).join('\n')}`).toBeTruthy()
    expect(mail!.user).toBeNull()
    expect(relay.authAttempts).toBe(attempts)
    let status = ''
    for (let i = 0; i < 50 && status !== 'SENT'; i++) {
      status = await signup.emailStatus()
      if (status !== 'SENT') await sleep(100)
    }
    expect(status).toBe('SENT')
  }, 60_000)

  test('SMTP_URL with credentials to a server without TLS (not this machine): the password is never sent, the email not either', async () => {
    const signup = await submitSignupForm(client('plain'), azure, { companyName: `Plain on ${name}` })
    // The send was attempted and failed (the broker's own log line for this org) ...
    const failed = () => logs('plain').some((line) => line.includes('confirmation email failed') && line.includes(signup.org.id))
    for (let i = 0; i < 100 && !failed(); i++) await sleep(100)
    expect(failed(), logs('plain').slice(-5).join('\n')).toBe(true)
    // ... and only then: no AUTH ever reached the server, nothing was delivered, the email waits for a retry.
    expect(plain.authAttempts).toBe(0)
    expect(plain.mails.filter((m) => m.to.includes(signup.buyer))).toEqual([])
    expect(await signup.emailStatus()).toBe('PENDING')
  }, 60_000)
})
