import type { D1Database } from '@cloudflare/workers-types'
import { type DatabaseIntrospector, type DatabaseMetadata, type Kysely, Kysely as KyselyClass, type TableMetadata } from 'kysely'
import { D1Dialect } from 'kysely-d1'
import { registerD1 } from './batch'
import type { Database } from './schema'

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

export function createD1Db(database: D1Database): Kysely<Database> {
  const db = new KyselyClass<Database>({ dialect: new SafeD1Dialect({ database: database as never }) })
  registerD1(db, database)
  return db
}
