import { spawnSync } from 'node:child_process'
import { resolve } from 'node:path'
import { expect, test } from 'vitest'

// The Worker must stay deployable on every plan: `wrangler deploy --dry-run` at most 1 MiB gzipped.
test('the Worker bundle is at most 1 MiB gzipped', () => {
  const run = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), resolve(import.meta.dirname, '../scripts/bundle-size.ts')], {
    encoding: 'utf8',
  })
  const line = run.stdout.split('\n').find((l) => l.startsWith('worker bundle:'))
  console.log(line)
  expect(run.status, run.stderr).toBe(0)
  const gzipKiB = Number(/([\d.]+) KiB gzipped/.exec(line ?? '')?.[1])
  expect(gzipKiB).toBeGreaterThan(0)
  expect(gzipKiB).toBeLessThanOrEqual(1024)
}, 120_000)
