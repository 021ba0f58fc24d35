import { licenseId } from '../../providers/aws/license-arn'
import type { Buyer, EntitlementStatus, NormalizedPurchase, OfferType, Partner, Term } from '../../providers/types'
import * as entitlementsDb from '../db/entitlements'
import type { EntitlementEventRow, EntitlementRow } from '../db/schema'
import type { AppDeps } from '../deps'
import { notFound } from '../errors'
import type { Entitlement, EntitlementEvent, EventType } from '../schemas'
import { decodeCursor, encodeCursor } from './cursor'
import { newId } from './ids'
import { getOrg } from './orgs'

export function toEntitlement(row: EntitlementRow): Entitlement {
  return {
    id: row.id,
    orgId: row.org_id,
    partner: row.partner as Partner,
    partnerId: row.partner_id,
    status: row.status as EntitlementStatus,
    offerType: row.offer_type as OfferType,
    externalId: row.external_id,
    productId: row.product_id,
    planId: row.plan_id,
    quantity: row.quantity,
    buyer: JSON.parse(row.buyer) as Buyer,
    term: JSON.parse(row.term) as Term,
    isFreeTrial: row.is_free_trial === 1,
    isTest: row.is_test === 1,
    info: JSON.parse(row.info) as Record<string, unknown>,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  }
}

/**
 * The same Entitlement as `toEntitlement`, as JSON text: `buyer`, `term` and `info` are stored
 * as JSON we wrote ourselves, so they are spliced in as they are instead of being parsed and
 * serialized again (most of a list page's cost).
 */
export function entitlementJson(row: EntitlementRow): string {
  const head = JSON.stringify({
    id: row.id,
    orgId: row.org_id,
    partner: row.partner,
    partnerId: row.partner_id,
    status: row.status,
    offerType: row.offer_type,
    externalId: row.external_id,
    productId: row.product_id,
    planId: row.plan_id,
    quantity: row.quantity,
  })
  const tail = JSON.stringify({ isFreeTrial: row.is_free_trial === 1, isTest: row.is_test === 1 })
  return `${head.slice(0, -1)},"buyer":${row.buyer},"term":${row.term},${tail.slice(1, -1)},"info":${row.info},"createdAt":${JSON.stringify(row.created_at)},"updatedAt":${JSON.stringify(row.updated_at)}}`
}

export function toEvent(row: EntitlementEventRow): EntitlementEvent {
  return {
    id: row.id,
    entitlementId: row.entitlement_id,
    type: row.type as EventType,
    source: row.source as EntitlementEvent['source'],
    data: JSON.parse(row.data) as Record<string, unknown>,
    createdAt: row.created_at,
  }
}

/** The columns a purchase sets; used for both the first insert and later refreshes. */
export function purchaseColumns(purchase: NormalizedPurchase) {
  return {
    status: purchase.status,
    offer_type: purchase.offerType,
    product_id: purchase.productId,
    plan_id: purchase.planId,
    quantity: purchase.quantity,
    buyer: JSON.stringify(purchase.buyer),
    term: JSON.stringify(purchase.term),
    is_free_trial: purchase.isFreeTrial ? 1 : 0,
    is_test: purchase.isTest ? 1 : 0,
    info: JSON.stringify(purchase.info),
  }
}

/** The event a change of marketplace status stands for, if any. */
export function statusEvent(from: EntitlementStatus, to: EntitlementStatus): EventType | null {
  if (from === to) return null
  switch (to) {
    case 'ACTIVE':
      return from === 'SUSPENDED' ? 'REINSTATE' : 'ACTIVATE'
    case 'SUSPENDED':
      return 'SUSPEND'
    case 'PENDING_CANCEL':
      return 'PENDING_CANCEL'
    case 'CANCELLED':
      return 'CANCEL'
    default:
      return 'UPDATE'
  }
}

/** The stored entitlement as a purchase again, for the activation job. */
export function purchaseOf(row: EntitlementRow): NormalizedPurchase {
  const entitlement = toEntitlement(row)
  return {
    externalId: entitlement.externalId,
    status: entitlement.status,
    offerType: entitlement.offerType,
    productId: entitlement.productId,
    planId: entitlement.planId,
    quantity: entitlement.quantity,
    buyer: entitlement.buyer,
    term: entitlement.term,
    isFreeTrial: entitlement.isFreeTrial,
    isTest: entitlement.isTest,
    info: entitlement.info,
    needsActivation: entitlement.status === 'PENDING_START',
  }
}

/** An event alone, for seeding histories (tests); the broker writes events with their change (lifecycle.ts changeEntitlement). */
export async function recordEvent(
  deps: AppDeps,
  entitlement: Pick<EntitlementRow, 'id' | 'org_id'>,
  type: EventType,
  source: EntitlementEvent['source'],
  data: Record<string, unknown>,
  at: string,
): Promise<void> {
  await entitlementsDb.insertEvent(deps.db, {
    id: newId('evt'),
    entitlement_id: entitlement.id,
    org_id: entitlement.org_id,
    type,
    source,
    data: JSON.stringify(data),
    created_at: at,
  })
}

// ---- reading -------------------------------------------------------------------------

/**
 * A page of entitlements as the JSON text of `{"items": Entitlement[], "nextCursor"}`, from
 * each row's stored JSON (written with the row by every write, see db/entitlements.ts). A row
 * without it (none is written so; a row edited by hand could be) is serialized from its columns.
 * `q` searches: the entitlement with that `ent_` id, or those whose marketplace id (externalId)
 * or buyer email contains it, ignoring case (the console's search; the API's list has none yet).
 */
export async function listEntitlementsJson(
  deps: AppDeps,
  orgId: string,
  query: { partner?: string; status?: string; q?: string; limit: number; cursor?: string },
): Promise<string> {
  const before = query.cursor ? decodeCursor(query.cursor) : undefined
  await getOrg(deps, orgId)
  const pageQuery = { orgId, partner: query.partner, status: query.status, search: query.q || undefined, limit: query.limit, before }
  const page = await entitlementsDb.listEntitlementJson(deps.db, pageQuery)
  let items = page.rows.map((row) => row.json)
  let last: Pick<EntitlementRow, 'created_at' | 'id'> | undefined
  if (items.includes(null)) {
    const rows = (await entitlementsDb.listEntitlements(deps.db, pageQuery)).rows
    items = rows.map(entitlementJson)
    last = rows.at(-1)
  } else if (page.hasMore && items.length > 0) {
    const { createdAt, id } = JSON.parse(items.at(-1)!) as { createdAt: string; id: string }
    last = { created_at: createdAt, id }
  }
  const nextCursor = page.hasMore && last ? encodeCursor(last) : null
  return `{"items":[${items.join(',')}],"nextCursor":${JSON.stringify(nextCursor)}}`
}

/** One entitlement as JSON text. */
export async function getEntitlementJson(deps: AppDeps, orgId: string, id: string): Promise<string> {
  const json = await entitlementsDb.findEntitlementJson(deps.db, orgId, id)
  if (json === undefined) throw notFound('Entitlement')
  if (json !== null) return json
  const row = await entitlementsDb.findEntitlement(deps.db, orgId, id)
  if (!row) throw notFound('Entitlement')
  return entitlementJson(row)
}

export async function listEntitlementEvents(deps: AppDeps, orgId: string, id: string): Promise<EntitlementEvent[]> {
  const row = await entitlementsDb.findEntitlement(deps.db, orgId, id)
  if (!row) throw notFound('Entitlement')
  return (await entitlementsDb.listEvents(deps.db, id)).map(toEvent)
}

/**
 * The stored entitlement of a purchase key, whichever print of it the marketplace used: an AWS
 * license is found by its `l-…` id (AWS prints its ARN with and without `arn:`;
 * providers/aws/license-arn.ts), every other key as it is.
 */
export function findPurchase(deps: Pick<AppDeps, 'db'>, orgId: string, partner: Partner, externalId: string) {
  const license = partner === 'aws' ? licenseId(externalId) : null
  const alias = license ? { endsWith: license, is: (stored: string) => licenseId(stored) === license } : undefined
  return entitlementsDb.findEntitlementByExternalId(deps.db, orgId, partner, externalId, alias)
}
