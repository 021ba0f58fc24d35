import type { NormalizedPurchase, Partner } from '../../providers/types'
import { atomically, type Statement } from '../db/batch'
import * as entitlementsDb from '../db/entitlements'
import type { EntitlementRow } from '../db/schema'
import { type AppDeps, nowIso } from '../deps'
import type { EntitlementEvent, EventType } from '../schemas'
import { entitlementJson, findPurchase, purchaseColumns, statusEvent } from './entitlements'
import { entitlementEventDelivery } from './envelopes'
import { newId } from './ids'

type Source = EntitlementEvent['source']
interface PlannedEvent {
  type: EventType
  data: Record<string, unknown>
}
/** What a change makes of the row as stored now, and the events that say so; null: nothing to write. */
type Decision = { set: Partial<entitlementsDb.EntitlementColumns>; events: PlannedEvent[] } | null

/** A writer that lost the compare-and-set this often in a row gives up (the job or the marketplace's retry comes back). */
const MAX_WRITE_ATTEMPTS = 5

/**
 * Every change of a stored entitlement goes through here: `decide` looks at the row as it is
 * now and says what it becomes, which is written with its events in one atomic batch
 * (`writeEntitlementChange`). A row another writer changed in between is read again and decided
 * again, so a transition's event is written once whoever races for it. `also` are writes that
 * belong to the change (settling its activation), made with it, or alone when nothing changes.
 */
export async function changeEntitlement(
  deps: AppDeps,
  row: EntitlementRow,
  source: Source,
  decide: (current: EntitlementRow) => Decision,
  alsoWrites: Statement[] | ((current: EntitlementRow, next: EntitlementRow) => Statement[]) = [],
): Promise<{ row: EntitlementRow; events: EventType[] }> {
  // `also` may depend on what the decision makes of the row (an audit entry's changes): built per attempt.
  const also = (before: EntitlementRow, after: EntitlementRow) => (typeof alsoWrites === 'function' ? alsoWrites(before, after) : alsoWrites)
  let current = row
  for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt++) {
    const decision = decide(current)
    if (!decision) {
      await atomically(deps.db, also(current, current))
      return { row: current, events: [] }
    }
    const at = nowIso(deps)
    const next: EntitlementRow = { ...current, updated_at: at, ...decision.set }
    const { id: _id, org_id: _org, partner: _partner, created_at: _created, ...columns } = next
    const json = entitlementJson(next)
    const written = await entitlementsDb.writeEntitlementChange(
      deps.db,
      { expected: current, set: { ...columns, json } },
      eventWrites(next, json, decision.events.map((event) => eventRow(current, source, event, at))),
      also(current, next),
    )
    if (written) return { row: written, events: decision.events.map((event) => event.type) }
    const reread = await entitlementsDb.findEntitlement(deps.db, row.org_id, row.id)
    if (!reread) throw new Error(`entitlement ${row.id} disappeared while it was being changed`)
    current = reread
  }
  throw new Error(`entitlement ${row.id} kept changing under this write`)
}

function eventRow(row: Pick<EntitlementRow, 'id' | 'org_id'>, source: Source, event: PlannedEvent, at: string) {
  return { id: newId('evt'), entitlement_id: row.id, org_id: row.org_id, type: event.type, source, data: JSON.stringify(event.data), created_at: at }
}

/** Each event with its webhook delivery, built with the entitlement as the change leaves it (`row`, its API JSON `json`). */
function eventWrites(row: EntitlementRow, json: string, events: Array<ReturnType<typeof eventRow>>): entitlementsDb.EventWrite[] {
  return events.map((event) => ({ event, delivery: entitlementEventDelivery(event, row, json) }))
}

/**
 * The events a purchase's first sighting writes: CREATE, and ACTIVATE when it is already active
 * (an Azure plan with auto-activation, an AWS subscription, a subscription activated before it
 * landed here), so every active entitlement has said so once, however it got there.
 */
export function creationEvents(row: Pick<EntitlementRow, 'status' | 'plan_id' | 'quantity' | 'offer_type'>, data: Record<string, unknown> = {}): PlannedEvent[] {
  const summary = { ...data, status: row.status, planId: row.plan_id, quantity: row.quantity }
  return [
    { type: 'CREATE', data: { ...summary, offerType: row.offer_type } },
    ...(row.status === 'ACTIVE' ? [{ type: 'ACTIVATE' as const, data: summary }] : []),
  ]
}

/**
 * Stores a purchase a buyer's landing (or Azure's Subscribe) resolved: the org's entitlement for
 * it is created with its creation events, in one write, or brought to it with the event its change
 * stands for. `created` tells whether this call created it. Two callers racing for one purchase
 * still leave one row (unique org + partner + external id): the loser updates the winner's.
 */
export async function storePurchase(
  deps: AppDeps,
  owner: { orgId: string; partner: Partner; partnerId: string },
  purchase: NormalizedPurchase,
  source: Source,
  /** Added to each event's data (the notification's action and id). */
  data: Record<string, unknown> = {},
  /**
   * Writes that belong to the purchase's creation, made with it (the landing's activation lease).
   * A D1 batch writes them without looking at whether the insert happened: each must be a no-op
   * (or harmless) when the row it is given was not inserted.
   */
  onCreate: (row: EntitlementRow) => Statement[] = () => [],
): Promise<{ row: EntitlementRow; created: boolean }> {
  for (let attempt = 0; attempt < MAX_WRITE_ATTEMPTS; attempt++) {
    const previous = await findPurchase(deps, owner.orgId, owner.partner, purchase.externalId)
    if (previous) {
      // A row left without events by a version that wrote them separately gets its creation events now.
      const orphan = !(await entitlementsDb.hasEvents(deps.db, previous.id))
      const set = { ...purchaseColumns(purchase), partner_id: owner.partnerId }
      const { row } = await changeEntitlement(deps, previous, source, (current) => {
        const next = { ...current, ...set }
        if (orphan) return { set, events: creationEvents(next, data) }
        const summary = { status: next.status, planId: next.plan_id, quantity: next.quantity, offerType: next.offer_type }
        const type = statusEvent(current.status as NormalizedPurchase['status'], purchase.status) ?? (current.plan_id !== next.plan_id || current.quantity !== next.quantity ? 'UPDATE' : null)
        // A later sighting refreshes what the marketplace shows even when no event is due.
        return { set, events: type ? [{ type, data: { ...data, ...summary, previousStatus: current.status } }] : [] }
      })
      return { row, created: false }
    }
    const at = nowIso(deps)
    const fresh: EntitlementRow = {
      id: newId('ent'),
      org_id: owner.orgId,
      partner: owner.partner,
      partner_id: owner.partnerId,
      external_id: purchase.externalId,
      ...purchaseColumns(purchase),
      created_at: at,
      updated_at: at,
    }
    const json = entitlementJson(fresh)
    const events = eventWrites(fresh, json, creationEvents(fresh, data).map((event) => eventRow(fresh, source, event, at)))
    const row = await entitlementsDb.writeEntitlementChange(deps.db, { insert: { ...fresh, json } }, events, onCreate(fresh))
    if (row) return { row, created: true }
    // Another caller stored this purchase just now: work on theirs.
  }
  throw new Error(`purchase ${purchase.externalId} kept changing under this write`)
}

/**
 * Brings a stored entitlement to the purchase its marketplace now reports (a notification,
 * reconciliation, or the refresh route), writing one Event with `source: "marketplace"` (or `source`) when
 * something a buyer or ISV cares about changed. A purchase that changes nothing writes nothing,
 * so applying the same state twice (a redelivery, a re-run after a crash) is harmless. `next`
 * may depend on the row as stored (read again if another writer changed it meanwhile).
 */
export async function applyMarketplaceState(
  deps: AppDeps,
  row: EntitlementRow,
  next: NormalizedPurchase | ((current: EntitlementRow) => NormalizedPurchase),
  data: Record<string, unknown>,
  also?: (current: EntitlementRow, next: EntitlementRow) => Statement[],
  /** Who brought the change about: the marketplace, or the ISV through the API (a cancel it asked for, §15). */
  source: Source = 'marketplace',
): Promise<{ row: EntitlementRow; event: EventType | null }> {
  const { row: updated, events } = await changeEntitlement(deps, row, source, (current) => {
    const purchase = typeof next === 'function' ? next(current) : next
    const columns = purchaseColumns({ ...purchase, offerType: current.offer_type as NormalizedPurchase['offerType'] })
    // A Google purchase first stored as `account/<id>` takes its entitlement's id: still the same entitlement.
    const renamed = purchase.externalId !== current.external_id
    const changed =
      renamed || columns.status !== current.status || columns.plan_id !== current.plan_id || columns.quantity !== current.quantity || columns.term !== current.term
    if (!changed) {
      if (columns.info === current.info) return null
      // Only the marketplace's own detail changed (an AWS agreement id learned, a re-read's raw
      // answer): kept, without an Event and without moving updatedAt, since nothing a buyer or ISV acts on changed.
      return { set: { ...columns, updated_at: current.updated_at }, events: [] }
    }
    const type = statusEvent(current.status as NormalizedPurchase['status'], columns.status) ?? 'UPDATE'
    const eventData = {
      ...data,
      status: columns.status,
      previousStatus: current.status,
      planId: columns.plan_id,
      quantity: columns.quantity,
      ...(columns.term !== current.term ? { term: JSON.parse(columns.term) as unknown } : {}),
      ...(renamed ? { externalId: purchase.externalId, previousExternalId: current.external_id } : {}),
    }
    return { set: { ...columns, external_id: purchase.externalId }, events: [{ type, data: eventData }] }
  }, also)
  return { row: updated, event: events[0] ?? null }
}
