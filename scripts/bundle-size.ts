// `npm run bundle:size`: builds the Worker exactly as `wrangler deploy` would (--dry-run, no
// upload), prints its size raw and gzipped, and fails when the gzipped bundle is over the
// 1 MiB budget. The figure checked is wrangler's own "gzip:" total; ours is printed beside it.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'
import { wranglerBin } from './wrangler-bin'

export const BUDGET_KIB = 1024

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const outdir = mkdtempSync(join(tmpdir(), 'marketbridge-bundle-'))
try {
  const wrangler = wranglerBin()
  const run = spawnSync(process.execPath, [wrangler, 'deploy', '--dry-run', '--outdir', outdir], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
  })
  const output = `${run.stdout}\n${run.stderr}`
  const match = /Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/.exec(output)
  if (run.status !== 0 || !match) {
    console.error(output)
    throw new Error('wrangler deploy --dry-run failed')
  }
  const script = readdirSync(outdir).find((file) => file.endsWith('.js'))!
  const own = gzipSync(readFileSync(join(outdir, script))).length / 1024
  const gzipKiB = Number(match[2])
  console.log(`worker bundle: ${match[1]} KiB raw, ${gzipKiB} KiB gzipped (wrangler; zlib default level: ${own.toFixed(2)} KiB); budget ${BUDGET_KIB} KiB gzipped`)
  if (gzipKiB > BUDGET_KIB) {
    console.error(`over budget by ${(gzipKiB - BUDGET_KIB).toFixed(2)} KiB`)
    process.exitCode = 1
  }
} finally {
  rmSync(outdir, { recursive: true, force: true })
}
