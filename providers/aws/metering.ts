import { BatchMeterUsageCommand, type BatchMeterUsageResult, type MarketplaceMeteringClient, type UsageRecord } from '@aws-sdk/client-marketplace-metering'
import { ConfigurationError } from '../errors'
import type { MeteringHandler, ProviderContext, ProviderIntegration, UsageReportItem, UsageReportOutcome } from '../types'
import { licenseId, sameLicense } from './license-arn'

/**
 * AWS Marketplace metering: `BatchMeterUsage` (≤ 25 records of one product), each record
 * `{Timestamp, Dimension, Quantity}` and either `CustomerAWSAccountId` + `LicenseArn` (without
 * `ProductCode`, as AWS now documents, whenever the entitlement has both) or `ProductCode` +
 * `CustomerIdentifier`. Per record `Status`: Success, CustomerNotSubscribed, DuplicateRecord;
 * `UnprocessedRecords` are retried. AWS takes whole units, nothing 6 hours old or older, and
 * one quantity per customer, dimension and hour: the same record again is idempotent (Success).
 */

const HOUR_MS = 3600_000
const WINDOW_MS = 6 * HOUR_MS
/** Within a minute of the window's edge AWS may already refuse it (clocks differ). */
const EDGE_MS = 60_000
const MAX_QUANTITY = 2_147_483_647

/** Whole-request errors caused by one record (AWS refuses the batch): each record is then sent on its own. */
const RECORD_ERRORS = new Set([
  'InvalidCustomerIdentifierException',
  'InvalidLicenseException',
  'InvalidProductCodeException',
  'InvalidTagException',
  'InvalidUsageAllocationsException',
  'InvalidUsageDimensionException',
  'TimestampOutOfBoundsException',
  'ValidationException',
])

type Send = (label: string, ctx: ProviderContext, run: (options: { abortSignal: AbortSignal }) => Promise<BatchMeterUsageResult>) => Promise<BatchMeterUsageResult>

interface Customer {
  CustomerIdentifier?: string | null
  CustomerAWSAccountId?: string | null
  ProductCode?: string
  LicenseArn?: string | null
}

const customerOf = (item: UsageReportItem) => (item.purchase.info.customer ?? {}) as Customer

/**
 * The license an entitlement is metered against, or null for the older ProductCode +
 * CustomerIdentifier form. AWS bills twice when one customer's hour comes in both forms, so the
 * form must never change between the attempts, splits or dimensions of an hour: it follows the
 * entitlement's `externalId`, which is its license ARN from its first landing on and is never
 * rewritten (info and buyer are refreshed by later landings and notifications).
 */
function licenseOf(item: UsageReportItem): string | null {
  const key = item.purchase.externalId
  if (!licenseId(key) || !item.purchase.buyer.accountId) return null
  // ResolveCustomer's print of the ARN (what AWS issued for metering) when it names the same license.
  const resolved = customerOf(item).LicenseArn
  return resolved && sameLicense(resolved, key) ? resolved : key
}

function usageRecord(item: UsageReportItem): UsageRecord {
  const base = { Timestamp: new Date(item.timestamp), Dimension: item.dimension, Quantity: item.quantity }
  const license = licenseOf(item)
  if (license) return { ...base, CustomerAWSAccountId: item.purchase.buyer.accountId!, LicenseArn: license }
  return { ...base, CustomerIdentifier: item.purchase.buyer.customerId ?? customerOf(item).CustomerIdentifier ?? '' }
}

const sameRecord = (a: UsageRecord | undefined, b: UsageRecord) =>
  Boolean(a) &&
  a!.Dimension === b.Dimension &&
  (a!.CustomerIdentifier ?? null) === (b.CustomerIdentifier ?? null) &&
  (a!.CustomerAWSAccountId ?? null) === (b.CustomerAWSAccountId ?? null) &&
  (a!.LicenseArn ?? null) === (b.LicenseArn ?? null) &&
  Math.floor((a!.Timestamp?.getTime() ?? 0) / 1000) === Math.floor(b.Timestamp!.getTime() / 1000)

/** What cannot be sent at all, found before the call (AWS would refuse the whole batch for it). */
function localRefusal(item: UsageReportItem, now: number): string | null {
  const at = Date.parse(item.timestamp)
  if (at >= Date.parse(item.hourEnd) || at < now - WINDOW_MS + EDGE_MS) return `the hour ${item.hourStart} can no longer be reported: AWS takes usage up to 6 hours back`
  if (!Number.isInteger(item.quantity) || item.quantity > MAX_QUANTITY) return `AWS takes whole quantities up to ${MAX_QUANTITY} per record and hour (the hour sums to ${item.quantity})`
  if (!licenseOf(item) && (!item.purchase.productId || !(item.purchase.buyer.customerId ?? customerOf(item).CustomerIdentifier))) {
    return 'the entitlement has neither a license nor a product code and CustomerIdentifier to report against'
  }
  return null
}

export function createAwsMetering(meteringClient: (integration: ProviderIntegration) => MarketplaceMeteringClient, send: Send): MeteringHandler {
  async function call(integration: ProviderIntegration, items: UsageReportItem[], ctx: ProviderContext): Promise<UsageReportOutcome[]> {
    const records = items.map(usageRecord)
    const license = licenseOf(items[0]!) !== null
    let result: BatchMeterUsageResult
    try {
      result = await send('aws.BatchMeterUsage', ctx, (o) =>
        meteringClient(integration).send(new BatchMeterUsageCommand({ UsageRecords: records, ...(license ? {} : { ProductCode: items[0]!.purchase.productId! }) }), o),
      )
    } catch (error) {
      const name = error instanceof ConfigurationError ? String(error.detail.awsError ?? '') : ''
      if (!RECORD_ERRORS.has(name)) throw error
      // One bad record fails the whole batch: find it by sending each on its own.
      if (items.length > 1) return (await Promise.all(items.map((item) => call(integration, [item], ctx)))).flat()
      return [{ status: 'REJECTED', marketplaceStatus: name, reason: `AWS refused the record: ${name}` }]
    }
    return records.map((record): UsageReportOutcome => {
      const done = result.Results?.find((r) => sameRecord(r.UsageRecord, record))
      if (!done) {
        const unprocessed = result.UnprocessedRecords?.some((r) => sameRecord(r, record))
        return { status: 'RETRY', reason: unprocessed ? 'AWS left the record unprocessed' : 'AWS answered no result for the record' }
      }
      switch (done.Status) {
        case 'Success':
          return { status: 'REPORTED', marketplaceStatus: 'Success' }
        case 'CustomerNotSubscribed':
          return { status: 'REJECTED', marketplaceStatus: 'CustomerNotSubscribed', reason: 'AWS: the customer is not subscribed to the product (or their account is suspended)' }
        case 'DuplicateRecord':
          return { status: 'REJECTED', marketplaceStatus: 'DuplicateRecord', reason: 'AWS already has another quantity for this customer, dimension and hour' }
        default:
          return { status: 'REJECTED', marketplaceStatus: done.Status ?? null, reason: `AWS answered ${done.Status ?? 'no status'}` }
      }
    })
  }

  return {
    rules: {
      recordingMarginMs: 5 * 60_000,
      windowMs: WINDOW_MS,
      windowFrom: 'timestamp',
      wholeUnits: true,
      maxQuantity: MAX_QUANTITY,
      lateReports: false,
      retryForMs: WINDOW_MS + HOUR_MS,
      clampTimestamp: true,
      // AWS: after a subscription ends, the seller has an hour to send its final usage.
      finalWindowMs: HOUR_MS,
    },

    // One product per request, and one record form per request.
    batchKey: (_integration, item) => `${item.purchase.productId ?? ''}\n${licenseOf(item) ? 'license' : 'customer'}`,

    async report(integration, items, ctx) {
      const now = Date.now()
      const outcomes: Array<UsageReportOutcome | undefined> = items.map((item) => {
        const reason = localRefusal(item, now)
        return reason ? { status: 'REJECTED', marketplaceStatus: null, reason } : undefined
      })
      const sending = items.filter((_, i) => !outcomes[i])
      if (sending.length) {
        const sent = await call(integration, sending, ctx)
        let n = 0
        outcomes.forEach((outcome, i) => {
          if (!outcome) outcomes[i] = sent[n++]
        })
      }
      return outcomes as UsageReportOutcome[]
    },
  }
}
