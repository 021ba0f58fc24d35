import type { NormalizedPurchase } from '../../providers/types'
import * as entitlementsDb from '../db/entitlements'
import type { EntitlementRow } from '../db/schema'
import { type AppDeps, nowIso } from '../deps'
import type { EventType } from '../schemas'
import { purchaseColumns, recordEvent, statusEvent } from './entitlements'

/**
 * Brings a stored entitlement to the purchase its marketplace now reports (a notification,
 * reconciliation, or the refresh route), writing one Event with `source: "marketplace"` when
 * something a buyer or ISV cares about changed. A purchase that changes nothing writes nothing,
 * so applying the same state twice (a redelivery, a re-run after a crash) is harmless.
 */
export async function applyMarketplaceState(
  deps: AppDeps,
  row: EntitlementRow,
  next: NormalizedPurchase,
  data: Record<string, unknown>,
): Promise<{ row: EntitlementRow; event: EventType | null }> {
  const columns = purchaseColumns({ ...next, offerType: row.offer_type as NormalizedPurchase['offerType'] })
  // A Google purchase first stored as `account/<id>` takes its entitlement's id: still the same entitlement.
  const renamed = next.externalId !== row.external_id
  const changed = renamed || columns.status !== row.status || columns.plan_id !== row.plan_id || columns.quantity !== row.quantity || columns.term !== row.term
  if (!changed) return { row, event: null }
  const at = nowIso(deps)
  const type = statusEvent(row.status as NormalizedPurchase['status'], columns.status) ?? 'UPDATE'
  // The event is written before the row changes, so a crash in between loses nothing: applying the
  // notification again finds the change still to make and, by its notification id, the event
  // already written. (D1 has no transactions to make the two one write.)
  const notificationId = typeof data.notificationId === 'string' ? data.notificationId : null
  if (!notificationId || !(await entitlementsDb.hasEventFromNotification(deps.db, row.id, notificationId))) {
    await recordEvent(deps, row, type, 'marketplace', {
      ...data,
      status: columns.status,
      previousStatus: row.status,
      planId: columns.plan_id,
      quantity: columns.quantity,
      ...(columns.term !== row.term ? { term: JSON.parse(columns.term) as unknown } : {}),
      ...(renamed ? { externalId: next.externalId, previousExternalId: row.external_id } : {}),
    }, at)
  }
  if (renamed) await entitlementsDb.setExternalId(deps.db, row.id, next.externalId)
  const updated = (await entitlementsDb.updatePurchaseColumns(deps.db, row.id, { ...columns, updated_at: at })) ?? row
  return { row: updated, event: type }
}
