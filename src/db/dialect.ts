/**
 * What the data layer may assume of the database behind a handle. One value per dialect, carried
 * with the Kysely instance (instead of asking the instance what it is), so a query that differs
 * between SQLite, D1 and PostgreSQL says so where it is written.
 */
export type DialectName = 'sqlite' | 'd1' | 'postgres'

export interface Dialect {
  readonly name: DialectName
  /**
   * How several statements become all-or-nothing: 'batch' sends them together and the database
   * runs them atomically (D1 has no interactive transactions); 'transaction' runs them one by one
   * inside BEGIN … COMMIT (better-sqlite3, PostgreSQL).
   */
  readonly atomicity: 'batch' | 'transaction'
  /** The most bound parameters one statement may carry (D1: 100; SQLite: 32766; PostgreSQL: 65535). */
  readonly maxParameters: number
  /** `FOR UPDATE SKIP LOCKED`: several instances claim different due rows instead of contending. */
  readonly skipLocked: boolean
  /** D1's calls belong to the request that makes them: nothing built on them may be shared across requests. */
  readonly requestScoped: boolean
}

export const SQLITE: Dialect = { name: 'sqlite', atomicity: 'transaction', maxParameters: 32766, skipLocked: false, requestScoped: false }
export const D1: Dialect = { name: 'd1', atomicity: 'batch', maxParameters: 100, skipLocked: false, requestScoped: true }
export const POSTGRES: Dialect = { name: 'postgres', atomicity: 'transaction', maxParameters: 65535, skipLocked: true, requestScoped: false }
