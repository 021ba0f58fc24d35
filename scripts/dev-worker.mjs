#!/usr/bin/env node
// `npm run dev:worker [-- wrangler flags]`: the broker on the Workers runtime (wrangler dev)
// with a local D1 database. The Worker migrates D1 with the same migration list as Node
// before it serves its first request. Flags after `--` (--port, --ip, --persist-to,
// --var NAME:VALUE, ...) go to wrangler unchanged.
//
// Like `npm start`, it needs no configuration: ADMIN_TOKEN and ENCRYPTION_KEY not given
// with --var are generated once into .dev.vars (mode 0600, git-ignored) and the admin token
// is printed that once.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const args = process.argv.slice(2)
const devVars = join(root, '.dev.vars')

const given = new Set(
  args.flatMap((arg, i) => (args[i - 1] === '--var' ? [arg.split(':')[0]] : arg.startsWith('--var=') ? [arg.slice(6).split(':')[0]] : [])),
)
const existing = existsSync(devVars) ? readFileSync(devVars, 'utf8') : ''
const has = (name) => new RegExp(`^${name}=`, 'm').test(existing)
const additions = []
if (!given.has('ADMIN_TOKEN') && !has('ADMIN_TOKEN')) additions.push(['ADMIN_TOKEN', `mba_${randomBytes(32).toString('base64url')}`])
if (!given.has('ENCRYPTION_KEY') && !has('ENCRYPTION_KEY')) additions.push(['ENCRYPTION_KEY', randomBytes(32).toString('base64')])
if (additions.length) {
  const text = existing + (existing && !existing.endsWith('\n') ? '\n' : '') + additions.map(([k, v]) => `${k}=${v}\n`).join('')
  writeFileSync(devVars, text, { mode: 0o600 })
  const admin = additions.find(([k]) => k === 'ADMIN_TOKEN')
  if (admin) console.log(`Generated an admin token into .dev.vars (shown only this once):\n  ${admin[1]}\n`)
}

const wrangler = createRequire(import.meta.url).resolve('wrangler/bin/wrangler.js')
const child = spawn(process.execPath, [wrangler, 'dev', ...args], {
  cwd: root,
  stdio: 'inherit',
  env: { WRANGLER_SEND_METRICS: 'false', ...process.env },
})
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal))
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)))
