import { z } from '@hono/zod-openapi'
import { MAX_USAGE_QUANTITY, usageFields } from './schemas'

/**
 * The JSON shapes of the Suger-compatible API (contract §15): the subset of Suger's published
 * OpenAPI document (sugerio/suger-sdk-go, api/openapi.yaml) that the broker serves, written here
 * with the same field names, types and enums, for the request validation and the broker's own
 * OpenAPI document. Components are prefixed `Suger` (the broker's own `Partner` and
 * `EntitlementStatus` are other enums). Every field is optional as in Suger's document: an absent
 * value is omitted, never null.
 *
 * The answers' schemas are strict, as Suger's generated clients read answers at their strictest:
 * an unknown (or misspelt) key is refused, enums are exact, integers `.int()`, times `…Z`. The tests
 * parse every answer with them. The request schemas are not strict: a field Suger's server would
 * ignore is ignored here too.
 */

/** RFC 3339 in UTC, `…Z` (zod's ISO date-time refuses an offset); `format: date-time` in the OpenAPI document. */
const time = () => z.iso.datetime().openapi({ description: 'RFC 3339, UTC (…Z)' })

export const SugerPartnerSchema = z.enum(['AZURE', 'AWS', 'GCP']).openapi('SugerPartner', { description: 'Suger’s Partner enum, of which the broker serves these three' })
export type SugerPartner = z.infer<typeof SugerPartnerSchema>

export const SugerEntitlementStatusSchema = z.enum(['PENDING_START', 'ACTIVE', 'SUSPENDED', 'PENDING_CANCEL', 'CANCELLED']).openapi('SugerEntitlementStatus')

const AzureIdentitySchema = z
  .strictObject({
    billingAccountId: z.string().optional(),
    customerId: z.string().optional(),
    emailId: z.string().optional(),
    firstName: z.string().optional(),
    lastName: z.string().optional(),
    licenseType: z.string().optional(),
    objectId: z.string().optional(),
    puid: z.string().optional(),
    tenantId: z.string().optional(),
  })
  .openapi('SugerAzureADIdentifier')

export const AZURE_SUBSCRIPTION_STATUSES = ['NotStarted', 'PendingFulfillmentStart', 'Subscribed', 'Suspended', 'Unsubscribed'] as const
export const AZURE_CUSTOMER_OPERATIONS = ['Read', 'Update', 'Delete'] as const
export const AZURE_SANDBOX_TYPES = ['None', 'Csp'] as const
export const AZURE_SESSION_MODES = ['None', 'DryRun'] as const

const AzureSubscriptionSchema = z
  .strictObject({
    allowedCustomerOperations: z.array(z.enum(AZURE_CUSTOMER_OPERATIONS)).optional(),
    autoRenew: z.boolean().optional(),
    beneficiary: AzureIdentitySchema.optional(),
    created: time().optional(),
    fulfillmentId: z.string().optional(),
    id: z.string().optional(),
    isFreeTrial: z.boolean().optional(),
    isTest: z.boolean().optional(),
    lastModified: z.string().optional(),
    name: z.string().optional(),
    offerId: z.string().optional(),
    planId: z.string().optional(),
    publisherId: z.string().optional(),
    purchaser: AzureIdentitySchema.optional(),
    quantity: z.number().int().optional(),
    saasSubscriptionStatus: z.enum(AZURE_SUBSCRIPTION_STATUSES).optional(),
    sandboxType: z.enum(AZURE_SANDBOX_TYPES).optional(),
    sessionId: z.string().optional(),
    sessionMode: z.enum(AZURE_SESSION_MODES).optional(),
    storeFront: z.string().optional(),
    term: z.strictObject({ chargeDuration: z.string().optional(), endDate: time().optional(), startDate: time().optional(), termUnit: z.string().optional() }).optional(),
  })
  .openapi('SugerAzureMarketplaceSubscription')

const AwsEntitlementSchema = z
  .strictObject({
    customerIdentifier: z.string().optional(),
    dimension: z.string().optional(),
    expirationDate: z.string().optional(),
    productCode: z.string().optional(),
    value: z
      .strictObject({ booleanValue: z.boolean().optional(), doubleValue: z.number().optional(), integerValue: z.number().int().optional(), stringValue: z.string().optional() })
      .optional(),
  })
  .openapi('SugerAwsEntitlement')

export const GCP_ENTITLEMENT_STATES = [
  'ENTITLEMENT_STATE_UNSPECIFIED',
  'ENTITLEMENT_ACTIVATION_REQUESTED',
  'ENTITLEMENT_ACTIVE',
  'ENTITLEMENT_PENDING_CANCELLATION',
  'ENTITLEMENT_CANCELLED',
  'ENTITLEMENT_PENDING_PLAN_CHANGE',
  'ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL',
  'ENTITLEMENT_SUSPENDED',
] as const

/** Google's Procurement API entitlement fields that Suger's GcpMarketplaceEntitlement carries as text. */
export const GCP_TEXT_FIELDS = [
  'account', 'messageToUser', 'name', 'newOfferDuration', 'newPendingOffer', 'newPendingOfferDuration', 'newPendingPlan', 'newPlan',
  'offer', 'offerDuration', 'plan', 'product', 'productExternalName', 'provider', 'quoteExternalName', 'usageReportingId',
] as const
/** …and as times (`newOfferStartTime`/`newOfferEndTime` are plain strings in Suger's document, times all the same). */
export const GCP_TIME_FIELDS = ['createTime', 'newOfferEndTime', 'newOfferStartTime', 'offerEffectiveTime', 'offerEndTime', 'subscriptionEndTime', 'updateTime'] as const

const GcpEntitlementSchema = z
  .strictObject({
    id: z.string().optional(),
    ...Object.fromEntries(GCP_TEXT_FIELDS.map((field) => [field, z.string().optional()])),
    ...Object.fromEntries(GCP_TIME_FIELDS.map((field) => [field, time().optional()])),
    consumers: z.array(z.strictObject({ project: z.string().optional() })).optional(),
    state: z.enum(GCP_ENTITLEMENT_STATES).optional(),
  })
  .openapi('SugerGcpMarketplaceEntitlement')

export const WorkloadEntitlementSchema = z
  .strictObject({
    id: z.string().openapi({ description: 'The entitlement id (the redirect’s sugerEntitlementId)', example: 'ent_01jd0000000000000000000000' }),
    name: z.string().optional(),
    organizationID: z.string(),
    partner: SugerPartnerSchema,
    partnerID: z.string(),
    status: SugerEntitlementStatusSchema,
    productID: z.string().optional(),
    externalProductID: z.string().optional(),
    offerID: z.string().optional().openapi({ description: 'The plan id' }),
    externalID: z.string(),
    buyerID: z.string().optional().openapi({ description: 'byr_…, stable per org, marketplace and buyer account' }),
    externalBuyerID: z.string().optional().openapi({ description: 'The buyer’s account id, else its customer id' }),
    startTime: time().optional(),
    endTime: time().optional(),
    creationTime: time(),
    lastUpdateTime: time(),
    info: z
      .strictObject({
        autoRenew: z.boolean().optional(),
        azureSubscriptions: z.array(AzureSubscriptionSchema).optional(),
        awsEntitlements: z.array(AwsEntitlementSchema).optional(),
        gcpEntitlements: z.array(GcpEntitlementSchema).optional(),
      })
      .openapi('SugerEntitlementInfo'),
  })
  .openapi('SugerWorkloadEntitlement')
export type WorkloadEntitlement = z.infer<typeof WorkloadEntitlementSchema>

export const USAGE_GROUP_STATUSES = ['CREATED', 'REPORTED', 'REPORT_FAILED'] as const
/** The statuses Suger's ListUsageRecordGroups takes as a filter (the broker's groups are only ever the three above). */
export const USAGE_GROUP_STATUS_FILTERS = ['CREATED', 'DELETED', 'INVALID', 'REPORTED', 'REPORT_PENDING', 'REPORT_FAILED'] as const
/** The sources it takes: every group made through this API is `API`. */
export const USAGE_GROUP_SOURCES = ['', 'API', 'INTERNAL', 'LAGO', 'METRONOME', 'ORB', 'STRIPE'] as const

const RecordsSchema = z.record(z.string(), z.number()).openapi({ description: 'Dimension → quantity' })

export const MeteringUsageRecordGroupSchema = z
  .strictObject({
    id: z.string(),
    organizationID: z.string(),
    entitlementID: z.string(),
    buyerID: z.string().optional(),
    partner: SugerPartnerSchema,
    records: RecordsSchema.openapi({ description: 'The dimensions reported (quantity > 0)' }),
    status: z.enum(USAGE_GROUP_STATUSES).openapi({
      description: 'CREATED while one of its usage records is pending, REPORTED once all are, REPORT_FAILED once one was rejected',
    }),
    creationTime: time(),
    lastUpdateTime: time(),
    reportedTime: time().optional(),
    metaInfo: z
      .strictObject({
        source: z.literal('API'),
        timestamp: time().openapi({ description: 'When the usage happened' }),
        originRecords: RecordsSchema.openapi({ description: 'The records as they were sent, zeros included' }),
      })
      .openapi('SugerMeteringUsageRecordGroupMetaInfo'),
  })
  .openapi('SugerMeteringUsageRecordGroup')
export type MeteringUsageRecordGroup = z.infer<typeof MeteringUsageRecordGroupSchema>

export const ListUsageRecordGroupsResponseSchema = z
  .strictObject({ usageRecordGroups: z.array(MeteringUsageRecordGroupSchema), nextOffset: z.number().int().optional() })
  .openapi('SugerListUsageRecordGroupsResponse')

export const IdentityBuyerSchema = z
  .strictObject({
    id: z.string(),
    organizationID: z.string(),
    partner: SugerPartnerSchema,
    externalID: z.string().openapi({ description: 'The entitlements’ externalBuyerID' }),
    name: z.string().optional(),
    creationTime: time(),
    lastUpdateTime: time(),
    info: z
      .strictObject({
        emailAddress: z.string().optional(),
        awsBuyer: z.strictObject({ awsAccountID: z.string().optional(), awsCustomerID: z.string().optional() }).optional(),
        azureBuyer: z.strictObject({ tenantId: z.string().optional(), objectId: z.string().optional(), emailId: z.string().optional() }).optional(),
        gcpBuyer: z.strictObject({ id: z.string().optional(), name: z.string().optional(), provider: z.string().optional() }).optional(),
      })
      .openapi('SugerBuyerInfo'),
  })
  .openapi('SugerIdentityBuyer')
export type IdentityBuyer = z.infer<typeof IdentityBuyerSchema>

// ---- requests ---------------------------------------------------------------------------------

/**
 * A group's id: Suger's "uuid of the UsageRecordGroup (the size is up to 36 characters)"; empty
 * means none (one is made up). No `:`, which separates it from the dimension in its records'
 * idempotency keys (`<group id>:<dimension>`), so two groups never share a key.
 */
const groupId = z
  .string()
  .max(36)
  .refine((value) => !/[\u0000-\u001f\u007f:]/.test(value), 'must not contain ":" or control characters')
  .refine((value) => value.trim() === value, 'must not start or end with whitespace')

const recordsField = z
  .record(z.string(), z.number().finite().min(0).max(MAX_USAGE_QUANTITY))
  .superRefine((records, ctx) => {
    for (const dimension of Object.keys(records)) {
      const checked = usageFields.dimension.safeParse(dimension)
      if (!checked.success) ctx.addIssue({ code: 'custom', path: [dimension], message: `dimension ${checked.error.issues[0]?.message ?? 'is invalid'}` })
    }
  })
  .openapi({ description: 'Dimension → quantity (≥ 0); each quantity above 0 becomes one usage record', example: { api_calls: 150 } })

const groupFields = {
  id: groupId.optional().openapi({ description: 'Up to 36 characters; a group id seen before is refused (409). Also accepted as `ID`. Default: a new UUID' }),
  ID: groupId.optional().openapi({ description: 'The same as id (Suger’s server reads JSON names case-insensitively)' }),
  entitlementID: z.string().min(1).max(64),
  records: recordsField,
  timestamp: usageFields.timestamp.openapi({ description: 'When the usage happened; default: now' }),
  billableRecords: z.array(z.unknown()).max(0, 'billableRecords (metering API v2) is not supported: send records').optional(),
  metaInfo: z.unknown().optional().openapi({ description: 'Read-only: ignored' }),
}

const sameId = (group: { id?: string; ID?: string }) => !group.id || !group.ID || group.id === group.ID

export const CreateUsageRecordGroupParamsSchema = z
  .object({ ...groupFields, organizationID: z.string().min(1).max(64) })
  .refine(sameId, { message: 'id and ID differ', path: ['ID'] })
  .openapi('SugerCreateUsageRecordGroupParams')
export type CreateUsageRecordGroupParams = z.infer<typeof CreateUsageRecordGroupParamsSchema>

export const NewUsageRecordGroupSchema = z
  .object({ ...groupFields, organizationID: z.string().min(1).max(64).optional().openapi({ description: 'Not in Suger’s NewUsageRecordGroup; when given it must be the path’s org' }) })
  .refine(sameId, { message: 'id and ID differ', path: ['ID'] })
  .openapi('SugerNewUsageRecordGroup')
export type NewUsageRecordGroup = z.infer<typeof NewUsageRecordGroupSchema>
