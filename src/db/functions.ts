import { type RawBuilder, sql } from 'kysely'
import type { DB } from './handle'

/**
 * The few expressions SQLite (and D1) and PostgreSQL spell differently, one signature each, the
 * dialect chosen by the handle (as kysely's own per-dialect helpers do). Everything else the
 * data layer writes is portable SQL.
 */

/** The text at `key` of a JSON object stored in a text column (`buyer`, `info`), or null. */
export function jsonText(db: DB, column: string, key: string): RawBuilder<string | null> {
  // The key is the data layer's own constant, written into the statement as a literal.
  if (db.dialect.name === 'postgres') return sql<string | null>`(${sql.ref(column)}::jsonb ->> ${sql.lit(key)})`
  return sql<string | null>`json_extract(${sql.ref(column)}, ${sql.lit(`$.${key}`)})`
}

/**
 * `value` rounded to 6 decimals (a sum of doubles then carries no binary noise such as
 * 0.30000000000000004). PostgreSQL rounds to a number of places only a numeric; a double
 * precision column takes the numeric back as it is.
 */
export function round6(db: DB, value: RawBuilder<unknown>): RawBuilder<number> {
  // Through text: a double cast straight to numeric keeps only 15 significant digits
  // (1234567890.1234567 would round to …123460), its text is the shortest exact form (PostgreSQL 12+).
  if (db.dialect.name === 'postgres') return sql<number>`round((${value})::text::numeric, 6)`
  return sql<number>`round(${value}, 6)`
}

/** `a` equals `b`, two nulls included (SQLite's `is`; PostgreSQL's `is not distinct from`). */
export function sameAs(db: DB, a: RawBuilder<unknown>, b: unknown): RawBuilder<boolean> {
  if (db.dialect.name === 'postgres') return sql<boolean>`${a} is not distinct from ${b}`
  return sql<boolean>`${a} is ${b}`
}
