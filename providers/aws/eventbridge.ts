import { NotificationFormatError } from '../errors'
import type { InboundNotification } from '../types'
import { field, nonEmpty as text, parseJsonObject } from '../shared/notification-body'
import { licenseId } from './license-arn'

/**
 * AWS Marketplace events on EventBridge (source `aws.agreement-marketplace`), as AWS's Seller
 * Guide ("Amazon EventBridge events": agreements, licenses, cancellations, billing adjustments;
 * "Managing SaaS subscription events with Amazon EventBridge") shows them.
 *
 * Agreement events name the agreement and the buyer account only (no license; the Manufacturer
 * copy no product either); license events name the agreement, the product, the license ARN (the
 * entitlement's externalId, printed without `arn:`) and the buyer: they are the join between an
 * agreement and its entitlement. One buyer account may hold several agreements for one product
 * at once (concurrent agreements), so an agreement event is only ever applied to the entitlement
 * of its own agreement. A seller selling its own offers is "both manufacturer and proposer" and
 * receives each of these events twice, under two EventBridge ids: both copies are one message.
 */
export const EVENTBRIDGE_SOURCE = 'aws.agreement-marketplace'
/** The detail-types (before ` - Manufacturer` / ` - Proposer`) that change an entitlement. */
export const SAAS_DETAIL_TYPES = [
  'Purchase Agreement Created',
  'Purchase Agreement Amended',
  'Purchase Agreement Ended',
  'License Updated',
  'License Deprovisioned',
] as const
const AGREEMENT_KINDS = new Set<string>(SAAS_DETAIL_TYPES.filter((kind) => kind.startsWith('Purchase Agreement')))

/** `Purchase Agreement Ended - Proposer` -> `Purchase Agreement Ended`, for the detail-types above; null for any other. */
export function saasKindOf(detailType: string): (typeof SAAS_DETAIL_TYPES)[number] | null {
  const [kind = '', role] = detailType.split(' - ')
  return (SAAS_DETAIL_TYPES as readonly string[]).includes(kind) && (role === 'Manufacturer' || role === 'Proposer') ? (kind as (typeof SAAS_DETAIL_TYPES)[number]) : null
}

/**
 * What a license's notifications are kept under until its entitlement lands (whichever way
 * the ARN was printed); the landing wakes them with the same key from the entitlement's LicenseArn.
 */
export function licenseSubject(arn: string | null | undefined): string | null {
  const id = licenseId(arn)
  return id ? `license:${id}` : null
}

/** Bounded, so a hostile body cannot make a key longer than a row should hold. */
const part = (value: string) => value.slice(0, 200)

export function parseEventBridgeEvent(body: string): InboundNotification {
  const event = parseJsonObject(body)
  const id = text(event.id)
  const detailType = text(event['detail-type'])
  if (event.source !== EVENTBRIDGE_SOURCE || !id || !detailType) throw new NotificationFormatError(`not an ${EVENTBRIDGE_SOURCE} event`)
  const detail = event.detail
  const time = text(event.time)
  const agreementId = text(field(field(detail, 'agreement'), 'id'))
  const accountId = text(field(field(detail, 'acceptor'), 'accountId'))
  const base = { action: part(detailType), occurredAt: time ?? null, payload: event }
  const kind = saasKindOf(detailType)
  if (!kind) {
    // Stored and logged (the job settles it as not acted on), never refused: EventBridge API
    // destinations do not retry a 4xx, and a refused event would be lost for good.
    return { ...base, messageId: part(id), subject: agreementId ? `agreement:${part(agreementId)}` : `event:${part(id)}`, match: undefined }
  }
  // Both role copies are the same message: keyed by what they are about, not by their ids. A
  // later event of the same kind about the same agreement has a later time, so it is kept.
  const key = (about: string) => (time ? `${kind}|${about}|${part(time)}` : part(id))
  if (AGREEMENT_KINDS.has(kind)) {
    if (!agreementId || !accountId) throw new NotificationFormatError('the event names no agreement or no buyer account')
    return { ...base, messageId: key(part(agreementId)), subject: `agreement:${part(agreementId)}`, match: { accountId: part(accountId), agreementId: part(agreementId) } }
  }
  const licenseArn = text(field(field(detail, 'license'), 'arn'))
  const license = licenseId(licenseArn)
  const productCode = text(field(field(detail, 'product'), 'code'))
  if (!license || !accountId) throw new NotificationFormatError('the event names no license or no buyer account')
  return {
    ...base,
    messageId: key(`${license}|${part(agreementId ?? '')}`),
    subject: `license:${license}`,
    match: { accountId: part(accountId), licenseId: license, ...(productCode ? { productId: part(productCode) } : {}) },
  }
}
