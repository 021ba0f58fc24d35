import type { Migration } from 'kysely'
import * as m0001 from './0001_initial'
import * as m0002 from './0002_claims_and_activations'
import * as m0003 from './0003_entitlement_filters_index'
import * as m0004 from './0004_entitlement_json'
import * as m0005 from './0005_notifications'
import * as m0006 from './0006_webhooks'
import * as m0007 from './0007_usage'
import * as m0008 from './0008_signups'
import * as m0009 from './0009_domain_out_of_triggers'
import * as p0009 from './0009_postgres_baseline'
import * as m0010 from './0010_api_keys'
import * as m0011 from './0011_rate_limits'
import * as m0012 from './0012_audit_log'
import * as m0013 from './0013_console_sessions'
import * as m0014 from './0014_console_landings'
import * as m0015 from './0015_suger_usage_groups'
import * as m0016 from './0016_telemetry'
import { type MigrationDialect, type SharedMigration, columnTypes } from './dialect'

/**
 * The migration lists, imported statically (no file-system scan) so the same list runs on SQLite
 * under Node, on D1 under Workers and on PostgreSQL. Append only; names sort in order.
 *
 * Two histories meet at 0009. SQLite and D1 keep the migrations as they were released (0001–0008
 * are frozen and SQLite-only: triggers, `rowid`, `real`, probing statements). PostgreSQL starts
 * with one baseline, 0009_postgres_baseline, equal to their schema after their 0009.
 *
 * From 0010 on a migration is written once, for every dialect: a file exporting
 * `up(db, types)` (see `SharedMigration` in ./dialect.ts) whose columns take their types from
 * `types` (`types.text`, `types.integer`, `types.double`, never a literal 'text' or 'real'), with
 * portable SQL only, registered in `shared` below:
 *
 *   // 0010_api_key_scopes.ts
 *   export async function up(db: Kysely<any>, { text }: ColumnTypes) {
 *     await db.schema.alterTable('api_keys').addColumn('scopes', text).execute()
 *   }
 */
const sqliteHistory: Record<string, Migration> = {
  '0001_initial': m0001,
  '0002_claims_and_activations': m0002,
  '0003_entitlement_filters_index': m0003,
  '0004_entitlement_json': m0004,
  '0005_notifications': m0005,
  '0006_webhooks': m0006,
  '0007_usage': m0007,
  '0008_signups': m0008,
  '0009_domain_out_of_triggers': m0009,
}

const postgresHistory: Record<string, Migration> = {
  '0009_postgres_baseline': p0009,
}

/** Every dialect, from 0010 on. */
const shared: Record<string, SharedMigration> = {
  '0010_api_keys': m0010,
  '0011_rate_limits': m0011,
  '0012_audit_log': m0012,
  '0013_console_sessions': m0013,
  '0014_console_landings': m0014,
  '0015_suger_usage_groups': m0015,
  '0016_telemetry': m0016,
}

export function migrationsFor(dialect: MigrationDialect): Record<string, Migration> {
  const types = columnTypes(dialect)
  const history = dialect === 'postgres' ? postgresHistory : sqliteHistory
  const common = Object.entries(shared).map(([name, migration]): [string, Migration] => [
    name,
    { up: (db) => migration.up(db, types), ...(migration.down ? { down: (db) => migration.down!(db, types) } : {}) },
  ])
  return { ...history, ...Object.fromEntries(common) }
}
