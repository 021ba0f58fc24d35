import { type Compilable, type CompiledQuery, type Expression, type InsertQueryBuilder, type InsertResult, type SqlBool, sql } from 'kysely'
import type { Placeholder } from './compiled'
import type { DB, Executor } from './handle'
import type { Database } from './schema'
import { inSpan } from '../telemetry'

/** The database a span is about, by the semantic conventions' names. */
const SYSTEM = { sqlite: 'sqlite', postgres: 'postgresql', d1: 'd1' } as const

/** A transaction (or D1 batch) as a `db.transaction` span, when tracing is on. */
const spanned = <T>(db: DB, statements: number | null, work: () => Promise<T>): Promise<T> =>
  inSpan('db.transaction', { 'db.system.name': SYSTEM[db.dialect.name], ...(statements === null ? {} : { 'marketbridge.statements': statements }) }, work)

/**
 * Several writes that must happen together or not at all, the way the handle's dialect makes
 * them so: D1 has no interactive transactions but runs a batch atomically; better-sqlite3 and
 * PostgreSQL run them in one transaction. The statements are built with the handle as usual and
 * only compiled here.
 */

/** A statement to build and compile here, or one compiled already (see compiled.ts). */
export type Statement = Compilable | CompiledQuery

const compile = (statement: Statement): CompiledQuery => ('compile' in statement ? statement.compile() : statement)

export async function atomically(db: DB, statements: Statement[]): Promise<void> {
  await atomicallyReturning(db, statements)
}

/** `atomically`, answering each statement's rows (RETURNING or SELECT), in order. */
export async function atomicallyReturning(db: DB, statements: Statement[]): Promise<unknown[][]> {
  if (statements.length === 0) return []
  const compiled = statements.map(compile)
  return spanned(db, compiled.length, () => {
    if (db.dialect.atomicity === 'batch') return db.batch(compiled)
    return db.transaction().execute(async (trx) => {
      const rows: unknown[][] = []
      for (const query of compiled) rows.push((await trx.executeQuery(query)).rows as unknown[])
      return rows
    })
  })
}

/** The rows of one statement (RETURNING), written in one atomic unit with `also` (its audit entry, say). */
export async function returningWith<R>(db: DB, statement: Statement, also: Statement[]): Promise<R[]> {
  const [rows] = await atomicallyReturning(db, [statement, ...also])
  return rows as R[]
}

/**
 * Steps that look at what the one before answered, in one transaction ('transaction' dialects
 * only; a 'batch' dialect says the same with conditions inside its statements). A step that
 * throws undoes them all.
 */
export function inTransaction<T>(db: DB, work: (run: <R>(statement: Statement) => Promise<R[]>, trx: Executor) => Promise<T>): Promise<T> {
  if (db.dialect.atomicity !== 'transaction') throw new Error(`${db.dialect.name} has no interactive transactions`)
  return spanned(db, null, () => db.transaction().execute((trx) => work(async <R>(statement: Statement) => (await trx.executeQuery(compile(statement))).rows as R[], trx)))
}

/**
 * `insert into <table> (<columns>) select <each column's placeholder> where <condition>`: a row
 * written only if something else in the same atomic unit was (what a D1 batch says without
 * looking at the answers before). For compiled.ts's builders. The values are untyped parameters,
 * which PostgreSQL takes as text: the columns must be text ones.
 */
export function insertWhere<T extends keyof Database & string>(
  db: Executor,
  table: T,
  columns: readonly (keyof Database[T] & string)[],
  p: Placeholder,
  condition: Expression<SqlBool>,
): InsertQueryBuilder<Database, T, InsertResult> {
  const values = db.selectNoFrom(columns.map((column) => sql<string>`${p(column)}`.as(column))).where(condition)
  return db.insertInto(table).columns(columns as never).expression(values as never)
}
