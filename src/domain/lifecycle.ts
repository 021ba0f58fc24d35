import type { NormalizedPurchase } from '../../providers/types'
import * as entitlementsDb from '../db/entitlements'
import type { EntitlementRow } from '../db/schema'
import { type AppDeps, nowIso } from '../deps'
import type { EventType } from '../schemas'
import { purchaseColumns, statusEvent } from './entitlements'
import { newId } from './ids'

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
  if (!changed) {
    if (columns.info === row.info) return { row, event: null }
    // Only the marketplace's own detail changed (an AWS agreement id learned, a re-read's raw
    // answer): kept, without an Event, since nothing a buyer or ISV acts on changed.
    const updated = await entitlementsDb.updatePurchaseColumns(deps.db, row.id, { ...columns, updated_at: row.updated_at })
    return { row: updated ?? row, event: null }
  }
  const at = nowIso(deps)
  const type = statusEvent(row.status as NormalizedPurchase['status'], columns.status) ?? 'UPDATE'
  // The change and its event in one atomic batch, the change first: the event's webhook delivery
  // (written by the database with the event, migration 0006) carries the entitlement after it.
  await entitlementsDb.atomicallyUpdateWithEvent(
    deps.db,
    row.id,
    { ...columns, ...(renamed ? { external_id: next.externalId } : {}), updated_at: at },
    {
      id: newId('evt'),
      entitlement_id: row.id,
      org_id: row.org_id,
      type,
      source: 'marketplace',
      data: JSON.stringify({
        ...data,
        status: columns.status,
        previousStatus: row.status,
        planId: columns.plan_id,
        quantity: columns.quantity,
        ...(columns.term !== row.term ? { term: JSON.parse(columns.term) as unknown } : {}),
        ...(renamed ? { externalId: next.externalId, previousExternalId: row.external_id } : {}),
      }),
      created_at: at,
    },
  )
  const updated = (await entitlementsDb.findEntitlement(deps.db, row.org_id, row.id)) ?? row
  return { row: updated, event: type }
}
