import { spawn } from 'node:child_process'
import { writeFileSync, rmSync, mkdirSync } from 'node:fs'
import { parseConfig } from '/work/main/src/config'
import { configureIntegration } from '/work/main/src/domain/integrations'
import { createOrg } from '/work/main/src/domain/orgs'
import { createLogger } from '/work/main/src/logger'
import { createNodeDeps } from '/work/main/src/node/deps'
rmSync('/tmp/pland', { recursive: true, force: true }); mkdirSync('/tmp/pland/prof', { recursive: true })
const emu = spawn(process.execPath, ['--import', 'tsx', 'bench/emulator.ts', '0'], { cwd: '/work/main', stdio: ['ignore', 'pipe', 'inherit'] })
const url = await new Promise<string>((r) => emu.stdout!.once('data', (d) => r(JSON.parse(String(d)).url)))
const app = { tenantId: 't', clientId: 'c', clientSecret: 's' }
await fetch(`${url}/_emulator/apps`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(app) })
const env = { ADMIN_TOKEN: 'x'.repeat(20), ENCRYPTION_KEY: Buffer.alloc(32, 2).toString('base64'), DATABASE_URL: 'sqlite:/tmp/pland/db.sqlite', AZURE_MARKETPLACE_API_URL: url, AZURE_LOGIN_URL: url }
const deps = await createNodeDeps(parseConfig(env), { logger: createLogger({ silent: true }) })
const { org } = await createOrg(deps, { name: 'P', fulfillmentUrl: 'https://a.example' })
await configureIntegration(deps, org.id, 'azure', { ...app, offerTypes: { bench: 'DEFAULT' } })
await deps.db.destroy()
const broker = spawn(process.execPath, ['--import', 'tsx', 'src/node.ts'], { cwd: '/work/main', env: { ...process.env, ...env, PORT: '18911', HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'inherit'] })
await new Promise<void>((r) => broker.stdout!.on('data', (d) => { if (String(d).includes('listening')) r() }))
const { tokens } = await (await fetch(`${url}/_emulator/purchases`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ appId: 'c', count: 3000, planId: 'bench', quantity: 1 }) })).json() as { tokens: string[] }
writeFileSync('/tmp/pland/job.json', JSON.stringify({ url: 'http://127.0.0.1:18911', connections: 10, amount: 3000, pick: 'sequential', paths: tokens.map((t) => `/public/signup/azure/orgId/${org.id}?token=${encodeURIComponent(t)}`) }))
const load = spawn(process.execPath, ['--import', 'tsx', 'bench/load.ts', '/tmp/pland/job.json'], { cwd: '/work/main', stdio: ['ignore', 'inherit', 'inherit'] })
await new Promise((r) => load.on('exit', r))
broker.kill('SIGINT'); await new Promise((r) => broker.on('exit', r)); emu.kill()
