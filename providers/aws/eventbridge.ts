import { NotificationFormatError } from '../errors'
import type { InboundNotification } from '../types'

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

const text = (value: unknown) => (typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined)
const field = (value: unknown, key: string) => (typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined)

export function parseEventBridgeEvent(body: string): InboundNotification {
  let parsed: unknown
  try {
    parsed = JSON.parse(body)
  } catch {
    throw new NotificationFormatError('the body is not JSON')
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new NotificationFormatError('the body is not a JSON object')
  const event = parsed as Record<string, unknown>
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
