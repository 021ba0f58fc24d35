import type { Insertable } from 'kysely'
import type { EntitlementEventsTable, EntitlementRow, WebhookDeliveriesTable } from '../db/schema'
import type { ReportToAnnounce } from '../db/usage'
import type { EventType } from '../schemas'
import { currentTraceparent } from '../telemetry'
import { newId } from './ids'

/**
 * Every webhook the broker sends (contract §8) has one envelope, built here and nowhere else:
 * entitlement events, `usage.reported`, `signup.submitted` and `ping`. The body is fixed when
 * the delivery is written and sent as it is on every attempt (it is what the signature covers).
 */

/** The webhook `type` of each entitlement event. */
export const ENTITLEMENT_WEBHOOK_TYPES: Record<EventType, string> = {
  CREATE: 'entitlement.created',
  ACTIVATE: 'entitlement.activated',
  UPDATE: 'entitlement.updated',
  SUSPEND: 'entitlement.suspended',
  REINSTATE: 'entitlement.reinstated',
  PENDING_CANCEL: 'entitlement.pending_cancel',
  CANCEL: 'entitlement.cancelled',
}

/** The envelope's fields before `data`, in the order they are sent. */
export interface EnvelopeHead {
  /** The event's id (`evt_…`): the same on every attempt, what receivers dedupe on. */
  id: string
  type: string
  createdAt: string
  orgId: string
  entityType: 'ENTITLEMENT' | 'SIGNUP' | null
  entityId: string | null
  action: string
  entityStatus: string | null
  partner: string | null
}

/**
 * The delivery of one envelope, PENDING from its `createdAt`, with its own `msg_` id (the
 * Standard Webhooks `webhook-id`). `data` is JSON text, spliced as it is: the parts it is made of
 * (an entitlement's stored JSON, an event's data) are JSON the broker wrote itself.
 */
export function webhookDelivery(head: EnvelopeHead, data: string, eventId: string | null = head.id): Insertable<WebhookDeliveriesTable> {
  const fields: EnvelopeHead = {
    id: head.id,
    type: head.type,
    createdAt: head.createdAt,
    orgId: head.orgId,
    entityType: head.entityType,
    entityId: head.entityId,
    action: head.action,
    entityStatus: head.entityStatus,
    partner: head.partner,
  }
  return {
    id: newId('msg'),
    org_id: head.orgId,
    event_id: eventId,
    type: head.type,
    payload: `${JSON.stringify(fields).slice(0, -1)},"data":${data}}`,
    status: 'PENDING',
    next_attempt_at: head.createdAt,
    created_at: head.createdAt,
    updated_at: head.createdAt,
    // Its delivery, whenever it happens, continues the trace of what caused it (contract §16).
    trace_parent: currentTraceparent(),
  }
}

/**
 * The delivery of an entitlement's event, with the entitlement as it is once the event's change
 * is written (`entitlement` and its API JSON `json`, see entitlementJson).
 */
export function entitlementEventDelivery(
  event: Insertable<EntitlementEventsTable>,
  entitlement: Pick<EntitlementRow, 'status' | 'partner'>,
  json: string,
): Insertable<WebhookDeliveriesTable> {
  const type = ENTITLEMENT_WEBHOOK_TYPES[event.type as EventType] ?? 'entitlement.updated'
  const eventJson = `${JSON.stringify({ id: event.id, entitlementId: event.entitlement_id, type: event.type, source: event.source }).slice(0, -1)},"data":${event.data},"createdAt":${JSON.stringify(event.created_at)}}`
  return webhookDelivery(
    {
      id: event.id,
      type,
      createdAt: event.created_at,
      orgId: event.org_id,
      entityType: 'ENTITLEMENT',
      entityId: event.entitlement_id,
      action: event.type,
      entityStatus: entitlement.status,
      partner: entitlement.partner,
    },
    `{"entitlement":${json},"event":${eventJson}}`,
  )
}

/** A usage report's outcome (contract §9), with the report as stored when it is settled. */
export function usageReportedDelivery(
  { report, entitlementStatus, recordIds }: ReportToAnnounce,
  outcome: { status: 'REPORTED' | 'REJECTED'; marketplaceStatus: string | null; error: string | null },
  now: string,
): Insertable<WebhookDeliveriesTable> {
  const data = {
    entitlementId: report.entitlement_id,
    dimension: report.dimension,
    hour: report.hour,
    quantity: report.quantity,
    status: outcome.status,
    marketplaceStatus: outcome.marketplaceStatus,
    error: outcome.error,
    late: report.late === 1,
    usageRecordIds: recordIds,
    usageRecordCount: report.records,
  }
  return webhookDelivery(
    {
      id: newId('evt'),
      type: 'usage.reported',
      createdAt: now,
      orgId: report.org_id,
      entityType: 'ENTITLEMENT',
      entityId: report.entitlement_id,
      action: 'USAGE',
      entityStatus: entitlementStatus,
      partner: report.partner,
    },
    JSON.stringify(data),
  )
}
