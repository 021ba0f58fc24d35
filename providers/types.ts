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
  /** SHA-256 hex of the notification secret the broker issued (AWS EventBridge), if any. */
  notificationSecretHash?: string | null
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
  /**
   * Cancels the purchase at the marketplace on the seller's behalf, where the marketplace lets a
   * seller do so (Azure's "Cancel a subscription"; absent elsewhere), and waits a short while for
   * the marketplace to finish: the purchase as it then stands (CANCELLED once done, PENDING_CANCEL
   * while the marketplace is still at it) and the marketplace's id of the operation. Throws
   * PurchaseRefusedError when the marketplace refuses for good, UpstreamError when it cannot be asked.
   */
  cancel?(integration: ProviderIntegration<TSettings, TSecrets>, purchase: NormalizedPurchase, ctx: ProviderContext): Promise<CancelOutcome>
  /** Lifecycle notifications from the marketplace; absent where the broker does not take them yet. */
  readonly notifications?: NotificationHandler<TSettings, TSecrets>
  /** Usage metering (contract §9): the marketplace's rules and its reporting call. */
  readonly metering: MeteringHandler<TSettings, TSecrets>
  /**
   * Credentials check (contract §13): real calls with the integration's credentials that change
   * nothing at the marketplace and reuse no cached token, so a secret revoked since the last
   * landing shows. Never throws for what the marketplace answers: each step is a check, failed
   * with the reason. Messages never carry a secret or a token (nor the marketplace's own error
   * text, which may echo what was sent).
   */
  checkCredentials(integration: ProviderIntegration<TSettings, TSecrets>, ctx: ProviderContext): Promise<CredentialCheck[]>
}

/** What a seller's cancel at the marketplace came to (see MarketplaceProvider.cancel). */
export interface CancelOutcome {
  purchase: NormalizedPurchase
  operationId: string | null
}

/** One step of a credentials check: `name` is the marketplace call (`sts:GetCallerIdentity`, ...). */
export interface CredentialCheck {
  name: string
  ok: boolean
  message: string
}

// ---- lifecycle notifications (contract §7) ---------------------------------------------

/** A notification as it reached the broker, before anything is trusted. */
export interface NotificationRequest {
  headers: Headers
  body: string
  /** The full URL it was posted to. */
  url: string
  /** The integration's notificationUrl as the broker publishes it (Pub/Sub's default audience is exactly this). */
  notificationUrl: string
}

/** An authenticated notification, in the broker's terms. */
export interface InboundNotification {
  /** The marketplace's own id of the message: Azure operation id, SNS MessageId, ... */
  messageId: string
  /** The purchase it is about, as the entitlement's `externalId`. */
  subject: string
  /** The marketplace's action or event type string (`Suspend`, `unsubscribe-success`, ...). */
  action: string
  /** When the marketplace says it happened; an older message applied late never moves a status back. */
  occurredAt?: string | null
  /**
   * How else to find its entitlement when `subject` is not its externalId (an AWS SNS message
   * names the customer and product, the entitlement may be keyed by its LicenseArn). Every
   * field given must match: `agreementId` is the entitlement's `info.agreementId`, `licenseId`
   * the `l-…` id its externalId (an AWS LicenseArn) ends with.
   */
  match?: { productId?: string; customerId?: string; accountId?: string; agreementId?: string; licenseId?: string }
  payload: Record<string, unknown>
}

/** What asking the marketplace about a notification found. */
export type NotificationEffect =
  /** The marketplace does not know it (or it does not match what it says): nothing is applied. */
  | { outcome: 'unknown'; reason: string }
  /** Confirmed, but its purchase has no entitlement yet (the buyer has not landed): kept until it has. */
  | { outcome: 'waiting' }
  /**
   * Confirmed: the purchase as it stands now (`null`: nothing to change), and the reason the
   * marketplace gives; `wake`: subjects of waiting messages this one makes findable.
   */
  | { outcome: 'apply'; purchase: NormalizedPurchase | null; reason?: string; wake?: string[] }
  /**
   * Confirmed, and the message itself is the purchase (Azure's Subscribe for a plan with
   * auto-activation): its entitlement is created, or, when a landing stored it first, brought to it.
   */
  | { outcome: 'create'; purchase: NormalizedPurchase }

export interface NotificationHandler<TSettings = any, TSecrets = any> {
  /**
   * Authenticates the request; null when it fails (the route answers 401 and stores nothing).
   * Throws NotificationFormatError for an authenticated body that is not a notification.
   */
  authenticate(integration: ProviderIntegration<TSettings, TSecrets>, request: NotificationRequest, ctx: ProviderContext): Promise<InboundNotification | null>
  /**
   * Confirms the notification with the marketplace, does what the marketplace expects of the
   * seller (acknowledge, approve), and returns the purchase as it now stands. `current` is the
   * stored entitlement's purchase, or null when there is none yet. Throws UpstreamError when the
   * marketplace cannot be asked now (the job retries).
   */
  apply(
    integration: ProviderIntegration<TSettings, TSecrets>,
    notification: InboundNotification,
    current: NormalizedPurchase | null,
    ctx: ProviderContext,
    located?: LocatedNotification,
  ): Promise<NotificationEffect>
  /**
   * For messages that name neither the entitlement's externalId nor its buyer (Google's name the
   * entitlement, which a landing may have stored as `account/<id>`): asks the marketplace which
   * externalIds the message is about. Its answer is handed to `apply` too.
   */
  locate?(integration: ProviderIntegration<TSettings, TSecrets>, notification: InboundNotification, ctx: ProviderContext): Promise<LocatedNotification>
  /**
   * For a message none of whose keys finds a stored entitlement (an AWS agreement no license
   * event has named yet): asks the marketplace what else it is about. `match` is looked up like
   * the message's own; `subject` is what the message waits under when that finds nothing either.
   * Null: the marketplace does not say.
   */
  search?(
    integration: ProviderIntegration<TSettings, TSecrets>,
    notification: InboundNotification,
    ctx: ProviderContext,
  ): Promise<{ match: NonNullable<InboundNotification['match']>; subject: string } | null>
}

export interface LocatedNotification {
  /** The externalIds the message is about, best first. */
  externalIds: string[]
  /** Apply to every entitlement found (an account deleted), not only the first. */
  all?: boolean
  /** What the marketplace said, for `apply` (so it is not asked twice). */
  detail?: unknown
}

// ---- usage metering (contract §9) ------------------------------------------------------

/** What a marketplace accepts, checked when a usage record is recorded. */
export interface MeteringRules {
  /** How far back usage is accepted, in ms. */
  windowMs: number
  /**
   * Taken off the window when a record is recorded, for the time until its report reaches a
   * marketplace that enforces the window (the hour's end, the grace, the next job run).
   */
  recordingMarginMs: number
  /** Whether the window is measured from the record's own time or from the start of its UTC hour (Azure meters the hour). */
  windowFrom: 'timestamp' | 'hour'
  /** Whole units only (AWS). */
  wholeUnits: boolean
  /** The largest quantity one record may carry. */
  maxQuantity: number
  /** A record for an hour already reported can be sent on its own (Google); else it is rejected with the reason. */
  lateReports: boolean
  /** Reports that cannot reach the marketplace are retried until this long after the start of their hour, then rejected. */
  retryForMs: number
  /**
   * The report's time is moved forward into the window when its hour began before it (AWS takes
   * any time within the hour, but nothing 6 hours old); fixed at the first attempt.
   */
  clampTimestamp: boolean
  /**
   * Usage for the hour in which an entitlement ended is still accepted (and reported) for this
   * long after it became CANCELLED, the marketplace's final reporting window (AWS: 1 hour).
   */
  finalWindowMs?: number
}

/** One report of an entitlement's usage of one dimension: an hour's sum, or one late record. */
export interface UsageReportItem {
  /** The report's stable id, the same on every attempt (Google's operationId). */
  id: string
  purchase: NormalizedPurchase
  dimension: string
  quantity: number
  /** The UTC hour, ISO 8601. */
  hourStart: string
  hourEnd: string
  /** When to say the usage happened: fixed before the first attempt, the same on every retry (AWS `Timestamp`). */
  timestamp: string
  /** A record that came after its hour was reported. */
  late: boolean
  /** An earlier attempt may have reached the marketplace (a crash or a timeout after sending). */
  resent: boolean
}

export type UsageReportOutcome =
  | { status: 'REPORTED'; marketplaceStatus: string }
  | { status: 'REJECTED'; marketplaceStatus: string | null; reason: string }
  /** Not settled (the marketplace asks to retry it, or could not be asked): tried again later. */
  | { status: 'RETRY'; reason: string }

export interface MeteringHandler<TSettings = any, TSecrets = any> {
  readonly rules: MeteringRules
  /** Reports that may go to the marketplace in one call (≤ 25 share a key: one AWS product, one Google service). */
  batchKey(integration: ProviderIntegration<TSettings, TSecrets>, item: UsageReportItem): string
  /**
   * Sends the reports and answers one outcome per item, in order. Throws UpstreamError or
   * ConfigurationError when the marketplace cannot be asked now (every item is retried later).
   */
  report(integration: ProviderIntegration<TSettings, TSecrets>, items: UsageReportItem[], ctx: ProviderContext): Promise<UsageReportOutcome[]>
}
