import { UpstreamError } from '../errors'
import type { MeteringHandler, ProviderContext, ProviderIntegration, UsageReportItem, UsageReportOutcome } from '../types'

/**
 * Azure metered billing: `POST /api/batchUsageEvent` `{request: [{resourceId, quantity, dimension,
 * effectiveStartTime, planId}]}` (≤ 25), answered per item with `status` — Accepted, Duplicate,
 * Expired, ResourceNotActive, InvalidDimension, InvalidQuantity, BadArgument, … Microsoft keeps one
 * event per resource, dimension and hour, at most 24 hours back, and answers a second one for the
 * same hour with `Duplicate` and the event it accepted (`error.additionalInfo.acceptedMessage`).
 */

const HOUR_MS = 3600_000

interface BatchItemResult {
  status?: string
  usageEventId?: string
  resourceId?: string
  dimension?: string
  effectiveStartTime?: string
  quantity?: number
  error?: {
    message?: string
    code?: string
    details?: Array<{ message?: string; target?: string; code?: string }>
    additionalInfo?: { acceptedMessage?: { quantity?: number; usageEventId?: string } }
  }
}

type BatchCall = (integration: ProviderIntegration, ctx: ProviderContext, body: unknown) => Promise<Response>

const sameTime = (a: string | undefined, b: string) => {
  if (!a) return false
  // Microsoft may echo the time without a zone designator: it is UTC.
  const parsed = Date.parse(/[zZ]|[+-]\d{2}:?\d{2}$/.test(a) ? a : `${a}Z`)
  return parsed === Date.parse(b)
}

function reasonOf(result: BatchItemResult): string {
  const detail = result.error?.details?.find((d) => d.message)?.message
  return `Azure answered ${result.status ?? 'no status'}${detail || result.error?.message ? `: ${detail ?? result.error?.message}` : ''}`
}

function outcomeOf(item: UsageReportItem, result: BatchItemResult | undefined): UsageReportOutcome {
  if (!result?.status) return { status: 'RETRY', reason: 'Azure answered no result for this usage event' }
  if (result.status === 'Accepted') return { status: 'REPORTED', marketplaceStatus: 'Accepted' }
  if (result.status === 'Duplicate') {
    // Ours, if an earlier attempt may have got through and Microsoft holds the same quantity:
    // the answer to it was lost (a crash, a timeout). Anything else is someone else's event.
    const accepted = result.error?.additionalInfo?.acceptedMessage
    if (item.resent && typeof accepted?.quantity === 'number' && Math.abs(accepted.quantity - item.quantity) < 1e-6) {
      return { status: 'REPORTED', marketplaceStatus: 'Accepted' }
    }
    return { status: 'REJECTED', marketplaceStatus: 'Duplicate', reason: `Azure already has usage for this resource, dimension and hour${typeof accepted?.quantity === 'number' ? ` (quantity ${accepted.quantity})` : ''}` }
  }
  return { status: 'REJECTED', marketplaceStatus: result.status, reason: reasonOf(result) }
}

export function createAzureMetering(batchUsageEvent: BatchCall): MeteringHandler {
  return {
    rules: {
      recordingMarginMs: 5 * 60_000,
      windowMs: 24 * HOUR_MS,
      windowFrom: 'hour',
      wholeUnits: false,
      maxQuantity: 1e12,
      lateReports: false,
      retryForMs: 24 * HOUR_MS,
      clampTimestamp: false,
    },

    // One publisher app reports for all its SaaS subscriptions.
    batchKey: () => 'azure',

    async report(integration, items, ctx) {
      const outcomes: Array<UsageReportOutcome | undefined> = items.map((item) =>
        item.purchase.planId ? undefined : { status: 'REJECTED', marketplaceStatus: null, reason: 'the subscription has no planId to report usage against' },
      )
      const sending = items.map((item, i) => ({ item, i })).filter(({ i }) => !outcomes[i])
      if (!sending.length) return outcomes as UsageReportOutcome[]
      const request = sending.map(({ item }) => ({
        resourceId: item.purchase.externalId,
        quantity: item.quantity,
        dimension: item.dimension,
        effectiveStartTime: item.hourStart,
        planId: item.purchase.planId,
      }))
      const response = await batchUsageEvent(integration, ctx, { request })
      const text = await response.text()
      let body: { result?: BatchItemResult[]; message?: string; details?: Array<{ message?: string }> } = {}
      try {
        body = JSON.parse(text)
      } catch {
        // handled below
      }
      if (response.status === 400) {
        // The whole batch refused (nothing in it was taken): each event on its own finds the one at fault.
        if (sending.length > 1) {
          const one = await Promise.all(sending.map(({ item }) => this.report(integration, [item], ctx)))
          sending.forEach(({ i }, n) => (outcomes[i] = one[n]![0]))
          return outcomes as UsageReportOutcome[]
        }
        const reason = `Azure refused the usage event: ${body.details?.find((d) => d.message)?.message ?? body.message ?? 'BadArgument'}`
        outcomes[sending[0]!.i] = { status: 'REJECTED', marketplaceStatus: 'BadArgument', reason }
        return outcomes as UsageReportOutcome[]
      }
      if (!response.ok || !Array.isArray(body.result)) throw new UpstreamError(`Azure batchUsageEvent answered ${response.status}${response.ok ? ' without results' : ''}`, response.status)
      const results = body.result
      sending.forEach(({ item, i }, n) => {
        const at = results[n]
        const matches = (r: BatchItemResult | undefined) => r?.resourceId === item.purchase.externalId && r.dimension === item.dimension && sameTime(r.effectiveStartTime, item.hourStart)
        // Results come in request order; if Microsoft ever reorders them, find ours by its keys.
        outcomes[i] = outcomeOf(item, matches(at) || (results.length === sending.length && !at?.resourceId) ? at : results.find(matches))
      })
      return outcomes as UsageReportOutcome[]
    },
  }
}
