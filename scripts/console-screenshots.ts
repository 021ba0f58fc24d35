// `npm run screenshots`: the README's pictures of the console, docs/console-overview.png and
// docs/console-entitlement.png (1280×1000). A fresh sandbox (the marketplace emulators, a broker on
// Node + SQLite, the demo org Acme Analytics) in a scratch folder; purchases made in Chromium
// through the emulated marketplaces as a buyer makes them, a few lifecycle actions and usage;
// then the console, opened from the sandbox's Console link (signed in with the demo key).
// Needs a Chromium (Debian: apt-get install chromium; or CHROMIUM_PATH). Nothing else is kept.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Page } from 'playwright-core'
import { startSandbox } from '../sandbox/start'
import { chromiumPath, launchBrowser } from '../test/browser'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const docs = join(root, 'docs')
const VIEWPORT = { width: 1280, height: 1000 }

if (!chromiumPath) {
  console.error('screenshots: no Chromium found (apt-get install chromium, or set CHROMIUM_PATH to one)')
  process.exit(1)
}

/** Buys on the sandbox's home page; answers the entitlement id the buyer landed with. */
async function buy(page: Page, sandboxUrl: string, marketplace: 'Azure' | 'AWS' | 'Google Cloud', plan: string) {
  await page.goto(sandboxUrl)
  const card = page.locator('article.market', { has: page.getByRole('button', { name: `Buy on ${marketplace}` }) })
  await card.getByRole('radio', { name: plan }).check()
  await card.getByRole('button', { name: `Buy on ${marketplace}` }).click()
  await page.waitForURL(/\/acme\/welcome\?/, { timeout: 30_000 })
  return new URL(page.url()).searchParams.get('sugerEntitlementId')!
}

/** Presses one of the emulated marketplace's buttons on Acme's page of the purchase, and waits for the broker to apply it. */
async function act(page: Page, sandboxUrl: string, id: string, button: RegExp) {
  await page.goto(`${sandboxUrl}/acme/welcome?sugerEntitlementId=${id}`)
  await page.getByRole('button', { name: button }).click()
  await page.waitForLoadState('load')
}

const dir = mkdtempSync(join(tmpdir(), 'marketbridge-screenshots-'))
const sandbox = await startSandbox({ runtime: 'node', port: 0, dataDir: join(dir, 'sandbox') })
const browser = await launchBrowser()
try {
  const context = await browser.newContext({ viewport: VIEWPORT })
  const page = await context.newPage()
  console.log(`sandbox at ${sandbox.url}, broker at ${sandbox.brokerUrl}; buying…`)

  const azure = await buy(page, sandbox.url, 'Azure', 'Starter')
  const aws = await buy(page, sandbox.url, 'AWS', 'Pay as you go')
  await buy(page, sandbox.url, 'Google Cloud', 'Starter')
  const azureBusiness = await buy(page, sandbox.url, 'Azure', 'Business')
  await buy(page, sandbox.url, 'AWS', 'Annual contract')
  // A life behind them: a plan change and usage on the first, a suspension, a cancellation.
  await act(page, sandbox.url, azure, /^Change plan to Business/)
  await page.getByLabel(/API calls/).fill('1250')
  await page.getByRole('button', { name: 'Report usage' }).click()
  await page.waitForLoadState('load')
  await act(page, sandbox.url, azureBusiness, /^Suspend/)
  await act(page, sandbox.url, aws, /^Buyer cancels/)
  // Google activates over Pub/Sub; the broker's job runs every second: let it catch up.
  await page.waitForTimeout(3000)

  // The console, as the sandbox's link opens it.
  await page.goto(`${sandbox.url}/console`)
  await page.waitForURL(/\/console\/orgs\/org_[a-z0-9]+$/)
  const orgPage = new URL(page.url()).pathname
  mkdirSync(docs, { recursive: true })
  const overview = join(docs, 'console-overview.png')
  await page.waitForLoadState('networkidle')
  await page.screenshot({ path: overview })

  // The first purchase's page: at its address, else through the entitlement list's link to it.
  const detail = await page.goto(`${sandbox.brokerUrl}${orgPage}/entitlements/${azure}`)
  if (detail?.status() !== 200) {
    await page.goto(`${sandbox.brokerUrl}${orgPage}/entitlements`)
    const link = page.locator(`main a[href*="${azure}"]`).first()
    if (await link.count()) await link.click()
    else console.warn(`screenshots: no page of entitlement ${azure} in this console (answered ${detail?.status()}); the picture shows what there is`)
  }
  await page.waitForLoadState('networkidle')
  const entitlement = join(docs, 'console-entitlement.png')
  await page.screenshot({ path: entitlement })
  console.log(`wrote ${relative(process.cwd(), overview)} and ${relative(process.cwd(), entitlement)}`)
  await context.close()
} finally {
  await browser.close()
  await sandbox.stop()
  rmSync(dir, { recursive: true, force: true })
}
