import type { Insertable } from 'kysely'
import { runCompiled } from './compiled'
import type {
  DB,
  EntitlementEventRow,
  EntitlementEventsTable,
  EntitlementRow,
  EntitlementUpdate,
  LandingTokensTable,
  NewEntitlementRow,
} from './schema'

const ENTITLEMENT_COLUMNS = [
  'id', 'org_id', 'partner', 'partner_id', 'external_id', 'status', 'offer_type', 'product_id', 'plan_id', 'quantity',
  'buyer', 'term', 'is_free_trial', 'is_test', 'info', 'created_at', 'updated_at',
] as const
/** Columns a later sighting of the same purchase refreshes (id and created_at stay). */
const REFRESHED_COLUMNS = ENTITLEMENT_COLUMNS.filter((column) => column !== 'id' && column !== 'org_id' && column !== 'partner' && column !== 'external_id' && column !== 'created_at')

/**
 * Inserts the entitlement, or updates the one the org already has for this marketplace
 * purchase (unique org + partner + external id) in the same statement, so two landings
 * racing for one purchase still leave exactly one row. `created` tells which happened.
 */
export async function upsertEntitlement(db: DB, row: NewEntitlementRow): Promise<{ row: EntitlementRow; created: boolean }> {
  const result = await runCompiled(
    db,
    'upsertEntitlement',
    (p) =>
      db
        .insertInto('entitlements')
        .values(Object.fromEntries(ENTITLEMENT_COLUMNS.map((column) => [column, p(column)])) as NewEntitlementRow)
        .onConflict((oc) =>
          oc
            .columns(['org_id', 'partner', 'external_id'])
            .doUpdateSet((eb) => Object.fromEntries(REFRESHED_COLUMNS.map((column) => [column, eb.ref(`excluded.${column}`)])) as never),
        )
        .returningAll(),
    { ...row, is_free_trial: row.is_free_trial ?? 0, is_test: row.is_test ?? 0 },
  )
  const saved = result.rows[0]!
  return { row: saved, created: saved.id === row.id }
}

export async function findEntitlementByExternalId(db: DB, orgId: string, partner: string, externalId: string) {
  const result = await runCompiled(
    db,
    'findEntitlementByExternalId',
    (p) =>
      db.selectFrom('entitlements').selectAll().where('org_id', '=', p('orgId')).where('partner', '=', p('partner')).where('external_id', '=', p('externalId')),
    { orgId, partner, externalId },
  )
  return result.rows[0]
}

/** The purchase columns of an entitlement, as a marketplace answer left them. */
export async function updatePurchaseColumns(db: DB, id: string, columns: Omit<EntitlementUpdate, 'id'>): Promise<EntitlementRow | undefined> {
  const names = ['status', 'offer_type', 'product_id', 'plan_id', 'quantity', 'buyer', 'term', 'is_free_trial', 'is_test', 'info', 'updated_at'] as const
  const result = await runCompiled(
    db,
    'updatePurchaseColumns',
    (p) =>
      db
        .updateTable('entitlements')
        .set(Object.fromEntries(names.map((name) => [name, p(name)])))
        .where('id', '=', p('id'))
        .returningAll(),
    { ...Object.fromEntries(names.map((name) => [name, columns[name]])), id },
  )
  return result.rows[0]
}

/** The API's hottest query. */
export async function findEntitlement(db: DB, orgId: string, id: string): Promise<EntitlementRow | undefined> {
  const result = await runCompiled(db, 'findEntitlement', (p) => db.selectFrom('entitlements').selectAll().where('org_id', '=', p('orgId')).where('id', '=', p('id')), {
    orgId,
    id,
  })
  return result.rows[0]
}

export interface EntitlementPageQuery {
  orgId: string
  partner?: string
  status?: string
  limit: number
  /** Keyset: only rows strictly older than this (created_at, id) pair. */
  before?: { createdAt: string; id: string }
}

/** Newest first, keyset-paginated on (created_at, id); asks for one extra row to know whether a next page exists. */
export async function listEntitlements(db: DB, query: EntitlementPageQuery): Promise<{ rows: EntitlementRow[]; hasMore: boolean }> {
  let select = db.selectFrom('entitlements').selectAll().where('org_id', '=', query.orgId)
  if (query.partner) select = select.where('partner', '=', query.partner)
  if (query.status) select = select.where('status', '=', query.status)
  const before = query.before
  if (before) {
    select = select.where((eb) =>
      eb.or([eb('created_at', '<', before.createdAt), eb.and([eb('created_at', '=', before.createdAt), eb('id', '<', before.id)])]),
    )
  }
  const rows = await select.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(query.limit + 1).execute()
  return { rows: rows.slice(0, query.limit), hasMore: rows.length > query.limit }
}

export async function insertEvent(db: DB, event: Insertable<EntitlementEventsTable>): Promise<void> {
  const columns = ['id', 'entitlement_id', 'org_id', 'type', 'source', 'data', 'created_at'] as const
  await runCompiled(db, 'insertEvent', (p) => db.insertInto('entitlement_events').values(Object.fromEntries(columns.map((c) => [c, p(c)])) as never), event)
}

export function listEvents(db: DB, entitlementId: string): Promise<EntitlementEventRow[]> {
  return db.selectFrom('entitlement_events').selectAll().where('entitlement_id', '=', entitlementId).orderBy('id').execute()
}

export async function findLandingToken(db: DB, tokenHash: string, now: string): Promise<EntitlementRow | undefined> {
  const result = await runCompiled(
    db,
    'findLandingToken',
    (p) =>
      db
        .selectFrom('landing_tokens')
        .innerJoin('entitlements', 'entitlements.id', 'landing_tokens.entitlement_id')
        .selectAll('entitlements')
        .where('landing_tokens.token_hash', '=', p('tokenHash'))
        .where('landing_tokens.expires_at', '>', p('now')),
    { tokenHash, now },
  )
  return result.rows[0] as EntitlementRow | undefined
}

export async function saveLandingToken(db: DB, row: Insertable<LandingTokensTable>): Promise<void> {
  const columns = ['token_hash', 'org_id', 'partner', 'entitlement_id', 'expires_at', 'created_at'] as const
  await runCompiled(
    db,
    'saveLandingToken',
    (p) =>
      db
        .insertInto('landing_tokens')
        .values(Object.fromEntries(columns.map((c) => [c, p(c)])) as never)
        .onConflict((oc) =>
          oc.column('token_hash').doUpdateSet((eb) => ({
            entitlement_id: eb.ref('excluded.entitlement_id'),
            expires_at: eb.ref('excluded.expires_at'),
          })),
        ),
    row,
  )
}

export async function deleteExpiredLandingTokens(db: DB, now: string): Promise<void> {
  await db.deleteFrom('landing_tokens').where('expires_at', '<=', now).execute()
}

export async function ping(db: DB): Promise<void> {
  await db.selectFrom('orgs').select('id').limit(1).execute()
}
