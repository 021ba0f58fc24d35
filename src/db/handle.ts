import { type CompiledQuery, Kysely, type KyselyConfig } from 'kysely'
import type { Dialect } from './dialect'
import type { Database } from './schema'

/** Runs compiled statements as one atomic unit the database itself guarantees, answering each one's rows. */
export type BatchRunner = (queries: readonly CompiledQuery[]) => Promise<unknown[][]>

/**
 * The broker's database handle: a Kysely instance that carries what the data layer may assume of
 * the database behind it (`dialect`, see dialect.ts), and, where several statements are made
 * all-or-nothing by sending them together (`dialect.atomicity === 'batch'`: D1), the call that
 * does so. Every query is written against it as against any Kysely; a query that differs between
 * dialects asks `db.dialect` where it is written. Built by the entries only: createSqliteDb and
 * createPostgresDb (Node), createD1Db (Workers).
 */
export class DB extends Kysely<Database> {
  readonly dialect: Dialect
  readonly #batch: BatchRunner | undefined

  constructor(config: KyselyConfig, dialect: Dialect, batch?: BatchRunner) {
    super(config)
    if ((dialect.atomicity === 'batch') !== (batch !== undefined)) throw new Error(`the ${dialect.name} handle needs a batch runner exactly when its atomicity is 'batch'`)
    this.dialect = dialect
    this.#batch = batch
  }

  /** The batch runner of a 'batch' dialect. */
  get batch(): BatchRunner {
    if (!this.#batch) throw new Error(`${this.dialect.name} runs several statements in a transaction, not a batch`)
    return this.#batch
  }
}

/** Any Kysely over the broker's schema: a handle, or a transaction opened on one. */
export type Executor = Kysely<Database>
