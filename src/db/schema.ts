import type { Generated, Insertable, Selectable } from 'kysely'

/** Table types of the data layer: the only place that knows column names. */
export interface OrgsTable {
  id: string
  name: string
  fulfillment_url: string
  webhook_url: string | null
  /** The Standard Webhooks signing secret (`whsec_…`), sealed with AES-GCM. */
  webhook_secret: string | null
  /** The secret before the last rotation, sealed; it keeps signing until `webhook_secret_previous_until`. */
  webhook_secret_previous: string | null
  webhook_secret_previous_until: string | null
  created_at: string
  updated_at: string
}

export interface ApiKeysTable {
  id: string
  org_id: string
  key_hash: string
  /** The key's first characters (`mbk_` and 4 more), to tell keys apart: never enough to use. */
  prefix: string
  name: string
  scope: 'full' | 'read'
  expires_at: string | null
  /** The key's own limit; null: RATE_LIMIT_PER_MINUTE. */
  rate_limit_per_minute: number | null
  /** Written at most once a minute per key: may lag up to a minute. */
  last_used_at: string | null
  created_at: string
  revoked_at: string | null
}

export interface IntegrationsTable {
  org_id: string
  partner: string
  partner_id: string
  /** JSON of the non-secret settings. */
  settings: string
  /** The secret settings as JSON, sealed with AES-GCM (never plain text). */
  secrets: string
  /** SHA-256 hex of the AWS EventBridge notification secret (only the hash is kept). */
  notification_secret_hash: string | null
  created_at: string
  updated_at: string
}

export interface EntitlementsTable {
  id: string
  org_id: string
  partner: string
  partner_id: string
  external_id: string
  status: string
  offer_type: string
  product_id: string | null
  plan_id: string | null
  quantity: number | null
  buyer: string
  term: string
  is_free_trial: Generated<number>
  is_test: Generated<number>
  info: string
  created_at: string
  updated_at: string
  /**
   * The entitlement's API JSON as `entitlementJson` (src/domain/entitlements.ts) builds it from
   * the columns above, written with them by every write (db/entitlements.ts): reading one stored
   * string per row is several times cheaper than reading seventeen columns and serializing them.
   * Only the read paths select it; they serialize the columns of a row without it (none is
   * written so: migration 0004 filled the rows that existed before it).
   */
  json: Generated<string | null>
}

export interface EntitlementEventsTable {
  id: string
  entitlement_id: string
  org_id: string
  type: string
  source: string
  data: string
  created_at: string
}

export interface LandingTokensTable {
  token_hash: string
  org_id: string
  partner: string
  entitlement_id: string
  expires_at: string
  created_at: string
}

export interface LandingClaimsTable {
  token_hash: string
  org_id: string
  partner: string
  partner_id: string | null
  sealed_token: string
  lease_until: string
  attempts: Generated<number>
  created_at: string
}

export interface PendingActivationsTable {
  entitlement_id: string
  org_id: string
  partner: string
  attempts: Generated<number>
  next_attempt_at: string
  lease_until: string
  last_error: string | null
  created_at: string
}

export interface NotificationsTable {
  id: string
  org_id: string
  partner: string
  message_id: string
  subject: string
  action: string
  occurred_at: string | null
  lookup: string | null
  payload: string
  status: 'PENDING' | 'WAITING' | 'APPLIED' | 'IGNORED'
  attempts: Generated<number>
  next_attempt_at: string
  lease_until: string | null
  last_error: string | null
  created_at: string
  updated_at: string
}

export interface ReconciliationsTable {
  entitlement_id: string
  checked_at: string
}

export interface WebhookDeliveriesTable {
  id: string
  org_id: string
  event_id: string | null
  type: string
  payload: string
  status: 'PENDING' | 'SUCCEEDED' | 'FAILED'
  attempts: Generated<number>
  last_status_code: number | null
  last_error: string | null
  next_attempt_at: string | null
  lease_until: string | null
  created_at: string
  updated_at: string
  /** W3C traceparent of the span that wrote it (migration 0016), when tracing was on. */
  trace_parent: string | null
}

export interface UsageRecordsTable {
  id: string
  org_id: string
  entitlement_id: string
  partner: string
  dimension: string
  quantity: number
  timestamp: string
  timestamp_given: number
  hour: string
  idempotency_key: string
  status: 'PENDING' | 'REPORTED' | 'REJECTED'
  marketplace_status: string | null
  error: string | null
  reported_at: string | null
  report_id: string | null
  created_at: string
}

export interface UsageReportsTable {
  id: string
  org_id: string
  entitlement_id: string
  partner: string
  dimension: string
  hour: string
  timestamp: string
  quantity: number
  records: number
  late: number
  status: 'PENDING' | 'REPORTED' | 'REJECTED'
  marketplace_status: string | null
  error: string | null
  send_timestamp: string | null
  attempts: Generated<number>
  next_attempt_at: string
  lease_until: string | null
  lease_owner: string | null
  close_run: string
  reported_at: string | null
  created_at: string
  updated_at: string
}

/** Requests counted per API key and fixed one-minute window (migration 0011). */
export interface RateLimitsTable {
  key_id: string
  /** The window's number: epoch milliseconds / 60 000, rounded down. */
  window: number
  count: number
}

export interface SignupFormsTable {
  org_id: string
  signup_id: string
  company_name: string
  logo_url: string | null
  public_notes: string | null
  /** JSON array of addresses. */
  cc_emails: string
  /** JSON array of the optional fields shown (name and email always are). */
  fields: string
  created_at: string
  updated_at: string
}

export interface SignupsTable {
  id: string
  org_id: string
  entitlement_id: string
  name: string
  email: string
  company: string | null
  phone: string | null
  notes: string | null
  email_status: 'PENDING' | 'SENT' | 'SKIPPED' | 'FAILED'
  created_at: string
  updated_at: string
}

export interface SignupTokensTable {
  nonce: string
  expires_at: string
}

export interface EmailsTable {
  id: string
  org_id: string
  signup_id: string
  to_address: string
  /** JSON array of addresses. */
  cc: string
  subject: string
  text: string
  html: string
  status: 'PENDING' | 'SENT' | 'SKIPPED' | 'FAILED'
  attempts: Generated<number>
  next_attempt_at: string
  lease_until: string | null
  last_error: string | null
  created_at: string
  updated_at: string
}

/** The audit log (migration 0012): one row per change made through the API. */
export interface AuditLogTable {
  id: string
  org_id: string
  action: string
  /** JSON: {type, id, name}. */
  actor: string
  target_type: string
  target_id: string | null
  request_id: string | null
  /** JSON: {field: {from, to}}, secrets already redacted. */
  changes: string
  created_at: string
}

/** The console's sessions (migration 0013): keyed by the SHA-256 of the cookie's value. */
export interface ConsoleSessionsTable {
  id_hash: string
  /** Null for an operator (signed in with the admin token). */
  org_id: string | null
  key_id: string | null
  /** An operator session: SHA-256 of the admin token it signed in with (a new token ends it). */
  credential_hash: string | null
  csrf_token: string
  created_at: string
  last_seen_at: string
  expires_at: string
}

/** Buyers' successful landings per org, UTC day (`YYYY-MM-DD`) and marketplace (migration 0014). */
export interface LandingCountsTable {
  org_id: string
  day: string
  partner: string
  landings: number
}

/** Suger's usage-record groups (contract §15, migration 0015). */
export interface SugerUsageGroupsTable {
  org_id: string
  id: string
  entitlement_id: string
  partner: string
  buyer_id: string | null
  /** The dimension → quantity object as sent (zeros included), as JSON. */
  records: string
  timestamp: string
  created_at: string
  /** Time-sortable (ids.ts): the list's order within one created_at. */
  seq: string
}

/** The usage records (usage_records.id) a Suger usage-record group became. */
export interface SugerUsageGroupRecordsTable {
  org_id: string
  group_id: string
  record_id: string
}

export interface Database {
  orgs: OrgsTable
  api_keys: ApiKeysTable
  integrations: IntegrationsTable
  entitlements: EntitlementsTable
  entitlement_events: EntitlementEventsTable
  landing_tokens: LandingTokensTable
  landing_claims: LandingClaimsTable
  pending_activations: PendingActivationsTable
  notifications: NotificationsTable
  reconciliations: ReconciliationsTable
  webhook_deliveries: WebhookDeliveriesTable
  usage_records: UsageRecordsTable
  usage_reports: UsageReportsTable
  signup_forms: SignupFormsTable
  signups: SignupsTable
  signup_tokens: SignupTokensTable
  emails: EmailsTable
  audit_log: AuditLogTable
  rate_limits: RateLimitsTable
  console_sessions: ConsoleSessionsTable
  landing_counts: LandingCountsTable
  suger_usage_groups: SugerUsageGroupsTable
  suger_usage_group_records: SugerUsageGroupRecordsTable
}

export type { DB, Executor } from './handle'
export type OrgRow = Selectable<OrgsTable>
export type AuditLogRow = Selectable<AuditLogTable>
export type ConsoleSessionRow = Selectable<ConsoleSessionsTable>
export type ApiKeyRow = Selectable<ApiKeysTable>
export type IntegrationRow = Selectable<IntegrationsTable>
export type EntitlementRow = Omit<Selectable<EntitlementsTable>, 'json'>
export type NewEntitlementRow = Insertable<EntitlementsTable>
export type EntitlementEventRow = Selectable<EntitlementEventsTable>
export type LandingClaimRow = Selectable<LandingClaimsTable>
export type PendingActivationRow = Selectable<PendingActivationsTable>
export type NotificationRow = Selectable<NotificationsTable>
export type WebhookDeliveryRow = Selectable<WebhookDeliveriesTable>
export type UsageRecordRow = Selectable<UsageRecordsTable>
export type UsageReportRow = Selectable<UsageReportsTable>
export type SignupFormRow = Selectable<SignupFormsTable>
export type SignupRow = Selectable<SignupsTable>
export type EmailRow = Selectable<EmailsTable>
export type SugerUsageGroupRow = Selectable<SugerUsageGroupsTable>
