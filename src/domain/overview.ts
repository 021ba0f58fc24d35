import { ENTITLEMENT_STATUSES, type EntitlementStatus, PARTNERS, type Partner } from '../../providers/types'
import * as consoleDb from '../db/console'
import { type AppDeps, nowMs } from '../deps'
import type { Integration } from '../schemas'
import { listIntegrations } from './integrations'

/**
 * The console's Overview (contract §14): an org at a glance, from the same rows the API lists.
 * Days are UTC days by the broker's clock.
 */

/** How many days the landings chart shows, today included. */
export const LANDING_DAYS = 30
const DAY_MS = 86_400_000

export interface LandingDay {
  /** `YYYY-MM-DD` (UTC). */
  day: string
  total: number
  byPartner: Record<Partner, number>
}

export interface Overview {
  entitlements: {
    total: number
    byStatus: Record<EntitlementStatus, number>
    byPartner: Record<Partner, number>
    /** Per marketplace, per status. */
    byPartnerStatus: Record<Partner, Record<EntitlementStatus, number>>
  }
  /** The last LANDING_DAYS days, oldest first, today last; a day without landings counts 0. */
  landings: { days: LandingDay[]; total: number }
  deliveries: { PENDING: number; FAILED: number }
  usage: { PENDING: number; REJECTED: number }
  /** The org's integrations as the API lists them; a marketplace without one is not configured. */
  integrations: Integration[]
}

const zeros = <K extends string>(keys: readonly K[]) => Object.fromEntries(keys.map((key) => [key, 0])) as Record<K, number>
const isKey = <K extends string>(keys: readonly K[], value: string): value is K => (keys as readonly string[]).includes(value)

/** The UTC days from LANDING_DAYS − 1 days before `nowMs` to its own, oldest first. */
export function landingDays(now: number): string[] {
  const today = Math.floor(now / DAY_MS) * DAY_MS
  return Array.from({ length: LANDING_DAYS }, (_, i) => new Date(today - (LANDING_DAYS - 1 - i) * DAY_MS).toISOString().slice(0, 10))
}

export async function getOverview(deps: AppDeps, orgId: string): Promise<Overview> {
  // listIntegrations checks the org exists (404 otherwise) before anything else is counted.
  const integrations = await listIntegrations(deps, orgId)
  const days = landingDays(nowMs(deps))
  const [entitlementRows, landingRows, deliveryRows, usageRows] = await Promise.all([
    consoleDb.entitlementCounts(deps.db, orgId),
    consoleDb.landingCounts(deps.db, orgId, days[0]!, days.at(-1)!),
    consoleDb.openDeliveryCounts(deps.db, orgId),
    consoleDb.openUsageCounts(deps.db, orgId),
  ])

  const entitlements: Overview['entitlements'] = {
    total: 0,
    byStatus: zeros(ENTITLEMENT_STATUSES),
    byPartner: zeros(PARTNERS),
    byPartnerStatus: Object.fromEntries(PARTNERS.map((partner) => [partner, zeros(ENTITLEMENT_STATUSES)])) as Overview['entitlements']['byPartnerStatus'],
  }
  for (const { partner, status, count } of entitlementRows) {
    entitlements.total += count
    if (isKey(ENTITLEMENT_STATUSES, status)) entitlements.byStatus[status] += count
    if (isKey(PARTNERS, partner)) {
      entitlements.byPartner[partner] += count
      if (isKey(ENTITLEMENT_STATUSES, status)) entitlements.byPartnerStatus[partner][status] += count
    }
  }

  const perDay = new Map(days.map((day): [string, LandingDay] => [day, { day, total: 0, byPartner: zeros(PARTNERS) }]))
  let landingTotal = 0
  for (const { day, partner, landings } of landingRows) {
    const entry = perDay.get(day)
    if (!entry) continue
    entry.total += landings
    landingTotal += landings
    if (isKey(PARTNERS, partner)) entry.byPartner[partner] += landings
  }

  const deliveries = { PENDING: 0, FAILED: 0 }
  for (const { status, count } of deliveryRows) if (status === 'PENDING' || status === 'FAILED') deliveries[status] = count
  const usage = { PENDING: 0, REJECTED: 0 }
  for (const { status, count } of usageRows) if (status === 'PENDING' || status === 'REJECTED') usage[status] = count

  return { entitlements, landings: { days: [...perDay.values()], total: landingTotal }, deliveries, usage, integrations }
}
