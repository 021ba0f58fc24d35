import { randomBytes, randomUUID } from 'node:crypto'
import { type AwsEmulator, type EmulatedCustomer, createAwsEmulator } from './emulators/aws'
import { createAwsAgreementEmulator } from './emulators/aws-agreement'
import { type AwsNotificationsEmulator, createAwsNotificationsEmulator } from './emulators/aws-notifications'
import { type AzureEmulator, type OperationAction, createAzureEmulator } from './emulators/azure'
import { createAzureAutoActivation } from './emulators/azure-auto-activation'
import { type GcpEmulator, createGcpEmulator } from './emulators/gcp'
import { type ServiceControlEmulator, createServiceControlEmulator } from './emulators/gcp-servicecontrol'

/**
 * The three marketplaces of the sandbox: the emulators (the same ones the tests use), one product
 * ("Acme Analytics") listed on each, and what a buyer or the marketplace itself can do there —
 * buy, suspend, reinstate, change plan, cancel — each sending the broker what the real
 * marketplace sends (a landing request, a signed notification).
 */
export type Partner = 'azure' | 'aws' | 'gcp'
export const PARTNERS: Partner[] = ['azure', 'aws', 'gcp']

export interface Plan {
  id: string
  name: string
  price: string
  detail: string
}

export interface Listing {
  partner: Partner
  marketplace: string
  /** How the marketplace hands the buyer to the seller's landing page. */
  handoff: string
  product: string
  plans: Plan[]
}

export const PRODUCT_NAME = 'Acme Analytics'
const AZURE_OFFER = 'acme-analytics'
/** The Azure plan with auto-activation (sandbox/emulators/azure-auto-activation.ts). */
const AZURE_AUTO_PLAN = 'instant'
const AWS_PRODUCT = { payg: 'acmeanalyticspayg7x2k9q4m1', contract: 'acmeanalyticsannual3v8w5n' }
const GCP_PRODUCT = 'acme-analytics.endpoints.acme-public.cloud.goog'
const CONTRACT_DIMENSION = 'users'
/** The metered dimension every listing bills (Azure custom meter, AWS dimension, Google metric). */
export const USAGE_DIMENSION = 'api_calls'

export const LISTINGS: Record<Partner, Listing> = {
  azure: {
    partner: 'azure',
    marketplace: 'Microsoft Azure Marketplace',
    handoff: 'Azure opens your landing page with GET …?token=<purchase token>',
    product: AZURE_OFFER,
    plans: [
      { id: 'starter', name: 'Starter', price: '$49 / month', detail: 'Flat rate, 5 dashboards' },
      { id: 'business', name: 'Business', price: '$199 / month', detail: 'Flat rate, unlimited dashboards, API usage billed per call' },
      { id: AZURE_AUTO_PLAN, name: 'Instant', price: '$99 / month', detail: 'Auto-activated: Microsoft activates it and sends a Subscribe webhook; no activate call' },
    ],
  },
  aws: {
    partner: 'aws',
    marketplace: 'AWS Marketplace',
    handoff: 'AWS POSTs a form with x-amzn-marketplace-token to your landing page',
    product: AWS_PRODUCT.payg,
    plans: [
      { id: 'payg', name: 'Pay as you go', price: '$0.01 / API call', detail: 'SaaS subscription, billed by usage' },
      { id: 'contract', name: 'Annual contract', price: '10 users, $9,000 / year', detail: 'SaaS contract (GetEntitlements: users = 10)' },
    ],
  },
  gcp: {
    partner: 'gcp',
    marketplace: 'Google Cloud Marketplace',
    handoff: 'Google POSTs a signed JWT as x-gcp-marketplace-token to your signup URL',
    product: GCP_PRODUCT,
    plans: [
      { id: 'starter', name: 'Starter', price: '$49 / month', detail: 'Flat rate plus usage' },
      { id: 'business', name: 'Business', price: '$199 / month', detail: 'Flat rate plus usage' },
    ],
  },
}

export type ActionId = 'suspend' | 'reinstate' | 'change-plan' | 'cancel' | 'end' | 'revert-cancel'

export interface MarketplaceAction {
  id: ActionId
  label: string
  /** What the marketplace sends the broker for it. */
  sends: string
  /** The plan it moves to (change-plan). */
  planId?: string
}

/** The marketplace-side keys of one purchase, for acting on it later. */
interface Purchase {
  partner: Partner
  planId: string
  azureSubscriptionId?: string
  awsCustomer?: EmulatedCustomer
  awsContract?: boolean
  /** The offer bought (AWS puts `offer-identifier` on subscribe-success for offers since 2024). */
  awsOfferId?: string
  gcpEntitlementId?: string
  gcpAccountId?: string
}

export interface Handoff {
  /** GET: the browser is redirected there. POST: a form with `fields` is submitted there. */
  method: 'GET' | 'POST'
  url: string
  fields: Record<string, string>
}

export interface BrokerIntegrations {
  azure: Record<string, unknown>
  aws: Record<string, unknown>
  gcp: Record<string, unknown>
}

export interface Marketplaces {
  /** The broker's configuration for all of them. */
  env: Record<string, string>
  /** The bodies of `PUT /api/v1/orgs/{orgId}/integrations/{partner}` for the demo org. */
  integrations: BrokerIntegrations
  /** The broker's notification URL per marketplace, once the org's integrations exist. */
  setNotificationUrls(urls: Record<Partner, string>): Promise<void>
  /** Creates a purchase in the marketplace and answers how it sends the buyer to `landingUrl`. */
  buy(partner: Partner, planId: string, landingUrl: string): Promise<Handoff>
  /** What the marketplace can do now to an entitlement (by the broker's partner, externalId and status). */
  actionsFor(entitlement: { partner: string; externalId: string; status: string; planId: string | null }): MarketplaceAction[]
  /** Does it at the marketplace and delivers the notification; answers the broker's HTTP status. */
  act(entitlement: { partner: string; externalId: string; planId: string | null }, action: ActionId): Promise<{ sent: string; status: number }>
  /** Every notification sent to the broker, newest first (for the pages). */
  sent: Array<{ at: string; partner: Partner; what: string; status: number; externalId: string }>
  emulators: { azure: AzureEmulator; aws: AwsEmulator; sns: AwsNotificationsEmulator; gcp: GcpEmulator; serviceControl: ServiceControlEmulator }
  close(): Promise<void>
}

const GCP_PROVIDER = 'acme-analytics-isv'
const GCP_PUSH_ACCOUNT = 'marketplace-push@acme-isv-project.iam.gserviceaccount.com'

export async function startMarketplaces(): Promise<Marketplaces> {
  const closers: Array<() => Promise<void>> = []
  try {
    return await start(closers)
  } catch (error) {
    // Whatever was listening already stops: nothing is left behind by a failed start.
    for (const close of closers.reverse()) await close().catch(() => undefined)
    throw error
  }
}

async function start(closers: Array<() => Promise<void>>): Promise<Marketplaces> {
  // Azure: the SaaS fulfillment and metering APIs and Entra ID (tokens, signing keys) on one server.
  const azure = createAzureEmulator({ record: false })
  const azureServer = await azure.listen()
  closers.push(azureServer.close)
  const azureApp = { tenantId: randomUUID(), clientId: randomUUID(), clientSecret: `sandbox~${randomBytes(18).toString('base64url')}` }
  azure.registerApp(azureApp)
  const azureAuto = createAzureAutoActivation(azure)
  /** Partner Center's technical configuration of the offer: the Connection webhook is the broker's, once it has one. */
  const configureAzureOffer = (webhookUrl: string | null) =>
    azureAuto.configureOffer(AZURE_OFFER, { webhookUrl, tenantId: azureApp.tenantId, clientId: azureApp.clientId, autoActivatedPlans: [AZURE_AUTO_PLAN] })
  configureAzureOffer(null)

  // AWS: Metering (ResolveCustomer, BatchMeterUsage), Entitlement Service and STS; SNS beside it.
  const aws = createAwsEmulator()
  const awsServer = await aws.listen()
  closers.push(awsServer.close)
  const awsKey = { accessKeyId: `AKIA${randomBytes(8).toString('hex').toUpperCase()}`, secretAccessKey: randomBytes(30).toString('base64url') }
  aws.addCredentials(awsKey.accessKeyId, awsKey.secretAccessKey)
  // The Marketplace Agreement API (SearchAgreements), for agreement events that name no license.
  const awsAgreement = createAwsAgreementEmulator()
  const awsAgreementServer = await awsAgreement.listen()
  closers.push(awsAgreementServer.close)
  awsAgreement.addCredentials(awsKey.accessKeyId, awsKey.secretAccessKey)
  aws.addProduct(AWS_PRODUCT.payg, [USAGE_DIMENSION])
  aws.addProduct(AWS_PRODUCT.contract, [CONTRACT_DIMENSION, USAGE_DIMENSION])
  const sns = await createAwsNotificationsEmulator()
  const snsServer = await sns.listen()
  closers.push(snsServer.close)

  // Google: Procurement API, the marketplace's JWT certificates, OAuth, OIDC; Service Control.
  const gcp = await createGcpEmulator()
  const gcpServer = await gcp.listen()
  closers.push(gcpServer.close)
  gcp.setPlanChangeTiming('immediate')
  const serviceControl = createServiceControlEmulator({ isAuthorized: (bearer) => gcp.isAccessToken(bearer) })
  const scServer = await serviceControl.listen()
  closers.push(scServer.close)
  serviceControl.addService(GCP_PRODUCT)
  const gcpKey = await gcp.createServiceAccount(GCP_PROVIDER)

  const purchases = new Map<string, Purchase>()
  const sent: Marketplaces['sent'] = []
  let notificationUrls: Record<Partner, string> | null = null
  const notificationUrl = (partner: Partner) => {
    if (!notificationUrls) throw new Error('the demo org has no integrations yet')
    return notificationUrls[partner]
  }
  const record = (partner: Partner, what: string, status: number, externalId: string) => {
    sent.unshift({ at: new Date().toISOString(), partner, what, status, externalId })
    if (sent.length > 200) sent.length = 200
  }

  // Google publishes to Pub/Sub; the ISV's push subscription delivers each message to the broker,
  // redelivering until it is acknowledged (a 2xx) with a growing backoff. Same here, in order:
  // one delivery loop at a time (`draining`), which any caller can await.
  let pushed = 0
  let attempts = 0
  let retryAt = 0
  /** The broker's answer to each delivered message, by the message's eventId. */
  const pushStatus = new Map<string, number>()
  let draining: Promise<void> | null = null
  const drain = async () => {
    while (notificationUrls && pushed < gcp.published.length && Date.now() >= retryAt) {
      const message = gcp.published[pushed]!
      const id = message.entitlement?.id ?? `account/${message.account?.id}`
      let status = 0
      try {
        const response = await gcp.push(notificationUrl('gcp'), message, { serviceAccountEmail: GCP_PUSH_ACCOUNT })
        await response.body?.cancel()
        status = response.status
      } catch {
        // the broker is not reachable: retried like any failed push
      }
      pushStatus.set(message.eventId, status)
      if (status >= 200 && status < 300) {
        record('gcp', `Pub/Sub push: ${message.eventType}`, status, id)
        pushed++
        attempts = 0
        retryAt = 0
        continue
      }
      attempts++
      if (attempts === 1 || attempts % 10 === 0) record('gcp', `Pub/Sub push: ${message.eventType} (attempt ${attempts})`, status, id)
      if (attempts >= 30) {
        // Pub/Sub would keep trying for days; the sandbox gives up on this one and moves on.
        pushed++
        attempts = 0
        retryAt = 0
      } else retryAt = Date.now() + Math.min(300 * 2 ** attempts, 5000)
      return
    }
  }
  const pump = () => (draining ??= drain().finally(() => (draining = null)))
  const pumpTimer = setInterval(() => void pump(), 300)
  pumpTimer.unref()

  const purchaseOf = (entitlement: { partner: string; externalId: string }) => {
    const purchase = purchases.get(`${entitlement.partner}:${entitlement.externalId}`)
    if (!purchase) throw new Error(`this sandbox did not sell ${entitlement.externalId} (it was restarted since?)`)
    return purchase
  }

  const otherPlan = (partner: Partner, current: string | null) => LISTINGS[partner].plans.find((plan) => plan.id !== current)!

  const azureWebhook = async (purchase: Purchase, action: OperationAction, planId?: string) => {
    const { webhookBody } = azure.startOperation(purchase.azureSubscriptionId!, action, planId ? { planId, autoAcceptMs: 10_000 } : {})
    const response = await azure.sendWebhook(notificationUrl('azure'), webhookBody, { tenantId: azureApp.tenantId, clientId: azureApp.clientId })
    await response.body?.cancel()
    return { sent: `Connection webhook: ${action}${planId ? ` → ${planId}` : ''}`, status: response.status }
  }

  const snsNotify = async (purchase: Purchase, action: 'subscribe-success' | 'unsubscribe-pending' | 'unsubscribe-success' | 'entitlement-updated') => {
    const customer = purchase.awsCustomer!
    const kind = action === 'entitlement-updated' ? 'entitlement' : 'subscription'
    const message = sns.notification(
      sns.topicArn(kind, customer.ProductCode),
      sns.marketplaceMessage(action, { customerIdentifier: customer.CustomerIdentifier, productCode: customer.ProductCode, offerIdentifier: purchase.awsOfferId }),
    )
    const response = await sns.deliver(notificationUrl('aws'), message)
    await response.body?.cancel()
    return { sent: `SNS ${kind} topic: ${action}`, status: response.status }
  }

  return {
    env: {
      AZURE_MARKETPLACE_API_URL: azureServer.url,
      AZURE_LOGIN_URL: azureServer.url,
      AWS_MARKETPLACE_METERING_URL: awsServer.url,
      AWS_MARKETPLACE_ENTITLEMENT_URL: awsServer.url,
      AWS_MARKETPLACE_AGREEMENT_URL: awsAgreementServer.url,
      AWS_STS_URL: awsServer.url,
      AWS_SNS_TRUSTED_CERT_PREFIX: sns.certPrefix,
      GCP_MARKETPLACE_CERTS_URL: gcp.certsUrl,
      GCP_OAUTH_TOKEN_URL: gcp.tokenUrl,
      GCP_PROCUREMENT_API_URL: gcpServer.url,
      GCP_OIDC_CERTS_URL: gcp.oidcCertsUrl,
      GCP_SERVICE_CONTROL_URL: scServer.url,
    },
    integrations: {
      azure: azureApp,
      aws: { credentials: awsKey, offerTypes: { [AWS_PRODUCT.payg]: 'SUBSCRIPTION', [AWS_PRODUCT.contract]: 'CONTRACT' } },
      gcp: { providerId: GCP_PROVIDER, audience: `${GCP_PROVIDER}.example.com`, serviceAccountKey: gcpKey, pushServiceAccount: GCP_PUSH_ACCOUNT },
    },
    async setNotificationUrls(urls) {
      notificationUrls = urls
      configureAzureOffer(urls.azure)
      void pump()
      // Subscribing the broker's URL to AWS Marketplace's SNS topics: SNS sends a signed
      // SubscriptionConfirmation, which the broker confirms by visiting its SubscribeURL.
      for (const productCode of Object.values(AWS_PRODUCT)) {
        for (const kind of ['subscription', 'entitlement'] as const) {
          const response = await sns.deliver(urls.aws, sns.subscriptionConfirmation(sns.topicArn(kind, productCode)))
          await response.body?.cancel()
          record('aws', `SNS SubscriptionConfirmation (${kind} topic of ${productCode})`, response.status, '')
        }
      }
    },

    async buy(partner, planId, landingUrl): Promise<Handoff> {
      if (!LISTINGS[partner].plans.some((plan) => plan.id === planId)) throw new Error(`no plan ${planId} on ${partner}`)
      if (partner === 'azure') {
        // An auto-activated plan is Subscribed at once and announced by a Subscribe webhook; the
        // buyer's "Configure account" then lands on the entitlement that created, without an activate.
        const bought = await azureAuto.purchase({
          appId: azureApp.clientId,
          name: `${PRODUCT_NAME} for Contoso`,
          publisherId: 'acme',
          offerId: AZURE_OFFER,
          planId,
        })
        const sub = bought.subscription
        purchases.set(`azure:${sub.id}`, { partner, planId, azureSubscriptionId: sub.id })
        if (bought.delivery) record('azure', 'Connection webhook: Subscribe', 'status' in bought.delivery ? bought.delivery.status : 0, sub.id)
        const url = new URL(landingUrl)
        url.searchParams.set('token', azure.issuePurchaseToken(sub.id))
        return { method: 'GET', url: url.toString(), fields: {} }
      }
      if (partner === 'aws') {
        const contract = planId === 'contract'
        const productCode = contract ? AWS_PRODUCT.contract : AWS_PRODUCT.payg
        const licenseArn = `arn:aws:license-manager::${String(100000000000 + Math.floor(Math.random() * 8e11))}:license:l-${randomBytes(16).toString('hex')}`
        const { customer, token } = aws.addCustomer({ ProductCode: productCode, LicenseArn: licenseArn })
        if (contract) {
          aws.addEntitlement({ ProductCode: productCode, Dimension: CONTRACT_DIMENSION, CustomerIdentifier: customer.CustomerIdentifier, Value: { IntegerValue: 10 }, ExpirationDate: Math.floor(Date.now() / 1000) + 365 * 86400 })
        }
        const purchase: Purchase = { partner, planId, awsCustomer: customer, awsContract: contract, awsOfferId: `offer-${randomBytes(10).toString('hex')}` }
        purchases.set(`aws:${licenseArn}`, purchase)
        // AWS announces the subscription on SNS too (a contract also on the entitlement topic),
        // often before the buyer reaches the seller: the broker keeps these until the landing.
        for (const action of contract ? (['subscribe-success', 'entitlement-updated'] as const) : (['subscribe-success'] as const)) {
          const announced = await snsNotify(purchase, action).catch(() => ({ sent: `SNS: ${action}`, status: 0 }))
          record('aws', announced.sent, announced.status, licenseArn)
        }
        return { method: 'POST', url: landingUrl, fields: { 'x-amzn-marketplace-token': token } }
      }
      const { accountId, entitlement } = gcp.addPurchase({ providerId: GCP_PROVIDER, product: GCP_PRODUCT, plan: planId })
      const entitlementId = entitlement!.name.split('/').pop()!
      serviceControl.addConsumer(GCP_PRODUCT, entitlement!.usageReportingId)
      const purchase: Purchase = { partner, planId, gcpEntitlementId: entitlementId, gcpAccountId: accountId }
      purchases.set(`gcp:${entitlementId}`, purchase)
      purchases.set(`gcp:account/${accountId}`, purchase)
      // Google publishes the order at once; the push may reach the broker before the buyer does.
      gcp.published.push(gcp.pubsubMessage('ENTITLEMENT_CREATION_REQUESTED', { entitlementId, providerId: GCP_PROVIDER }))
      void pump()
      const token = await gcp.mintToken({
        aud: `${GCP_PROVIDER}.example.com`,
        sub: accountId,
        google: { roles: ['account_admin'], user_identity: String(100000000000000000000n + BigInt(Math.floor(Math.random() * 1e15))) },
      })
      return { method: 'POST', url: landingUrl, fields: { 'x-gcp-marketplace-token': token } }
    },

    actionsFor({ partner, externalId, status, planId }) {
      if (!purchases.has(`${partner}:${externalId}`)) return []
      const purchase = purchases.get(`${partner}:${externalId}`)!
      const active = status === 'ACTIVE'
      const actions: MarketplaceAction[] = []
      if (partner === 'azure') {
        const next = otherPlan('azure', planId)
        if (active) actions.push({ id: 'suspend', label: 'Suspend (payment failed)', sends: 'Suspend webhook' })
        if (status === 'SUSPENDED') actions.push({ id: 'reinstate', label: 'Reinstate (payment fixed)', sends: 'Reinstate webhook; the broker PATCHes the operation' })
        if (active) actions.push({ id: 'change-plan', label: `Change plan to ${next.name}`, sends: 'ChangePlan webhook; the broker PATCHes the operation', planId: next.id })
        if (status !== 'CANCELLED') actions.push({ id: 'cancel', label: 'Cancel the subscription', sends: 'Unsubscribe webhook' })
      } else if (partner === 'aws') {
        if (active && purchase.awsContract) actions.push({ id: 'change-plan', label: 'Amend contract: 10 ↔ 25 users', sends: 'entitlement-updated (SNS); the broker calls GetEntitlements' })
        // A SaaS contract is not cancelled by the buyer mid-term: AWS ends it (e.g. an approved refund).
        if (active) actions.push({ id: 'cancel', label: purchase.awsContract ? 'Contract cancelled by AWS' : 'Buyer cancels', sends: 'unsubscribe-pending (SNS)' })
        if (status === 'PENDING_CANCEL') actions.push({ id: 'end', label: 'Cancellation completes', sends: 'unsubscribe-success (SNS)' })
      } else {
        const next = otherPlan('gcp', planId)
        if (active) actions.push({ id: 'change-plan', label: `Change plan to ${next.name}`, sends: 'ENTITLEMENT_PLAN_CHANGE_REQUESTED (Pub/Sub); the broker approves it', planId: next.id })
        if (active) actions.push({ id: 'cancel', label: 'Buyer cancels', sends: 'ENTITLEMENT_PENDING_CANCELLATION (Pub/Sub)' })
        if (status === 'PENDING_CANCEL') actions.push({ id: 'revert-cancel', label: 'Buyer changes their mind', sends: 'ENTITLEMENT_CANCELLATION_REVERTED (Pub/Sub)' })
        if (status === 'PENDING_CANCEL') actions.push({ id: 'end', label: 'Billing period ends', sends: 'ENTITLEMENT_CANCELLED (Pub/Sub)' })
      }
      return actions
    },

    async act(entitlement, action) {
      const purchase = purchaseOf(entitlement)
      let result: { sent: string; status: number }
      if (purchase.partner === 'azure') {
        if (action === 'suspend') result = await azureWebhook(purchase, 'Suspend')
        else if (action === 'reinstate') result = await azureWebhook(purchase, 'Reinstate')
        else if (action === 'change-plan') result = await azureWebhook(purchase, 'ChangePlan', otherPlan('azure', entitlement.planId).id)
        else if (action === 'cancel') result = await azureWebhook(purchase, 'Unsubscribe')
        else throw new Error(`Azure has no "${action}"`)
      } else if (purchase.partner === 'aws') {
        const customer = purchase.awsCustomer!
        if (action === 'change-plan' && purchase.awsContract) {
          const seats = aws.entitlements.find((e) => e.CustomerIdentifier === customer.CustomerIdentifier && e.Dimension === CONTRACT_DIMENSION)!
          seats.Value = { IntegerValue: seats.Value.IntegerValue === 10 ? 25 : 10 }
          result = await snsNotify(purchase, 'entitlement-updated')
        } else if (action === 'cancel') result = await snsNotify(purchase, 'unsubscribe-pending')
        else if (action === 'end') {
          aws.setSubscribed(customer, false)
          const index = aws.entitlements.findIndex((e) => e.CustomerIdentifier === customer.CustomerIdentifier)
          if (index >= 0) aws.entitlements.splice(index, 1)
          result = await snsNotify(purchase, 'unsubscribe-success')
        } else throw new Error(`AWS has no "${action}" for this purchase`)
      } else {
        const id = purchase.gcpEntitlementId!
        const before = gcp.published.length
        if (action === 'change-plan') gcp.requestPlanChange(id, otherPlan('gcp', entitlement.planId).id)
        else if (action === 'cancel') gcp.setEntitlementState(id, 'ENTITLEMENT_PENDING_CANCELLATION')
        else if (action === 'revert-cancel') gcp.setEntitlementState(id, 'ENTITLEMENT_ACTIVE')
        else if (action === 'end') gcp.setEntitlementState(id, 'ENTITLEMENT_CANCELLED', { cancellationReason: 'The buyer cancelled.' })
        else throw new Error(`Google has no "${action}"`)
        const message = gcp.published[before]!
        // Wait for this message's delivery (earlier ones go first).
        for (let i = 0; i < 50 && !pushStatus.has(message.eventId); i++) {
          await pump()
          if (!pushStatus.has(message.eventId)) await new Promise((r) => setTimeout(r, 100))
        }
        return { sent: `Pub/Sub push: ${message.eventType}`, status: pushStatus.get(message.eventId) ?? 0 }
      }
      record(purchase.partner, result.sent, result.status, entitlement.externalId)
      return result
    },

    sent,
    emulators: { azure, aws, sns, gcp, serviceControl },
    async close() {
      clearInterval(pumpTimer)
      await draining
      for (const close of [...closers].reverse()) await close().catch(() => undefined)
    },
  }
}
