import { type Kysely, type Migration, Migrator, sql } from 'kysely'
import { afterAll, describe, expect, test } from 'vitest'
import { migrationsFor } from '../migrations/index'
import { POSTGRES, SQLITE } from '../src/db/dialect'
import { migrateToLatest } from '../src/db/migrate'
import { createPostgresDb } from '../src/node/postgres'
import { createSqliteDb } from '../src/node/sqlite'
import { type TestDatabase, createTestDatabase, postgresAvailable } from './postgres'

/**
 * PostgreSQL's migration list (a baseline) against SQLite's (the released history): the same
 * tables, columns, keys and indexes, text ordered bytewise, quantities in full double precision,
 * and a migration race between instances that start at once settled by Kysely's lock.
 */

interface Column { name: string; type: string; notNull: boolean; default: string | null }
interface Index { table: string; name: string | null; columns: string[]; unique: boolean; where: string | null }
interface ForeignKey { table: string; column: string; references: string; onDelete: string }
interface Schema { tables: Record<string, Column[]>; indexes: Index[]; foreignKeys: ForeignKey[] }

// `"late" = 0` (SQLite's text) and `(late = 0)` (PostgreSQL's) are one predicate.
const predicate = (text: string | null | undefined) => (text ? text.toLowerCase().replace(/["()]/g, '').replace(/\s+/g, ' ').trim() : null)
const sortIndexes = (indexes: Index[]) => indexes.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)))
const INTERNAL = /^(sqlite_|kysely_)/

async function sqliteSchema(db: Kysely<any>): Promise<Schema> {
  const tables: Schema['tables'] = {}
  const indexes: Index[] = []
  const foreignKeys: ForeignKey[] = []
  const { rows: names } = await sql<{ name: string }>`select name from sqlite_master where type = 'table' order by name`.execute(db)
  for (const { name: table } of names.filter(({ name }) => !INTERNAL.test(name))) {
    const { rows: columns } = await sql<{ name: string; type: string; notnull: number; dflt_value: string | null; pk: number }>`select * from pragma_table_info(${table})`.execute(db)
    tables[table] = columns.map((column) => ({
      name: column.name,
      type: { TEXT: 'text', INTEGER: 'integer', REAL: 'double' }[column.type.toUpperCase()] ?? `?${column.type}`,
      // SQLite lets a non-integer primary key hold NULL (a historical quirk); nothing writes one.
      notNull: column.notnull === 1 || column.pk > 0,
      default: column.dflt_value,
    }))
    const { rows: list } = await sql<{ name: string; unique: number; origin: string }>`select * from pragma_index_list(${table})`.execute(db)
    for (const index of list) {
      const { rows: parts } = await sql<{ seqno: number; name: string }>`select * from pragma_index_info(${index.name}) order by seqno`.execute(db)
      const { rows: [created] } = await sql<{ sql: string | null }>`select sql from sqlite_master where type = 'index' and name = ${index.name}`.execute(db)
      indexes.push({
        table,
        // Constraint indexes (primary key, UNIQUE) are nameless on SQLite: compared by their columns.
        name: index.origin === 'c' ? index.name : null,
        columns: parts.map((part) => part.name),
        unique: index.unique === 1,
        where: predicate(/\swhere\s(.+)$/is.exec(created?.sql ?? '')?.[1]),
      })
    }
    const { rows: fks } = await sql<{ from: string; table: string; to: string; on_delete: string }>`select * from pragma_foreign_key_list(${table})`.execute(db)
    for (const fk of fks) foreignKeys.push({ table, column: fk.from, references: `${fk.table}.${fk.to}`, onDelete: fk.on_delete.toLowerCase() })
  }
  return { tables, indexes: sortIndexes(indexes), foreignKeys: foreignKeys.sort((a, b) => `${a.table}.${a.column}`.localeCompare(`${b.table}.${b.column}`)) }
}

async function postgresSchema(db: Kysely<any>): Promise<Schema> {
  const tables: Schema['tables'] = {}
  const { rows: columns } = await sql<{ table_name: string; column_name: string; data_type: string; collation_name: string | null; is_nullable: string; column_default: string | null }>`
    select table_name, column_name, data_type, collation_name, is_nullable, column_default from information_schema.columns
    where table_schema = current_schema() order by table_name, ordinal_position`.execute(db)
  // A text default comes back with its cast ('full'::text); SQLite gives it as written ('full').
  for (const column of columns.filter(({ table_name }) => !INTERNAL.test(table_name))) {
    const type = column.data_type === 'text' ? (column.collation_name === 'C' ? 'text' : `text collate ${column.collation_name ?? 'default'}`)
      : ({ bigint: 'integer', 'double precision': 'double' }[column.data_type] ?? `?${column.data_type}`)
    ;(tables[column.table_name] ??= []).push({ name: column.column_name, type, notNull: column.is_nullable === 'NO', default: column.column_default?.replace(/::text$/, '') ?? null })
  }
  const { rows: indexRows } = await sql<{ table: string; name: string; columns: string[]; unique: boolean; where: string | null; constraint: boolean }>`
    select t.relname as table, i.relname as name, x.indisunique as unique, pg_get_expr(x.indpred, x.indrelid) as where,
      exists (select 1 from pg_constraint c where c.conindid = x.indexrelid) as constraint,
      array(select a.attname::text from unnest(x.indkey) with ordinality k(attnum, n) join pg_attribute a on a.attrelid = x.indrelid and a.attnum = k.attnum order by k.n) as columns
    from pg_index x join pg_class i on i.oid = x.indexrelid join pg_class t on t.oid = x.indrelid
    where t.relnamespace = current_schema()::regnamespace`.execute(db)
  const indexes = indexRows
    .filter((row) => !INTERNAL.test(row.table))
    .map((row) => ({ table: row.table, name: row.constraint ? null : row.name, columns: row.columns, unique: row.unique, where: predicate(row.where) }))
  const { rows: fks } = await sql<{ table: string; column: string; references: string; on_delete: string }>`
    select t.relname as table, a.attname as column, r.relname || '.' || ra.attname as references,
      case c.confdeltype when 'c' then 'cascade' when 'a' then 'no action' when 'r' then 'restrict' when 'n' then 'set null' else 'set default' end as on_delete
    from pg_constraint c join pg_class t on t.oid = c.conrelid join pg_class r on r.oid = c.confrelid
    join pg_attribute a on a.attrelid = c.conrelid and a.attnum = c.conkey[1]
    join pg_attribute ra on ra.attrelid = c.confrelid and ra.attnum = c.confkey[1]
    where c.contype = 'f' and t.relnamespace = current_schema()::regnamespace`.execute(db)
  const foreignKeys = fks.map((fk) => ({ table: fk.table, column: fk.column, references: fk.references, onDelete: fk.on_delete }))
  return { tables, indexes: sortIndexes(indexes), foreignKeys: foreignKeys.sort((a, b) => `${a.table}.${a.column}`.localeCompare(`${b.table}.${b.column}`)) }
}

describe.runIf(await postgresAvailable())('PostgreSQL migrations', () => {
  const databases: TestDatabase[] = []
  const handles: Kysely<any>[] = []
  const fresh = async (options: { icuLocale?: string; poolMax?: number } = {}) => {
    const database = await createTestDatabase(options)
    databases.push(database)
    const db = createPostgresDb(database.url, { poolMax: options.poolMax ?? 2 })
    handles.push(db)
    return db
  }
  afterAll(async () => {
    await Promise.all(handles.map((db) => db.destroy()))
    await Promise.all(databases.map((database) => database.drop()))
  })

  test('the baseline gives PostgreSQL the schema SQLite has after its migrations: tables, columns, defaults, keys, indexes', async () => {
    const lite = createSqliteDb('sqlite::memory:')
    await migrateToLatest(lite, SQLITE)
    const expected = await sqliteSchema(lite)
    await lite.destroy()
    const db = await fresh()
    expect(await migrateToLatest(db, POSTGRES)).toEqual(Object.keys(migrationsFor('postgres')))
    const actual = await postgresSchema(db)
    // Spot checks first, so a failure says what kind of difference it is.
    expect(Object.keys(actual.tables).sort()).toEqual(Object.keys(expected.tables).sort())
    expect(actual.tables.usage_records!.find((column) => column.name === 'quantity')).toEqual({ name: 'quantity', type: 'double', notNull: true, default: null })
    expect(actual).toEqual(expected)
  })

  test('text sorts bytewise as on SQLite even in a database whose own collation is en-US; quantities keep all 53 bits', async () => {
    const db = await fresh({ icuLocale: 'en-US' })
    // The database itself would order case-insensitively (what the schema must not inherit).
    const { rows: plain } = await sql<{ x: string }>`select x from unnest(array['a', 'B', 'b', 'A']) as t(x) order by x`.execute(db)
    expect(plain.map((row) => row.x)).toEqual(['a', 'A', 'b', 'B'])
    await migrateToLatest(db, POSTGRES)
    const lite = createSqliteDb('sqlite::memory:')
    await migrateToLatest(lite, SQLITE)
    const ids = ['org_b', 'org_B', 'org_a', 'org_A', 'org_~', 'org_0', 'org_é']
    const listed: string[][] = []
    for (const target of [db, lite]) {
      await target.insertInto('orgs').values(ids.map((id) => ({ id, name: id, fulfillment_url: 'https://a.example', created_at: '2026-01-01T00:00:00.000Z', updated_at: '2026-01-01T00:00:00.000Z' }))).execute()
      listed.push((await target.selectFrom('orgs').select('id').where('id', '>', 'org_B').orderBy('id').execute()).map((row) => row.id))
    }
    await lite.destroy()
    expect(listed[0]).toEqual(['org_a', 'org_b', 'org_~', 'org_é'])
    expect(listed[0]).toEqual(listed[1])

    const quantity = 0.1 + 0.2 // 0.30000000000000004: float4 would answer 0.3
    await db.insertInto('usage_records').values({
      id: 'u1', org_id: 'org_a', entitlement_id: 'e', partner: 'azure', dimension: 'd', quantity, timestamp: 't', timestamp_given: 1, hour: 'h',
      idempotency_key: 'k', status: 'PENDING', created_at: 't',
    }).execute()
    expect((await db.selectFrom('usage_records').select('quantity').executeTakeFirstOrThrow()).quantity).toBe(quantity)
  })

  test('five instances migrating one empty database at once all succeed, and each migration runs once', async () => {
    const database = await createTestDatabase()
    databases.push(database)
    // Five pools, as five processes would have.
    const instances = Array.from({ length: 5 }, () => createPostgresDb(database.url, { poolMax: 2 }))
    handles.push(...instances)
    const applied = await Promise.all(instances.map((db) => migrateToLatest(db, POSTGRES)))
    expect(applied.flat().sort()).toEqual(Object.keys(migrationsFor('postgres')).sort())
    const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(instances[0]!)
    expect(rows.map((row) => row.name)).toEqual(Object.keys(migrationsFor('postgres')))
    await Promise.all(instances.map(async (db) => expect(await migrateToLatest(db, POSTGRES)).toEqual([])))
  })

  test('a run that fails part-way leaves nothing behind: PostgreSQL migrates in one transaction', async () => {
    const db = await fresh()
    const failing: Record<string, Migration> = {
      ...migrationsFor('postgres'),
      '9999_fails': { up: async (trx) => void (await sql`select * from no_such_table`.execute(trx)) },
    }
    const { error } = await new Migrator({ db, provider: { getMigrations: async () => failing } }).migrateToLatest()
    expect(String(error)).toMatch(/no_such_table/)
    const { rows } = await sql<{ n: number }>`select count(*) as n from information_schema.tables where table_schema = current_schema() and table_name = 'orgs'`.execute(db)
    expect(rows[0]!.n).toBe(0)
  })
})
