import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { Webhook } from 'standardwebhooks'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { runJobs } from '../src/domain/jobs'
import { createLandingService } from '../src/domain/landing'
import { type AzureSetup, type TestBroker, createTestBroker, sleep, startAzure, startHookReceiver, submitSignupForm } from './helpers'
import { header, startSmtpServer } from './smtp'
import { type WorkerProcess, httpBroker, startWorker } from './worker-process'

/**
 * The hosted form on both runtimes, through HTTP only: the Node app (nodemailer) and `npm run
 * dev:worker` (workerd + D1, SMTP over `cloudflare:sockets` with worker-mailer), each sending the
 * confirmation to a real SMTP server on loopback.
 */
let azure: AzureSetup
let smtp: Awaited<ReturnType<typeof startSmtpServer>>
let hooks: Awaited<ReturnType<typeof startHookReceiver>>
let node: TestBroker
let worker: WorkerProcess
let persistTo: string

beforeAll(async () => {
  azure = await startAzure()
  smtp = await startSmtpServer({ credentials: { user: 'mailer@acme.example', pass: 'p@ss:w/rd' } })
  hooks = await startHookReceiver()
  const env = { AZURE_MARKETPLACE_API_URL: azure.url, AZURE_LOGIN_URL: azure.url, SMTP_URL: smtp.url, EMAIL_FROM: 'Acme <hello@acme.example>' }
  node = await createTestBroker(env)
  persistTo = mkdtempSync(join(tmpdir(), 'marketbridge-signup-'))
  worker = await startWorker(persistTo, env)
}, 120_000)

afterAll(async () => {
  await worker?.stop()
  await node?.close()
  await hooks?.close()
  await smtp?.close()
  await azure?.close()
  rmSync(persistTo, { recursive: true, force: true })
})

type Client = Pick<TestBroker, 'request' | 'createOrg'>
const runtimes: Array<[string, () => Client, () => Promise<unknown>]> = [
  ['node + SQLite', () => node, () => runJobs(node.deps, createLandingService(node.deps), node.deps.logger)],
  // dev:worker fires the cron trigger by itself: the test only waits for a whole run.
  ['workerd + D1', () => httpBroker(worker.url), () => worker.jobRan()],
]

describe.each(runtimes)('%s', (name, client, job) => {
  test('landing → form → submission → confirmation email with CC at the SMTP server, signup.submitted, emailStatus SENT', async () => {
    const broker = client()
    const created = await submitSignupForm(broker, azure, { companyName: `Acme on ${name}`, ccEmails: ['cc@acme.example'], webhookUrl: hooks.url })
    const { org, html, buyer } = created
    expect(html).toContain(`Acme on ${name}`)

    let mail = smtp.mails.find((m) => m.to.includes(buyer))
    for (let i = 0; i < 100 && !mail; i++) {
      await job()
      await sleep(100)
      mail = smtp.mails.find((m) => m.to.includes(buyer))
    }
    if (!mail) console.log('WORKER OUTPUT', worker.output().split('\n').filter((l) => /email|smtp|mail|error/i.test(l)).slice(-8).join('\n'))
    expect(mail, 'the confirmation email').toBeTruthy()
    expect(mail!.to.sort()).toEqual([buyer, 'cc@acme.example'].sort())
    expect(header(mail!.raw, 'subject')).toContain(`Acme on ${name}`)
    expect(mail!.from).toBe('hello@acme.example')
    // The credentials of SMTP_URL were used (AUTH over loopback).
    expect(mail!.user).toBe('mailer@acme.example')

    let status = ''
    for (let i = 0; i < 50 && status !== 'SENT'; i++) {
      status = await created.emailStatus()
      if (status !== 'SENT') await sleep(100)
    }
    expect(status).toBe('SENT')
    let hook = hooks.received.find((r) => r.body.includes('"signup.submitted"') && r.body.includes(org.id))
    for (let i = 0; i < 50 && !hook; i++) {
      await job()
      await sleep(100)
      hook = hooks.received.find((r) => r.body.includes('"signup.submitted"') && r.body.includes(org.id))
    }
    expect((new Webhook(created.webhookSecret!).verify(hook!.body, hook!.headers) as { entityType: string }).entityType).toBe('SIGNUP')
  }, 120_000)

  test('property: any form post and any signup-form body is a 2xx/4xx page or error, never a 5xx; a refused post stores nothing', async () => {
    const broker = client()
    const { org, apiKey } = await broker.createOrg()
    await broker.request(`/api/v1/orgs/${org.id}/integrations/azure`, { method: 'PUT', token: apiKey, json: { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret } })
    const { signupForm } = (await (await broker.request(`/api/v1/orgs/${org.id}/signup-form`, { method: 'PUT', token: apiKey, json: { companyName: 'Fuzz' } })).json()) as { signupForm: { url: string; signupId: string } }
    await broker.request(`/api/v1/orgs/${org.id}`, { method: 'PATCH', token: apiKey, json: { fulfillmentUrl: signupForm.url.replace(/^http:\/\/[^/]+/, 'http://localhost') } })
    const sub = azure.emulator.addSubscription({ appId: azure.clientId })
    const landing = await broker.request(`/public/signup/azure/orgId/${org.id}?token=${encodeURIComponent(azure.emulator.issuePurchaseToken(sub.id))}`, { token: null })
    const entitlementId = new URL(landing.headers.get('location')!).searchParams.get('sugerEntitlementId')!
    const path = `/public/signup/newclient/${signupForm.signupId}?sugerEntitlementId=${entitlementId}`
    const stored = async () => ((await (await broker.request(`/api/v1/orgs/${org.id}/signups`, { token: apiKey })).json()) as { items: unknown[] }).items.length
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(fc.constantFrom('csrf', 'name', 'email', 'company', 'phone', 'notes', 'x'), fc.oneof(fc.string({ maxLength: 300 }), fc.constant('<script>alert(1)</script>'), fc.constant('a@b.example'))),
        fc.constantFrom(path, `/public/signup/newclient/${signupForm.signupId}?sugerEntitlementId=ent_nope`, `/public/signup/newclient/sgn_x?sugerEntitlementId=${entitlementId}`),
        fc.constantFrom('application/x-www-form-urlencoded', 'text/plain', 'application/json'),
        async (fields, target, type) => {
          const response = await broker.request(target, { method: 'POST', token: null, headers: { 'content-type': type }, body: new URLSearchParams(fields).toString() })
          expect([400, 403, 404, 413]).toContain(response.status)
          expect(await response.text()).not.toMatch(/<script>alert/)
        },
      ),
      { numRuns: 40 },
    )
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.jsonValue(), fc.record({ companyName: fc.string({ maxLength: 300 }), logoUrl: fc.oneof(fc.webUrl(), fc.string()), ccEmails: fc.array(fc.oneof(fc.emailAddress(), fc.string()), { maxLength: 12 }), fields: fc.array(fc.string(), { maxLength: 6 }) }, { requiredKeys: [] })), async (body) => {
        const response = await broker.request(`/api/v1/orgs/${org.id}/signup-form`, { method: 'PUT', token: apiKey, json: body })
        expect([200, 400]).toContain(response.status)
      }),
      { numRuns: 40 },
    )
    // No token from the page was ever sent, so nothing could be stored.
    expect(await stored()).toBe(0)
  }, 120_000)
})
