import { z } from '@hono/zod-openapi'
import { ENTITLEMENT_STATUSES, OFFER_TYPES, PARTNERS } from '../providers/types'

/** JSON shapes of contract §2, §3 and §5, shared by validation, responses and the OpenAPI document. */

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'NOT_FOUND' }),
      message: z.string(),
      requestId: z.string(),
    }),
  })
  .openapi('Error')

export const PartnerSchema = z.enum(PARTNERS).openapi('Partner')
export const OfferTypeSchema = z.enum(OFFER_TYPES).openapi('OfferType')
export const EntitlementStatusSchema = z.enum(ENTITLEMENT_STATUSES).openapi('EntitlementStatus')

export const OrgSchema = z
  .object({
    id: z.string().openapi({ example: 'org_01jd0000000000000000000000' }),
    name: z.string(),
    fulfillmentUrl: z.string(),
    webhookUrl: z.string().nullable(),
    createdAt: z.string(),
  })
  .openapi('Org')

const orgFields = {
  name: z.string().trim().min(1).max(200),
  fulfillmentUrl: z.string().trim().min(1).max(2048).openapi({ example: 'https://app.example.com/signup' }),
  webhookUrl: z.string().trim().min(1).max(2048).nullable(),
}

export const CreateOrgSchema = z
  .strictObject({ name: orgFields.name, fulfillmentUrl: orgFields.fulfillmentUrl, webhookUrl: orgFields.webhookUrl.optional() })
  .openapi('CreateOrg')

export const UpdateOrgSchema = z
  .strictObject({
    name: orgFields.name.optional(),
    fulfillmentUrl: orgFields.fulfillmentUrl.optional(),
    webhookUrl: orgFields.webhookUrl.optional(),
  })
  .openapi('UpdateOrg')

export const CreatedOrgSchema = z
  .object({
    org: OrgSchema,
    apiKey: z.string().openapi({ description: 'Shown only once; only its hash is stored.' }),
    webhookSecret: z.string().optional().openapi({ description: 'With a webhookUrl: the Standard Webhooks signing secret (whsec_…), shown only here.' }),
  })
  .openapi('CreatedOrg')

export const IntegrationSchema = z
  .object({
    partner: PartnerSchema,
    partnerId: z.string(),
    signupUrl: z.string().openapi({ description: 'Paste this into the marketplace as the landing page / fulfillment / sign-up URL.' }),
    notificationSecret: z.string().optional().openapi({
      description: 'AWS only, and only in the answer that first creates the integration: the bearer secret for an EventBridge API destination (rotate with POST …/integrations/aws/notification-secret).',
    }),
    notificationUrl: z.string().openapi({
      description: 'Paste this where the marketplace sends lifecycle notifications: Partner Center Connection webhook, an SNS HTTPS subscription or EventBridge API destination, a Pub/Sub push subscription.',
    }),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .catchall(z.unknown())
  .openapi('Integration')

export const IntegrationCheckSchema = z
  .object({
    ok: z.boolean().openapi({ description: 'True when every check passed.' }),
    checks: z.array(
      z
        .object({
          name: z.string().openapi({ example: 'sts:GetCallerIdentity', description: 'The marketplace call made.' }),
          ok: z.boolean(),
          message: z.string().openapi({ description: 'What worked, or why it failed. Never a secret.' }),
        })
        .openapi('CredentialCheck'),
    ),
  })
  .openapi('IntegrationCheck')

export type IntegrationCheck = z.infer<typeof IntegrationCheckSchema>

const BuyerSchema = z.object({
  accountId: z.string().nullable(),
  customerId: z.string().nullable(),
  email: z.string().nullable(),
  tenantId: z.string().nullable(),
  name: z.string().nullable(),
})

const TermSchema = z.object({
  start: z.string().nullable(),
  end: z.string().nullable(),
  unit: z.string().nullable(),
  autoRenew: z.boolean().nullable(),
})

export const EntitlementSchema = z
  .object({
    id: z.string().openapi({ example: 'ent_01jd0000000000000000000000' }),
    orgId: z.string(),
    partner: PartnerSchema,
    partnerId: z.string(),
    status: EntitlementStatusSchema,
    offerType: OfferTypeSchema,
    externalId: z.string(),
    productId: z.string().nullable(),
    planId: z.string().nullable(),
    quantity: z.number().nullable(),
    buyer: BuyerSchema,
    term: TermSchema,
    isFreeTrial: z.boolean(),
    isTest: z.boolean(),
    info: z.record(z.string(), z.unknown()),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('Entitlement')

export const EVENT_TYPES = ['CREATE', 'ACTIVATE', 'UPDATE', 'SUSPEND', 'REINSTATE', 'PENDING_CANCEL', 'CANCEL'] as const
export const EVENT_SOURCES = ['signup', 'marketplace', 'api'] as const

export const EventSchema = z
  .object({
    id: z.string(),
    entitlementId: z.string(),
    type: z.enum(EVENT_TYPES),
    source: z.enum(EVENT_SOURCES),
    data: z.record(z.string(), z.unknown()),
    createdAt: z.string(),
  })
  .openapi('Event')

export type Org = z.infer<typeof OrgSchema>
export type Integration = z.infer<typeof IntegrationSchema>
export type Entitlement = z.infer<typeof EntitlementSchema>
export type EntitlementEvent = z.infer<typeof EventSchema>
export type EventType = (typeof EVENT_TYPES)[number]

export const WebhookDeliverySchema = z
  .object({
    id: z.string().openapi({ example: 'msg_2f0c…', description: 'The webhook-id header, the same on every attempt' }),
    eventId: z.string().nullable(),
    type: z.string(),
    status: z.enum(['PENDING', 'SUCCEEDED', 'FAILED']),
    attempts: z.number().int(),
    lastStatusCode: z.number().int().nullable(),
    lastError: z.string().nullable(),
    nextAttemptAt: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('WebhookDelivery')

export const UsageRecordSchema = z
  .object({
    id: z.string().openapi({ example: 'use_01jd0000000000000000000000' }),
    entitlementId: z.string(),
    dimension: z.string(),
    quantity: z.number(),
    timestamp: z.string().openapi({ description: 'When the usage happened (ISO 8601 UTC); the time it was first accepted when none was given' }),
    idempotencyKey: z.string(),
    status: z.enum(['PENDING', 'REPORTED', 'REJECTED']),
    marketplaceStatus: z.string().nullable().openapi({ description: 'Azure’s per-item status, AWS’s Status, Google OK or its error code' }),
    error: z.string().nullable(),
    reportedAt: z.string().nullable(),
    createdAt: z.string(),
  })
  .openapi('UsageRecord')

/** No control characters, no surrounding spaces: what every marketplace takes as a dimension or key. */
const printable = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((value) => !/[\u0000-\u001f\u007f]/.test(value), 'must not contain control characters')
    .refine((value) => value.trim() === value, 'must not start or end with whitespace')

/** ISO 8601 with a UTC designator or offset, so no record means another time on another machine. */
const ISO_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/i

const isoTimestamp = () =>
  z
    .string()
    .max(64)
    .regex(ISO_TIMESTAMP, 'must be an ISO 8601 date-time with Z or an offset')
    .refine((value) => !Number.isNaN(Date.parse(value)), 'must be a valid date-time')

/** The largest quantity one record may carry (beyond it doubles lose whole units). */
export const MAX_USAGE_QUANTITY = 1e12

export const usageFields = {
  dimension: printable(255).openapi({ example: 'api_calls' }),
  quantity: z
    .number()
    .finite()
    .positive()
    .max(MAX_USAGE_QUANTITY)
    .openapi({ example: 150, description: 'Greater than 0; whole units for AWS entitlements' }),
  timestamp: isoTimestamp()
    .optional()
    .openapi({ example: '2026-11-22T09:15:00Z', description: 'When the usage happened; default: when the record is first accepted' }),
  idempotencyKey: printable(255).openapi({ example: 'acme-2026-11-22T09:00-api_calls' }),
}

export const RecordUsageSchema = z.strictObject(usageFields).openapi('RecordUsage')
export const BulkUsageRecordSchema = z.strictObject({ entitlementId: z.string().min(1).max(64), ...usageFields })

/** Contract §13. The secret itself is never part of it (only `start`, to tell keys apart). */
export const ApiKeySchema = z
  .object({
    id: z.string().openapi({ example: 'key_01jd0000000000000000000000' }),
    name: z.string(),
    start: z.string().openapi({ example: 'mbk_AbC1', description: '`mbk_` and the next 4 characters of the key' }),
    scope: z.enum(['full', 'read']),
    rateLimitPerMinute: z.number().int().nullable().openapi({ description: 'null: RATE_LIMIT_PER_MINUTE' }),
    createdAt: z.string(),
    expiresAt: z.string().nullable(),
    lastUsedAt: z.string().nullable().openapi({ description: 'May lag up to a minute behind' }),
    revokedAt: z.string().nullable(),
    status: z.enum(['ACTIVE', 'EXPIRED', 'REVOKED']),
  })
  .openapi('ApiKey')
export type ApiKey = z.infer<typeof ApiKeySchema>

export const MAX_KEY_RATE_LIMIT = 100_000
/** A week: long enough to redeploy every consumer of a rotated key, short enough to bound a leak. */
export const MAX_ROTATION_GRACE_SECONDS = 604_800

export const CreateApiKeySchema = z
  .strictObject({
    name: z.string().min(1).max(100).openapi({ example: 'ci-deploy' }),
    scope: z.enum(['full', 'read']).optional().openapi({ description: 'Default full; read may call GET routes only' }),
    expiresAt: isoTimestamp()
      .optional()
      .openapi({ example: '2027-01-01T00:00:00Z', description: 'In the future; absent: the key does not expire' }),
    rateLimitPerMinute: z.number().int().min(1).max(MAX_KEY_RATE_LIMIT).optional(),
  })
  .openapi('CreateApiKey')

export const RotateApiKeySchema = z
  .strictObject({
    gracePeriodSeconds: z
      .number()
      .int()
      .min(0)
      .max(MAX_ROTATION_GRACE_SECONDS)
      .optional()
      .openapi({ description: 'How long the old key keeps working; default 86400 (a day)' }),
  })
  .openapi('RotateApiKey')

export const CreatedApiKeySchema = z
  .object({ apiKey: ApiKeySchema, key: z.string().openapi({ description: 'The secret (mbk_…), shown only here; only its hash is stored.' }) })
  .openapi('CreatedApiKey')
