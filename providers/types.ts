/**
 * The normalized vocabulary every marketplace plugin speaks. Providers know their
 * marketplace and these types; they never import routes, pages or tables from `src/`.
 */

export const PARTNERS = ['azure', 'aws', 'gcp'] as const
export type Partner = (typeof PARTNERS)[number]

export function isPartner(value: string): value is Partner {
  return (PARTNERS as readonly string[]).includes(value)
}

/** Suger's offer types, as the redirect's `offerType` carries them. */
export const OFFER_TYPES = [
  'UNKNOWN',
  'AMI',
  'CONTAINER',
  'CONTRACT',
  'CPPO_OUT',
  'CPPO_IN',
  'CPPO',
  'CUD',
  'DEFAULT',
  'FIXED_FEE',
  'FIXED_FEE_WITH_OVERAGE',
  'FLAT_RATE',
  'FREE_TRIAL',
  'PAYG',
  'PAYG_WITH_CUD',
  'PER_USER',
  'PRIVATE',
  'PROFESSIONAL_SERVICES',
  'SUBSCRIPTION',
] as const
export type OfferType = (typeof OFFER_TYPES)[number]

export const ENTITLEMENT_STATUSES = ['PENDING_START', 'ACTIVE', 'SUSPENDED', 'PENDING_CANCEL', 'CANCELLED'] as const
export type EntitlementStatus = (typeof ENTITLEMENT_STATUSES)[number]

export interface Buyer {
  accountId: string | null
  customerId: string | null
  email: string | null
  tenantId: string | null
  name: string | null
}

export interface Term {
  start: string | null
  end: string | null
  unit: string | null
  autoRenew: boolean | null
}

/** What a provider learns from one marketplace token, in the broker's terms. */
export interface NormalizedPurchase {
  /** The marketplace's own id of the purchase (Azure subscription id, AWS LicenseArn, ...). */
  externalId: string
  status: EntitlementStatus
  offerType: OfferType
  productId: string | null
  planId: string | null
  quantity: number | null
  buyer: Buyer
  term: Term
  isFreeTrial: boolean
  isTest: boolean
  /** Partner-specific detail kept verbatim for the ISV (raw subscription, entitlements, ...). */
  info: Record<string, unknown>
  /**
   * True when the marketplace waits for the seller to confirm the purchase (Azure Activate)
   * before billing starts. The broker stores the purchase first, then calls `activate`.
   */
  needsActivation: boolean
}

/** The marketplace-facing view of an org's integration: its settings and decrypted secrets. */
export interface ProviderIntegration<TSettings = Record<string, unknown>, TSecrets = Record<string, unknown>> {
  orgId: string
  partnerId: string
  settings: TSettings
  secrets: TSecrets
  /** Changes whenever the settings or secrets change: a safe key for cached clients. */
  version: string
}

/** How the buyer's browser arrived at the landing: query decoded once (`+` kept), form fields. */
export interface LandingInput {
  query: ReadonlyMap<string, string>
  form: ReadonlyMap<string, string> | null
}

export interface ProviderLogger {
  info(message: string, fields?: Record<string, unknown>): void
  warn(message: string, fields?: Record<string, unknown>): void
  error(message: string, fields?: Record<string, unknown>): void
}

export interface ProviderContext {
  log: ProviderLogger
  /** Epoch ms by which the whole landing must have its answer: every call and retry fits inside. */
  deadline?: number
}

export interface MarketplaceProvider<TSettings = any, TSecrets = any> {
  readonly partner: Partner
  /** Where the buyer's marketplace token arrives; null when it is absent. */
  tokenFrom(input: LandingInput): string | null
  /** Cheap local check before any network call; false -> the buyer gets the bad-token page. */
  isPlausibleToken(token: string): boolean
  /** Exchanges the marketplace token for the purchase it identifies. */
  resolve(integration: ProviderIntegration<TSettings, TSecrets>, token: string, ctx: ProviderContext): Promise<NormalizedPurchase>
  /** Confirms a purchase that `needsActivation`; returns it as it stands afterwards. */
  activate(
    integration: ProviderIntegration<TSettings, TSecrets>,
    purchase: NormalizedPurchase,
    ctx: ProviderContext,
  ): Promise<NormalizedPurchase>
  /**
   * The stored purchase as the marketplace sees it now. The activation job asks this before
   * it activates, so an Activate that went through just before a crash is never sent twice.
   */
  refresh(integration: ProviderIntegration<TSettings, TSecrets>, purchase: NormalizedPurchase, ctx: ProviderContext): Promise<NormalizedPurchase>
}
