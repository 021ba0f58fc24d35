import { type ColumnDataType, type Expression, type Kysely, sql } from 'kysely'

/** The dialects a migration is written for (the names of src/db/dialect.ts, which migrations do not import). */
export type MigrationDialect = 'sqlite' | 'd1' | 'postgres'

/**
 * The column types a migration writes, chosen for its dialect so that one migration (0010 on)
 * gives every dialect the same behaviour:
 * - `text`: compared and ordered bytewise, as SQLite's BINARY collation does. On PostgreSQL the
 *   database's own collation (say en_US) would order 'B' after 'a' and change every list's order
 *   (keyset cursors, ISO times, ids); `collate "C"` pins it to bytes.
 * - `integer`: 8 bytes, as SQLite's INTEGER is (PostgreSQL's `integer` is 4).
 * - `double`: an 8-byte float for quantities (PostgreSQL's `real` is 4 bytes and rounds).
 */
export interface ColumnTypes {
  readonly dialect: MigrationDialect
  readonly text: ColumnDataType | Expression<unknown>
  readonly integer: ColumnDataType
  readonly double: ColumnDataType
}

const SQLITE_TYPES = { text: 'text', integer: 'integer', double: 'real' } as const
const POSTGRES_TYPES = { text: sql`text collate "C"`, integer: 'bigint', double: 'double precision' } as const

export function columnTypes(dialect: MigrationDialect): ColumnTypes {
  return { dialect, ...(dialect === 'postgres' ? POSTGRES_TYPES : SQLITE_TYPES) }
}

/**
 * A migration written once for every dialect: it receives the column types of the database it
 * runs on. Plain Kysely schema builders and portable SQL only; no triggers, no probing for a
 * column with a failing statement (PostgreSQL runs each migration in a transaction that one
 * failed statement aborts).
 */
export interface SharedMigration {
  up(db: Kysely<any>, types: ColumnTypes): Promise<void>
  down?(db: Kysely<any>, types: ColumnTypes): Promise<void>
}
