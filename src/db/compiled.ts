import type { CompiledQuery, Compilable, QueryResult } from 'kysely'
import type { Executor } from './schema'

/**
 * Hot statements compiled once per database and run with new values: building and compiling
 * a Kysely query costs far more than SQLite takes to run it. A statement is written with
 * named placeholders (`p('orgId')`), compiled the first time, and every later call only maps
 * the names to values in the compiled parameter order.
 */
const MARK = '\u0000mb:'
const cache = new WeakMap<Executor, Map<string, CompiledQuery>>()

export type Placeholder = <T = any>(name: string) => T

/** `{ column: p(column) }` for each column: the values (or SET) of a compiled insert or update. */
export function placeholders<C extends string>(p: Placeholder, columns: readonly C[]): Record<C, any> {
  return Object.fromEntries(columns.map((column) => [column, p(column)])) as Record<C, any>
}

/** The statement `key` (compiled on first use) with these values in its parameters. */
export function compiledQuery<R>(db: Executor, key: string, build: (p: Placeholder) => Compilable<R>, values: Record<string, unknown>): CompiledQuery<R> {
  let statements = cache.get(db)
  if (!statements) {
    statements = new Map()
    cache.set(db, statements)
  }
  let compiled = statements.get(key)
  if (!compiled) {
    compiled = build(<T>(name: string) => `${MARK}${name}` as T).compile()
    statements.set(key, compiled)
  }
  const parameters = compiled.parameters.map((parameter) => {
    if (typeof parameter !== 'string' || !parameter.startsWith(MARK)) return parameter
    const name = parameter.slice(MARK.length)
    if (!(name in values)) throw new Error(`no value for :${name} in ${key}`)
    return values[name]
  })
  return { ...compiled, parameters } as CompiledQuery<R>
}

export async function runCompiled<R>(
  db: Executor,
  key: string,
  build: (p: Placeholder) => Compilable<R>,
  values: Record<string, unknown>,
): Promise<QueryResult<R>> {
  return db.executeQuery<R>(compiledQuery(db, key, build, values))
}
