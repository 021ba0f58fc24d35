import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { browserAvailable, launchBrowser, screenshotPath } from './browser'
import { ADMIN_TOKEN, freePort } from './helpers'
import { type Running, startServer } from './node-process'
import { type WorkerProcess, startWorker } from './worker-process'

/**
 * `/api/docs` in Chromium on both runtimes: the real Node server (`npm start`) and wrangler dev
 * (workerd, the swagger-ui-dist files from the static-assets binding). Swagger UI renders the
 * operations from /api/openapi.json, every request the page makes goes to the broker itself (no
 * CDN, no validator.swagger.io), nothing is logged as an error (a CSP violation would be), and
 * "Try it out" reaches the broker under the page's `connect-src 'self'`. Screenshots:
 * test-results/api-docs-node.png and api-docs-workers.png.
 */
let node: Running
let nodeUrl: string
let worker: WorkerProcess
let browser: Browser
const dirs: string[] = []

beforeAll(async () => {
  if (!browserAvailable) return
  const scratch = () => {
    const dir = mkdtempSync(join(tmpdir(), 'marketbridge-docs-'))
    dirs.push(dir)
    return dir
  }
  // The two runtimes and the browser start side by side: wrangler is the slow one.
  // PUBLIC_URL is the spec's server, where "Try it out" sends requests: the address the browser uses.
  const port = await freePort()
  nodeUrl = `http://127.0.0.1:${port}`
  ;[node, worker, browser] = await Promise.all([
    startServer(scratch(), { PORT: String(port), PUBLIC_URL: nodeUrl, ADMIN_TOKEN }),
    startWorker(scratch(), {}),
    launchBrowser(),
  ])
}, 120_000)

afterAll(async () => {
  await browser?.close()
  await node?.stop()
  await worker?.stop()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

const runtimes: Array<[string, string, () => string]> = [
  ['node', 'api-docs-node', () => nodeUrl],
  ['workerd', 'api-docs-workers', () => worker.url],
]

describe.skipIf(!browserAvailable)('/api/docs in Chromium', () => {
  test.each(runtimes)('%s: Swagger UI renders the operations from the broker alone', async (_runtime, screenshot, baseUrl) => {
    const base = baseUrl()
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
    const page = await context.newPage()
    const requests: string[] = []
    const errors: string[] = []
    page.on('request', (request) => requests.push(request.url()))
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text())
    })
    page.on('pageerror', (error) => errors.push(error.message))

    const response = await page.goto(`${base}/api/docs`)
    expect(response?.status()).toBe(200)
    expect(response?.headers()['content-security-policy']).toContain("script-src 'self'")
    const orgs = page.locator('.opblock-summary-path[data-path="/api/v1/orgs"]').first()
    await orgs.waitFor({ state: 'visible', timeout: 15_000 })
    expect(await page.locator('.opblock').count()).toBeGreaterThanOrEqual(18)
    expect(await page.locator('.mb-bar a[href="/api/openapi.json"]').isVisible()).toBe(true)

    // "Try it out" on /healthz: the request goes to the spec's server, the broker itself.
    const health = page.locator('.opblock').filter({ has: page.locator('.opblock-summary-path[data-path="/healthz"]') })
    await health.locator('.opblock-summary').click()
    await health.locator('button.try-out__btn').click()
    await health.locator('button.execute').click()
    await health.locator('.live-responses-table .response-col_status', { hasText: '200' }).first().waitFor({ state: 'visible', timeout: 10_000 })
    await page.waitForLoadState('networkidle')
    await page.screenshot({ path: screenshotPath(screenshot), fullPage: true })
    await context.close()

    const origin = new URL(base).origin
    // data: URIs (the stylesheet's inline icons) are no request to any host.
    const elsewhere = requests.filter((url) => !url.startsWith('data:') && new URL(url).origin !== origin)
    expect(elsewhere).toEqual([])
    const paths = requests.filter((url) => !url.startsWith('data:')).map((url) => new URL(url).pathname)
    expect(paths).toEqual(expect.arrayContaining(['/api/docs', '/api/docs/assets/swagger-ui.css', '/api/docs/assets/swagger-ui-bundle.js', '/api/docs/assets/docs.js', '/api/openapi.json', '/healthz']))
    expect(errors).toEqual([])
  })
})
