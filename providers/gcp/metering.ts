import { servicecontrol } from '@googleapis/servicecontrol'
import { ConfigurationError, UpstreamError } from '../errors'
import type { MeteringHandler, ProviderContext, ProviderIntegration, UsageReportItem, UsageReportOutcome } from '../types'
import type { GcpEntitlement } from './mapper'
import type { GcpSettings } from './settings'

/**
 * Google usage reports go through Service Control, as "Configure usage reporting to Google"
 * describes: per operation a `services.check` first, then `services.report` of the operations
 * whose check found no error, to `services/{serviceName}` (the gcp integration's
 * `serviceNames[product]`, else the product id). An operation is `{operationId, operationName,
 * consumerId: <the entitlement's usageReportingId>, startTime, endTime, metricValueSets:
 * [{metricName: "<product>/<dimension>", metricValues: [{int64Value}]}]}`; its operationId is the
 * report's stable id, so a report sent again is not counted twice.
 */

const HOUR_MS = 3600_000
/** google.rpc.Code names, for `reportErrors[].status.code`. */
const RPC_CODES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED']
/** Codes that say "not now" rather than "not this": the report is tried again. */
const TRANSIENT = new Set(['CANCELLED', 'UNKNOWN', 'DEADLINE_EXCEEDED', 'RESOURCE_EXHAUSTED', 'ABORTED', 'INTERNAL', 'UNAVAILABLE'])
/** Check errors of the same kind: Google's own backends were not available to check (`…_UNAVAILABLE`), or it sheds load. */
const transientCheck = (code: string | undefined) => Boolean(code && (code.endsWith('_UNAVAILABLE') || code === 'LOAD_SHEDDING' || code === 'RESOURCE_EXHAUSTED'))

type Outcome<T> = { ok: true; data: T; status: number } | { ok: false; status: number | null; reason: string | null }
type Call = <T>(integration: ProviderIntegration, ctx: ProviderContext, label: string, run: (options: Record<string, unknown>) => Promise<{ data: T; status: number }>) => Promise<Outcome<T>>

interface Operation {
  operationId: string
  operationName: string
  consumerId: string
  startTime: string
  endTime: string
  metricValueSets: Array<{ metricName: string; metricValues: Array<{ int64Value: string } | { doubleValue: number }> }>
}

interface CheckResponse {
  checkErrors?: Array<{ code?: string; detail?: string; subject?: string }>
}
interface ReportResponse {
  reportErrors?: Array<{ operationId?: string; status?: { code?: number; message?: string } }>
}

export interface GcpMeteringOptions {
  /** `GCP_SERVICE_CONTROL_URL` (`/v1/...` is appended). */
  serviceControlUrl: string
  call: Call
  /** The entitlement as Google has it now (for a usageReportingId the stored one lacks). */
  getEntitlement: (integration: ProviderIntegration, id: string, ctx: ProviderContext) => Promise<GcpEntitlement | null>
}

export const serviceNameOf = (settings: GcpSettings, productId: string | null) => (productId ? (settings.serviceNames?.[productId] ?? productId) : '')

export function createGcpMetering(options: GcpMeteringOptions): MeteringHandler<GcpSettings> {
  // As with Procurement: the generated client keeps only the origin of a global rootUrl, so it is
  // given per call too (over the Procurement root the shared `call` passes).
  const rootUrl = `${options.serviceControlUrl.replace(/\/+$/, '')}/`
  const api = servicecontrol({ version: 'v1', rootUrl })

  function unusable(label: string, outcome: { status: number | null; reason: string | null }, serviceName: string): never {
    if (outcome.status === 401 || outcome.status === 403 || outcome.status === 404) {
      // A service account without the report permission on the service, or a wrong service name: the ISV's to fix.
      throw new ConfigurationError(`Google Service Control answered ${outcome.status} to ${label} on service ${serviceName}: check serviceNames and the service account's permissions`, {
        call: label,
        status: outcome.status,
        googleStatus: outcome.reason,
      })
    }
    throw new UpstreamError(`Google Service Control answered ${outcome.status ?? 'nothing'} to ${label}`, outcome.status)
  }

  async function consumerIdOf(integration: ProviderIntegration, item: UsageReportItem, ctx: ProviderContext): Promise<string | null> {
    const stored = (item.purchase.info.entitlement as GcpEntitlement | undefined)?.usageReportingId
    if (typeof stored === 'string' && stored) return stored
    if (item.purchase.externalId.startsWith('account/')) return null
    const entitlement = await options.getEntitlement(integration, item.purchase.externalId, ctx)
    return typeof entitlement?.usageReportingId === 'string' && entitlement.usageReportingId ? entitlement.usageReportingId : null
  }

  function operationOf(item: UsageReportItem, consumerId: string): Operation {
    const value = Number.isInteger(item.quantity) ? { int64Value: String(item.quantity) } : { doubleValue: item.quantity }
    return {
      operationId: item.id,
      operationName: item.late ? 'Late Usage Report' : 'Hourly Usage Report',
      consumerId,
      startTime: item.hourStart,
      endTime: item.hourEnd,
      metricValueSets: [{ metricName: `${item.purchase.productId}/${item.dimension}`, metricValues: [value] }],
    }
  }

  /** `services.report` of operations that passed their check; a refused request is split to find the operation it was about. */
  async function reportAll(integration: ProviderIntegration, serviceName: string, operations: Operation[], ctx: ProviderContext): Promise<Map<string, UsageReportOutcome>> {
    const reported = await options.call<ReportResponse>(integration, ctx, 'gcp.services.report', (o) =>
      api.services.report({ serviceName, requestBody: { operations } }, { ...o, rootUrl }) as unknown as Promise<{ data: ReportResponse; status: number }>,
    )
    const outcomes = new Map<string, UsageReportOutcome>()
    if (!reported.ok && reported.status !== 400) {
      // Not now (or not with these credentials): the checked operations are tried again later;
      // what the checks already settled stays settled.
      let reason: string
      try {
        unusable('gcp.services.report', reported, serviceName)
      } catch (error) {
        reason = (error as Error).message
        if (error instanceof ConfigurationError) ctx.log.warn('google usage report refused', { status: reported.status, serviceName })
      }
      for (const operation of operations) outcomes.set(operation.operationId, { status: 'RETRY', reason: reason! })
      return outcomes
    }
    if (!reported.ok) {
      if (operations.length > 1) {
        for (const operation of operations) for (const [id, outcome] of await reportAll(integration, serviceName, [operation], ctx)) outcomes.set(id, outcome)
        return outcomes
      }
      outcomes.set(operations[0]!.operationId, { status: 'REJECTED', marketplaceStatus: reported.reason ?? 'INVALID_ARGUMENT', reason: 'Google refused the usage report as invalid' })
      return outcomes
    }
    for (const operation of operations) {
      const error = reported.data.reportErrors?.find((e) => e.operationId === operation.operationId)
      if (!error) {
        outcomes.set(operation.operationId, { status: 'REPORTED', marketplaceStatus: 'OK' })
        continue
      }
      const code = RPC_CODES[error.status?.code ?? 2] ?? String(error.status?.code)
      const reason = `Google: ${code}${error.status?.message ? `: ${error.status.message}` : ''}`
      outcomes.set(operation.operationId, TRANSIENT.has(code) ? { status: 'RETRY', reason } : { status: 'REJECTED', marketplaceStatus: code, reason })
    }
    return outcomes
  }

  return {
    rules: {
      recordingMarginMs: 0,
      // "Service providers must report usage within one hour of the usage being generated."
      windowMs: HOUR_MS,
      windowFrom: 'timestamp',
      wholeUnits: false,
      maxQuantity: 1e12,
      lateReports: true,
      retryForMs: 25 * HOUR_MS,
      clampTimestamp: false,
    },

    batchKey: (integration, item) => serviceNameOf(integration.settings, item.purchase.productId),

    async report(integration, items, ctx) {
      const serviceName = serviceNameOf(integration.settings, items[0]!.purchase.productId)
      const outcomes: Array<UsageReportOutcome | undefined> = new Array(items.length)
      const checked: Array<{ i: number; operation: Operation }> = []
      await Promise.all(
        items.map(async (item, i) => {
          if (!item.purchase.productId) {
            outcomes[i] = { status: 'REJECTED', marketplaceStatus: null, reason: 'the entitlement has no product to report usage for' }
            return
          }
          const consumerId = await consumerIdOf(integration, item, ctx)
          if (!consumerId) {
            outcomes[i] = { status: 'REJECTED', marketplaceStatus: null, reason: 'Google gives no usageReportingId for this entitlement' }
            return
          }
          const operation = operationOf(item, consumerId)
          const check = await options.call<CheckResponse>(integration, ctx, 'gcp.services.check', (o) =>
            api.services.check({ serviceName, requestBody: { operation } }, { ...o, rootUrl }) as unknown as Promise<{ data: CheckResponse; status: number }>,
          )
          if (!check.ok) {
            if (check.status === 400) outcomes[i] = { status: 'REJECTED', marketplaceStatus: check.reason ?? 'INVALID_ARGUMENT', reason: 'Google refused the usage check as invalid' }
            else unusable('gcp.services.check', check, serviceName)
            return
          }
          const problem = check.data.checkErrors?.[0]
          if (problem && transientCheck(problem.code)) {
            outcomes[i] = { status: 'RETRY', reason: `Google could not check the consumer now: ${problem.code}${problem.detail ? `: ${problem.detail}` : ''}` }
            return
          }
          if (problem) {
            outcomes[i] = { status: 'REJECTED', marketplaceStatus: problem.code ?? 'CHECK_ERROR', reason: `Google's check refused the consumer: ${problem.code ?? 'error'}${problem.detail ? `: ${problem.detail}` : ''}` }
            return
          }
          checked.push({ i, operation })
        }),
      )
      if (checked.length) {
        const reported = await reportAll(integration, serviceName, checked.map((c) => c.operation), ctx)
        for (const { i, operation } of checked) outcomes[i] = reported.get(operation.operationId) ?? { status: 'RETRY', reason: 'Google answered nothing for the operation' }
      }
      return outcomes as UsageReportOutcome[]
    },
  }
}
