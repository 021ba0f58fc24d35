import { type JWTVerifyGetKey, createRemoteJWKSet, jwtVerify } from 'jose'
import { NotificationFormatError } from '../errors'
import type { InboundNotification, NotificationRequest, ProviderLogger } from '../types'
import { AZURE_MARKETPLACE_RESOURCE } from './api'
import { field, nonEmpty as text, parseJsonObject } from '../shared/notification-body'

/** The webhook actions Microsoft sends (seed 003; `Subscribe` for plans with auto-activation). */
export const AZURE_WEBHOOK_ACTIONS = ['ChangePlan', 'ChangeQuantity', 'Suspend', 'Unsubscribe', 'Reinstate', 'Renew', 'Subscribe'] as const
/** Actions Microsoft waits for the seller to acknowledge with PATCH …/operations/{id}. */
export const ACKNOWLEDGED_ACTIONS: ReadonlySet<string> = new Set(['ChangePlan', 'ChangeQuantity', 'Reinstate'])

/** Keys are fetched at most once a minute per tenant, however many forged kids arrive. */
const JWKS_COOLDOWN_MS = 60_000
const CLOCK_SKEW_S = 60

/**
 * Verifies the Entra ID token Microsoft's marketplace service sends on a Connection webhook call:
 * RS256, a key of the publisher tenant's JWKS (`$AZURE_LOGIN_URL/{tenant}/discovery/v2.0/keys`),
 * `tid` = the tenant, `aud` = the ISV's app (or `api://` it), `appid`/`azp` = the marketplace
 * service's app id, Microsoft's v1 or v2 issuer for that tenant (whatever AZURE_LOGIN_URL is).
 */
export function createAzureWebhookVerifier(options: { loginUrl: string }) {
  const keySets = new Map<string, JWTVerifyGetKey>()
  const keysFor = (tenantId: string) => {
    let keys = keySets.get(tenantId)
    if (!keys) {
      keys = createRemoteJWKSet(new URL(`${options.loginUrl}/${encodeURIComponent(tenantId)}/discovery/v2.0/keys`), {
        cooldownDuration: JWKS_COOLDOWN_MS,
        timeoutDuration: 5_000,
      })
      keySets.set(tenantId, keys)
    }
    return keys
  }

  return async function verify(request: NotificationRequest, app: { tenantId: string; clientId: string }, log: ProviderLogger): Promise<boolean> {
    const token = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.get('authorization') ?? '')?.[1]
    if (!token) return false
    try {
      const { payload } = await jwtVerify(token, keysFor(app.tenantId), {
        algorithms: ['RS256'],
        issuer: [`https://sts.windows.net/${app.tenantId}/`, `https://login.microsoftonline.com/${app.tenantId}/v2.0`],
        audience: [app.clientId, `api://${app.clientId}`],
        clockTolerance: CLOCK_SKEW_S,
        requiredClaims: ['exp', 'tid'],
      })
      const caller = payload.appid ?? payload.azp
      if (payload.tid !== app.tenantId || caller !== AZURE_MARKETPLACE_RESOURCE) {
        log.warn('azure webhook token refused', { reason: 'tid or calling app is not the marketplace' })
        return false
      }
      return true
    } catch (error) {
      log.warn('azure webhook token refused', { reason: error instanceof Error ? error.name : 'invalid' })
      return false
    }
  }
}

/** The webhook body: `{id (operation), subscriptionId, action, …}`; anything else is not Microsoft's. */
export function parseAzureWebhook(body: string): InboundNotification {
  const payload = parseJsonObject(body)
  const action = text(payload.action)
  if (action === 'Subscribe') return parseSubscribe(payload)
  const id = text(payload.id)
  const subscriptionId = text(payload.subscriptionId)
  if (!id || !subscriptionId || !action) throw new NotificationFormatError('id, subscriptionId and action are required')
  if (id.length > 200 || subscriptionId.length > 200) throw new NotificationFormatError('id or subscriptionId is too long')
  if (!(AZURE_WEBHOOK_ACTIONS as readonly string[]).includes(action)) throw new NotificationFormatError(`unknown action ${action.slice(0, 40)}`)
  return { messageId: id, subject: subscriptionId, action, payload }
}

/** Stands for the operation id of a `Subscribe` that names none (one Subscribe per subscription). */
export const SUBSCRIBE_WITHOUT_OPERATION = 'Subscribe:'

/**
 * `Subscribe` (auto-activation): Microsoft does not document its body, so every field is optional
 * and nothing in it is trusted; the subscription is named by `subscriptionId` or the details'
 * `subscription.id`. Its operation id keys redeliveries; without one, the subscription does.
 */
function parseSubscribe(payload: Record<string, unknown>): InboundNotification {
  const operationId = text(payload.id)
  const subscriptionId = text(payload.subscriptionId) ?? text(field(payload.subscription, 'id'))
  if (!subscriptionId) throw new NotificationFormatError('a Subscribe names no subscription')
  if (subscriptionId.length > 200 || (operationId?.length ?? 0) > 200) throw new NotificationFormatError('id or subscriptionId is too long')
  return { messageId: operationId ?? `${SUBSCRIBE_WITHOUT_OPERATION}${subscriptionId}`, subject: subscriptionId, action: 'Subscribe', payload }
}
