import SQLite from 'better-sqlite3'
import { SqliteDialect } from 'kysely'
import { BoundedMap } from '../bounded-map'
import { SQLITE } from '../db/dialect'
import { DB } from '../db/handle'
import { sqlitePath } from './bootstrap'

const STATEMENT_CACHE = 500

/** Node's database: better-sqlite3 behind Kysely, tuned for a small always-on server. */
export function createSqliteDb(databaseUrl: string): DB {
  const sqlite = new SQLite(sqlitePath(databaseUrl))
  sqlite.pragma('journal_mode = WAL')
  sqlite.pragma('synchronous = NORMAL')
  sqlite.pragma('busy_timeout = 5000')
  sqlite.pragma('foreign_keys = ON')
  // Kysely prepares every query it runs; preparing is a large share of a small query's cost,
  // and the broker runs the same few dozen statements over and over. Statements are used
  // synchronously one at a time by the driver, so a prepared one can be reused safely.
  const statements = new BoundedMap<string, SQLite.Statement>(STATEMENT_CACHE)
  const database = {
    prepare(sql: string) {
      let statement = statements.get(sql)
      if (!statement) {
        statement = sqlite.prepare(sql)
        statements.set(sql, statement)
      }
      return statement
    },
    close() {
      statements.clear()
      sqlite.close()
    },
  }
  return new DB({ dialect: new SqliteDialect({ database }) }, SQLITE)
}
