import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { browserAvailable, launchBrowser, screenshotPath } from './browser'
import { ADMIN_TOKEN, type AzureSetup, freePort, sleep, startAzure, startHookReceiver } from './helpers'
import { type Running, startServer } from './node-process'
import { header, startSmtpServer } from './smtp'

/**
 * The hosted form in Chromium, as a buyer uses it: the Azure landing 303s to the form (the org's
 * fulfillmentUrl is the form's url), the buyer makes a mistake, corrects it, submits; the signup is
 * stored, the confirmation email with its CC reaches the SMTP server, the ISV's webhook fires.
 * Screenshots of the form (desktop and 390 px), the error state and the thank-you page are written
 * to test-results/.
 */
let azure: AzureSetup
let smtp: Awaited<ReturnType<typeof startSmtpServer>>
let hooks: Awaited<ReturnType<typeof startHookReceiver>>
let server: Running
let base: string
let browser: Browser
let dir: string

beforeAll(async () => {
  if (!browserAvailable) return
  azure = await startAzure()
  smtp = await startSmtpServer()
  hooks = await startHookReceiver()
  dir = mkdtempSync(join(tmpdir(), 'marketbridge-browser-'))
  const port = await freePort()
  base = `http://127.0.0.1:${port}`
  server = await startServer(dir, {
    PORT: String(port),
    PUBLIC_URL: base,
    ADMIN_TOKEN,
    AZURE_MARKETPLACE_API_URL: azure.url,
    AZURE_LOGIN_URL: azure.url,
    SMTP_URL: smtp.url,
    EMAIL_FROM: 'Acme Analytics <hello@acme.example>',
    JOB_INTERVAL_MS: '200',
  })
  browser = await launchBrowser()
}, 60_000)

afterAll(async () => {
  await browser?.close()
  await server?.stop()
  await hooks?.close()
  await smtp?.close()
  await azure?.close()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

const api = async (path: string, init: { method?: string; token?: string; json?: unknown } = {}) => {
  const response = await fetch(`${base}${path}`, {
    method: init.method ?? 'GET',
    headers: { authorization: `Bearer ${init.token ?? ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: init.json === undefined ? undefined : JSON.stringify(init.json),
  })
  return { status: response.status, body: (await response.json()) as any }
}

async function isvWithForm(form: Record<string, unknown>) {
  const created = await api('/api/v1/orgs', { method: 'POST', json: { name: 'Acme', fulfillmentUrl: 'https://placeholder.example/s', webhookUrl: hooks.url } })
  const { org, apiKey } = created.body as { org: { id: string }; apiKey: string }
  await api(`/api/v1/orgs/${org.id}/integrations/azure`, { method: 'PUT', token: apiKey, json: { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret } })
  const { body } = await api(`/api/v1/orgs/${org.id}/signup-form`, { method: 'PUT', token: apiKey, json: form })
  await api(`/api/v1/orgs/${org.id}`, { method: 'PATCH', token: apiKey, json: { fulfillmentUrl: body.signupForm.url.replace('127.0.0.1', 'localhost') } })
  const landingUrl = () => {
    const sub = azure.emulator.addSubscription({ appId: azure.clientId, planId: 'gold' })
    return `${base}/public/signup/azure/orgId/${org.id}?token=${encodeURIComponent(azure.emulator.issuePurchaseToken(sub.id))}`
  }
  return { org, apiKey, landingUrl }
}

describe.skipIf(!browserAvailable)('the hosted form in Chromium', () => {
  test('a buyer lands, corrects a mistake, signs up; stored, emailed with the CC, webhook fired; screenshots', async () => {
    const isv = await isvWithForm({ companyName: 'Acme Analytics', publicNotes: 'Your workspace is ready within one business day.', ccEmails: ['sales@acme.example'] })
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
    const page = await context.newPage()
    await page.goto(isv.landingUrl())
    expect(new URL(page.url()).pathname).toMatch(/^\/public\/signup\/newclient\/sgn_/)
    await expect(page.getByRole('heading', { name: 'Acme Analytics' }).isVisible()).resolves.toBe(true)
    expect(await page.getByText('Microsoft Azure Marketplace').isVisible()).toBe(true)
    expect(await page.getByText('Your workspace is ready within one business day.').isVisible()).toBe(true)
    await page.screenshot({ path: screenshotPath('signup-form'), fullPage: true })

    // A phone: nothing wider than the screen.
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true })
    const mobile = await phone.newPage()
    await mobile.goto(page.url())
    expect(await mobile.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390)
    await mobile.screenshot({ path: screenshotPath('signup-form-390px'), fullPage: true })
    await phone.close()

    // A mistake: no name, a broken email.
    await page.getByLabel('Work email').fill('grace@')
    await page.getByLabel(/Company/).fill('Hopper Systems')
    await page.getByRole('button', { name: 'Complete signup' }).click()
    await page.waitForLoadState()
    expect(await page.getByText('Please enter your name.').isVisible()).toBe(true)
    expect(await page.getByText(/valid email address/).isVisible()).toBe(true)
    expect(await page.getByLabel(/Company/).inputValue()).toBe('Hopper Systems')
    await page.screenshot({ path: screenshotPath('signup-form-errors'), fullPage: true })

    await page.getByLabel('Your name').fill('Grace Hopper')
    await page.getByLabel('Work email').fill('grace@hopper.example')
    await page.getByRole('button', { name: 'Complete signup' }).click()
    await page.waitForLoadState()
    expect(await page.getByRole('heading', { name: /Thank you/ }).isVisible()).toBe(true)
    await page.screenshot({ path: screenshotPath('signup-thank-you'), fullPage: true })
    await context.close()

    const { body } = await api(`/api/v1/orgs/${isv.org.id}/signups`, { token: isv.apiKey })
    expect(body.items).toHaveLength(1)
    expect(body.items[0]).toMatchObject({ name: 'Grace Hopper', email: 'grace@hopper.example', company: 'Hopper Systems' })
    let mail = smtp.mails.find((m) => m.to.includes('grace@hopper.example'))
    for (let i = 0; i < 100 && !mail; i++) {
      await sleep(50)
      mail = smtp.mails.find((m) => m.to.includes('grace@hopper.example'))
    }
    expect(mail!.to.sort()).toEqual(['grace@hopper.example', 'sales@acme.example'])
    expect(header(mail!.raw, 'subject')).toContain('Acme Analytics')
    let hook = hooks.received.find((r) => r.body.includes('"signup.submitted"') && r.body.includes(isv.org.id))
    for (let i = 0; i < 100 && !hook; i++) {
      await sleep(50)
      hook = hooks.received.find((r) => r.body.includes('"signup.submitted"') && r.body.includes(isv.org.id))
    }
    expect(hook).toBeTruthy()
  }, 60_000)

  test('hostile: a company name with markup stays text (no dialog runs); a resubmitted page is refused; nothing extra stored', async () => {
    const isv = await isvWithForm({ companyName: '<script>alert("x")</script><img src=x onerror=alert(1)>' })
    const context = await browser.newContext()
    const page = await context.newPage()
    const dialogs: string[] = []
    page.on('dialog', async (dialog) => {
      dialogs.push(dialog.message())
      await dialog.dismiss()
    })
    await page.goto(isv.landingUrl())
    expect(await page.getByRole('heading', { name: '<script>alert("x")</script><img src=x onerror=alert(1)>' }).isVisible()).toBe(true)
    await page.getByLabel('Your name').fill('Eve')
    await page.getByLabel('Work email').fill('eve@buyer.example')
    const form = page.url()
    const html = await page.content()
    await page.getByRole('button', { name: 'Complete signup' }).click()
    await page.waitForLoadState()
    expect(await page.getByRole('heading', { name: /Thank you/ }).isVisible()).toBe(true)
    // The same page (and token) submitted again, as a replay would.
    await page.setContent(html.replace('<form method="post" action="', `<form method="post" action="${new URL(form).origin}`))
    await page.getByLabel('Your name').fill('Eve again')
    await page.getByLabel('Work email').fill('eve@buyer.example')
    const [response] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST'), page.getByRole('button', { name: 'Complete signup' }).click()])
    expect(response.status()).toBe(403)
    expect(dialogs).toEqual([])
    await context.close()
    const { body } = await api(`/api/v1/orgs/${isv.org.id}/signups`, { token: isv.apiKey })
    expect(body.items.map((i: { name: string }) => i.name)).toEqual(['Eve'])
  }, 60_000)
})
