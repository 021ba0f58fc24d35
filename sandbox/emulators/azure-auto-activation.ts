import { randomUUID } from 'node:crypto'
import {
  type AzureEmulator,
  type AzureWebhookBody,
  type EmulatedOperation,
  type EmulatedSubscription,
  microsoftTimestamp,
  startBilling,
} from './azure'

/**
 * Plans with auto-activation (Microsoft Learn, "SaaS fulfillment subscription APIs v2": "For
 * plans with auto-activation enabled, the Resolve API isn't needed. Microsoft sends the
 * subscription details directly to the publisher via the Subscribe webhook notification"; the
 * webhook table: `Subscribe`, "Respond HTTP 200 to Acknowledge").
 *
 * A purchase of such a plan is `Subscribed` at Microsoft at once (billing starts, so activate
 * answers 400 as for any Subscribed subscription) and Microsoft POSTs `Subscribe` to the offer's
 * Connection webhook with an Entra token for the offer's tenant and app, like its other webhooks.
 * The docs do not show the body: this one is the other actions' envelope with `action:
 * "Subscribe"` and the subscription's details, and Microsoft keeps a `Succeeded` operation for it
 * (what `GET …/operations/{id}` answers).
 */

/** An offer's technical configuration in Partner Center: where and as whom Microsoft calls the publisher. */
export interface OfferConnection {
  /** "Connection webhook"; null while the publisher has not set one (Microsoft has nowhere to send Subscribe). */
  webhookUrl: string | null
  /** "Microsoft Entra tenant ID" and "Microsoft Entra application ID": the webhook token's `tid` and `aud`. */
  tenantId: string
  clientId: string
  /** The offer's plans that are activated by Microsoft on purchase. */
  autoActivatedPlans: string[]
}

export interface AutoActivatedPurchase {
  subscription: EmulatedSubscription
  /** Only for a plan with auto-activation: */
  operation?: EmulatedOperation
  webhookBody?: AzureWebhookBody
  /** The publisher's answer to the Subscribe webhook (its status), or the error that call met. */
  delivery?: { status: number } | { error: string }
}

export function createAzureAutoActivation(emulator: AzureEmulator) {
  const offers = new Map<string, OfferConnection>()

  const isAutoActivated = (offerId: string, planId: string) => offers.get(offerId)?.autoActivatedPlans.includes(planId) ?? false

  /** The Subscribe webhook body for a subscription Microsoft has just activated, and its operation. */
  function subscribeOperation(sub: EmulatedSubscription): { operation: EmulatedOperation; webhookBody: AzureWebhookBody } {
    const operation: EmulatedOperation = {
      id: randomUUID(),
      activityId: randomUUID(),
      subscriptionId: sub.id,
      offerId: sub.offerId,
      publisherId: sub.publisherId,
      planId: sub.planId,
      quantity: sub.quantity ?? null,
      action: 'Subscribe',
      timeStamp: microsoftTimestamp(),
      status: 'Succeeded',
      errorStatusCode: '',
      errorMessage: '',
    }
    emulator.operations.set(operation.id, operation)
    const { appId: _appId, ...details } = sub
    const webhookBody: AzureWebhookBody = {
      id: operation.id,
      activityId: operation.activityId,
      subscriptionId: sub.id,
      publisherId: sub.publisherId,
      offerId: sub.offerId,
      planId: sub.planId,
      ...(sub.quantity === undefined ? {} : { quantity: String(sub.quantity) }),
      action: 'Subscribe',
      status: 'Succeeded',
      timeStamp: operation.timeStamp,
      operationRequestSource: 'Azure',
      subscription: structuredClone(details),
      purchaseToken: null,
    }
    return { operation, webhookBody }
  }

  return {
    /** Sets an offer's Connection webhook, its Entra tenant and app, and which of its plans auto-activate. */
    configureOffer(offerId: string, connection: OfferConnection) {
      offers.set(offerId, connection)
    },
    isAutoActivated,
    /**
     * A buyer purchases a plan. With auto-activation Microsoft activates it at once and sends
     * `Subscribe` to the offer's Connection webhook (awaited; one delivery, resend it with
     * `redeliver` as Microsoft's retries would). Other plans wait for Resolve + Activate as before.
     */
    async purchase(input: Partial<EmulatedSubscription> & { appId: string }): Promise<AutoActivatedPurchase> {
      const subscription = emulator.addSubscription(input)
      if (!isAutoActivated(subscription.offerId, subscription.planId)) return { subscription }
      startBilling(subscription)
      const { operation, webhookBody } = subscribeOperation(subscription)
      const delivery = await this.redeliver(webhookBody)
      return { subscription, operation, webhookBody, delivery }
    },
    /** POSTs a Subscribe body (again) to its offer's Connection webhook, with a fresh Entra token. */
    async redeliver(webhookBody: AzureWebhookBody): Promise<{ status: number } | { error: string }> {
      const connection = offers.get(webhookBody.offerId)
      if (!connection?.webhookUrl) return { error: `no Connection webhook for offer ${webhookBody.offerId}` }
      try {
        const response = await emulator.sendWebhook(connection.webhookUrl, webhookBody, { tenantId: connection.tenantId, clientId: connection.clientId })
        await response.body?.cancel()
        return { status: response.status }
      } catch (error) {
        return { error: error instanceof Error ? error.message : String(error) }
      }
    },
  }
}

export type AzureAutoActivation = ReturnType<typeof createAzureAutoActivation>
