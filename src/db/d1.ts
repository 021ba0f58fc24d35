import type { D1Database } from '@cloudflare/workers-types'
import type { DatabaseIntrospector, DatabaseMetadata, Kysely, TableMetadata } from 'kysely'
import { D1Dialect } from 'kysely-d1'
import { D1 } from './dialect'
import { DB } from './handle'

/**
 * D1 keeps internal tables (`_cf_KV`, ...) in sqlite_master that a Worker may not read.
 * Kysely's SQLite introspector asks for every table's columns, which D1 refuses with
 * SQLITE_AUTH, and the migrator introspects to find its own tables. This introspector lists
 * table names only and skips `_cf_` and `sqlite_` tables, which is all the migrator needs.
 */
class D1Introspector implements DatabaseIntrospector {
  constructor(private readonly db: Kysely<any>) {}

  async getSchemas() {
    return []
  }

  async getTables(): Promise<TableMetadata[]> {
    const rows = await this.db
      .selectFrom('sqlite_master')
      .select(['name', 'type'])
      .where('type', 'in', ['table', 'view'])
      .execute()
    return rows
      .filter((row: { name: string }) => !row.name.startsWith('_cf_') && !row.name.startsWith('sqlite_'))
      .map((row: { name: string; type: string }) => ({ name: row.name, isView: row.type === 'view', columns: [] }))
  }

  async getMetadata(): Promise<DatabaseMetadata> {
    return { tables: await this.getTables() }
  }
}

class SafeD1Dialect extends D1Dialect {
  override createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return new D1Introspector(db)
  }
}

/** Workers' database handle over a D1 binding: several statements are made atomic by one `batch` call. */
export function createD1Db(database: D1Database): DB {
  return new DB({ dialect: new SafeD1Dialect({ database: database as never }) }, D1, async (queries) => {
    const results = await database.batch(queries.map((query) => database.prepare(query.sql).bind(...(query.parameters as unknown[]))))
    return results.map((result) => (result.results ?? []) as unknown[])
  })
}
