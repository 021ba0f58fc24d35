import type { D1Database } from '@cloudflare/workers-types'
import type { Compilable, CompiledQuery } from 'kysely'
import type { DB } from './schema'

/**
 * Several writes that must happen together or not at all. D1 has no interactive transactions
 * but runs a batch atomically; SQLite (better-sqlite3) runs them in one transaction. The
 * statements are built with the Kysely instance as usual and only compiled here.
 */
const d1Of = new WeakMap<DB, D1Database>()

/** The D1 entry registers the binding behind its Kysely instance. */
export function registerD1(db: DB, d1: D1Database): void {
  d1Of.set(db, d1)
}

/** A statement to build and compile here, or one compiled already (see compiled.ts). */
export type Statement = Compilable | CompiledQuery

export async function atomically(db: DB, statements: Statement[]): Promise<void> {
  await atomicallyReturning(db, statements)
}

/** `atomically`, answering each statement's rows (RETURNING or SELECT), in order. */
export async function atomicallyReturning(db: DB, statements: Statement[]): Promise<unknown[][]> {
  if (statements.length === 0) return []
  const compiled = statements.map((statement) => ('compile' in statement ? statement.compile() : statement))
  const d1 = d1Of.get(db)
  if (d1) {
    const results = await d1.batch(compiled.map((query) => d1.prepare(query.sql).bind(...(query.parameters as unknown[]))))
    return results.map((result) => (result.results ?? []) as unknown[])
  }
  return db.transaction().execute(async (trx) => {
    const rows: unknown[][] = []
    for (const query of compiled) rows.push((await trx.executeQuery(query)).rows as unknown[])
    return rows
  })
}

/** Whether `db` is D1 (whose calls belong to the request that makes them: nothing may be shared across requests). */
export const isD1 = (db: DB) => d1Of.has(db)
