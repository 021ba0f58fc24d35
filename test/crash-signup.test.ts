import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { ADMIN_TOKEN, type AzureSetup, sleep, startAzure, waitFor } from './helpers'
import { startServer } from './node-process'
import { startSmtpServer } from './smtp'
import { httpBroker } from './worker-process'

/**
 * The email outbox survives a crash: buyers submit the hosted form while the SMTP server refuses,
 * the Node server is killed with SIGKILL, and started again on the same database with the SMTP
 * server back: every signup's confirmation arrives, once.
 */
let azure: AzureSetup
let smtp: Awaited<ReturnType<typeof startSmtpServer>>
let refusing = true
let dir: string

beforeAll(async () => {
  azure = await startAzure()
  smtp = await startSmtpServer({ refuse: () => refusing })
  dir = mkdtempSync(join(tmpdir(), 'marketbridge-crash-signup-'))
})
afterAll(async () => {
  await smtp?.close()
  await azure?.close()
  rmSync(dir, { recursive: true, force: true })
})

test('SIGKILL with confirmation emails pending, restart: every one is sent, once', async () => {
  const env = { ADMIN_TOKEN, DATABASE_URL: `sqlite:${join(dir, 'broker.db')}`, AZURE_MARKETPLACE_API_URL: azure.url, AZURE_LOGIN_URL: azure.url, SMTP_URL: smtp.url, JOB_INTERVAL_MS: '200' }
  const first = await startServer(dir, env)
  const broker = httpBroker(first.url)
  const { org, apiKey } = await broker.createOrg()
  await broker.request(`/api/v1/orgs/${org.id}/integrations/azure`, { method: 'PUT', token: apiKey, json: { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret } })
  const { signupForm } = (await (await broker.request(`/api/v1/orgs/${org.id}/signup-form`, { method: 'PUT', token: apiKey, json: { companyName: 'Crash Co' } })).json()) as { signupForm: { signupId: string } }
  const buyers: string[] = []
  for (let i = 0; i < 5; i++) {
    const sub = azure.emulator.addSubscription({ appId: azure.clientId })
    const landing = await broker.request(`/public/signup/azure/orgId/${org.id}?token=${encodeURIComponent(azure.emulator.issuePurchaseToken(sub.id))}`, { token: null })
    const entitlementId = new URL(landing.headers.get('location')!).searchParams.get('sugerEntitlementId')!
    const path = `/public/signup/newclient/${signupForm.signupId}?sugerEntitlementId=${entitlementId}`
    const csrf = /name="csrf" value="([^"]+)"/.exec(await (await broker.request(path, { token: null })).text())![1]!
    const email = `buyer${i}@crash.example`
    const done = await broker.request(path, { method: 'POST', token: null, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ csrf, name: `Buyer ${i}`, email }).toString() })
    expect(done.status).toBe(200)
    buyers.push(email)
  }
  // The kill lands once the broker has tried to send and the SMTP server has refused.
  const Database = (await import('better-sqlite3')).default
  const watch = new Database(join(dir, 'broker.db'), { readonly: true })
  await waitFor('a send refused by the SMTP server', () => (watch.prepare("SELECT count(*) AS n FROM emails WHERE status = 'PENDING' AND attempts > 0").get() as { n: number }).n > 0)
  watch.close()
  await first.stop('SIGKILL')
  expect(smtp.mails).toEqual([])

  refusing = false
  const second = await startServer(dir, env)
  try {
    const again = httpBroker(second.url)
    // Refused ones are retried a minute later; ones in flight at the kill are taken again when their
    // lease (60 s) has run out. Time moves on here instead of the test waiting for it.
    const db = new Database(join(dir, 'broker.db'))
    const pending = db.prepare("SELECT count(*) AS n FROM emails WHERE status = 'PENDING'").get() as { n: number }
    expect(pending.n).toBe(5)
    db.prepare("UPDATE emails SET next_attempt_at = ?, lease_until = NULL WHERE status = 'PENDING'").run(new Date().toISOString())
    db.close()
    const deadline = Date.now() + 30_000
    let statuses: string[] = []
    while (Date.now() < deadline) {
      statuses = ((await (await again.request(`/api/v1/orgs/${org.id}/signups`, { token: apiKey })).json()) as { items: Array<{ emailStatus: string }> }).items.map((i) => i.emailStatus)
      if (statuses.length === 5 && statuses.every((s) => s === 'SENT')) break
      await sleep(200)
    }
    expect(statuses).toEqual(['SENT', 'SENT', 'SENT', 'SENT', 'SENT'])
    expect(smtp.mails.flatMap((m) => m.to).sort()).toEqual([...buyers].sort())
  } finally {
    await second.stop()
  }
}, 90_000)
