// `npm run dev:worker [-- wrangler flags]`: the broker on the Workers runtime (wrangler dev)
// with a local D1 database, migrated with the app's own migration list before wrangler
// starts serving. Flags after `--` (--port, --ip, --persist-to, --var NAME:VALUE, ...) go to
// wrangler unchanged; a --persist-to folder is where the migrated database is written.
//
// Like `npm start`, it needs no configuration: ADMIN_TOKEN and ENCRYPTION_KEY not given with
// --var are generated once into .dev.vars (mode 0600, git-ignored; --var wins over it) and
// the admin token is printed that once.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { D1Database } from '@cloudflare/workers-types'
import { getPlatformProxy } from 'wrangler'
import { createD1Db } from '../src/db/d1'
import { migrateToLatest } from '../src/db/migrate'
import { wranglerBin } from './wrangler-bin'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const args = process.argv.slice(2)

/** The values of `--name value` or `--name=value` among the wrangler flags. */
function flag(name: string): string[] {
  return args.flatMap((arg, i) => (arg === name ? [args[i + 1] ?? ''] : arg.startsWith(`${name}=`) ? [arg.slice(name.length + 1)] : []))
}

function ensureDevSecrets() {
  const devVars = join(root, '.dev.vars')
  const given = new Set(flag('--var').map((pair) => pair.split(':')[0]))
  const existing = existsSync(devVars) ? readFileSync(devVars, 'utf8') : ''
  const has = (name: string) => new RegExp(`^${name}=`, 'm').test(existing)
  const additions: Array<[string, string]> = []
  if (!given.has('ADMIN_TOKEN') && !has('ADMIN_TOKEN')) additions.push(['ADMIN_TOKEN', `mba_${randomBytes(32).toString('base64url')}`])
  if (!given.has('ENCRYPTION_KEY') && !has('ENCRYPTION_KEY')) additions.push(['ENCRYPTION_KEY', randomBytes(32).toString('base64')])
  if (!additions.length) return
  const text = existing + (existing && !existing.endsWith('\n') ? '\n' : '') + additions.map(([k, v]) => `${k}=${v}\n`).join('')
  writeFileSync(devVars, text, { mode: 0o600 })
  const admin = additions.find(([k]) => k === 'ADMIN_TOKEN')
  if (admin) {
    // The same two lines as `npm start` prints on a first start.
    const host = flag('--ip').at(-1) ?? 'localhost'
    const base = `http://${host === '0.0.0.0' ? 'localhost' : host}:${flag('--port').at(-1) ?? 8787}`
    console.log(`\nGenerated an admin token (kept in ${devVars}, shown only this once):\n  ${admin[1]}\n`)
    console.log('Register an org:')
    console.log(
      `  curl -sS -X POST ${base}/api/v1/orgs -H "Authorization: Bearer ${admin[1]}" -H "Content-Type: application/json" -d '{"name":"Acme","fulfillmentUrl":"https://app.acme.example/signup"}'\n`,
    )
  }
}

/** wrangler dev keeps local D1 under <persist-to>/v3; migrate that very database first. */
async function migrateLocalD1() {
  const persistTo = resolve(root, flag('--persist-to').at(-1) ?? '.wrangler/state')
  const { env, dispose } = await getPlatformProxy<{ DB: D1Database }>({
    configPath: join(root, 'wrangler.toml'),
    persist: { path: join(persistTo, 'v3') },
    remoteBindings: false,
  })
  try {
    await migrateToLatest(createD1Db(env.DB))
    console.log(`Local D1 migrated (${join(persistTo, 'v3')}).`)
  } finally {
    await dispose()
  }
}

ensureDevSecrets()
await migrateLocalD1()

const wrangler = wranglerBin()
const child = spawn(process.execPath, [wrangler, 'dev', ...args], {
  cwd: root,
  stdio: 'inherit',
  env: { WRANGLER_SEND_METRICS: 'false', ...process.env },
})
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal))
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)))
