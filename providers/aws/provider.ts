import {
  type Entitlement as AwsEntitlement,
  GetEntitlementsCommand,
  type GetEntitlementsRequest,
  MarketplaceEntitlementServiceClient,
} from '@aws-sdk/client-marketplace-entitlement-service'
import { MarketplaceAgreementClient, SearchAgreementsCommand } from '@aws-sdk/client-marketplace-agreement'
import { MarketplaceMeteringClient, ResolveCustomerCommand, type ResolveCustomerResult } from '@aws-sdk/client-marketplace-metering'
import { AssumeRoleCommand } from '@aws-sdk/client-sts'
import { ConfigurationError, InvalidTokenError, NotificationFormatError, UpstreamError } from '../errors'
import { type RetryPolicy, defaultRetryPolicy, remainingMs } from '../shared/http'
import { type UpstreamObserver, observeCall } from '../shared/telemetry'
import { withoutActivation } from '../shared/no-activation'
import { pickOfferType } from '../shared/offer-type'
import { field, nonEmpty as text } from '../shared/notification-body'
import { formToken, isPlausibleToken } from '../shared/token'
import type { InboundNotification, MarketplaceProvider, NormalizedPurchase, NotificationHandler, ProviderContext, ProviderIntegration } from '../types'
import { checkAwsCredentials, createStsClient, roleSessionName, staticKeysOf } from './check'
import { EVENTBRIDGE_SOURCE, parseEventBridgeEvent, saasKindOf } from './eventbridge'
import { licenseId } from './license-arn'
import { createAwsMetering } from './metering'
import type { AwsSecrets, AwsSettings } from './settings'
import { MARKETPLACE_TOPIC, type SnsMessage, createSnsVerifier, isTrustedSnsUrl, parseSnsMessage } from './sns'

export interface AwsProviderOptions {
  /** `AWS_MARKETPLACE_METERING_URL`; the SDK's regional default when absent. */
  meteringUrl?: string
  /** `AWS_MARKETPLACE_ENTITLEMENT_URL`; the SDK's default (us-east-1) when absent. */
  entitlementUrl?: string
  /** `AWS_MARKETPLACE_AGREEMENT_URL` (SearchAgreements); the SDK's default (us-east-1) when absent. */
  agreementUrl?: string
  /** `AWS_STS_URL`; the SDK's default when absent. */
  stsUrl?: string
  /** `AWS_SNS_TRUSTED_CERT_PREFIX`: SNS certificate and SubscribeURL prefix instead of `https://sns.<region>.amazonaws.com/`. */
  snsTrustedCertPrefix?: string
  retryPolicy?: RetryPolicy
  /** Told how each marketplace call ended (metrics). */
  observe?: UpstreamObserver
}

type AwsIntegration = ProviderIntegration<AwsSettings, AwsSecrets>

interface Credentials {
  accessKeyId: string
  secretAccessKey: string
  sessionToken?: string
  expiration?: Date
}

/** The form field AWS posts to the fulfillment URL (a GET with it in the query is accepted too). */
const TOKEN_FIELD = 'x-amzn-marketplace-token'
/** The Entitlement Service exists only in us-east-1 (so does the Agreement API for AWS Marketplace's catalog). */
const ENTITLEMENT_REGION = 'us-east-1'
/** SearchAgreements pages read for one agreement before giving up on finding it there. */
const AGREEMENT_PAGES = 10
/** Assumed-role credentials are renewed this long before they expire. */
const CREDENTIAL_MARGIN_MS = 5 * 60 * 1000
const MAX_CLIENTS = 1000

/** Errors that are the buyer's (their registration token), per the Metering API reference. */
const BUYER_ERRORS = new Set(['InvalidTokenException', 'ExpiredTokenException'])
/** Errors worth the SDK's retries and then an "AWS is unavailable" answer. */
/** The actions of the marketplace's SNS messages. */
const SNS_ACTIONS = new Set(['subscribe-success', 'subscribe-fail', 'unsubscribe-pending', 'unsubscribe-success', 'entitlement-updated'])
const TRANSIENT_ERRORS = new Set(['ThrottlingException', 'InternalServiceErrorException', 'ServiceUnavailable', 'RequestTimeout', 'TimeoutError', 'AbortError'])

interface SdkError {
  name?: string
  message?: string
  $metadata?: { httpStatusCode?: number }
  $fault?: 'client' | 'server'
}

function classify(error: unknown, call: string): Error {
  if (error instanceof ConfigurationError || error instanceof InvalidTokenError || error instanceof UpstreamError) return error
  const sdk = (error ?? {}) as SdkError
  const name = sdk.name ?? 'Error'
  const status = sdk.$metadata?.httpStatusCode ?? null
  if (BUYER_ERRORS.has(name)) return new InvalidTokenError(`AWS ${call}: ${name}`)
  if (TRANSIENT_ERRORS.has(name) || sdk.$fault === 'server' || status === null || status >= 500 || status === 429) {
    return new UpstreamError(`AWS ${call} failed: ${name}`, status)
  }
  // 4xx: wrong keys (UnrecognizedClientException, InvalidSignatureException), no permission
  // (AccessDeniedException), a product code the seller does not own... all the ISV's to fix.
  return new ConfigurationError(`AWS ${call} refused the seller's credentials or request (${name})`, { call, awsError: name, status })
}

/** Whom an entitlement is of, as ResolveCustomer named them (kept in `info.customer`). */
interface AwsCustomer {
  ProductCode: string
  CustomerIdentifier: string | null
  CustomerAWSAccountId: string | null
  LicenseArn: string | null
}

/**
 * GetEntitlements' filter for one purchase: its license whenever it is known (the buyer's
 * account may hold other agreements for the product, and new integrations have no
 * CustomerIdentifier), else the customer, else the account (AWS: the last two are mutually exclusive).
 */
function entitlementFilter(customer: AwsCustomer): GetEntitlementsRequest['Filter'] {
  if (customer.LicenseArn) return { LICENSE_ARN: [customer.LicenseArn] }
  if (customer.CustomerIdentifier) return { CUSTOMER_IDENTIFIER: [customer.CustomerIdentifier] }
  return { CUSTOMER_AWS_ACCOUNT_ID: [customer.CustomerAWSAccountId ?? ''] }
}

/** awsJson 1.1 timestamps arrive as Dates; keep them as ISO strings in the stored detail. */
function entitlementDetail(entitlement: AwsEntitlement) {
  return { ...entitlement, ExpirationDate: entitlement.ExpirationDate?.toISOString() ?? null }
}

export function toAwsPurchase(customer: ResolveCustomerResult, entitlements: AwsEntitlement[], offerType: NormalizedPurchase['offerType']): NormalizedPurchase {
  const productCode = customer.ProductCode!
  const expirations = entitlements.map((e) => e.ExpirationDate?.toISOString()).filter((d): d is string => Boolean(d)).sort()
  return {
    externalId: customer.LicenseArn || `${productCode}:${customer.CustomerIdentifier}`,
    // ResolveCustomer only succeeds for a buyer who subscribed; a contract's entitlements
    // confirm it. The subscribe-success notification may still follow (lifecycle, later).
    status: 'ACTIVE',
    offerType,
    productId: productCode,
    planId: null,
    // A contract with one integer dimension has a quantity (seats, units); several dimensions are in info.entitlements.
    quantity: entitlements.length === 1 && typeof entitlements[0]!.Value?.IntegerValue === 'number' ? entitlements[0]!.Value.IntegerValue : null,
    buyer: {
      accountId: customer.CustomerAWSAccountId ?? null,
      customerId: customer.CustomerIdentifier ?? null,
      email: null,
      tenantId: null,
      name: null,
    },
    term: { start: null, end: expirations.at(-1) ?? null, unit: null, autoRenew: null },
    isFreeTrial: false,
    isTest: false,
    info: {
      customer: {
        CustomerIdentifier: customer.CustomerIdentifier ?? null,
        CustomerAWSAccountId: customer.CustomerAWSAccountId ?? null,
        ProductCode: productCode,
        LicenseArn: customer.LicenseArn ?? null,
      },
      entitlements: entitlements.map(entitlementDetail),
    },
    needsActivation: false,
  }
}

/**
 * AWS Marketplace SaaS: ResolveCustomer (Metering) with the seller's credentials, then
 * GetEntitlements (Entitlement Service, us-east-1) for the customer. The SDK clients are
 * built once per integration version; their own retries (standard mode, 3 attempts, which
 * covers throttling and 5xx) are the only ones, so attempts do not multiply.
 */
export function createAwsProvider(options: AwsProviderOptions = {}) {
  const policy = options.retryPolicy ?? defaultRetryPolicy
  const clients = new Map<string, { metering: MarketplaceMeteringClient; entitlement: MarketplaceEntitlementServiceClient }>()
  const requestHandler = { requestTimeout: policy.timeoutMs, connectionTimeout: Math.min(policy.timeoutMs, 5_000) }

  const stsOptions = { stsUrl: options.stsUrl, maxAttempts: policy.attempts, requestHandler }

  function credentialsFor(integration: AwsIntegration): Credentials | (() => Promise<Credentials>) {
    const { settings } = integration
    const staticKeys = staticKeysOf(integration)
    if (!settings.roleArn) {
      if (!staticKeys) throw new ConfigurationError('AWS integration has neither credentials nor a roleArn')
      return staticKeys
    }
    // A role to assume (cross-account access without long-lived keys in the broker), with the
    // static keys as the caller if given, else the SDK's default chain (env, instance role).
    const sts = createStsClient(stsOptions, settings.region, staticKeys)
    let cached: Credentials | undefined
    let pending: Promise<Credentials> | undefined
    return async () => {
      if (cached?.expiration && cached.expiration.getTime() - Date.now() > CREDENTIAL_MARGIN_MS) return cached
      pending ??= sts
        .send(
          new AssumeRoleCommand({
            RoleArn: settings.roleArn,
            RoleSessionName: roleSessionName(integration.orgId),
            ...(settings.externalId ? { ExternalId: settings.externalId } : {}),
          }),
        )
        .then((result) => {
          const c = result.Credentials
          if (!c?.AccessKeyId || !c.SecretAccessKey) throw new Error('AssumeRole returned no credentials')
          cached = { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, sessionToken: c.SessionToken, expiration: c.Expiration }
          return cached
        })
        .catch((error: SdkError) => {
          const classified = classify(error, 'sts:AssumeRole')
          // Whatever STS says (even "ExpiredTokenException"), it is about the seller's setup or AWS, never the buyer.
          throw classified instanceof InvalidTokenError
            ? new ConfigurationError(`AWS sts:AssumeRole refused (${error.name})`, { call: 'sts:AssumeRole', awsError: error.name ?? null })
            : classified
        })
        .finally(() => {
          pending = undefined
        })
      return pending
    }
  }

  function clientsFor(integration: AwsIntegration) {
    const key = `${integration.orgId}:${integration.version}`
    let pair = clients.get(key)
    if (pair) return pair
    const credentials = credentialsFor(integration)
    const common = { credentials, maxAttempts: policy.attempts, requestHandler }
    pair = {
      metering: new MarketplaceMeteringClient({
        region: integration.settings.region,
        ...(options.meteringUrl ? { endpoint: options.meteringUrl } : {}),
        ...common,
      }),
      entitlement: new MarketplaceEntitlementServiceClient({
        region: ENTITLEMENT_REGION,
        ...(options.entitlementUrl ? { endpoint: options.entitlementUrl } : {}),
        ...common,
      }),
    }
    if (clients.size >= MAX_CLIENTS) clients.delete(clients.keys().next().value!)
    clients.set(key, pair)
    return pair
  }

  /** One SDK call inside the landing's deadline, logged; the SDK's own error is rethrown as it came. */
  async function sendRaw<T>(
    label: string,
    ctx: ProviderContext,
    run: (options: { abortSignal: AbortSignal }) => Promise<T & { $metadata?: { attempts?: number; httpStatusCode?: number } }>,
  ) {
    return observeCall(label, options.observe, async (call) => {
      const started = Date.now()
      try {
        // The SDK's own retries (maxAttempts) all fit inside the landing's deadline.
        const result = await run({ abortSignal: AbortSignal.timeout(Math.max(1, remainingMs(policy, ctx.deadline))) })
        const attempts = result.$metadata?.attempts ?? 1
        const status = result.$metadata?.httpStatusCode ?? 200
        ctx.log.info('upstream call', { call: label, attempts, status, latencyMs: Date.now() - started })
        call.end({ status, attempts })
        return result
      } catch (error) {
        const sdk = error as SdkError & { $metadata?: { attempts?: number } }
        ctx.log.info('upstream call', { call: label, attempts: sdk.$metadata?.attempts ?? null, status: sdk.$metadata?.httpStatusCode ?? null, error: sdk.name ?? 'Error', latencyMs: Date.now() - started })
        call.end({ status: sdk.$metadata?.httpStatusCode ?? null, attempts: sdk.$metadata?.attempts ?? 1, error: sdk.name ?? 'Error' })
        throw error
      }
    })
  }

  const send: typeof sendRaw = async (label, ctx, run) => {
    try {
      return await sendRaw(label, ctx, run)
    } catch (error) {
      throw classify(error, label)
    }
  }

  async function getEntitlements(integration: AwsIntegration, ctx: ProviderContext, customer: AwsCustomer): Promise<AwsEntitlement[]> {
    const { entitlement } = clientsFor(integration)
    const productCode = customer.ProductCode
    const filter = entitlementFilter(customer)
    const entitlements: AwsEntitlement[] = []
    let nextToken: string | undefined
    for (let page = 0; page < 20; page++) {
      const result = await send('aws.GetEntitlements', ctx, (o) =>
        entitlement.send(new GetEntitlementsCommand({ ProductCode: productCode, Filter: filter, ...(nextToken ? { NextToken: nextToken } : {}) }), o),
      )
      entitlements.push(...(result.Entitlements ?? []))
      nextToken = result.NextToken
      if (!nextToken) break
    }
    return entitlements
  }

  /** The stored purchase with its contract re-read from GetEntitlements (quantity, term, info.entitlements); the status is the caller's. */
  async function rereadContract(integration: AwsIntegration, purchase: NormalizedPurchase, ctx: ProviderContext): Promise<NormalizedPurchase> {
    const customer = purchase.info.customer as AwsCustomer
    const entitlements = await getEntitlements(integration, ctx, customer)
    const reread = toAwsPurchase(
      { CustomerIdentifier: customer.CustomerIdentifier ?? undefined, CustomerAWSAccountId: customer.CustomerAWSAccountId ?? undefined, ProductCode: customer.ProductCode, LicenseArn: customer.LicenseArn ?? undefined },
      entitlements,
      purchase.offerType,
    )
    return { ...reread, externalId: purchase.externalId, status: purchase.status }
  }

  const verifySns = createSnsVerifier({ trustedCertPrefix: options.snsTrustedCertPrefix, timeoutMs: policy.timeoutMs })
  const trusted = (url: string) => isTrustedSnsUrl(url, options.snsTrustedCertPrefix)

  async function sha256Hex(value: string) {
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(value)))
    return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('')
  }

  /** SNS marketplace messages: the action and whom it is about (Message is JSON with AWS's hyphenated keys). */
  function snsNotification(message: SnsMessage): InboundNotification {
    const base = { messageId: message.MessageId, occurredAt: message.Timestamp, payload: message as unknown as Record<string, unknown> }
    if (message.Type !== 'Notification') return { ...base, subject: message.TopicArn, action: message.Type }
    let body: Record<string, unknown>
    try {
      body = JSON.parse(message.Message) as Record<string, unknown>
    } catch {
      throw new NotificationFormatError('the SNS Message is not JSON')
    }
    const action = typeof body.action === 'string' ? body.action : undefined
    const customer = typeof body['customer-identifier'] === 'string' ? body['customer-identifier'] : undefined
    const product = typeof body['product-code'] === 'string' ? body['product-code'] : undefined
    if (!action || !customer || !product || !SNS_ACTIONS.has(action)) throw new NotificationFormatError('the SNS Message is not an AWS Marketplace notification')
    return { ...base, subject: `${product}:${customer}`, action, match: { productId: product, customerId: customer } }
  }

  const agreementClients = new Map<string, MarketplaceAgreementClient>()
  /** The Marketplace Agreement API client, built only when an agreement must be looked up. */
  function agreementClientFor(integration: AwsIntegration) {
    const key = `${integration.orgId}:${integration.version}`
    let client = agreementClients.get(key)
    if (client) return client
    client = new MarketplaceAgreementClient({
      region: ENTITLEMENT_REGION,
      ...(options.agreementUrl ? { endpoint: options.agreementUrl } : {}),
      credentials: credentialsFor(integration),
      maxAttempts: policy.attempts,
      requestHandler,
    })
    if (agreementClients.size >= MAX_CLIENTS) agreementClients.delete(agreementClients.keys().next().value!)
    agreementClients.set(key, client)
    return client
  }

  /**
   * The license of an agreement, as the seller's agreements (SearchAgreements, the seller as
   * proposer, filtered by the buyer's account) list it; null when AWS does not show it there (a
   * channel partner's offer, whose proposer is the partner) or refuses the seller the call.
   */
  async function licenseOfAgreement(integration: AwsIntegration, agreementId: string, accountId: string, ctx: ProviderContext): Promise<string | null> {
    const client = agreementClientFor(integration)
    const filters = [
      { name: 'PartyType', values: ['Proposer'] },
      { name: 'AgreementType', values: ['PurchaseAgreement'] },
      { name: 'AcceptorAccountId', values: [accountId] },
    ]
    let nextToken: string | undefined
    try {
      for (let page = 0; page < AGREEMENT_PAGES; page++) {
        const result = await send('aws.SearchAgreements', ctx, (o) =>
          client.send(new SearchAgreementsCommand({ catalog: 'AWSMarketplace', filters, ...(nextToken ? { nextToken } : {}) }), o),
        )
        const agreement = result.agreementViewSummaries?.find((summary) => summary.agreementId === agreementId)
        if (agreement) return agreement.entitlements?.map((entitlement) => licenseId(entitlement.licenseArn)).find(Boolean) ?? null
        nextToken = result.nextToken
        if (!nextToken) break
      }
    } catch (error) {
      if (!(error instanceof ConfigurationError)) throw error
      // No aws-marketplace:SearchAgreements for these credentials: the message waits for a License event instead.
      ctx.log.warn('aws agreement not looked up', { agreementId, reason: error.message })
    }
    return null
  }

  /** The purchase with the agreement it is now known to belong to. */
  const withAgreement = (purchase: NormalizedPurchase, agreementId: string | undefined): NormalizedPurchase =>
    agreementId && purchase.info.agreementId !== agreementId ? { ...purchase, info: { ...purchase.info, agreementId } } : purchase
  const agreementOf = (purchase: NormalizedPurchase) => (typeof purchase.info.agreementId === 'string' ? purchase.info.agreementId : undefined)

  const notifications: NotificationHandler<AwsSettings, AwsSecrets> = {
    async authenticate(integration, request, ctx) {
      const authorization = request.headers.get('authorization')
      if (authorization !== null) {
        // EventBridge API destination: the bearer secret the broker issued (only its hash is kept).
        const secret = /^Bearer\s+(\S+)\s*$/i.exec(authorization)?.[1]
        const expected = integration.notificationSecretHash
        if (!secret || !expected || (await sha256Hex(secret)) !== expected) return null
        return parseEventBridgeEvent(request.body)
      }
      // SNS: the signature is the authentication, so anything that is not a signed SNS message is a 401.
      let message: SnsMessage
      try {
        message = parseSnsMessage(request.body)
      } catch {
        return null
      }
      if (!MARKETPLACE_TOPIC.test(message.TopicArn)) {
        ctx.log.warn('sns message refused', { reason: 'not an AWS Marketplace topic' })
        return null
      }
      const topics = integration.settings.notificationTopicArns
      if (topics?.length && !topics.includes(message.TopicArn)) {
        ctx.log.warn('sns message refused', { reason: 'topic not in notificationTopicArns' })
        return null
      }
      if (!(await verifySns(message, ctx.log))) return null
      return snsNotification(message)
    },

    async apply(integration, notification, current, ctx) {
      const action = notification.action
      if (action === 'SubscriptionConfirmation') {
        const url = String(notification.payload.SubscribeURL ?? '')
        if (!trusted(url)) return { outcome: 'unknown', reason: 'SubscribeURL is not an SNS URL' }
        const response = await fetch(url, { signal: AbortSignal.timeout(policy.timeoutMs), redirect: 'manual' })
        await response.body?.cancel()
        if (!response.ok) throw new UpstreamError(`SNS ConfirmSubscription answered ${response.status}`, response.status)
        ctx.log.info('sns subscription confirmed', { topicArn: notification.subject })
        return { outcome: 'apply', purchase: null }
      }
      if (action === 'UnsubscribeConfirmation') return { outcome: 'apply', purchase: null }
      const kind = notification.payload.source === EVENTBRIDGE_SOURCE ? saasKindOf(action) : null
      if (notification.payload.source === EVENTBRIDGE_SOURCE && !kind) {
        // Advisory, Ending, Renewal, cancellation requests, billing adjustments: nothing to change
        // (an agreement that ends or is cancelled sends Purchase Agreement Ended).
        ctx.log.info('aws marketplace event not acted on', { detailType: action, eventId: String(notification.payload.id ?? '') })
        return { outcome: 'unknown', reason: `${action.slice(0, 100)}: informational, nothing to change` }
      }
      // Kept until the landing (or, for an agreement no License event has named, until one does).
      if (!current) return { outcome: 'waiting' }
      const agreementId = notification.match?.agreementId
      if (kind?.startsWith('Purchase Agreement')) {
        // Found by its license (SearchAgreements), but that license has moved on to a later agreement (a renewal or replacement).
        const recorded = agreementOf(current)
        if (recorded && recorded !== agreementId && kind !== 'Purchase Agreement Created') {
          return { outcome: 'unknown', reason: `the entitlement belongs to agreement ${recorded} now` }
        }
        const known = withAgreement(current, agreementId)
        if (kind === 'Purchase Agreement Ended') return { outcome: 'apply', purchase: { ...known, status: 'CANCELLED' } }
        const reread = withAgreement(await rereadContract(integration, known, ctx), agreementId)
        return { outcome: 'apply', purchase: kind === 'Purchase Agreement Created' && current.status !== 'CANCELLED' ? { ...reread, status: 'ACTIVE' } : reread }
      }
      const status = (to: NormalizedPurchase['status'], reason?: string) => ({ outcome: 'apply' as const, purchase: { ...current, status: to }, ...(reason ? { reason } : {}) })
      if (kind === 'License Updated') {
        // The join of an agreement and its entitlement: recorded, and what waited for it is due.
        const licensed = text(field(field(notification.payload.detail, 'agreement'), 'id'))
        const reread = withAgreement(await rereadContract(integration, current, ctx), licensed ?? agreementOf(current))
        return { outcome: 'apply', purchase: reread, ...(licensed ? { wake: [`agreement:${licensed}`] } : {}) }
      }
      switch (action) {
        case 'subscribe-success':
          return status('ACTIVE')
        case 'subscribe-fail':
          return status('CANCELLED', 'AWS reported that the subscription failed (subscribe-fail)')
        case 'unsubscribe-pending':
          return status('PENDING_CANCEL')
        case 'unsubscribe-success':
          return status('CANCELLED')
        default:
          if (kind === 'License Deprovisioned') return status('CANCELLED')
          // entitlement-updated: ask GetEntitlements.
          return { outcome: 'apply', purchase: withAgreement(await rereadContract(integration, current, ctx), agreementOf(current)) }
      }
    },

    async search(integration, notification, ctx) {
      const { agreementId, accountId } = notification.match ?? {}
      if (notification.payload.source !== EVENTBRIDGE_SOURCE || !saasKindOf(notification.action)?.startsWith('Purchase Agreement') || !agreementId || !accountId) return null
      const license = await licenseOfAgreement(integration, agreementId, accountId, ctx)
      return license ? { match: { accountId, licenseId: license }, subject: `license:${license}` } : null
    },
  }

  return {
    partner: 'aws',
    notifications,
    metering: createAwsMetering((integration) => clientsFor(integration as AwsIntegration).metering, send),

    tokenFrom(input) {
      return formToken(input.form?.get(TOKEN_FIELD)) ?? input.query.get(TOKEN_FIELD) ?? null
    },

    isPlausibleToken,

    async resolve(integration, token, ctx) {
      const { metering } = clientsFor(integration)
      const customer = await send('aws.ResolveCustomer', ctx, (o) => metering.send(new ResolveCustomerCommand({ RegistrationToken: token }), o))
      // Products integrated since AWS's concurrent agreements answer no CustomerIdentifier: the
      // buyer is the account and the agreement its license (one account may hold several).
      const licensed = Boolean(customer.LicenseArn && customer.CustomerAWSAccountId)
      if (!customer.ProductCode || (!customer.CustomerIdentifier && !licensed)) {
        throw new UpstreamError('AWS ResolveCustomer answered without ProductCode, or with neither CustomerIdentifier nor CustomerAWSAccountId and LicenseArn')
      }
      // Contracts have entitlements (dimensions, quantities, expiry); pure subscriptions have none.
      const entitlements = await getEntitlements(integration, ctx, {
        ProductCode: customer.ProductCode,
        CustomerIdentifier: customer.CustomerIdentifier ?? null,
        CustomerAWSAccountId: customer.CustomerAWSAccountId ?? null,
        LicenseArn: customer.LicenseArn ?? null,
      })
      const offerType = await pickOfferType(integration.settings.offerTypes, customer.ProductCode, () =>
        entitlements.length > 0 ? 'CONTRACT' : 'SUBSCRIPTION',
      )
      return toAwsPurchase(customer, entitlements, offerType)
    },

    activate: withoutActivation.activate,

    // Reconciliation: a contract's entitlements re-read; a subscription's status has no API to ask (notifications carry it).
    refresh: async (integration, purchase, ctx) => withAgreement(await rereadContract(integration, purchase, ctx), agreementOf(purchase)),

    checkCredentials: (integration, ctx) => checkAwsCredentials(integration, ctx, stsOptions, sendRaw),
  } satisfies MarketplaceProvider<AwsSettings, AwsSecrets>
}
