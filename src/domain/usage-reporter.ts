import { ConfigurationError, ProviderError } from '../../providers/errors'
import { type MarketplaceProvider, type Partner, type ProviderIntegration, type UsageReportItem, type UsageReportOutcome, isPartner } from '../../providers/types'
import type { DB, EntitlementRow, UsageReportRow } from '../db/schema'
import * as usageDb from '../db/usage'
import { type AppDeps, nowIso, nowMs } from '../deps'
import type { Logger } from '../logger'
import { purchaseOf } from './entitlements'
import { usageReportedDelivery } from './envelopes'
import { newId } from './ids'
import { type RetryPolicy, nextAttempt } from './retry'
import { loadProviderIntegration } from './integrations'
import { hourOf } from './usage'

/**
 * The usage reporter, a task of the background job (contract §9). Each run:
 * 1. closes every UTC hour that ended more than GRACE_MS ago: per entitlement and dimension the
 *    hour's records are summed into one report, in SQL, one hour at a time (nothing is loaded);
 *    records that come after their hour was closed become reports of their own (`late`);
 * 2. sends the reports that are due, ≤ 25 per marketplace call, and stores each one's outcome on
 *    the report and its records, with a `usage.reported` webhook, in one write per batch.
 * A report's id is stable and its attempt is counted before the call, so a crash between the call
 * and its answer re-sends the same report, which the marketplace recognizes (see the providers).
 */

const HOUR_MS = 3600_000
/** An hour is closed this long after it ends, for records that are a little late. */
export const GRACE_MS = 60_000
const HOURS_PER_RUN = 48
const DUE_PAGE = 500
const BATCH_SIZE = 25
const PARALLEL_BATCHES = 4
/**
 * A batch's lease: longer than its marketplace calls with their retries can take (token, lookup,
 * check and report, each at most twice UPSTREAM_TIMEOUT_MS). After a crash, a batch that was in
 * flight is sent again once its lease has passed.
 */
const leaseMs = (deps: AppDeps) => 10 * deps.config.UPSTREAM_TIMEOUT_MS + 10_000
/** One run stops taking new batches after this long (the next run goes on). */
const RUN_BUDGET_MS = 25_000
/**
 * Retries after network errors, 5xx and refusals of the seller's credentials (±20 %). When to give
 * up is the marketplace's rule (its metering.rules.retryForMs after the hour), see retryOrGiveUp.
 */
export const USAGE_RETRY: RetryPolicy = {
  delaysMs: [30_000, 60_000, 120_000, 300_000, 600_000, 1_200_000, 1_800_000, 3_600_000],
  jitter: [0.8, 1.2],
  giveUpAfterMs: null,
  maxAttempts: null,
}
/** Kept in a report's error. */
const MAX_ERROR = 1024

const iso = (ms: number) => new Date(ms).toISOString()

interface Batch {
  partner: string
  integration: ProviderIntegration
  provider: MarketplaceProvider
  rows: UsageReportRow[]
  entitlements: Map<string, EntitlementRow>
}

type Settlement = usageDb.ReportSettlement

export async function reportUsage(deps: AppDeps, log: Logger): Promise<{ closed: number; settled: number }> {
  const clock = () => nowMs(deps)
  // The run's budget is elapsed time, not the clock's: a test that moves the clock does not end the run.
  const started = performance.now()
  const run = newId('run')
  const hours = await usageDb.closableHours(deps.db, hourOf(clock() - GRACE_MS), HOURS_PER_RUN)
  for (const hour of hours) await usageDb.closeHour(deps.db, hour, run, iso(clock()))

  let settled = 0
  while (performance.now() - started < RUN_BUDGET_MS) {
    // This run's reports: claimed for as long as one batch's attempt may take.
    const claim = newId('lease')
    const due = await usageDb.claimDueReports(deps.db, iso(clock()), iso(clock() + leaseMs(deps)), claim, DUE_PAGE)
    if (!due.length) break
    const { batches, settlements } = await plan(deps, due, clock())
    if (settlements.length) await settle(deps, settlements.map((s) => ({ ...s, owner: claim })))
    settled += settlements.filter((s) => s.status !== 'PENDING').length
    let next = 0
    const worker = async () => {
      while (next < batches.length && performance.now() - started < RUN_BUDGET_MS) {
        try {
          settled += await send(deps, batches[next++]!, clock, log, claim)
        } catch (error) {
          // The database, most likely: the batch's lease runs out and a later run sends it.
          log.error('usage batch failed; retried after its lease', { error: error instanceof Error ? error.message : String(error) })
        }
      }
    }
    await Promise.all(Array.from({ length: PARALLEL_BATCHES }, worker))
    if (due.length < DUE_PAGE) break
  }
  if (hours.length || settled) log.info('usage reporter', { hoursClosed: hours.length, reportsSettled: settled })
  return { closed: hours.length, settled }
}

function settle(deps: AppDeps, settlements: Settlement[]) {
  return settleAnnounced(deps.db, settlements, nowIso(deps))
}

/**
 * Settles reports (usageDb.settleReports), each settled one with its `usage.reported` webhook
 * when its org has a webhookUrl, built from the report as stored.
 */
export async function settleAnnounced(db: DB, settlements: Settlement[], now: string): Promise<void> {
  const shown = await usageDb.reportsToAnnounce(db, settlements.filter((s) => s.status !== 'PENDING').map((s) => s.id))
  await usageDb.settleReports(
    db,
    settlements.map((s) => {
      const announced = shown.get(s.id)
      if (s.status === 'PENDING' || !announced) return s
      return { ...s, announce: { delivery: usageReportedDelivery(announced, s, now), records: announced.report.records } }
    }),
    now,
  )
}

const rejected = (id: string, error: string, marketplaceStatus: string | null = null): Settlement => ({ id, status: 'REJECTED', marketplaceStatus, error: error.slice(0, MAX_ERROR) })

/** A report that could not be sent now: tried again later, or rejected once its marketplace's window has passed. */
function retryOrGiveUp(row: UsageReportRow, attempts: number, reason: string, retryForMs: number, now: number): Settlement {
  if (now >= Date.parse(row.hour) + retryForMs) return rejected(row.id, `not reported within the marketplace's window: ${reason}`)
  return { id: row.id, status: 'PENDING', error: reason.slice(0, MAX_ERROR), nextAttemptAt: iso(nextAttempt(USAGE_RETRY, attempts, now).at) }
}

/** Sorts due reports into batches a marketplace takes in one call; what cannot be sent is settled here. */
async function plan(deps: AppDeps, due: UsageReportRow[], now: number): Promise<{ batches: Batch[]; settlements: Settlement[] }> {
  const settlements: Settlement[] = []
  const batches: Batch[] = []
  const entitlements = await usageDb.findEntitlementRows(deps.db, due.map((row) => row.entitlement_id))
  const groups = new Map<string, UsageReportRow[]>()
  for (const row of due) {
    const key = `${row.org_id}\n${row.partner}`
    const group = groups.get(key)
    if (group) group.push(row)
    else groups.set(key, [row])
  }
  for (const rows of groups.values()) {
    try {
      batches.push(...(await planGroup(deps, rows, entitlements, settlements, now)))
    } catch (error) {
      // One org's trouble (its secrets cannot be opened, say) does not hold up the others.
      const reason = `could not prepare the report: ${error instanceof Error ? error.message : String(error)}`
      for (const row of rows) settlements.push(retryOrGiveUp(row, row.attempts, reason, deps.providers[row.partner as Partner]?.metering.rules.retryForMs ?? 0, now))
    }
  }
  return { batches, settlements }
}

async function planGroup(deps: AppDeps, rows: UsageReportRow[], entitlements: Map<string, EntitlementRow>, settlements: Settlement[], now: number): Promise<Batch[]> {
  const batches: Batch[] = []
  {
    const { org_id: orgId, partner } = rows[0]!
    if (!isPartner(partner)) {
      for (const row of rows) settlements.push(rejected(row.id, `unknown marketplace ${partner}`))
      return batches
    }
    const provider = deps.providers[partner]
    const { rules } = provider.metering
    const integration = await loadProviderIntegration(deps, orgId, partner)
    const byKey = new Map<string, UsageReportRow[]>()
    for (const row of rows) {
      const entitlement = entitlements.get(row.entitlement_id)
      if (!entitlement) {
        settlements.push(rejected(row.id, 'the entitlement no longer exists'))
      } else if (row.late === 1 && !rules.lateReports) {
        settlements.push(rejected(row.id, `late: the record came after its hour (${row.hour}) was reported, and ${partner} takes one report per entitlement, dimension and hour; record usage before the hour ends (the broker waits ${GRACE_MS / 1000} s after it).`))
      } else if (now >= Date.parse(row.hour) + rules.retryForMs) {
        settlements.push(rejected(row.id, `the hour ${row.hour} is older than ${partner} accepts`))
      } else if (!integration) {
        settlements.push(retryOrGiveUp(row, row.attempts, `the org has no ${partner} integration`, rules.retryForMs, now))
      } else {
        const key = provider.metering.batchKey(integration, itemOf(row, entitlement))
        const keyed = byKey.get(key)
        if (keyed) keyed.push(row)
        else byKey.set(key, [row])
      }
    }
    if (!integration) return batches
    for (const keyed of byKey.values()) {
      for (let i = 0; i < keyed.length; i += BATCH_SIZE) batches.push({ partner, integration, provider, rows: keyed.slice(i, i + BATCH_SIZE), entitlements })
    }
  }
  return batches
}

function itemOf(row: UsageReportRow, entitlement: EntitlementRow): UsageReportItem {
  return {
    id: row.id,
    purchase: purchaseOf(entitlement),
    dimension: row.dimension,
    quantity: row.quantity,
    hourStart: row.hour,
    hourEnd: iso(Date.parse(row.hour) + HOUR_MS),
    timestamp: row.send_timestamp ?? row.timestamp,
    late: row.late === 1,
    resent: row.attempts > 1,
  }
}

/** One marketplace call for a batch: leased first (the attempt counted before the call), then settled. */
async function send(deps: AppDeps, batch: Batch, clock: () => number, log: Logger, claim: string): Promise<number> {
  const { rules } = batch.provider.metering
  const now = clock()
  const floor = rules.clampTimestamp ? iso(now - rules.windowMs + 2 * 60_000) : ''
  const owner = newId('lease')
  // The providers time their calls on the wall clock (providers/shared/http.ts), so their deadline
  // is wall time, not the injected clock's (a test's clock may be hours away). The one wall-time
  // read left in src/domain; a budget instead of an instant in ProviderContext would remove it.
  const leaseUntil = Date.now() + leaseMs(deps)
  const leased = await usageDb.leaseReports(deps.db, batch.rows.map((row) => row.id), iso(now), iso(now + leaseMs(deps)), floor, owner, claim)
  if (!leased.length) return 0
  const items = leased.map((row) => itemOf(row, batch.entitlements.get(row.entitlement_id)!))
  const batchLog = log.child({ task: 'usage', orgId: batch.integration.orgId, partner: batch.partner, reports: items.length })
  let outcomes: UsageReportOutcome[]
  try {
    // Every call and retry ends well inside the lease, so no other process sends these meanwhile.
    outcomes = await batch.provider.metering.report(batch.integration, items, { log: batchLog, deadline: leaseUntil - 10_000 })
    if (outcomes.length !== items.length) throw new Error(`the ${batch.partner} provider answered ${outcomes.length} outcomes for ${items.length} reports`)
  } catch (error) {
    const reason = error instanceof ProviderError ? error.message : `${error instanceof Error ? error.name : 'Error'}: could not report`
    const level = error instanceof ConfigurationError ? 'warn' : 'info'
    batchLog[level]('usage report failed; retried later', { error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) })
    if (!(error instanceof ProviderError)) batchLog.error('usage reporter error', { error: error instanceof Error ? error.message : String(error) })
    outcomes = items.map(() => ({ status: 'RETRY', reason }))
  }
  const settlements = leased.map((row, i): Settlement => {
    const outcome = outcomes[i]!
    if (outcome.status === 'RETRY') return { ...retryOrGiveUp(row, row.attempts, outcome.reason, rules.retryForMs, clock()), owner }
    if (outcome.status === 'REJECTED') return { ...rejected(row.id, outcome.reason, outcome.marketplaceStatus), owner }
    return { id: row.id, status: 'REPORTED', marketplaceStatus: outcome.marketplaceStatus, error: null, owner }
  })
  await settle(deps, settlements)
  const counts = settlements.reduce<Record<string, number>>((acc, s) => ({ ...acc, [s.status]: (acc[s.status] ?? 0) + 1 }), {})
  batchLog.info('usage reported', counts)
  return settlements.filter((s) => s.status !== 'PENDING').length
}
