import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { browserAvailable, launchBrowser, screenshotPath } from './browser'

/**
 * The sandbox as a newcomer uses it: `npm run sandbox` (and `-- --workers`) as a child process,
 * the printed URL opened in Chromium. Buy on each marketplace; each purchase must end on the demo
 * ISV page showing the entitlement the redirect named (read over the REST API). Then the
 * marketplace's lifecycle actions, usage, webhooks and the hosted form's email, through the pages.
 * Screenshots in test-results/.
 */
const script = resolve(import.meta.dirname, '../sandbox/run.ts')

interface RunningSandbox {
  url: string
  output: () => string
  stop: () => Promise<void>
}

async function startSandboxProcess(workers: boolean, dataDir: string): Promise<RunningSandbox> {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', import.meta.resolve('tsx'), script, '--port', '0', '--data-dir', dataDir, ...(workers ? ['--workers'] : [])],
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env } },
  )
  let output = ''
  child.stdout!.on('data', (chunk) => (output += chunk))
  child.stderr!.on('data', (chunk) => (output += chunk))
  const deadline = Date.now() + 120_000
  let match: RegExpMatchArray | null = null
  // SIGTERM first: the sandbox then stops its broker (its own process group); SIGKILL if it lingers.
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, name)
    } catch {
      // gone
    }
  }
  const killAll = async () => {
    if (child.exitCode === null) {
      signal('SIGTERM')
      await Promise.race([new Promise((done) => child.on('exit', done)), new Promise((r) => setTimeout(r, 5000))])
    }
    signal('SIGKILL')
  }
  while (!(match = output.match(/Sandbox ready: (http:\/\/\S+)/))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await killAll()
      throw new Error(`the sandbox did not start:\n${output}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    url: match[1]!,
    output: () => output,
    stop: async () => {
      const exited = new Promise((done) => (child.exitCode !== null ? done(null) : child.on('exit', done)))
      signal('SIGINT')
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))])
      await killAll()
    },
  }
}

let browser: Browser
beforeAll(async () => {
  if (browserAvailable) browser = await launchBrowser()
})
afterAll(async () => {
  await browser?.close()
})

/** The entitlement id the page shows, and the one the broker's redirect carried. */
async function landedEntitlement(page: Page) {
  await page.waitForURL(/\/acme\/welcome\?/, { timeout: 30_000 })
  const fromRedirect = new URL(page.url()).searchParams.get('sugerEntitlementId')
  const shown = await page.getByTestId('entitlement-id').textContent()
  return { fromRedirect, shown }
}

/** Reloads (the page also reloads itself while waiting) until `text` is visible. */
async function until(page: Page, locator: () => ReturnType<Page['getByText']>, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await locator().first().isVisible().catch(() => false)) return
    if (Date.now() > deadline) throw new Error(`not visible in time on ${page.url()}:\n${(await page.textContent('main'))?.slice(0, 2000)}`)
    await page.waitForTimeout(500)
    await page.reload().catch(() => undefined)
  }
}

const status = (page: Page, value: string) => () => page.locator('.hero .badge', { hasText: new RegExp(`^${value}$`) })

describe.skipIf(!browserAvailable).each([
  ['node', false],
  ['workers', true],
])('npm run sandbox (%s)', (name, workers) => {
  let sandbox: RunningSandbox
  let dataDir: string
  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'marketbridge-sandbox-'))
    sandbox = await startSandboxProcess(workers, join(dataDir, 'data'))
  }, 150_000)
  afterAll(async () => {
    await sandbox?.stop()
    if (dataDir) rmSync(dataDir, { recursive: true, force: true })
  })

  test('buy on each marketplace: each lands on the demo ISV page with its ent_ id; lifecycle, usage, webhooks, hosted form email', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
    const page = await context.newPage()
    const errors: string[] = []
    page.on('pageerror', (error) => errors.push(error.message))
    await page.goto(sandbox.url)
    await expect(page.getByRole('heading', { name: /Buy Acme Analytics on three marketplaces/ }).isVisible()).resolves.toBe(true)
    await page.screenshot({ path: screenshotPath(`sandbox-home-${name}`), fullPage: true })
    await page.screenshot({ path: screenshotPath(`sandbox-readme-home-${name}`) })

    const bought: Record<string, string> = {}
    for (const [partner, button] of [
      ['azure', 'Buy on Azure'],
      ['aws', 'Buy on AWS'],
      ['gcp', 'Buy on Google Cloud'],
    ] as const) {
      await page.goto(sandbox.url)
      await page.getByRole('button', { name: button }).click()
      const { fromRedirect, shown } = await landedEntitlement(page)
      expect(fromRedirect).toMatch(/^ent_/)
      expect(shown).toBe(fromRedirect)
      bought[partner] = fromRedirect!
      // Google activates through Pub/Sub after the landing: the page refreshes until it is ACTIVE.
      await until(page, status(page, 'ACTIVE'))
      await page.screenshot({ path: screenshotPath(`sandbox-${partner}-${name}`), fullPage: true })
    }
    expect(new Set(Object.values(bought)).size).toBe(3)

    // Azure: suspend, reinstate, change plan — each a real webhook the broker verifies and applies.
    await page.goto(`${sandbox.url}/acme/welcome?sugerEntitlementId=${bought.azure}`)
    await page.getByRole('button', { name: /^Suspend/ }).click()
    await until(page, status(page, 'SUSPENDED'))
    expect(await page.getByText('Connection webhook: Suspend: the broker answered HTTP 200.').isVisible()).toBe(true)
    await page.getByRole('button', { name: /^Reinstate/ }).click()
    await until(page, status(page, 'ACTIVE'))
    await page.getByRole('button', { name: /^Change plan to Business/ }).click()
    await until(page, () => page.locator('dl.kv dd', { hasText: /^business$/ }))
    // The webhooks Acme received for it, each verified with standardwebhooks.
    await until(page, () => page.getByText('entitlement.reinstated'))
    for (const type of ['entitlement.created', 'entitlement.suspended', 'entitlement.reinstated', 'entitlement.updated']) {
      expect(await page.locator('#hooks ~ table tr', { hasText: type }).first().getByText('verified ✓').isVisible()).toBe(true)
    }
    expect(await page.getByText(/refused:/).count()).toBe(0)

    // Usage dated in the last hour: the reporter sends it to Azure's metering API.
    await page.getByLabel(/API calls/).fill('250')
    await page.getByRole('button', { name: 'Report usage' }).click()
    expect(await page.getByText(/Recorded 250 api_calls/).isVisible()).toBe(true)
    // (An hour that ended less than a minute ago is closed a minute later.)
    await until(page, () => page.locator('#usage ~ table .badge', { hasText: 'REPORTED' }), 100_000)
    await page.screenshot({ path: screenshotPath(`sandbox-azure-lifecycle-${name}`), fullPage: true })
    await page.screenshot({ path: screenshotPath(`sandbox-readme-acme-${name}`) })

    // AWS: the buyer cancels (unsubscribe-pending over SNS).
    await page.goto(`${sandbox.url}/acme/welcome?sugerEntitlementId=${bought.aws}`)
    await page.getByRole('button', { name: 'Buyer cancels' }).click()
    await until(page, status(page, 'PENDING_CANCEL'))
    // Google: a plan change the broker approves (Pub/Sub in, approvePlanChange out, PLAN_CHANGED in).
    await page.goto(`${sandbox.url}/acme/welcome?sugerEntitlementId=${bought.gcp}`)
    await page.getByRole('button', { name: /^Change plan to Business/ }).click()
    await until(page, () => page.locator('dl.kv dd', { hasText: /^business$/ }))

    // The hosted form for the Google purchase; its confirmation email lands in the sandbox mailbox.
    await page.getByRole('link', { name: 'Try the hosted signup form for this purchase' }).click()
    await page.getByLabel('Your name').fill('Ada Lovelace')
    await page.getByLabel('Work email').fill('ada@buyer.example')
    await page.getByRole('button', { name: 'Complete signup' }).click()
    await page.waitForLoadState()
    expect(await page.getByRole('heading', { name: /Thank you/ }).isVisible()).toBe(true)
    await page.goto(`${sandbox.url}/mailbox`)
    await until(page, () => page.getByText('ada@buyer.example'))
    expect(await page.getByRole('heading', { name: /Acme Analytics/ }).first().isVisible()).toBe(true)
    expect(await page.getByText('sales@acme.example').first().isVisible()).toBe(true)
    await page.screenshot({ path: screenshotPath(`sandbox-mailbox-${name}`), fullPage: true })
    await page.goto(`${sandbox.url}/acme`)
    expect(await page.getByText('signup.submitted').first().isVisible()).toBe(true)
    await page.screenshot({ path: screenshotPath(`sandbox-acme-${name}`), fullPage: true })

    await page.goto(sandbox.url)
    expect(await page.locator('#purchases ~ table tbody tr').count()).toBe(3)
    await page.screenshot({ path: screenshotPath(`sandbox-home-after-${name}`), fullPage: true })

    // The console, one click away: signed in with the demo key, on the demo org's overview (the broker's address).
    await page.getByRole('link', { name: 'Console', exact: true }).click()
    await page.waitForURL(/\/console\/orgs\/org_[a-z0-9]+$/)
    const consoleUrl = new URL(page.url())
    expect(consoleUrl.hostname).toBe(new URL(sandbox.url).hostname)
    expect(consoleUrl.port).not.toBe(new URL(sandbox.url).port)
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Acme Analytics')
    expect(await page.locator('.who').textContent()).toMatch(/Key: /)
    await page.screenshot({ path: screenshotPath(`sandbox-console-${name}`) })

    // A phone-sized screen: nothing wider than it.
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true })
    const mobile = await phone.newPage()
    for (const path of ['/', `/acme/welcome?sugerEntitlementId=${bought.azure}`]) {
      await mobile.goto(`${sandbox.url}${path}`)
      const wide = await mobile.evaluate(() =>
        [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > 391).map((e) => `${e.tagName}.${e.className}: ${(e.textContent ?? '').slice(0, 40)}`),
      )
      const width = await mobile.evaluate(() => document.documentElement.scrollWidth)
      expect(width, `${path} is ${width}px wide: ${wide.join('; ')}`).toBeLessThanOrEqual(390)
    }
    await mobile.goto(sandbox.url)
    await mobile.screenshot({ path: screenshotPath(`sandbox-home-390px-${name}`), fullPage: true })
    await phone.close()
    expect(errors).toEqual([])
    await context.close()
  }, 240_000)
})
