import { type JWTVerifyGetKey, createRemoteJWKSet, jwtVerify } from 'jose'
import { NotificationFormatError } from '../errors'
import { field, nonEmpty as text, parseJsonObject } from '../shared/notification-body'
import type { InboundNotification, NotificationRequest, ProviderLogger } from '../types'

/**
 * Google Cloud Marketplace notifications through a Pub/Sub push subscription ("Authenticate push
 * subscriptions"; "Manage customer entitlements"): `Authorization: Bearer <Google OIDC JWT>` for
 * the subscription's service account, and the message `{message: {data: base64(JSON), messageId,
 * publishTime}, subscription}` whose data is `{eventId, eventType, providerId, entitlement: {id,
 * updateTime, …}}` or `{…, account: {id, updateTime}}`. Account messages as "Manage user accounts"
 * shows them carry no `eventType` at all: they are stored under the action `ACCOUNT`.
 */
const ISSUERS = ['https://accounts.google.com', 'accounts.google.com']
const JWKS_COOLDOWN_MS = 60_000

export function createPushVerifier(options: { certsUrl: string }) {
  let keys: JWTVerifyGetKey | undefined
  return async function verify(request: NotificationRequest, expected: { audience: string; email: string }, log: ProviderLogger): Promise<boolean> {
    const token = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.get('authorization') ?? '')?.[1]
    if (!token) return false
    keys ??= createRemoteJWKSet(new URL(options.certsUrl), { cooldownDuration: JWKS_COOLDOWN_MS, timeoutDuration: 5_000 })
    try {
      const { payload } = await jwtVerify(token, keys, { algorithms: ['RS256'], issuer: ISSUERS, audience: expected.audience, clockTolerance: 60, requiredClaims: ['exp'] })
      if (payload.email !== expected.email || payload.email_verified !== true) {
        log.warn('pub/sub push token refused', { reason: 'not the configured push service account, or not verified' })
        return false
      }
      return true
    } catch (error) {
      log.warn('pub/sub push token refused', { reason: error instanceof Error ? error.name : 'invalid' })
      return false
    }
  }
}

function decodeBase64Json(data: string): unknown {
  try {
    const binary = atob(data)
    const bytes = Uint8Array.from(binary, (ch) => ch.charCodeAt(0))
    return JSON.parse(new TextDecoder().decode(bytes))
  } catch {
    throw new NotificationFormatError('message.data is not base64 of JSON')
  }
}

/** The action an account message without `eventType` is stored under (Google names none). */
export const ACCOUNT_MESSAGE = 'ACCOUNT'

/** The push body as a notification: about an entitlement (its id) or an account (`account/<id>`). */
export function parsePushMessage(body: string): InboundNotification {
  const parsed = parseJsonObject(body)
  const message = field(parsed, 'message')
  const messageId = text(field(message, 'messageId')) ?? text(field(message, 'message_id'))
  const data = text(field(message, 'data'))
  if (!messageId || !data) throw new NotificationFormatError('not a Pub/Sub push message (message.messageId, message.data)')
  const event = decodeBase64Json(data)
  const eventType = text(field(event, 'eventType'))
  const entitlementId = text(field(field(event, 'entitlement'), 'id'))
  const accountId = text(field(field(event, 'account'), 'id'))
  if ((!eventType && !accountId) || (!entitlementId && !accountId)) {
    throw new NotificationFormatError('not a Cloud Commerce message (eventType and entitlement.id, or account.id)')
  }
  if ((entitlementId ?? accountId)!.length > 200) throw new NotificationFormatError('the id is too long')
  const updateTime = text(field(field(event, 'entitlement'), 'updateTime')) ?? text(field(field(event, 'account'), 'updateTime'))
  return {
    messageId,
    subject: entitlementId ?? `account/${accountId}`,
    action: eventType ?? ACCOUNT_MESSAGE,
    occurredAt: updateTime ?? text(field(message, 'publishTime')) ?? null,
    ...(accountId ? { match: { accountId } } : {}),
    payload: { ...(event as Record<string, unknown>), subscription: text(field(parsed, 'subscription')) ?? null },
  }
}
