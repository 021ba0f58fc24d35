import { migrationsFor } from '../migrations/index'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, test } from 'vitest'
import { redactSecrets } from '../src/node/bootstrap'
import { ADMIN_TOKEN } from './helpers'
import { entry, startServer, tsx } from './node-process'
import { type TestDatabase, createTestDatabase, databaseUrl, postgresAvailable, POSTGRES_BASE_URL } from './postgres'

/** `npm start` and `npm run migrate` with DATABASE_URL=postgres://…, as child processes. */

const migrateScript = resolve(import.meta.dirname, '../scripts/migrate.ts')
const ENCRYPTION_KEY = Buffer.alloc(32, 7).toString('base64')
const PASSWORD = 'pw-Zq81xVv0' // trust auth ignores it; what matters is that no output shows it

/** Runs a Node entry to its end: exit code and everything it printed. */
function runToExit(script: string, cwd: string, env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, ['--import', tsx, script], { cwd, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (chunk) => (output += chunk))
    child.stderr.on('data', (chunk) => (output += chunk))
    child.on('exit', (code) => done({ code, output }))
  })
}

/** The test server's URL for `database`, with a password in it. */
function withPassword(url: string) {
  const parsed = new URL(url)
  parsed.password = PASSWORD
  return parsed.toString()
}

describe.runIf(await postgresAvailable())('npm start and npm run migrate on PostgreSQL', () => {
  const databases: TestDatabase[] = []
  const dirs: string[] = []
  const scratch = () => {
    const dir = mkdtempSync(join(tmpdir(), 'marketbridge-pg-'))
    dirs.push(dir)
    return dir
  }
  afterAll(async () => {
    await Promise.all(databases.map((database) => database.drop()))
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  })

  test('a start without ADMIN_TOKEN or ENCRYPTION_KEY stops with a clear message and generates nothing', async () => {
    const database = await createTestDatabase()
    databases.push(database)
    const envs: Record<string, string>[] = [{}, { ADMIN_TOKEN }, { ENCRYPTION_KEY }]
    for (const env of envs) {
      const cwd = scratch()
      const { code, output } = await runToExit(entry, cwd, { DATABASE_URL: withPassword(database.url), ...env })
      expect(code).toBe(1)
      expect(output).toMatch(/(ADMIN_TOKEN|ENCRYPTION_KEY).* must be set with a PostgreSQL DATABASE_URL, the same value on every instance/)
      expect(output).not.toContain(PASSWORD)
      expect(existsSync(join(cwd, 'data'))).toBe(false)
    }
  })

  test('npm run migrate applies the baseline once and says so; npm start then serves from that database', async () => {
    const database = await createTestDatabase()
    databases.push(database)
    const cwd = scratch()
    const env = { DATABASE_URL: withPassword(database.url), ADMIN_TOKEN, ENCRYPTION_KEY, DATABASE_POOL_MAX: '3' }
    const first = await runToExit(migrateScript, cwd, { DATABASE_URL: env.DATABASE_URL })
    const names = Object.keys(migrationsFor('postgres'))
    expect(names[0]).toBe('0009_postgres_baseline')
    expect(first).toEqual({ code: 0, output: `applied ${names.length} migration(s): ${names.join(', ')}\n` })
    expect(await runToExit(migrateScript, cwd, { DATABASE_URL: env.DATABASE_URL })).toEqual({ code: 0, output: 'the database is up to date: no migration to apply\n' })

    const server = await startServer(cwd, env)
    try {
      expect(await (await fetch(`${server.url}/healthz`)).json()).toEqual({ status: 'ok' })
      const created = await fetch(`${server.url}/api/v1/orgs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'Acme', fulfillmentUrl: 'https://app.acme.example/signup' }),
      })
      expect(created.status).toBe(201)
      expect(server.output()).not.toContain(PASSWORD)
      // Nothing of SQLite's: no data folder, no generated secrets.
      expect(existsSync(join(cwd, 'data'))).toBe(false)
    } finally {
      expect(await server.stop()).toBe(0)
    }
  })

  test('an unreachable database: migrate and start exit non-zero with a message that does not show the password', async () => {
    const unreachable = withPassword(databaseUrl(POSTGRES_BASE_URL, 'mb_test_absent').replace(/:\d+\//, ':1/'))
    const migrate = await runToExit(migrateScript, scratch(), { DATABASE_URL: unreachable })
    expect(migrate.code).toBe(1)
    expect(migrate.output).toMatch(/^marketbridge migrate failed: could not migrate the database: .*ECONNREFUSED/)
    expect(migrate.output).not.toContain(PASSWORD)
    const start = await runToExit(entry, scratch(), { DATABASE_URL: unreachable, ADMIN_TOKEN, ENCRYPTION_KEY })
    expect(start.code).toBe(1)
    expect(start.output).toMatch(/^marketbridge failed to start: could not migrate the database: .*ECONNREFUSED/)
    expect(start.output).not.toContain(PASSWORD)
    // A database that does not exist: PostgreSQL names it, never the password.
    const missing = await runToExit(migrateScript, scratch(), { DATABASE_URL: withPassword(databaseUrl(POSTGRES_BASE_URL, 'mb_test_absent')) })
    expect(missing.code).toBe(1)
    expect(missing.output).toMatch(/database "mb_test_absent" does not exist/)
    expect(missing.output).not.toContain(PASSWORD)
    // A URL that does not parse is refused by the configuration without being repeated.
    const malformed = await runToExit(migrateScript, scratch(), { DATABASE_URL: `postgres://app:${PASSWORD}@[db` })
    expect(malformed).toEqual({ code: 1, output: expect.stringMatching(/^marketbridge migrate: invalid configuration: DATABASE_URL: must be/) })
    expect(malformed.output).not.toContain(PASSWORD)
  })

  test('a fatal message that quotes the URL or a key is printed with them masked', () => {
    const env = { DATABASE_URL: 'postgres://app:p%40ss%2Fw0rd@db.internal/broker', ADMIN_TOKEN, ENCRYPTION_KEY }
    const text = `connect to postgres://app:p%40ss%2Fw0rd@db.internal/broker as p@ss/w0rd failed (token ${ADMIN_TOKEN}, key ${ENCRYPTION_KEY})`
    expect(redactSecrets(text, env)).toBe('connect to postgres://app:***@db.internal/broker as *** failed (token ***, key ***)')
  })
})
