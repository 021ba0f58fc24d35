import { ConfigurationError, InvalidTokenError, PurchaseRefusedError, UpstreamError } from '../errors'
import { type FetchLike, type RetryPolicy, defaultRetryPolicy, fetchWithRetry } from '../shared/http'
import type { UpstreamObserver } from '../shared/telemetry'
import { failed as failedCheck, passed } from '../shared/check'
import { pickOfferType } from '../shared/offer-type'
import { formToken, isPlausibleToken } from '../shared/token'
import type { CancelOutcome, InboundNotification, MarketplaceProvider, NotificationEffect, NotificationHandler, NormalizedPurchase, ProviderContext, ProviderIntegration } from '../types'
import { AZURE_API_VERSION, type AzureOperation, type AzurePlansResponse, type AzureResolveResponse, type AzureSubscription } from './api'
import { quantityOf, saasStatus, subscriptionOf, toPurchase } from './mapper'
import type { AzureSecrets, AzureSettings } from './settings'
import { type EntraTokenSource, createEntraTokenSource } from './token'
import { createAzureMetering } from './metering'
import { ACKNOWLEDGED_ACTIONS, SUBSCRIBE_WITHOUT_OPERATION, createAzureWebhookVerifier, parseAzureWebhook } from './webhook'

export interface AzureProviderOptions {
  /** `AZURE_MARKETPLACE_API_URL` */
  apiUrl: string
  /** `AZURE_LOGIN_URL` */
  loginUrl: string
  fetch?: FetchLike
  tokenSource?: EntraTokenSource
  retryPolicy?: RetryPolicy
  /** Told how each marketplace call ended (metrics). */
  observe?: UpstreamObserver
}

type AzureIntegration = ProviderIntegration<AzureSettings, AzureSecrets>

/** When a cancel's operation is asked for after the 202: at once, then a little later, about 7 s in all. */
const CANCEL_POLL_MS = [0, 250, 500, 1000, 2000, 3000]

export function createAzureProvider(options: AzureProviderOptions) {
  const tokens = options.tokenSource ?? createEntraTokenSource({ loginUrl: options.loginUrl, retryPolicy: options.retryPolicy, observe: options.observe })
  const fetchFn = options.fetch ?? ((input, init) => fetch(input, init))

  async function call(
    integration: AzureIntegration,
    ctx: ProviderContext,
    label: string,
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    path: string,
    extra: { headers?: Record<string, string>; body?: unknown; root?: string; policy?: RetryPolicy } = {},
  ): Promise<Response> {
    const bearer = await tokens.getToken(
      { tenantId: integration.settings.tenantId, clientId: integration.settings.clientId, clientSecret: integration.secrets.clientSecret },
      `${integration.orgId}:${integration.version}`,
    )
    const response = await fetchWithRetry(
      fetchFn,
      `${options.apiUrl}${extra.root ?? '/api/saas'}${path}?api-version=${AZURE_API_VERSION}`,
      {
        method,
        headers: {
          authorization: `Bearer ${bearer}`,
          'content-type': 'application/json',
          'x-ms-requestid': crypto.randomUUID(),
          'x-ms-correlationid': crypto.randomUUID(),
          ...extra.headers,
        },
        body: extra.body === undefined ? undefined : JSON.stringify(extra.body),
      },
      { log: ctx.log, label: `azure.${label}`, policy: extra.policy ?? options.retryPolicy, deadline: ctx.deadline, observe: options.observe },
    )
    if (response.status === 403) {
      await response.body?.cancel()
      // Microsoft: wrong/expired secret, or the offer was published with another app id.
      throw new ConfigurationError(
        `Azure marketplace API answered 403 to ${label}: the offer is not published with app ${integration.settings.clientId}, or its secret is wrong or expired`,
        { call: label, status: 403 },
      )
    }
    return response
  }

  async function failed(response: Response, label: string): Promise<never> {
    await response.body?.cancel()
    throw new UpstreamError(`Azure marketplace API answered ${response.status} to ${label}`, response.status)
  }

  async function readJson<T>(response: Response, label: string): Promise<T> {
    const body = await response.text()
    try {
      return JSON.parse(body) as T
    } catch {
      throw new UpstreamError(`Azure marketplace API answered ${label} with a body that is not JSON`, response.status)
    }
  }

  /** A plan is private when listAvailablePlans says so; if that call fails, DEFAULT is the honest fallback. */
  async function isPrivatePlan(integration: AzureIntegration, subscription: AzureSubscription, ctx: ProviderContext) {
    try {
      const response = await call(integration, ctx, 'listAvailablePlans', 'GET', `/subscriptions/${encodeURIComponent(subscription.id)}/listAvailablePlans`)
      if (!response.ok) return await failed(response, 'listAvailablePlans')
      const text = await response.text()
      // Documented: an unknown subscription gives an empty body.
      const plans = text.trim() === '' ? {} : (JSON.parse(text) as AzurePlansResponse)
      return plans.plans?.some((plan) => plan.planId === subscription.planId && plan.isPrivate === true) ?? false
    } catch (error) {
      ctx.log.warn('azure plan lookup failed; offer type falls back to DEFAULT', {
        orgId: integration.orgId,
        error: error instanceof Error ? error.message : String(error),
      })
      return false
    }
  }

  async function getSubscription(integration: AzureIntegration, id: string, ctx: ProviderContext) {
    const subscription = await findSubscription(integration, id, ctx)
    if (!subscription) throw new UpstreamError('Azure marketplace API answered 404 to getSubscription', 404)
    return subscription
  }

  /** The subscription as Microsoft has it; null when it has none by that id (404). */
  async function findSubscription(integration: AzureIntegration, id: string, ctx: ProviderContext): Promise<AzureSubscription | null> {
    const response = await call(integration, ctx, 'getSubscription', 'GET', `/subscriptions/${encodeURIComponent(id)}`)
    if (response.status === 404) {
      await response.body?.cancel()
      return null
    }
    if (!response.ok) return failed(response, 'getSubscription')
    return readJson<AzureSubscription>(response, 'getSubscription')
  }

  /** A subscription as a purchase, with the offer type the integration's mapping or the plan gives it. */
  async function purchaseOfSubscription(integration: AzureIntegration, subscription: AzureSubscription, ctx: ProviderContext) {
    const offerType = await pickOfferType(integration.settings.offerTypes, subscription.planId ?? null, async () => {
      if (subscription.isFreeTrial === true) return 'FREE_TRIAL'
      return (await isPrivatePlan(integration, subscription, ctx)) ? 'PRIVATE' : 'DEFAULT'
    })
    return toPurchase(subscription, offerType)
  }

  /**
   * `Subscribe` (auto-activation): the purchase comes by webhook instead of a buyer's Resolve, and
   * Microsoft has activated it already (activate would answer 400). Confirmed like any other
   * action: its operation, when the body names one, must exist and say Subscribe for this
   * subscription, and the subscription itself is what GET answers, never the body's details.
   */
  async function subscribed(integration: AzureIntegration, notification: InboundNotification, ctx: ProviderContext): Promise<NotificationEffect> {
    if (!notification.messageId.startsWith(SUBSCRIBE_WITHOUT_OPERATION)) {
      const operation = await getOperation(integration, notification.subject, notification.messageId, ctx)
      if (!operation) return { outcome: 'unknown', reason: 'Microsoft does not know this operation' }
      if (operation.action !== 'Subscribe' || operation.subscriptionId !== notification.subject) {
        return { outcome: 'unknown', reason: 'the operation does not match the notification' }
      }
    }
    const subscription = await findSubscription(integration, notification.subject, ctx)
    if (!subscription || subscription.id !== notification.subject) return { outcome: 'unknown', reason: 'Microsoft does not know this subscription' }
    // Not activated by Microsoft: no auto-activation happened (the buyer's landing activates it).
    if (saasStatus(subscription) === 'pendingfulfillmentstart') return { outcome: 'unknown', reason: 'Microsoft has not activated this subscription' }
    return { outcome: 'create', purchase: await purchaseOfSubscription(integration, subscription, ctx) }
  }

  const verifyWebhook = createAzureWebhookVerifier({ loginUrl: options.loginUrl })

  /** The operation as Microsoft knows it; null when it does not (404, or 400 as the live API may answer). */
  async function getOperation(integration: AzureIntegration, subscriptionId: string, operationId: string, ctx: ProviderContext): Promise<AzureOperation | null> {
    const path = `/subscriptions/${encodeURIComponent(subscriptionId)}/operations/${encodeURIComponent(operationId)}`
    const response = await call(integration, ctx, 'getOperation', 'GET', path)
    if (response.status === 404 || response.status === 400) {
      await response.body?.cancel()
      return null
    }
    if (!response.ok) return failed(response, 'getOperation')
    return readJson<AzureOperation>(response, 'getOperation')
  }

  /** Acknowledges an operation. 409: Microsoft already settled it (it auto-accepts after ~10 s): done, not an error. */
  async function acknowledge(integration: AzureIntegration, operation: AzureOperation, ctx: ProviderContext): Promise<'patched' | 'settled'> {
    const path = `/subscriptions/${encodeURIComponent(operation.subscriptionId)}/operations/${encodeURIComponent(operation.id)}`
    const response = await call(integration, ctx, 'patchOperation', 'PATCH', path, { body: { status: 'Success' } })
    await response.body?.cancel()
    if (response.ok) return 'patched'
    if (response.status === 409) return 'settled'
    return failed(response, 'patchOperation')
  }

  const notifications: NotificationHandler<AzureSettings, AzureSecrets> = {
    async authenticate(integration, request, ctx) {
      if (!(await verifyWebhook(request, integration.settings, ctx.log))) return null
      return parseAzureWebhook(request.body)
    },

    async apply(integration, notification, current, ctx) {
      if (notification.action === 'Subscribe') return subscribed(integration, notification, ctx)
      // Never trust the message: the operation must exist at Microsoft and say the same thing.
      let operation = await getOperation(integration, notification.subject, notification.messageId, ctx)
      if (!operation) return { outcome: 'unknown', reason: 'Microsoft does not know this operation' }
      if (operation.action !== notification.action || operation.subscriptionId !== notification.subject) {
        return { outcome: 'unknown', reason: 'the operation does not match the notification' }
      }
      const pending = (status: string | undefined) => ['inprogress', 'notstarted'].includes((status ?? '').trim().toLowerCase())
      if (ACKNOWLEDGED_ACTIONS.has(operation.action) && pending(operation.status)) {
        // Microsoft keeps the change waiting until the seller says Success (a 4xx here would reject it).
        if ((await acknowledge(integration, operation, ctx)) === 'settled') {
          operation = (await getOperation(integration, notification.subject, notification.messageId, ctx)) ?? operation
        } else {
          operation = { ...operation, status: 'Succeeded' }
        }
      }
      if (!current) return { outcome: 'waiting' }
      const status = (operation.status ?? '').trim().toLowerCase()
      if (status === 'failed' || status === 'conflict') {
        return { outcome: 'apply', purchase: null, reason: `the operation ended ${operation.status}` }
      }
      const subscription = current.info.subscription as AzureSubscription
      switch (operation.action) {
        case 'ChangePlan': {
          // While a change is in progress GET …/subscriptions still shows the old plan: take it from the operation.
          const planId = operation.planId ?? current.planId
          return { outcome: 'apply', purchase: { ...current, planId, info: { ...current.info, subscription: { ...subscription, planId } } } }
        }
        case 'ChangeQuantity': {
          const quantity = quantityOf(operation.quantity) ?? current.quantity
          return { outcome: 'apply', purchase: { ...current, quantity, info: { ...current.info, subscription: { ...subscription, quantity } } } }
        }
        case 'Reinstate': {
          // ACTIVE once the acknowledgement went through, unless the subscription has since ended.
          const now = await refreshPurchase(integration, current, ctx)
          if (now.status === 'CANCELLED') return { outcome: 'apply', purchase: now }
          return { outcome: 'apply', purchase: { ...now, status: 'ACTIVE', info: { ...now.info, subscription: { ...(now.info.subscription as AzureSubscription), saasSubscriptionStatus: 'Subscribed' } } } }
        }
        case 'Unsubscribe': {
          // Over for good once its operation succeeded, even while GET still shows the subscription
          // as it was (Microsoft's own emulator updates it a moment later): Unsubscribed never ends.
          const now = await refreshPurchase(integration, current, ctx)
          if (now.status === 'CANCELLED' || status !== 'succeeded') return { outcome: 'apply', purchase: now }
          return { outcome: 'apply', purchase: { ...now, status: 'CANCELLED', info: { ...now.info, subscription: { ...(now.info.subscription as AzureSubscription), saasSubscriptionStatus: 'Unsubscribed' } } } }
        }
        default:
          // Suspend, Renew have already happened at Microsoft: the subscription as it stands now is
          // the truth (so a late, older message cannot move the status backwards).
          return { outcome: 'apply', purchase: await refreshPurchase(integration, current, ctx) }
      }
    },
  }

  async function refreshPurchase(integration: AzureIntegration, purchase: NormalizedPurchase, ctx: ProviderContext) {
    const current = await getSubscription(integration, purchase.externalId, ctx)
    return toPurchase({ ...(purchase.info.subscription as AzureSubscription), ...current }, purchase.offerType)
  }

  /**
   * "Cancel a subscription": `DELETE …/subscriptions/{id}` answers 202 and an `Operation-Location`
   * to poll "until the final status of Failed, Succeed, or Conflict". The operation's id is taken
   * from that URL (or `Operation-Id`) and asked for at the configured API root: the bearer token
   * never goes to a host the answer names. Microsoft may show the subscription Subscribed for a
   * moment after the operation succeeded (its own emulator does): a succeeded cancel is Unsubscribed.
   */
  async function cancel(integration: AzureIntegration, purchase: NormalizedPurchase, ctx: ProviderContext): Promise<CancelOutcome> {
    const id = purchase.externalId
    const response = await call(integration, ctx, 'deleteSubscription', 'DELETE', `/subscriptions/${encodeURIComponent(id)}`)
    await response.body?.cancel()
    if (response.status === 400) throw new PurchaseRefusedError('Azure refused to cancel the subscription: Delete is not among its allowedCustomerOperations')
    if (response.status === 404) throw new PurchaseRefusedError('Azure does not know this subscription (404)')
    if (!response.ok) return failed(response, 'deleteSubscription')
    const location = response.headers.get('operation-location') ?? ''
    const operationId = /\/operations\/([^/?#]+)/.exec(location)?.[1] ?? response.headers.get('operation-id')
    const settled = (status: string | undefined) => (status ?? '').trim().toLowerCase()
    for (const wait of operationId ? CANCEL_POLL_MS : []) {
      if (ctx.deadline !== undefined && Date.now() + wait > ctx.deadline) break
      if (wait) await new Promise((resolve) => setTimeout(resolve, wait))
      const operation = await getOperation(integration, id, decodeURIComponent(operationId!), ctx)
      const status = settled(operation?.status)
      if (status === 'succeeded') {
        const current = await findSubscription(integration, id, ctx)
        const subscription = { ...(purchase.info.subscription as AzureSubscription), ...current, saasSubscriptionStatus: 'Unsubscribed' }
        return { purchase: toPurchase(subscription, purchase.offerType), operationId: operation!.id ?? operationId }
      }
      if (status === 'failed' || status === 'conflict') throw new PurchaseRefusedError(`Azure ended the cancellation ${operation!.status!.trim()}`)
    }
    // No operation to follow, or not finished yet: the subscription says whether it is over; if
    // not, Microsoft's Unsubscribe webhook (or the next reconciliation) brings the end.
    const current = await findSubscription(integration, id, ctx)
    if (current && saasStatus(current) === 'unsubscribed') {
      return { purchase: toPurchase({ ...(purchase.info.subscription as AzureSubscription), ...current }, purchase.offerType), operationId }
    }
    return { purchase: { ...purchase, status: 'PENDING_CANCEL', needsActivation: false }, operationId }
  }

  return {
    partner: 'azure',
    notifications,
    // One try per call: a batch whose answer was lost is sent again by the reporter, which then
    // knows it may be a resend (Azure answers Duplicate for what it already took).
    metering: createAzureMetering((integration, ctx, body) =>
      call(integration as AzureIntegration, ctx, 'batchUsageEvent', 'POST', '/batchUsageEvent', { body, root: '/api', policy: { ...(options.retryPolicy ?? defaultRetryPolicy), attempts: 1 } }),
    ),

    tokenFrom(input) {
      return input.query.get('token') ?? formToken(input.form?.get('token'))
    },

    isPlausibleToken,

    async resolve(integration, token, ctx) {
      const response = await call(integration, ctx, 'resolve', 'POST', '/subscriptions/resolve', {
        headers: { 'x-ms-marketplace-token': token },
      })
      // 400: missing, malformed, invalid or expired token. Only the portal can mint another.
      if (response.status === 400 || response.status === 404) {
        await response.body?.cancel()
        throw new InvalidTokenError(`Azure could not resolve the purchase token (${response.status})`)
      }
      if (!response.ok) return failed(response, 'resolve')
      const resolved = await readJson<AzureResolveResponse>(response, 'resolve')
      if (typeof resolved?.id !== 'string' || resolved.id === '') {
        throw new UpstreamError('Azure resolve answer has no subscription id', response.status)
      }
      return purchaseOfSubscription(integration, subscriptionOf(resolved), ctx)
    },

    async activate(integration, purchase, ctx): Promise<NormalizedPurchase> {
      const body: { planId: string | null; quantity?: number } = { planId: purchase.planId }
      if (purchase.quantity !== null) body.quantity = purchase.quantity
      const response = await call(integration, ctx, 'activate', 'POST', `/subscriptions/${encodeURIComponent(purchase.externalId)}/activate`, {
        body,
      })
      if (response.ok) {
        await response.body?.cancel()
        return { ...purchase, status: 'ACTIVE', needsActivation: false }
      }
      if (response.status === 404) {
        // Documented: the subscription is Unsubscribed; there is nothing left to activate.
        await response.body?.cancel()
        return { ...purchase, status: 'CANCELLED', needsActivation: false }
      }
      if (response.status === 400) {
        await response.body?.cancel()
        // 400 also means "already Subscribed/Suspended": another tab or process got there
        // first. Ask for the subscription as it stands before calling it a failure.
        const current = await getSubscription(integration, purchase.externalId, ctx)
        if (saasStatus(current) !== 'pendingfulfillmentstart') {
          return toPurchase({ ...(purchase.info.subscription as AzureSubscription), ...current }, purchase.offerType)
        }
        throw new PurchaseRefusedError('Azure refused to activate the subscription (400: plan or quantity mismatch)')
      }
      return failed(response, 'activate')
    },

    refresh: refreshPurchase,

    cancel,

    // Contract §13: a client-credentials token for the marketplace scope, fresh from Entra (a
    // cached one would hide a secret deleted or expired since the last landing).
    async checkCredentials(integration, ctx) {
      const { tenantId, clientId } = integration.settings
      try {
        await tokens.verify({ tenantId, clientId, clientSecret: integration.secrets.clientSecret }, ctx)
        return [passed('entra:token', `Entra ID issued app ${clientId} of tenant ${tenantId} a token for the marketplace API`)]
      } catch (error) {
        return [failedCheck('entra:token', error)]
      }
    },
  } satisfies MarketplaceProvider<AzureSettings, AzureSecrets>
}
