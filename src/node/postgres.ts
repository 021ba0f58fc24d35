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

/**
 * Node's PostgreSQL database: a `pg` pool behind Kysely. The URL is passed to pg as it is, so
 * `sslmode` (require, verify-full, …) is read the way libpq reads it. A pool whose server goes
 * away answers errors and reconnects on the next query: nothing here needs a restart.
 */
export function createPostgresDb(databaseUrl: string, options: PostgresOptions): DB {
  // A connection attempt that gets no answer (a server frozen or unreachable) gives up after
  // CONNECT_TIMEOUT_MS instead of waiting forever; so does a query waiting for a free connection.
  const pool = new pg.Pool({ connectionString: databaseUrl, max: options.poolMax, types, connectionTimeoutMillis: CONNECT_TIMEOUT_MS })
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
