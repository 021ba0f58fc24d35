import type { EntitlementStatus, NormalizedPurchase, OfferType } from '../types'
import type { MarketplaceClaims } from './jwt'

/** The Procurement API's Entitlement resource (the fields we read). */
export interface GcpEntitlement {
  name?: string | null
  account?: string | null
  product?: string | null
  productExternalName?: string | null
  plan?: string | null
  state?: string | null
  offer?: string | null
  quoteExternalName?: string | null
  orderId?: string | null
  offerDuration?: string | null
  offerEndTime?: string | null
  /** Automatic offer approval: when the accepted (or upcoming) offer starts, RFC 3339. */
  newOfferStartTime?: string | null
  newOfferEndTime?: string | null
  newPendingOfferDuration?: string | null
  newPendingOffer?: string | null
  subscriptionEndTime?: string | null
  createTime?: string | null
  updateTime?: string | null
  /** The Service Control consumerId of the entitlement's usage reports. */
  usageReportingId?: string | null
  [field: string]: unknown
}

const statusMap: Record<string, EntitlementStatus> = {
  ENTITLEMENT_ACTIVATION_REQUESTED: 'PENDING_START',
  ENTITLEMENT_ACTIVE: 'ACTIVE',
  ENTITLEMENT_PENDING_CANCELLATION: 'PENDING_CANCEL',
  ENTITLEMENT_CANCELLED: 'CANCELLED',
  ENTITLEMENT_PENDING_PLAN_CHANGE: 'ACTIVE',
  ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL: 'ACTIVE',
  ENTITLEMENT_SUSPENDED: 'SUSPENDED',
}

/** `providers/p/entitlements/<id>` -> `<id>`. */
export const entitlementId = (entitlement: GcpEntitlement) => entitlement.name?.split('/').pop() || null

/** Private offers are named `…/privateOffers/…` (public ones `…/standardOffers/…`); a quote is private too. */
export function isPrivateOffer(entitlement: GcpEntitlement | null): boolean {
  if (!entitlement) return false
  return Boolean(entitlement.offer?.includes('/privateOffers/') || entitlement.quoteExternalName)
}

const text = (value: unknown) => (typeof value === 'string' && value !== '' ? value : null)

const inFuture = (time: string | null, now: number) => {
  const at = time === null ? Number.NaN : Date.parse(time)
  return Number.isFinite(at) && at > now
}

/**
 * Whether the entitlement's offer has not begun. With automatic offer approval Google approves at
 * once and the offer may start at a scheduled date ("Manage entitlements for private offers with
 * automatic offer approval"): until then the entitlement is ENTITLEMENT_ACTIVATION_REQUESTED with
 * `newOfferStartTime` set. An ENTITLEMENT_ACTIVE one that still names a future start is taken as
 * not started either (Google clears the field once the offer is active), unless the broker has
 * seen it active already: on a running entitlement a future `newOfferStartTime` is the next offer.
 */
function notStarted(entitlement: GcpEntitlement | null, previous: EntitlementStatus | null, now: number) {
  if (!entitlement) return false
  if (entitlement.state === 'ENTITLEMENT_ACTIVATION_REQUESTED') return true
  return entitlement.state === 'ENTITLEMENT_ACTIVE' && (previous === null || previous === 'PENDING_START') && inFuture(text(entitlement.newOfferStartTime), now)
}

export function toGcpPurchase(
  claims: MarketplaceClaims,
  entitlement: GcpEntitlement | null,
  offerType: OfferType,
  previous: { status: EntitlementStatus; termStart: string | null } | null = null,
  now = Date.now(),
): NormalizedPurchase {
  const id = entitlement ? entitlementId(entitlement) : null
  const upcoming = notStarted(entitlement, previous?.status ?? null, now)
  const mapped = (entitlement?.state && statusMap[entitlement.state]) || 'PENDING_START'
  return {
    externalId: id ?? `account/${claims.sub}`,
    status: upcoming ? 'PENDING_START' : mapped,
    offerType,
    productId: text(entitlement?.productExternalName) ?? text(entitlement?.product),
    planId: text(entitlement?.plan),
    quantity: null,
    buyer: {
      accountId: claims.sub,
      customerId: text(claims['google.user_identity']),
      email: null,
      tenantId: null,
      name: null,
    },
    // The offer's dates: before it starts they are the upcoming offer's (`newOffer…`); once it
    // runs Google drops `newOfferStartTime`, so the start the broker saw stays. On a running
    // entitlement the `newOffer…` fields describe a pending change, not the current term.
    term: {
      start: (upcoming ? text(entitlement?.newOfferStartTime) : null) ?? previous?.termStart ?? null,
      end: text(entitlement?.offerEndTime) ?? (upcoming ? text(entitlement?.newOfferEndTime) : null) ?? text(entitlement?.subscriptionEndTime),
      unit: text(entitlement?.offerDuration) ?? (upcoming ? text(entitlement?.newPendingOfferDuration) : null),
      autoRenew: null,
    },
    isFreeTrial: false,
    isTest: false,
    info: {
      entitlement,
      account: { id: claims.sub, approved: true },
      ...(claims['google.orders'] ? { orders: claims['google.orders'] } : {}),
      ...(claims['google.roles'] ? { roles: claims['google.roles'] } : {}),
    },
    // Approving the account is the signup's part; entitlement approval follows Google's
    // ENTITLEMENT_CREATION_REQUESTED notification (lifecycle), not the buyer's visit.
    needsActivation: false,
  }
}
