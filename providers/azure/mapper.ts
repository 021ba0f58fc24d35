import type { EntitlementStatus, NormalizedPurchase, OfferType } from '../types'
import type { AzureResolveResponse, AzureSubscription } from './api'

/** Documented values are padded in examples (" Subscribed "), so compare trimmed and case-blind. */
export function saasStatus(subscription: AzureSubscription): string {
  return (subscription.saasSubscriptionStatus ?? '').trim().toLowerCase()
}

const statusMap: Record<string, EntitlementStatus> = {
  pendingfulfillmentstart: 'PENDING_START',
  subscribed: 'ACTIVE',
  suspended: 'SUSPENDED',
  unsubscribed: 'CANCELLED',
}

export function quantityOf(value: unknown): number | null {
  if (typeof value === 'number' && Number.isFinite(value)) return value
  if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) return Number(value)
  return null
}

const text = (value: unknown) => (typeof value === 'string' && value.trim() !== '' ? value.trim() : null)

/** The resolve answer merged into one subscription view (the nested object is the full one). */
export function subscriptionOf(resolved: AzureResolveResponse): AzureSubscription {
  const nested = resolved.subscription ?? { id: resolved.id }
  return {
    ...nested,
    id: resolved.id ?? nested.id,
    offerId: nested.offerId ?? resolved.offerId,
    planId: nested.planId ?? resolved.planId,
    name: nested.name ?? resolved.subscriptionName,
    quantity: quantityOf(nested.quantity) ?? quantityOf(resolved.quantity),
  }
}

export function toPurchase(subscription: AzureSubscription, offerType: OfferType): NormalizedPurchase {
  const beneficiary = subscription.beneficiary ?? {}
  const status = saasStatus(subscription)
  return {
    externalId: subscription.id,
    status: statusMap[status] ?? 'PENDING_START',
    offerType,
    productId: text(subscription.offerId),
    planId: text(subscription.planId),
    quantity: quantityOf(subscription.quantity),
    buyer: {
      accountId: text(beneficiary.tenantId),
      customerId: text(beneficiary.objectId),
      email: text(beneficiary.emailId),
      tenantId: text(beneficiary.tenantId),
      name: null,
    },
    term: {
      start: text(subscription.term?.startDate),
      end: text(subscription.term?.endDate),
      unit: text(subscription.term?.termUnit),
      autoRenew: typeof subscription.autoRenew === 'boolean' ? subscription.autoRenew : null,
    },
    isFreeTrial: subscription.isFreeTrial === true,
    isTest: subscription.isTest === true,
    info: { subscription },
    // Only a purchase waiting for its seller is activated: never a Subscribed one (Manage
    // account re-entry), a Suspended one or an Unsubscribed one.
    needsActivation: status === 'pendingfulfillmentstart',
  }
}
