import type { CompiledQuery, Insertable } from 'kysely'
import type {
  DB,
  EntitlementEventRow,
  EntitlementEventsTable,
  EntitlementRow,
  EntitlementUpdate,
  LandingTokensTable,
  NewEntitlementRow,
} from './schema'

/**
 * Inserts the entitlement, or updates the one the org already has for this marketplace
 * purchase (unique org + partner + external id) in the same statement, so two landings
 * racing for one purchase still leave exactly one row. `created` tells which happened.
 */
export async function upsertEntitlement(db: DB, row: NewEntitlementRow): Promise<{ row: EntitlementRow; created: boolean }> {
  const saved = await db
    .insertInto('entitlements')
    .values(row)
    .onConflict((oc) =>
      oc.columns(['org_id', 'partner', 'external_id']).doUpdateSet((eb) => ({
        partner_id: eb.ref('excluded.partner_id'),
        status: eb.ref('excluded.status'),
        offer_type: eb.ref('excluded.offer_type'),
        product_id: eb.ref('excluded.product_id'),
        plan_id: eb.ref('excluded.plan_id'),
        quantity: eb.ref('excluded.quantity'),
        buyer: eb.ref('excluded.buyer'),
        term: eb.ref('excluded.term'),
        is_free_trial: eb.ref('excluded.is_free_trial'),
        is_test: eb.ref('excluded.is_test'),
        info: eb.ref('excluded.info'),
        updated_at: eb.ref('excluded.updated_at'),
      })),
    )
    .returningAll()
    .executeTakeFirstOrThrow()
  return { row: saved, created: saved.id === row.id }
}

export function findEntitlementByExternalId(db: DB, orgId: string, partner: string, externalId: string) {
  return db
    .selectFrom('entitlements')
    .selectAll()
    .where('org_id', '=', orgId)
    .where('partner', '=', partner)
    .where('external_id', '=', externalId)
    .executeTakeFirst()
}

export function updateEntitlement(db: DB, id: string, patch: EntitlementUpdate): Promise<EntitlementRow | undefined> {
  return db.updateTable('entitlements').set(patch).where('id', '=', id).returningAll().executeTakeFirst()
}

/**
 * Reading one entitlement is the API's hottest query: it is built and compiled once per
 * database and then run with new parameters, skipping Kysely's per-call query building.
 */
const findEntitlementCompiled = new WeakMap<DB, CompiledQuery<EntitlementRow>>()

export async function findEntitlement(db: DB, orgId: string, id: string): Promise<EntitlementRow | undefined> {
  let compiled = findEntitlementCompiled.get(db)
  if (!compiled) {
    compiled = db.selectFrom('entitlements').selectAll().where('org_id', '=', '?org').where('id', '=', '?id').compile()
    findEntitlementCompiled.set(db, compiled)
  }
  const result = await db.executeQuery<EntitlementRow>({ ...compiled, parameters: [orgId, id] })
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
  await db.insertInto('entitlement_events').values(event).execute()
}

export function listEvents(db: DB, entitlementId: string): Promise<EntitlementEventRow[]> {
  return db.selectFrom('entitlement_events').selectAll().where('entitlement_id', '=', entitlementId).orderBy('id').execute()
}

export function findLandingToken(db: DB, tokenHash: string, now: string) {
  return db
    .selectFrom('landing_tokens')
    .innerJoin('entitlements', 'entitlements.id', 'landing_tokens.entitlement_id')
    .selectAll('entitlements')
    .where('landing_tokens.token_hash', '=', tokenHash)
    .where('landing_tokens.expires_at', '>', now)
    .executeTakeFirst()
}

export async function saveLandingToken(db: DB, row: Insertable<LandingTokensTable>): Promise<void> {
  await db
    .insertInto('landing_tokens')
    .values(row)
    .onConflict((oc) =>
      oc.column('token_hash').doUpdateSet((eb) => ({
        entitlement_id: eb.ref('excluded.entitlement_id'),
        expires_at: eb.ref('excluded.expires_at'),
      })),
    )
    .execute()
}

export async function deleteExpiredLandingTokens(db: DB, now: string): Promise<void> {
  await db.deleteFrom('landing_tokens').where('expires_at', '<=', now).execute()
}

export async function ping(db: DB): Promise<void> {
  await db.selectFrom('orgs').select('id').limit(1).execute()
}
