import pg from 'pg'
import { defineConfig } from 'vitest/config'

/**
 * Two projects over one set of test files (kysely's test-setup.ts runs one suite over several
 * dialects the same way). `default`: every file, brokers on SQLite (in memory or a file) and
 * Workers on D1, as always. `postgres`: the behaviour files, every broker they start on a fresh
 * PostgreSQL database of its own (MB_TEST_DIALECT=postgres, read by test/helpers.ts and
 * test/node-process.ts). Files out of that list are about SQLite itself (the data folder, the
 * file they read or corrupt, Node versions), about Workers, a browser or a bundle, or are
 * PostgreSQL-only already (data-layer.postgres, migrations-postgres, healthz-postgres).
 */
const POSTGRES_BEHAVIOUR = [
  'orgs-api', 'integrations-api', 'integrations-check', 'entitlements-api', 'operations', 'hostile', 'url-overrides', 'providers.contract',
  'landing-azure', 'landing-aws', 'landing-gcp', 'azure-auto-activation', 'reliability',
  'lifecycle-azure', 'lifecycle-aws', 'lifecycle-gcp',
  'webhooks', 'usage', 'signup-form', 'audit-log', 'api-keys',
  'dialect-loop', 'rate-limits',
  'console-webhooks',
  'console-integrations',
  'console-sessions',
  'console-keys',
  'console-audit',
  'console-signup-form',
  'console-orgs',
  'console-overview',
  'console-entitlements',
  'suger-api',
  'metrics',
].map((name) => `test/${name}.test.ts`)

// Without a reachable server the postgres project is left out with a notice, except in CI (`CI`
// set), where its files then fail saying why (test/postgres.ts).
// (Checked here with pg itself: the config loader takes no extensionless imports of test helpers.)
async function postgresMissing(): Promise<string | null> {
  const client = new pg.Client({ connectionString: process.env.MB_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres', connectionTimeoutMillis: 3_000 })
  client.on('error', () => {})
  try {
    await client.connect()
    return null
  } catch (error) {
    return `no PostgreSQL server answers at MB_TEST_POSTGRES_URL or 127.0.0.1:5432 (${error instanceof Error ? error.message : String(error)})`
  } finally {
    await client.end().catch(() => {})
  }
}
const missing = process.env.CI ? null : await postgresMissing()
if (missing) console.warn(`SKIPPED: the postgres test project; ${missing}. In CI (CI set) this fails.`)

export default defineConfig({
  test: {
    globalSetup: ['test/global-setup.ts'],
    // better-sqlite3 is a native addon: separate processes are the safe pool for it.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    projects: [
      { extends: true, test: { name: 'default', include: ['test/**/*.test.{ts,tsx}'] } },
      ...(missing ? [] : [{ extends: true, test: { name: 'postgres', include: POSTGRES_BEHAVIOUR, env: { MB_TEST_DIALECT: 'postgres' } } }]),
    ],
  },
})
