import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

/**
 * The path of wrangler's command-line script, to run with our own Node (`process.execPath`).
 * Found through its package.json's `bin`: wrangler's `exports` map does not expose the file.
 */
export function wranglerBin(): string {
  const manifest = createRequire(import.meta.url).resolve('wrangler/package.json')
  const { bin } = JSON.parse(readFileSync(manifest, 'utf8')) as { bin: Record<string, string> }
  return join(dirname(manifest), bin.wrangler!)
}
