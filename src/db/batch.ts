import type { D1Database } from '@cloudflare/workers-types'
import type { Compilable } from 'kysely'
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

export async function atomically(db: DB, statements: Compilable[]): Promise<void> {
  const compiled = statements.map((statement) => statement.compile())
  const d1 = d1Of.get(db)
  if (d1) {
    await d1.batch(compiled.map((query) => d1.prepare(query.sql).bind(...(query.parameters as unknown[]))))
    return
  }
  await db.transaction().execute(async (trx) => {
    for (const query of compiled) await trx.executeQuery(query)
  })
}
