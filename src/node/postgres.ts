import { readFileSync } from 'node:fs'
import type { ConnectionOptions } from 'node:tls'
import { PostgresDialect } from 'kysely'
import pg from 'pg'
import { POSTGRES } from '../db/dialect'
import { DB } from '../db/handle'

// pg hands int8 (count(*), sum of integers) and numeric (round(…, 6)) back as strings so that no
// precision is lost; every such value the broker reads fits a double, and SQLite answers numbers.
const INT8 = 20
const NUMERIC = 1700
const parsers: Record<number, (text: string) => unknown> = { [INT8]: Number, [NUMERIC]: Number }
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    parsers[oid] ?? pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
}

const CONNECT_TIMEOUT_MS = 10_000

export interface PostgresOptions {
  /** Connections this process keeps at most (DATABASE_POOL_MAX). */
  poolMax: number
}

const SSL_PARAMETERS = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'ssl', 'uselibpqcompat']

/**
 * The URL's TLS settings as libpq reads them (pg on its own checks the certificate for `require`
 * too, and refuses `prefer`): `disable` plain; `require` encrypted without checking the
 * certificate (checked against `sslrootcert` when one is given, as libpq does); `verify-ca` the
 * certificate chain against `sslrootcert`; `verify-full` also the host name. `prefer` and `allow`
 * connect without TLS, as pg does without an sslmode (libpq would try TLS first for `prefer`): use
 * `require` or stronger to have it. `sslcert`/`sslkey` give a client certificate. The answer is
 * the URL without those parameters and pg's `ssl` option.
 */
export function postgresConnection(databaseUrl: string): { connectionString: string; ssl: false | ConnectionOptions } {
  const url = new URL(databaseUrl)
  const get = (name: string) => url.searchParams.get(name)
  const mode = get('sslmode') ?? (get('ssl') === 'true' || get('ssl') === '1' ? 'require' : 'disable')
  const file = (name: string) => {
    const path = get(name)
    if (!path) return undefined
    try {
      return readFileSync(path, 'utf8')
    } catch {
      throw new Error(`DATABASE_URL: cannot read the file of ${name}`)
    }
  }
  const ca = file('sslrootcert')
  const client = { ...(file('sslcert') ? { cert: file('sslcert') } : {}), ...(file('sslkey') ? { key: file('sslkey') } : {}) }
  for (const name of SSL_PARAMETERS) url.searchParams.delete(name)
  const connectionString = url.toString()
  switch (mode) {
    case 'disable':
    case 'allow':
    case 'prefer':
      return { connectionString, ssl: false }
    case 'require':
      return { connectionString, ssl: ca ? { ...client, ca, checkServerIdentity: () => undefined } : { ...client, rejectUnauthorized: false } }
    case 'verify-ca':
      if (!ca) throw new Error('DATABASE_URL: sslmode=verify-ca needs sslrootcert (the CA certificate file)')
      return { connectionString, ssl: { ...client, ca, checkServerIdentity: () => undefined } }
    case 'verify-full':
      return { connectionString, ssl: { ...client, ...(ca ? { ca } : {}) } }
    default:
      throw new Error('DATABASE_URL: sslmode must be disable, allow, prefer, require, verify-ca or verify-full')
  }
}

/**
 * Node's PostgreSQL database: a `pg` pool behind Kysely, TLS as `postgresConnection` reads the
 * URL. A pool whose server goes away answers errors and reconnects on the next query: nothing
 * here needs a restart.
 */
export function createPostgresDb(databaseUrl: string, options: PostgresOptions): DB {
  const { connectionString, ssl } = postgresConnection(databaseUrl)
  // A connection attempt that gets no answer (a server frozen or unreachable) gives up after
  // CONNECT_TIMEOUT_MS instead of waiting forever; so does a query waiting for a free connection.
  const pool = new pg.Pool({ connectionString, ssl, max: options.poolMax, types, connectionTimeoutMillis: CONNECT_TIMEOUT_MS })
  // An idle client whose connection dies (server restart) emits 'error' on the pool; unhandled,
  // that would end the process. The next query opens a new connection.
  pool.on('error', () => {})
  // A client checked out of the pool (inside a transaction, between two statements) whose
  // connection dies emits 'error' itself, with no listener of pg's attached: unhandled, it would end
  // the process on a PostgreSQL restart. Its next statement fails instead (the transaction rolls
  // back, the request answers 5xx), and the pool discards it on release.
  pool.on('connect', (client) => client.on('error', () => {}))
  return new DB({ dialect: new PostgresDialect({ pool }) }, POSTGRES)
}
