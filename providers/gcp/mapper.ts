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

export function toGcpPurchase(claims: MarketplaceClaims, entitlement: GcpEntitlement | null, offerType: OfferType): NormalizedPurchase {
  const id = entitlement ? entitlementId(entitlement) : null
  return {
    externalId: id ?? `account/${claims.sub}`,
    status: (entitlement?.state && statusMap[entitlement.state]) || 'PENDING_START',
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
    term: {
      start: null,
      end: text(entitlement?.offerEndTime) ?? text(entitlement?.subscriptionEndTime),
      unit: text(entitlement?.offerDuration),
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
