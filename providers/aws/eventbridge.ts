import { NotificationFormatError } from '../errors'
import type { InboundNotification } from '../types'
import { field, nonEmpty as text, parseJsonObject } from '../shared/notification-body'

/**
 * AWS Marketplace events on EventBridge (source `aws.agreement-marketplace`), as AWS's Seller
 * Guide ("Amazon EventBridge events": agreements, licenses) shows them. The seller receives the
 * "- Manufacturer" detail-types; "- Proposer" ones are a channel partner's and change nothing here.
 * Agreement events name the agreement and the buyer account only (no product or license);
 * license events name the product, the license ARN (the entitlement's externalId) and the buyer.
 */
export const EVENTBRIDGE_SOURCE = 'aws.agreement-marketplace'
export const SAAS_DETAIL_TYPES = [
  'Purchase Agreement Created',
  'Purchase Agreement Amended',
  'Purchase Agreement Ended',
  'License Updated',
  'License Deprovisioned',
] as const

export function parseEventBridgeEvent(body: string): InboundNotification {
  const event = parseJsonObject(body)
  const id = text(event.id)
  const detailType = text(event['detail-type'])
  if (event.source !== EVENTBRIDGE_SOURCE || !id || !detailType) throw new NotificationFormatError(`not an ${EVENTBRIDGE_SOURCE} event`)
  const [kind, role] = detailType.split(' - ')
  if (!(SAAS_DETAIL_TYPES as readonly string[]).includes(kind ?? '') || (role !== 'Manufacturer' && role !== 'Proposer')) {
    throw new NotificationFormatError(`unknown detail-type ${detailType.slice(0, 60)}`)
  }
  const detail = event.detail
  const accountId = text(field(field(detail, 'acceptor'), 'accountId'))
  const agreementId = text(field(field(detail, 'agreement'), 'id'))
  const licenseArn = text(field(field(detail, 'license'), 'arn'))
  const productCode = text(field(field(detail, 'product'), 'code'))
  const subject = licenseArn ?? (agreementId ? `agreement:${agreementId}` : undefined)
  if (!subject || !accountId) throw new NotificationFormatError('the event names no agreement or license, or no buyer account')
  return {
    messageId: id,
    subject,
    action: detailType,
    occurredAt: text(event.time) ?? null,
    match: { accountId, ...(productCode ? { productId: productCode } : {}) },
    payload: event,
  }
}
