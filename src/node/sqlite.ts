import SQLite from 'better-sqlite3'
import { Kysely, SqliteDialect } from 'kysely'
import type { Database } from '../db/schema'
import { sqlitePath } from './bootstrap'

/** Node's database: better-sqlite3 behind Kysely, tuned for a small always-on server. */
export function createSqliteDb(databaseUrl: string): Kysely<Database> {
  const sqlite = new SQLite(sqlitePath(databaseUrl))
  sqlite.pragma('journal_mode = WAL')
  sqlite.pragma('synchronous = NORMAL')
  sqlite.pragma('busy_timeout = 5000')
  sqlite.pragma('foreign_keys = ON')
  return new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) })
}
