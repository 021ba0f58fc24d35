import { existsSync, mkdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { type Browser, chromium } from 'playwright-core'

/**
 * The browser harness: playwright-core driving the machine's Chromium (Debian's `chromium`
 * package, which `.ci/run` installs with apt when it is missing; CHROMIUM_PATH overrides).
 * Screenshots go to `test-results/` (git-ignored). Without a Chromium the browser tests are
 * skipped locally and fail in CI.
 */
const CANDIDATES = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].filter((p): p is string => Boolean(p))

export const chromiumPath = CANDIDATES.find((path) => existsSync(path)) ?? null
export const resultsDir = resolve(import.meta.dirname, '../test-results')

export async function launchBrowser(): Promise<Browser> {
  if (!chromiumPath) throw new Error('no Chromium: apt-get install -y chromium, or set CHROMIUM_PATH')
  // --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start.
  return chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox', '--disable-dev-shm-usage'] })
}

export function screenshotPath(name: string): string {
  mkdirSync(resultsDir, { recursive: true })
  return join(resultsDir, `${name}.png`)
}

/** Browser tests run when there is a Chromium; in CI a missing one is a failure, not a skip. */
export const browserAvailable = Boolean(chromiumPath) || process.env.CI === 'true'
