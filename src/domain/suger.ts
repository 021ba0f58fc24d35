import type { AzureParty, AzureSubscription } from '../../providers/azure/api'
import { type Buyer, type Partner, type Term, PARTNERS, isPartner } from '../../providers/types'
import * as entitlementsDb from '../db/entitlements'
import type { EntitlementRow, SugerUsageGroupRow } from '../db/schema'
import * as sugerDb from '../db/suger'
import { findRecordsByKey } from '../db/usage'
import { type AppDeps, nowIso, nowMs } from '../deps'
import { ApiError, type ErrorCode } from '../errors'
import type { Logger } from '../logger'
import { MAX_BULK_RECORDS, type UsageInput, planUsage } from './usage'
import {
  AZURE_CUSTOMER_OPERATIONS,
  AZURE_SANDBOX_TYPES,
  AZURE_SESSION_MODES,
  AZURE_SUBSCRIPTION_STATUSES,
  GCP_ENTITLEMENT_STATES,
  GCP_TEXT_FIELDS,
  GCP_TIME_FIELDS,
  type IdentityBuyer,
  type MeteringUsageRecordGroup,
  type NewUsageRecordGroup,
  type SugerPartner,
  USAGE_GROUP_SOURCES,
  USAGE_GROUP_STATUSES,
  USAGE_GROUP_STATUS_FILTERS,
  type WorkloadEntitlement,
} from '../suger-schemas'
import type { AuditContext } from './audit'
import { cancelEntitlement } from './cancel'
import { sha256Hex } from './crypto'
import { newId } from './ids'

/**
 * The Suger-compatible API (contract §15): Suger's names and shapes over the broker's own
 * entitlements and usage records. Nothing here decides anything about an entitlement or a usage
 * record: entitlements are read as the rest of the API reads them, usage goes through usage.ts,
 * a cancel through cancel.ts. What is Suger's alone is the usage-record group (group id → its
 * usage records), remembered so that a group id seen before is refused and groups can be listed.
 *
 * Wire rules of Suger's generated clients: an absent value is omitted (never null), every time is
 * RFC 3339 in UTC (`…Z`), enums exactly as Suger lists them, integers are integers.
 */

const toSuger: Record<Partner, SugerPartner> = { azure: 'AZURE', aws: 'AWS', gcp: 'GCP' }

/** Suger's partner name (any case) as the broker's; null for one it does not serve. */
export function partnerOf(value: string): Partner | null {
  const lower = value.trim().toLowerCase()
  return isPartner(lower) ? lower : null
}

/** Errors of this API are a JSON string body (app.tsx renders an ApiError of a /suger path so). */
const refuse = (code: ErrorCode, message: string) => new ApiError(code, message)
const entitlementNotFound = () => refuse('NOT_FOUND', 'entitlement not found')

// ---- values on the wire -----------------------------------------------------------------------

const text = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined)
const bool = (value: unknown): boolean | undefined => (typeof value === 'boolean' ? value : undefined)

/** An enum value as Suger spells it (Microsoft pads some: " Subscribed "); undefined when it is none of them. */
function oneOf<T extends string>(value: unknown, allowed: readonly T[]): T | undefined {
  if (typeof value !== 'string') return undefined
  const wanted = value.trim().toLowerCase()
  return allowed.find((item) => item.toLowerCase() === wanted)
}

const DATE_TIME = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2})(?::(\d{2})(?:\.(\d+))?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$/i

/**
 * A date-time as RFC 3339 UTC with a `Z`, or undefined when it is not one. A time without a zone
 * is UTC (Microsoft's `0001-01-01T00:00:00`); more than three fraction digits are cut to three.
 */
export function utcTime(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined
  const match = DATE_TIME.exec(value.trim())
  if (!match) return undefined
  const [, date, hm = '00:00', seconds = '00', fraction = '', zone = 'Z'] = match
  const offset = zone.toUpperCase() === 'Z' ? 'Z' : zone.includes(':') ? zone : `${zone.slice(0, 3)}:${zone.slice(3)}`
  const ms = Date.parse(`${date}T${hm}:${seconds}.${(fraction + '000').slice(0, 3)}${offset}`)
  if (Number.isNaN(ms)) return undefined
  const iso = new Date(ms).toISOString()
  // Years outside 0000–9999 print as ±YYYYYY, which is not RFC 3339.
  return /^\d{4}-/.test(iso) ? iso : undefined
}

/** The object without its undefined fields (what JSON.stringify would drop anyway, so tests see it too). */
function defined<T extends Record<string, unknown>>(object: T): T {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined)) as T
}

const nonEmpty = <T extends Record<string, unknown>>(object: T): T | undefined => (Object.keys(object).length ? object : undefined)

// ---- buyers -------------------------------------------------------------------------------------

/** A buyer's account key: the entitlement's externalBuyerID. */
export const buyerKey = (buyer: Buyer): string | null => buyer.accountId ?? buyer.customerId ?? null

const PARTNER_CODES: Record<Partner, string> = { azure: 'z', aws: 'a', gcp: 'g' }
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567'
const TAG_LENGTH = 10

function base32(bytes: Uint8Array): string {
  let out = ''
  let bits = 0
  let value = 0
  for (const byte of bytes) {
    value = (value << 8) | byte
    bits += 8
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31]
      bits -= 5
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31]
  return out
}

function fromBase32(textValue: string): Uint8Array | null {
  const bytes: number[] = []
  let bits = 0
  let value = 0
  for (const char of textValue) {
    const digit = BASE32.indexOf(char)
    if (digit < 0) return null
    value = ((value << 5) | digit) & 0xffff
    bits += 5
    if (bits >= 8) {
      bytes.push((value >>> (bits - 8)) & 255)
      bits -= 8
    }
  }
  return Uint8Array.from(bytes)
}

const tagOf = async (orgId: string, partner: Partner, key: string) => (await sha256Hex(`${orgId}\n${partner}\n${key}`)).slice(0, TAG_LENGTH)

/**
 * The `byr_…` id of a buyer: stable per org, marketplace and buyer account, and made from them
 * alone, so it needs no table: `byr_` + the marketplace's letter + a tag (SHA-256 of org,
 * marketplace and account, which makes the ids of one account differ between orgs and lets a
 * made-up id be told apart) + the account key in base32.
 */
export async function buyerIdOf(orgId: string, partner: Partner, key: string): Promise<string> {
  return `byr_${PARTNER_CODES[partner]}${await tagOf(orgId, partner, key)}${base32(new TextEncoder().encode(key))}`
}

const BUYER_ID = new RegExp(`^byr_([azg])([0-9a-f]{${TAG_LENGTH}})([a-z2-7]{1,400})$`)

/** The buyer a `byr_…` id of this org names, or null when it is not one of the org's ids. */
export async function buyerOfId(orgId: string, id: string): Promise<sugerDb.BuyerKey & { partner: Partner } | null> {
  const match = BUYER_ID.exec(id)
  if (!match) return null
  const partner = PARTNERS.find((p) => PARTNER_CODES[p] === match[1])!
  const bytes = fromBase32(match[3]!)
  // Only the one spelling buyerIdOf makes (the last character's spare bits included).
  if (!bytes || base32(bytes) !== match[3]) return null
  let key: string
  try {
    key = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    return null
  }
  if (key === '' || (await tagOf(orgId, partner, key)) !== match[2]) return null
  return { partner, key }
}

// ---- entitlements -------------------------------------------------------------------------------

function azureIdentity(party: AzureParty | undefined): Record<string, string> | undefined {
  if (!party || typeof party !== 'object') return undefined
  const fields = ['billingAccountId', 'customerId', 'emailId', 'firstName', 'lastName', 'licenseType', 'objectId', 'puid', 'tenantId'] as const
  return nonEmpty(defined(Object.fromEntries(fields.map((field) => [field, text((party as Record<string, unknown>)[field])])))) as Record<string, string> | undefined
}

/** Integers only (Suger's quantity is an integer): a number, or Microsoft's string spelling of one. */
function integer(value: unknown): number | undefined {
  const number = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : Number.NaN
  return Number.isSafeInteger(number) ? number : undefined
}

/**
 * The subscription's status as the entitlement's says it is now: the stored subscription is the
 * one Microsoft answered when it was last read (a landing's resolve, before its activation).
 * PENDING_CANCEL is a cancel Microsoft has not finished: still Subscribed there.
 */
const AZURE_STATUS_OF: Record<string, (typeof AZURE_SUBSCRIPTION_STATUSES)[number]> = {
  PENDING_START: 'PendingFulfillmentStart',
  ACTIVE: 'Subscribed',
  SUSPENDED: 'Suspended',
  PENDING_CANCEL: 'Subscribed',
  CANCELLED: 'Unsubscribed',
}

/** The Azure subscription as Suger's AzureMarketplaceSubscription. */
function azureSubscription(sub: AzureSubscription & Record<string, unknown>, status: string) {
  const term = sub.term && typeof sub.term === 'object' ? (sub.term as Record<string, unknown>) : {}
  const operations = Array.isArray(sub.allowedCustomerOperations)
    ? sub.allowedCustomerOperations.map((operation) => oneOf(operation, AZURE_CUSTOMER_OPERATIONS)).filter((operation) => operation !== undefined)
    : undefined
  return defined({
    allowedCustomerOperations: operations,
    autoRenew: bool(sub.autoRenew),
    beneficiary: azureIdentity(sub.beneficiary),
    created: utcTime(sub.created),
    fulfillmentId: text(sub.fulfillmentId),
    id: text(sub.id),
    isFreeTrial: bool(sub.isFreeTrial),
    isTest: bool(sub.isTest),
    lastModified: utcTime(sub.lastModified),
    name: text(sub.name),
    offerId: text(sub.offerId),
    planId: text(sub.planId),
    publisherId: text(sub.publisherId),
    purchaser: azureIdentity(sub.purchaser),
    quantity: integer(sub.quantity),
    saasSubscriptionStatus: AZURE_STATUS_OF[status] ?? oneOf(sub.saasSubscriptionStatus, AZURE_SUBSCRIPTION_STATUSES),
    sandboxType: oneOf(sub.sandboxType, AZURE_SANDBOX_TYPES),
    sessionId: text(sub.sessionId),
    sessionMode: oneOf(sub.sessionMode, AZURE_SESSION_MODES),
    storeFront: text(sub.storeFront),
    term: nonEmpty(defined({ chargeDuration: text(term.chargeDuration), endDate: utcTime(term.endDate), startDate: utcTime(term.startDate), termUnit: text(term.termUnit) })),
  })
}

/** An AWS GetEntitlements entitlement (kept as the SDK names it) in Suger's camelCase. */
function awsEntitlement(entitlement: Record<string, unknown>) {
  const value = entitlement.Value && typeof entitlement.Value === 'object' ? (entitlement.Value as Record<string, unknown>) : {}
  const double = typeof value.DoubleValue === 'number' && Number.isFinite(value.DoubleValue) ? value.DoubleValue : undefined
  return defined({
    customerIdentifier: text(entitlement.CustomerIdentifier),
    dimension: text(entitlement.Dimension),
    expirationDate: utcTime(entitlement.ExpirationDate),
    productCode: text(entitlement.ProductCode),
    value: nonEmpty(
      defined({
        booleanValue: bool(value.BooleanValue),
        doubleValue: double,
        integerValue: typeof value.IntegerValue === 'number' && Number.isSafeInteger(value.IntegerValue) ? value.IntegerValue : undefined,
        stringValue: text(value.StringValue),
      }),
    ),
  })
}

/** Google's entitlement as Suger's GcpMarketplaceEntitlement: with `id`, without `inputProperties`. */
function gcpEntitlement(entitlement: Record<string, unknown>) {
  const consumers = Array.isArray(entitlement.consumers)
    ? entitlement.consumers.map((consumer) => defined({ project: text((consumer as Record<string, unknown> | null)?.project) }))
    : undefined
  return defined({
    id: text(text(entitlement.name)?.split('/').pop()),
    ...Object.fromEntries(GCP_TEXT_FIELDS.map((field) => [field, text(entitlement[field])])),
    ...Object.fromEntries(GCP_TIME_FIELDS.map((field) => [field, utcTime(entitlement[field])])),
    consumers,
    state: oneOf(entitlement.state, GCP_ENTITLEMENT_STATES),
  })
}

const objects = (value: unknown): Array<Record<string, unknown>> =>
  Array.isArray(value) ? value.filter((item): item is Record<string, unknown> => item !== null && typeof item === 'object' && !Array.isArray(item)) : []

/** The entitlement as Suger's WorkloadEntitlement (`buyerId`: its buyerIdOf). */
export function toWorkloadEntitlement(row: EntitlementRow, buyerId: string | undefined): WorkloadEntitlement {
  const partner = row.partner as Partner
  const buyer = JSON.parse(row.buyer) as Buyer
  const term = JSON.parse(row.term) as Term
  const info = JSON.parse(row.info) as Record<string, unknown>
  const subscription = partner === 'azure' && info.subscription && typeof info.subscription === 'object' ? (info.subscription as AzureSubscription & Record<string, unknown>) : null
  const gcp = partner === 'gcp' && info.entitlement && typeof info.entitlement === 'object' ? (info.entitlement as Record<string, unknown>) : null
  return defined({
    id: row.id,
    name: text(subscription?.name) ?? row.product_id ?? undefined,
    organizationID: row.org_id,
    partner: toSuger[partner],
    partnerID: row.partner_id,
    status: row.status as WorkloadEntitlement['status'],
    productID: row.product_id ?? undefined,
    externalProductID: row.product_id ?? undefined,
    offerID: row.plan_id ?? undefined,
    externalID: row.external_id,
    buyerID: buyerId,
    externalBuyerID: buyerKey(buyer) ?? undefined,
    startTime: utcTime(term.start),
    endTime: utcTime(term.end),
    creationTime: utcTime(row.created_at) ?? row.created_at,
    lastUpdateTime: utcTime(row.updated_at) ?? row.updated_at,
    info: defined({
      autoRenew: bool(term.autoRenew) ?? bool(subscription?.autoRenew),
      azureSubscriptions: subscription ? [azureSubscription(subscription, row.status)] : undefined,
      // A subscription (no contract) has none: omitted, as Suger's Go server omits an empty list.
      awsEntitlements: partner === 'aws' && objects(info.entitlements).length ? objects(info.entitlements).map(awsEntitlement) : undefined,
      gcpEntitlements: gcp ? [gcpEntitlement(gcp)] : undefined,
    }),
  })
}

/** Entitlement rows as WorkloadEntitlements, each with its buyer's id. */
async function workloadEntitlements(rows: EntitlementRow[]): Promise<WorkloadEntitlement[]> {
  const ids = new Map<string, Promise<string>>()
  const idOf = (row: EntitlementRow) => {
    const key = buyerKey(JSON.parse(row.buyer) as Buyer)
    if (key === null || !isPartner(row.partner)) return Promise.resolve(undefined)
    const cacheKey = `${row.org_id}\n${row.partner}\n${key}`
    if (!ids.has(cacheKey)) ids.set(cacheKey, buyerIdOf(row.org_id, row.partner, key))
    return ids.get(cacheKey)!
  }
  return Promise.all(rows.map(async (row) => toWorkloadEntitlement(row, await idOf(row))))
}

async function entitlementOf(deps: AppDeps, orgId: string, id: string): Promise<EntitlementRow> {
  const row = await entitlementsDb.findEntitlement(deps.db, orgId, id)
  if (!row || !isPartner(row.partner)) throw entitlementNotFound()
  return row
}

/** `GET /suger/org/{orgId}/entitlement/{entitlementId}` */
export async function getEntitlement(deps: AppDeps, orgId: string, id: string): Promise<WorkloadEntitlement> {
  const [entitlement] = await workloadEntitlements([await entitlementOf(deps, orgId, id)])
  return entitlement!
}

export const MAX_LIMIT = 1000
/** Offsets beyond this find nothing (and keep the number a 32-bit one for every database). */
const MAX_OFFSET = 1_000_000_000

/** Suger's `limit`: default and most 1000 (a larger or non-positive one is the default). */
export function limitOf(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return MAX_LIMIT
  if (!/^[+-]?\d{1,15}$/.test(value.trim())) throw refuse('VALIDATION_ERROR', 'limit must be an integer')
  const limit = Number(value)
  return limit < 1 || limit > MAX_LIMIT ? MAX_LIMIT : limit
}

/** Suger's `offset`: default 0, never negative. */
export function offsetOf(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return 0
  if (!/^\+?\d{1,15}$/.test(value.trim())) throw refuse('VALIDATION_ERROR', 'offset must be an integer of 0 or more')
  return Math.min(Number(value), MAX_OFFSET)
}

/** A filter's value; an empty one filters nothing (a generated client sends `?partner=` for none). */
const given = (value: string | undefined) => (value === undefined || value === '' ? undefined : value)

export interface EntitlementListQuery {
  partner?: string
  productId?: string
  offerId?: string
  buyerId?: string
  externalId?: string
  buyerAccountId?: string
  limit?: string
  offset?: string
}

/** `GET /suger/org/{orgId}/entitlement`: a bare array, newest first. */
export async function listEntitlements(deps: AppDeps, orgId: string, query: EntitlementListQuery): Promise<WorkloadEntitlement[]> {
  const limit = limitOf(query.limit)
  const offset = offsetOf(query.offset)
  const partnerName = given(query.partner)
  const partner = partnerName === undefined ? undefined : partnerOf(partnerName)
  const buyerId = given(query.buyerId)
  const buyer = buyerId === undefined ? undefined : await buyerOfId(orgId, buyerId)
  // A marketplace the broker does not serve, or a buyer id that is none of the org's, has no entitlements.
  if (partner === null || buyer === null || (buyer && partner && buyer.partner !== partner) || offset >= MAX_OFFSET) return []
  const rows = await sugerDb.listEntitlements(deps.db, {
    orgId,
    partner,
    productId: given(query.productId),
    planId: given(query.offerId),
    externalId: given(query.externalId),
    buyerAccountId: given(query.buyerAccountId),
    buyer,
    limit,
    offset,
  })
  return workloadEntitlements(rows)
}

/**
 * `POST …/entitlement/{entitlementId}/approve`: Suger approves an Azure or Google entitlement that
 * waits for the seller; the broker's own flow does that (the landing activates Azure, the
 * lifecycle approves Google), so the answer is the entitlement when it is PENDING_START or ACTIVE.
 */
export async function approveEntitlement(deps: AppDeps, orgId: string, id: string): Promise<WorkloadEntitlement> {
  const row = await entitlementOf(deps, orgId, id)
  if (row.status !== 'PENDING_START' && row.status !== 'ACTIVE') {
    throw refuse('VALIDATION_ERROR', `entitlement is ${row.status}: only a PENDING_START or ACTIVE entitlement can be approved`)
  }
  return getEntitlement(deps, orgId, id)
}

/** `POST …/entitlement/{entitlementId}/cancel`: Azure only (cancel.ts). */
export async function cancel(deps: AppDeps, orgId: string, id: string, log: Logger, audit: AuditContext): Promise<WorkloadEntitlement> {
  await entitlementOf(deps, orgId, id)
  const row = await cancelEntitlement(deps, orgId, id, log, audit)
  const [entitlement] = await workloadEntitlements([row])
  return entitlement!
}

/** `GET /suger/org/{orgId}/buyer/{buyerId}`: the buyer of the org's entitlements that carry this buyerID. */
export async function getBuyer(deps: AppDeps, orgId: string, id: string): Promise<IdentityBuyer> {
  const buyer = await buyerOfId(orgId, id)
  const rows = buyer ? await sugerDb.listEntitlements(deps.db, { orgId, buyer, limit: MAX_LIMIT, offset: 0 }) : []
  if (!buyer || rows.length === 0) throw refuse('NOT_FOUND', 'buyer not found')
  // Newest first: the latest sighting of each field wins.
  const buyers = rows.map((row) => JSON.parse(row.buyer) as Buyer)
  const first = <T>(pick: (buyer: Buyer, index: number) => T | null | undefined) => {
    for (const [index, item] of buyers.entries()) {
      const value = pick(item, index)
      if (value !== null && value !== undefined && value !== '') return value
    }
    return undefined
  }
  const email = first((item) => item.email)
  const times = rows.map((row) => row.created_at).sort()
  const updates = rows.map((row) => row.updated_at).sort()
  let partnerInfo: IdentityBuyer['info'] = {}
  if (buyer.partner === 'aws') {
    partnerInfo = { awsBuyer: defined({ awsAccountID: first((item) => item.accountId), awsCustomerID: first((item) => item.customerId) }) }
  } else if (buyer.partner === 'azure') {
    partnerInfo = { azureBuyer: defined({ tenantId: first((item) => item.tenantId ?? item.accountId), objectId: first((item) => item.customerId), emailId: email }) }
  } else {
    const provider = first((_item, index) => providerOf(rows[index]!))
    const account = first((item) => item.accountId)
    partnerInfo = { gcpBuyer: defined({ id: account, name: provider && account ? `providers/${provider}/accounts/${account}` : undefined, provider }) }
  }
  return defined({
    id,
    organizationID: orgId,
    partner: toSuger[buyer.partner],
    externalID: buyer.key,
    name: first((item) => item.name) ?? email,
    creationTime: utcTime(times[0]) ?? times[0]!,
    lastUpdateTime: utcTime(updates.at(-1)) ?? updates.at(-1)!,
    info: defined({ emailAddress: email, ...partnerInfo }),
  })
}

/** A Google entitlement's provider id: its `provider`, else the one its name or account names. */
function providerOf(row: EntitlementRow): string | undefined {
  const entitlement = (JSON.parse(row.info) as { entitlement?: { provider?: unknown; name?: unknown; account?: unknown } | null }).entitlement
  if (!entitlement) return undefined
  const named = [entitlement.name, entitlement.account].map((value) => /^providers\/([^/]+)\//.exec(text(value) ?? '')?.[1])
  return text(entitlement.provider) ?? named.find((value) => value !== undefined)
}

// ---- usage-record groups -------------------------------------------------------------------

/** One group to report, as the route validated it (CreateUsageRecordGroupParams or NewUsageRecordGroup). */
export type GroupInput = NewUsageRecordGroup

/** The most groups one batch may carry (and the most usage records one request may make). */
export const MAX_BATCH_GROUPS = MAX_BULK_RECORDS

/**
 * `POST …/entitlement/{entitlementId}/usageRecordGroup`: one group, whose entitlementID and
 * organizationID must be the path's.
 */
export async function reportGroup(deps: AppDeps, orgId: string, entitlementId: string, group: GroupInput & { organizationID: string }): Promise<MeteringUsageRecordGroup> {
  if (group.entitlementID !== entitlementId) throw refuse('VALIDATION_ERROR', 'entitlementID is not the entitlement of the path')
  if (group.organizationID !== orgId) throw refuse('VALIDATION_ERROR', 'organizationID is not the org of the path')
  const [reported] = await reportGroups(deps, orgId, [group], true)
  return reported!
}

/** A refusal of one of a batch's groups names it; a single group's is its own. */
const inGroup = (index: number | null, message: string) => (index === null ? message : `usageRecordGroups[${index}]: ${message}`)

/**
 * Reports usage-record groups: each quantity above 0 becomes a usage record of §9 (idempotency key
 * `<group id>:<dimension>`), reported by the job like any other. All of them are judged before
 * anything is stored and stored in one atomic write with the groups, or none is: a group id seen
 * before is 409 whatever the body, a group whose quantities are all 0 is 400, and so is one the
 * usage rules refuse (an entitlement not ACTIVE, a time outside the marketplace's window, …).
 * `single`: the one group of `POST …/usageRecordGroup` (an unknown entitlement is 404 there).
 */
export async function reportGroups(deps: AppDeps, orgId: string, groups: GroupInput[], single: boolean): Promise<MeteringUsageRecordGroup[]> {
  const label = (index: number) => (single ? null : index)
  if (groups.length > MAX_BATCH_GROUPS) throw refuse('VALIDATION_ERROR', `at most ${MAX_BATCH_GROUPS} usage record groups per request (got ${groups.length})`)
  const now = nowIso(deps)
  const planned = groups.map((group, index) => {
    if (group.organizationID !== undefined && group.organizationID !== orgId) throw refuse('VALIDATION_ERROR', inGroup(label(index), 'organizationID is not the org of the path'))
    const id = group.id || group.ID || crypto.randomUUID()
    const positive = Object.entries(group.records).filter(([, quantity]) => quantity > 0)
    return { index, id, group, positive, timestamp: group.timestamp === undefined ? now : new Date(Date.parse(group.timestamp)).toISOString() }
  })
  const seen = new Map<string, number>()
  for (const { index, id } of planned) {
    const earlier = seen.get(id)
    if (earlier !== undefined) throw refuse('VALIDATION_ERROR', inGroup(index, `id ${id} is used by more than one group of this request (first at usageRecordGroups[${earlier}])`))
    seen.set(id, index)
  }
  const taken = await sugerDb.findGroupIds(deps.db, orgId, [...seen.keys()])
  const repeated = planned.find(({ id }) => taken.has(id))
  if (repeated) throw refuse('CONFLICT', inGroup(label(repeated.index), `usage record group ${repeated.id} was reported before`))
  const total = planned.reduce((sum, { positive }) => sum + positive.length, 0)
  if (total > MAX_BULK_RECORDS) throw refuse('VALIDATION_ERROR', `at most ${MAX_BULK_RECORDS} usage records (quantities above 0) per request (got ${total})`)
  for (const { index, id, positive } of planned) {
    // Suger's own words for it.
    if (positive.length === 0) throw refuse('VALIDATION_ERROR', inGroup(label(index), 'all the quantity of usage records are zero'))
    const long = positive.find(([dimension]) => `${id}:${dimension}`.length > 255)
    if (long) throw refuse('VALIDATION_ERROR', inGroup(label(index), `id and dimension "${long[0]}" make an idempotency key longer than 255 characters`))
  }

  const entitlements = await sugerDb.findEntitlements(deps.db, orgId, planned.map(({ group }) => group.entitlementID))
  for (const { index, group } of planned) {
    if (!entitlements.has(group.entitlementID)) throw refuse(single ? 'NOT_FOUND' : 'VALIDATION_ERROR', inGroup(label(index), 'entitlement not found'))
  }
  const inputs: Array<UsageInput & { group: number }> = planned.flatMap(({ index, id, group, positive, timestamp }) =>
    positive.map(([dimension, quantity]) => ({ group: index, entitlementId: group.entitlementID, dimension, quantity, timestamp, idempotencyKey: `${id}:${dimension}` })),
  )
  const plan = await planUsage(deps, orgId, inputs)
  const refused = plan.refused[0]
  if (refused !== undefined) {
    const result = plan.results[refused] as { code: ErrorCode; message: string }
    throw refuse(result.code === 'NOT_FOUND' && !single ? 'VALIDATION_ERROR' : result.code, inGroup(label(inputs[refused]!.group), result.message))
  }

  const buyerIds = await Promise.all(planned.map(async ({ group }) => {
    const row = entitlements.get(group.entitlementID)!
    const key = buyerKey(JSON.parse(row.buyer) as Buyer)
    return key === null ? null : buyerIdOf(orgId, row.partner as Partner, key)
  }))
  const rows: SugerUsageGroupRow[] = planned.map(({ index, id, group, timestamp }) => ({
    org_id: orgId,
    id,
    entitlement_id: group.entitlementID,
    partner: entitlements.get(group.entitlementID)!.partner,
    buyer_id: buyerIds[index]!,
    records: JSON.stringify(Object.fromEntries(Object.entries(group.records))),
    timestamp,
    created_at: now,
    // In the batch's order: a later group of it lists as the newer.
    seq: newId('usg', nowMs(deps)),
  }))
  const links = plan.pending.map(({ index, row }) => ({ org_id: orgId, group_id: planned[inputs[index]!.group]!.id, record_id: row.id }))
  try {
    await sugerDb.insertGroups(deps.db, rows, links, plan.pending.map(({ row }) => row))
  } catch (error) {
    // Another request stored one of these group ids, or one of the records' keys, first.
    const stored = await sugerDb.findGroupIds(deps.db, orgId, rows.map((row) => row.id))
    const lost = planned.find(({ id }) => stored.has(id))
    if (lost) throw refuse('CONFLICT', inGroup(label(lost.index), `usage record group ${lost.id} was reported before`))
    const keys = await usageKeysTaken(deps, orgId, inputs.map((input) => input.idempotencyKey))
    const clash = inputs.find((input) => keys.has(input.idempotencyKey))
    if (clash) throw refuse('CONFLICT', inGroup(label(clash.group), `idempotency key ${clash.idempotencyKey} is already used by another usage record`))
    throw error
  }
  // Every record just stored is pending: CREATED.
  return rows.map((row) => toUsageRecordGroup(row, undefined))
}

const usageKeysTaken = async (deps: AppDeps, orgId: string, keys: string[]) => new Set((await findRecordsByKey(deps.db, orgId, keys)).keys())

/** A stored group as Suger's MeteringUsageRecordGroup, its status from its records. */
function toUsageRecordGroup(row: SugerUsageGroupRow, state: sugerDb.GroupState | undefined): MeteringUsageRecordGroup {
  const origin = JSON.parse(row.records) as Record<string, number>
  // REPORT_FAILED once one record was rejected, else CREATED while one is pending, else REPORTED.
  const status = !state ? 'CREATED' : state.rejected > 0 ? 'REPORT_FAILED' : state.pending > 0 ? 'CREATED' : 'REPORTED'
  const settled = state?.settledAt && state.settledAt > row.created_at ? state.settledAt : row.created_at
  return defined({
    id: row.id,
    organizationID: row.org_id,
    entitlementID: row.entitlement_id,
    buyerID: row.buyer_id ?? undefined,
    partner: toSuger[row.partner as Partner],
    records: Object.fromEntries(Object.entries(origin).filter(([, quantity]) => quantity > 0)),
    status,
    creationTime: row.created_at,
    lastUpdateTime: utcTime(settled) ?? settled,
    reportedTime: status === 'REPORTED' ? utcTime(state?.reportedAt) : undefined,
    metaInfo: { source: 'API' as const, timestamp: row.timestamp, originRecords: origin },
  })
}

const DAY_MS = 86_400_000
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/

/** A `YYYY-MM-DD` (UTC) as the epoch ms of its start; 400 for anything else. */
function dayOf(value: string, name: string): number {
  const match = DATE.exec(value.trim())
  const ms = match ? Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])) : Number.NaN
  if (!match || Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== value.trim()) throw refuse('VALIDATION_ERROR', `${name} must be a date in YYYY-MM-DD format`)
  return ms
}

export interface GroupListQuery {
  partner?: string
  entitlementId?: string
  buyerId?: string
  status?: string
  source?: string
  metaInfo?: string
  startDate?: string
  endDate?: string
  limit?: string
  offset?: string
}

/**
 * `GET /suger/org/{orgId}/usageRecordGroup`: the org's groups created on the days from startDate
 * to endDate (UTC, both included; default the 30 days up to today), newest first, with
 * `nextOffset` when there are more.
 */
export async function listGroups(deps: AppDeps, orgId: string, query: GroupListQuery): Promise<{ usageRecordGroups: MeteringUsageRecordGroup[]; nextOffset?: number }> {
  const limit = limitOf(query.limit)
  const offset = offsetOf(query.offset)
  const today = Math.floor(nowMs(deps) / DAY_MS) * DAY_MS
  const end = given(query.endDate) === undefined ? today : dayOf(query.endDate!, 'endDate')
  const start = given(query.startDate) === undefined ? end - 30 * DAY_MS : dayOf(query.startDate!, 'startDate')
  if (start > end) throw refuse('VALIDATION_ERROR', 'startDate is after endDate')
  const statusName = given(query.status)
  if (statusName !== undefined && !(USAGE_GROUP_STATUS_FILTERS as readonly string[]).includes(statusName)) {
    throw refuse('VALIDATION_ERROR', `status must be one of ${USAGE_GROUP_STATUS_FILTERS.join(', ')}`)
  }
  const source = query.source ?? ''
  if (!(USAGE_GROUP_SOURCES as readonly string[]).includes(source)) throw refuse('VALIDATION_ERROR', `source must be one of ${USAGE_GROUP_SOURCES.filter(Boolean).join(', ')}`)
  const partnerName = given(query.partner)
  const partner = partnerName === undefined ? undefined : partnerOf(partnerName)
  if (partner === null) throw refuse('VALIDATION_ERROR', 'partner must be one of AWS, AZURE, GCP')
  const status = statusName as (typeof USAGE_GROUP_STATUSES)[number] | undefined
  // Statuses and sources the broker never gives a group (it makes them all through this API).
  const none = (statusName !== undefined && !(USAGE_GROUP_STATUSES as readonly string[]).includes(statusName)) || (source !== '' && source !== 'API') || offset >= MAX_OFFSET
  if (none) return { usageRecordGroups: [] }
  const page = await sugerDb.listGroups(deps.db, {
    orgId,
    from: new Date(start).toISOString(),
    until: new Date(end + DAY_MS).toISOString(),
    partner,
    entitlementId: given(query.entitlementId),
    buyerId: given(query.buyerId),
    status,
    limit,
    offset,
  })
  const rows = page.rows
  const states = await sugerDb.groupStates(deps.db, orgId, rows.map((row) => row.id))
  return defined({ usageRecordGroups: rows.map((row) => toUsageRecordGroup(row, states.get(row.id))), nextOffset: page.hasMore ? offset + page.rows.length : undefined })
}
