// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata polyfill.
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { Hono } from 'hono'
import { type KeyObject, createPrivateKey, createSign, randomBytes, randomUUID, webcrypto } from 'node:crypto'
import { listenOnLoopback } from './listen'

/**
 * AWS Marketplace notification emulator: Amazon SNS deliveries to an HTTPS subscriber and
 * EventBridge events delivered through an API destination, written from AWS's documents, not
 * from anyone's client code.
 *
 * SNS (Amazon SNS Developer Guide):
 * - "Parsing message formats" (sns-message-and-json-formats: HTTP/HTTPS headers, subscription
 *   confirmation, notification and unsubscribe confirmation JSON formats): the body is a JSON
 *   document `Type, MessageId, Token, TopicArn, Subject?, Message, SubscribeURL, Timestamp,
 *   SignatureVersion, Signature, SigningCertURL, UnsubscribeURL`, POSTed with `Content-Type:
 *   text/plain; charset=UTF-8`, `x-amz-sns-message-type`, `x-amz-sns-message-id`,
 *   `x-amz-sns-topic-arn` and (Notification, UnsubscribeConfirmation: the documented examples show
 *   it; SubscriptionConfirmation: the documented example has none) `x-amz-sns-subscription-arn`,
 *   `User-Agent: Amazon Simple Notification Service Agent`. `Timestamp` is ISO 8601 with
 *   milliseconds in GMT; `SigningCertURL` is `https://sns.<region>.amazonaws.com/
 *   SimpleNotificationService-<hex>.pem` (here: this server's `/SimpleNotificationService-<hex>.pem`).
 * - "Verifying the signatures of Amazon SNS messages" (sns-verify-signature-of-message and
 *   sns-verify-signature-of-message-verify-message-signature): the string to sign is `key\nvalue\n`
 *   for, in this order, Notification: Message, MessageId, Subject (only if present), Timestamp,
 *   TopicArn, Type; SubscriptionConfirmation / UnsubscribeConfirmation: Message, MessageId,
 *   SubscribeURL, Timestamp, Token, TopicArn, Type. `SignatureVersion` "1" = SHA1withRSA,
 *   "2" = SHA256withRSA; `Signature` is base64.
 * - "Step 1: Make sure your endpoint is ready to process Amazon SNS messages" (SendMessageToHttp.prepare,
 *   under "Fanout to HTTP/S endpoints"): visiting `SubscribeURL`
 *   (`/?Action=ConfirmSubscription&TopicArn=...&Token=...`) answers the XML
 *   `ConfirmSubscriptionResponse` (namespace `http://sns.amazonaws.com/doc/2010-03-31/`) with the
 *   `SubscriptionArn`. An unknown token gets the query API's XML `ErrorResponse` (400
 *   `InvalidParameter`); a topic never offered, 404 `NotFound` (the codes are the SNS API's
 *   common/ConfirmSubscription errors; the exact message text is not documented).
 * - The certificate is a real self-signed X.509 certificate (CN=sns.amazonaws.com) around a fresh
 *   RSA 2048 key; AWS's own chains to Amazon's CA, which a test cannot reproduce.
 *
 * AWS Marketplace Seller Guide:
 * - "Amazon SNS notifications for SaaS products" (saas-notification): topics
 *   `arn:aws:sns:us-east-1:<account>:aws-mp-subscription-notification-<PRODUCTCODE>` and
 *   `aws-mp-entitlement-notification-<PRODUCTCODE>`. Subscription messages are
 *   `{"action", "customer-identifier", "product-code", "offer-identifier", "isFreeTrialTermPresent"}`
 *   with action `subscribe-success | subscribe-fail | unsubscribe-pending | unsubscribe-success`;
 *   `offer-identifier` only for subscribe-success / subscribe-fail; `isFreeTrialTermPresent` is
 *   documented as a *string* ("true"/"false"), not a boolean. Entitlement messages are
 *   `{"action": "entitlement-updated", "customer-identifier", "product-code"}`. The example account
 *   in AWS's ARN is 123456789012 (the default here); AWS's example value `" X01EXAMPLEX"` has a
 *   leading space, taken as a typo.
 * - "Amazon EventBridge events" (notifications-eventbridge, sections "Events for agreements" and
 *   "Events for licenses"), referenced from "Managing SaaS subscription events with Amazon
 *   EventBridge" (saas-eventbridge-integration): envelope `{version: "0", id, detail-type, source:
 *   "aws.agreement-marketplace", account, time, region: "us-east-1", resources:
 *   ["arn:aws:aws-marketplace::aws:agreement:<agreementId>"], detail}`.
 *   Purchase Agreement Created / Amended - Manufacturer (and - Proposer), detail:
 *   `{requestId, catalog: "AWSMarketplace", agreement: {id, intent (NEW | AMEND), status, acceptanceTime,
 *   startTime, endTime}, resaleAuthorization: {id}, acceptor: {accountId}, proposer: {accountId},
 *   offer: {id}}`. Purchase Agreement Ended: the same with `agreement: {id, status}` (example
 *   status CANCELLED). License Updated / License Deprovisioned - Manufacturer: `{requestId, catalog,
 *   agreement: {id}, product: {code, id}, license: {arn}, acceptor: {accountId}, proposer:
 *   {accountId}, offer: {id}}`.
 *   Uncertain, from the document itself: agreement events carry no product code/id and no license
 *   ARN (the document's examples have none); the resale-authorization id "would be null" for a
 *   direct (non-CPPO) offer, rendered here as `resaleAuthorization: {id: null}`; AWS's License
 *   example prints the license ARN without its leading `arn:` (`aws:license-manager:us-east-1:...`),
 *   while License Manager/ResolveCustomer ARNs are `arn:aws:license-manager::<acct>:license:l-...`
 *   (the default here); `account` is "<ISV's account id>" (111122223333 by default here). The
 *   seller examples show only intent NEW / AMEND and status ACTIVE / CANCELLED; other values are
 *   not enumerated there (the buyer guide's Acceptor events name intents NEW, REPLACE, RENEW and
 *   agreements ending as cancelled, expired, terminated, renewed or replaced) — pass them through
 *   `agreement` when a test needs one.
 *   A seller selling its own public or private offers is "both manufacturer and proposer"
 *   (saas-eventbridge-integration) and gets each agreement event twice, a `- Manufacturer` and a
 *   `- Proposer` copy, as two EventBridge events (two `id`s) about one change (`roleCopies`).
 *   Further documented detail-types (the seller guide's tables; `otherEvent`): `Purchase Agreement
 *   Advisory Issued|Resolved - Manufacturer`, `Purchase Agreement Ending - Proposer`
 *   (`daysBeforeEndTime` 180|120|90|60|30), `Purchase Agreement Renewal Terms Finalized|Renewal
 *   Upcoming - Proposer`, `Agreement Cancellation Request Pending Approval|Approved|Rejected|
 *   Cancelled|Validation Failed - Proposer`, `Purchase Agreement Billing Adjustment Completed|Failed
 *   - Proposer`. Uncertain: their `detail` beyond `requestId, catalog, agreement.id, acceptor,
 *   proposer` is not reproduced field by field here (the buyer guide's Acceptor copies show
 *   `agreementCancellationRequest` / `billingAdjustmentRequest` objects); `otherEvent` takes the
 *   extra fields a test needs. The Proposer copy's product fields are not shown for SaaS either.
 * - EventBridge User Guide, "API destinations" ("Headers included in requests to API
 *   destinations"): `User-Agent: Amazon/EventBridge/ApiDestinations`, `Content-Type:
 *   application/json; charset=utf-8`, `Range: bytes=0-1048575`, `Accept-Encoding: gzip,deflate`,
 *   plus the connection's authorization header (an API-key connection named `Authorization` with
 *   value `Bearer <secret>` here).
 */

x509.cryptoProvider.set(webcrypto as unknown as Crypto)

export type SnsMessageType = 'Notification' | 'SubscriptionConfirmation' | 'UnsubscribeConfirmation'

export interface SnsMessage {
  Type: SnsMessageType
  MessageId: string
  Token?: string
  TopicArn: string
  Subject?: string
  Message: string
  SubscribeURL?: string
  Timestamp: string
  SignatureVersion: '1' | '2'
  Signature: string
  SigningCertURL: string
  UnsubscribeURL?: string
}

export type MarketplaceAction = 'subscribe-success' | 'subscribe-fail' | 'unsubscribe-pending' | 'unsubscribe-success' | 'entitlement-updated'

export interface MarketplaceMessage {
  action: MarketplaceAction
  'customer-identifier': string
  'product-code': string
  'offer-identifier'?: string
  isFreeTrialTermPresent?: 'true' | 'false'
}

export type SaasDetailType =
  | 'Purchase Agreement Created - Manufacturer'
  | 'Purchase Agreement Amended - Manufacturer'
  | 'Purchase Agreement Ended - Manufacturer'
  | 'License Updated - Manufacturer'
  | 'License Deprovisioned - Manufacturer'
  | 'Purchase Agreement Created - Proposer'
  | 'Purchase Agreement Amended - Proposer'
  | 'Purchase Agreement Ended - Proposer'

/** The documented detail-types that change no entitlement (seller guide). */
export const OTHER_DETAIL_TYPES = [
  'Purchase Agreement Advisory Issued - Manufacturer',
  'Purchase Agreement Advisory Resolved - Manufacturer',
  'Purchase Agreement Ending - Proposer',
  'Purchase Agreement Renewal Terms Finalized - Proposer',
  'Purchase Agreement Renewal Upcoming - Proposer',
  'Agreement Cancellation Request Pending Approval - Proposer',
  'Agreement Cancellation Request Approved - Proposer',
  'Agreement Cancellation Request Rejected - Proposer',
  'Agreement Cancellation Request Cancelled - Proposer',
  'Agreement Cancellation Request Validation Failed - Proposer',
  'Purchase Agreement Billing Adjustment Completed - Proposer',
  'Purchase Agreement Billing Adjustment Failed - Proposer',
] as const
export type OtherDetailType = (typeof OTHER_DETAIL_TYPES)[number]

/**
 * A License Manager ARN (`arn:aws:license-manager::<acct>:license:l-…`) as AWS's License
 * event example prints it: `aws:license-manager:us-east-1:<acct>:l-…`.
 */
export function eventLicenseArn(arn: string): string {
  const match = /^arn:(aws[a-z-]*):license-manager:[a-z0-9-]*:(\d*):license:(l-[A-Za-z0-9]+)$/.exec(arn)
  return match ? `${match[1]}:license-manager:us-east-1:${match[2]}:${match[3]}` : arn
}

export interface EventBridgeEvent<D = Record<string, unknown>> {
  version: '0'
  id: string
  'detail-type': string
  source: string
  account: string
  time: string
  region: string
  resources: string[]
  detail: D
}

/** The identifiers AWS's SaaS events carry (document field in brackets). */
export interface SaasIds {
  /** `detail.agreement.id`, e.g. `agmt-4mwg1nevbokzw95eca5797ixs`. */
  agreementId: string
  /** `detail.acceptor.accountId`: the buyer's AWS account. */
  buyerAccountId: string
  /** `detail.offer.id`. */
  offerId: string
  /** `detail.proposer.accountId`; defaults to the seller account (a direct offer). */
  proposerAccountId?: string
  /** `detail.product.code` (License events). */
  productCode?: string
  /** `detail.product.id` (License events), e.g. `prod-qtwveEXAMPLE`. */
  productId?: string
  /** `detail.license.arn` (License events). */
  licenseArn?: string
  /** `detail.resaleAuthorization.id` (Agreement events); null for a direct offer. */
  resaleAuthorizationId?: string | null
  /** `detail.requestId`; a fresh UUID by default. */
  requestId?: string
}

export interface AgreementFields {
  intent?: string
  status?: string
  acceptanceTime?: string
  startTime?: string
  endTime?: string
}

export interface AgreementDetail {
  requestId: string
  catalog: 'AWSMarketplace'
  agreement: { id: string } & AgreementFields
  resaleAuthorization: { id: string | null }
  acceptor: { accountId: string }
  proposer: { accountId: string }
  offer: { id: string }
}

export interface LicenseDetail {
  requestId: string
  catalog: 'AWSMarketplace'
  agreement: { id: string }
  product: { code: string; id: string }
  license: { arn: string }
  acceptor: { accountId: string }
  proposer: { accountId: string }
  offer: { id: string }
}

export interface Confirmation {
  topicArn: string
  token: string
  subscriptionArn: string
  at: string
}

export type NotificationsRoute = 'cert' | 'confirm' | 'unsubscribe'

export interface NotificationsCall {
  route: NotificationsRoute | null
  method: string
  path: string
  query: Record<string, string>
}

interface SigningKey {
  privateKey: KeyObject
  pem: string
}

const SNS_XMLNS = 'http://sns.amazonaws.com/doc/2010-03-31/'
const DEFAULT_ACCOUNT = '123456789012'
const SELLER_ACCOUNT = '111122223333'

async function makeSigningKey(commonName: string): Promise<SigningKey> {
  const keys = (await webcrypto.subtle.generateKey(
    { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 },
    true,
    ['sign', 'verify'],
  )) as unknown as CryptoKeyPair
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString('hex'),
    name: `CN=${commonName}`,
    notBefore: new Date(Date.now() - 3600_000),
    notAfter: new Date(Date.now() + 30 * 24 * 3600_000),
    signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
    keys,
  })
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey as unknown as webcrypto.CryptoKey))
  return { privateKey: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }), pem: cert.toString('pem') }
}

/** SNS's string to sign: `key\nvalue\n` over the documented keys for the message's Type. */
export function snsStringToSign(message: Record<string, unknown>): string {
  const keys =
    message.Type === 'Notification'
      ? ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type']
      : ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type']
  let text = ''
  for (const key of keys) {
    const value = message[key]
    if (value === undefined || value === null) {
      if (key === 'Subject') continue
      throw new Error(`SNS message has no ${key}`)
    }
    text += `${key}\n${String(value)}\n`
  }
  return text
}

const xmlEscape = (value: string) => value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')

export async function createAwsNotificationsEmulator(
  options: {
    region?: string
    /**
     * Serve SNS under this path (`/sns`: certificates at `/sns/SimpleNotificationService-….pem`),
     * as a private mirror on a shared host would; `certPrefix` is then `<origin>/sns/`.
     */
    basePath?: string
    /** With a basePath, what answers the host's other paths (another tenant of the host); 404 otherwise. */
    otherPaths?: (request: Request) => Response | Promise<Response>
  } = {},
) {
  const region = options.region ?? 'us-east-1'
  const basePath = (options.basePath ?? '').replace(/\/+$/, '')
  const signing = await makeSigningKey('sns.amazonaws.com')
  const stranger = await makeSigningKey('sns.amazonaws.com')
  const certFile = `SimpleNotificationService-${randomBytes(16).toString('hex')}.pem`
  /** Tokens offered in SubscriptionConfirmation / UnsubscribeConfirmation messages. */
  const tokens = new Map<string, { topicArn: string }>()
  /** One subscription per topic (this endpoint), as SNS keeps it. */
  const subscriptionArns = new Map<string, string>()
  const confirmations: Confirmation[] = []
  const unsubscriptions: Array<{ subscriptionArn: string; at: string }> = []
  const calls: NotificationsCall[] = []
  const faults: Array<{ route: NotificationsRoute; status: number; remaining: number }> = []
  let baseUrl = ''

  const subscriptionArnFor = (topicArn: string) => {
    let arn = subscriptionArns.get(topicArn)
    if (!arn) {
      arn = `${topicArn}:${randomUUID()}`
      subscriptionArns.set(topicArn, arn)
    }
    return arn
  }
  const requireUrl = () => {
    if (!baseUrl) throw new Error('aws-notifications emulator: call listen() first (the SigningCertURL is its address)')
    return baseUrl
  }
  const xmlError = (status: number, code: string, message: string) =>
    new Response(
      `<ErrorResponse xmlns="${SNS_XMLNS}"><Error><Type>Sender</Type><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`,
      { status, headers: { 'content-type': 'text/xml' } },
    )
  const take = (route: NotificationsRoute) => {
    const fault = faults.find((f) => f.route === route && f.remaining > 0)
    if (!fault) return null
    fault.remaining--
    return xmlError(fault.status, fault.status >= 500 ? 'InternalError' : 'Throttling', 'injected fault')
  }

  /** Signs `message` and lays its keys out in the order of AWS's documented examples. */
  const sign = (message: Omit<SnsMessage, 'Signature'> & { Signature?: string }, key: SigningKey = signing): SnsMessage => {
    const algorithm = message.SignatureVersion === '1' ? 'RSA-SHA1' : message.SignatureVersion === '2' ? 'RSA-SHA256' : null
    if (!algorithm) throw new Error(`unknown SignatureVersion ${String(message.SignatureVersion)}`)
    const signer = createSign(algorithm)
    signer.update(snsStringToSign(message as unknown as Record<string, unknown>), 'utf8')
    const signed: Record<string, unknown> = { ...message, Signature: signer.sign(key.privateKey, 'base64') }
    const order = ['Type', 'MessageId', 'Token', 'TopicArn', 'Subject', 'Message', 'SubscribeURL', 'Timestamp', 'SignatureVersion', 'Signature', 'SigningCertURL', 'UnsubscribeURL']
    const out: Record<string, unknown> = {}
    for (const k of order) if (signed[k] !== undefined) out[k] = signed[k]
    for (const k of Object.keys(signed)) if (!(k in out)) out[k] = signed[k]
    return out as unknown as SnsMessage
  }

  const app = new Hono()

  app.get('/:file', (c) => {
    const url = new URL(c.req.url)
    calls.push({ route: 'cert', method: 'GET', path: url.pathname, query: Object.fromEntries(url.searchParams) })
    if (c.req.param('file') !== certFile) return c.text('Not Found', 404)
    const fault = take('cert')
    if (fault) return fault
    return c.body(signing.pem, 200, { 'content-type': 'application/x-x509-ca-cert' })
  })

  app.get('/', (c) => {
    const url = new URL(c.req.url)
    const query = Object.fromEntries(url.searchParams)
    const action = url.searchParams.get('Action')
    const route: NotificationsRoute | null = action === 'ConfirmSubscription' ? 'confirm' : action === 'Unsubscribe' ? 'unsubscribe' : null
    calls.push({ route, method: 'GET', path: url.pathname, query })
    if (!route) return xmlError(400, 'InvalidAction', `Could not find operation ${action ?? ''} for version 2010-03-31`)
    const fault = take(route)
    if (fault) return fault

    if (route === 'unsubscribe') {
      const subscriptionArn = url.searchParams.get('SubscriptionArn') ?? ''
      if (![...subscriptionArns.values()].includes(subscriptionArn)) return xmlError(404, 'NotFound', 'Subscription does not exist')
      unsubscriptions.push({ subscriptionArn, at: new Date().toISOString() })
      return c.body(
        `<UnsubscribeResponse xmlns="${SNS_XMLNS}"><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></UnsubscribeResponse>`,
        200,
        { 'content-type': 'text/xml' },
      )
    }

    const topicArn = url.searchParams.get('TopicArn') ?? ''
    const token = url.searchParams.get('Token') ?? ''
    if (!topicArn || !token) return xmlError(400, 'InvalidParameter', 'Invalid parameter: TopicArn or Token')
    const offered = tokens.get(token)
    const knownTopic = [...tokens.values()].some((entry) => entry.topicArn === topicArn)
    if (!knownTopic) return xmlError(404, 'NotFound', 'Topic does not exist')
    if (!offered || offered.topicArn !== topicArn) return xmlError(400, 'InvalidParameter', 'Invalid token')
    const subscriptionArn = subscriptionArnFor(topicArn)
    confirmations.push({ topicArn, token, subscriptionArn, at: new Date().toISOString() })
    return c.body(
      `<ConfirmSubscriptionResponse xmlns="${SNS_XMLNS}"><ConfirmSubscriptionResult><SubscriptionArn>${xmlEscape(subscriptionArn)}</SubscriptionArn></ConfirmSubscriptionResult><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></ConfirmSubscriptionResponse>`,
      200,
      { 'content-type': 'text/xml' },
    )
  })

  interface SignOptions {
    signatureVersion?: 1 | 2
    messageId?: string
    timestamp?: string
    /** Sign with a key whose certificate is not the one served at SigningCertURL. */
    signWith?: 'emulator' | 'stranger'
    /** Point SigningCertURL elsewhere (e.g. an untrusted host); the signature stays this emulator's. */
    signingCertUrl?: string
  }

  const confirmationMessage = (type: 'SubscriptionConfirmation' | 'UnsubscribeConfirmation', topicArn: string, opts: SignOptions & { subscribeUrl?: string; token?: string }) => {
    const url = requireUrl()
    const token = opts.token ?? randomBytes(128).toString('hex')
    tokens.set(token, { topicArn })
    const message =
      type === 'SubscriptionConfirmation'
        ? `You have chosen to subscribe to the topic ${topicArn}.\nTo confirm the subscription, visit the SubscribeURL included in this message.`
        : `You have chosen to deactivate subscription ${subscriptionArnFor(topicArn)}.\nTo cancel this operation and restore the subscription, visit the SubscribeURL included in this message.`
    return sign(
      {
        Type: type,
        MessageId: opts.messageId ?? randomUUID(),
        Token: token,
        TopicArn: topicArn,
        Message: message,
        SubscribeURL: opts.subscribeUrl ?? `${url}/?Action=ConfirmSubscription&TopicArn=${topicArn}&Token=${token}`,
        Timestamp: opts.timestamp ?? new Date().toISOString(),
        SignatureVersion: String(opts.signatureVersion ?? 1) as '1' | '2',
        SigningCertURL: opts.signingCertUrl ?? `${url}/${certFile}`,
      },
      opts.signWith === 'stranger' ? stranger : signing,
    )
  }

  /** An EventBridge event from AWS Marketplace (source aws.agreement-marketplace, us-east-1). */
  function eventBridgeEvent<D extends object>(
    detailType: SaasDetailType | string,
    detail: D,
    opts: { id?: string; time?: string; account?: string; resources?: string[] } = {},
  ): EventBridgeEvent<D> {
    const agreementId = (detail as { agreement?: { id?: string } }).agreement?.id
    return {
      version: '0',
      id: opts.id ?? randomUUID(),
      'detail-type': detailType,
      source: 'aws.agreement-marketplace',
      account: opts.account ?? SELLER_ACCOUNT,
      time: opts.time ?? new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      region: 'us-east-1',
      resources: opts.resources ?? (agreementId ? [`arn:aws:aws-marketplace::aws:agreement:${agreementId}`] : []),
      detail,
    }
  }
  /** `detail` of Purchase Agreement Created / Amended / Ended (Manufacturer and Proposer alike). */
  function agreementDetail(kind: 'created' | 'amended' | 'ended', ids: SaasIds, agreement: AgreementFields = {}): AgreementDetail {
    const now = new Date()
    const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z')
    const fields: AgreementFields =
      kind === 'ended'
        ? { status: agreement.status ?? 'CANCELLED', ...agreement }
        : {
            intent: kind === 'created' ? 'NEW' : 'AMEND',
            status: 'ACTIVE',
            acceptanceTime: iso(now),
            startTime: iso(now),
            endTime: iso(new Date(now.getTime() + 365 * 24 * 3600_000)),
            ...agreement,
          }
    return {
      requestId: ids.requestId ?? randomUUID(),
      catalog: 'AWSMarketplace',
      agreement: { id: ids.agreementId, ...fields },
      resaleAuthorization: { id: ids.resaleAuthorizationId ?? null },
      acceptor: { accountId: ids.buyerAccountId },
      proposer: { accountId: ids.proposerAccountId ?? SELLER_ACCOUNT },
      offer: { id: ids.offerId },
    }
  }
  /** `detail` of License Updated / License Deprovisioned - Manufacturer. */
  function licenseDetail(ids: SaasIds & { productCode: string }): LicenseDetail {
    return {
      requestId: ids.requestId ?? randomUUID(),
      catalog: 'AWSMarketplace',
      agreement: { id: ids.agreementId },
      product: { code: ids.productCode, id: ids.productId ?? `prod-${randomBytes(6).toString('hex')}` },
      license: { arn: ids.licenseArn ?? `arn:aws:license-manager::${ids.proposerAccountId ?? SELLER_ACCOUNT}:license:l-${randomBytes(16).toString('hex')}` },
      acceptor: { accountId: ids.buyerAccountId },
      proposer: { accountId: ids.proposerAccountId ?? SELLER_ACCOUNT },
      offer: { id: ids.offerId },
    }
  }
  return {
    app,
    region,
    /** Every ConfirmSubscription served (a repeated visit is recorded again). */
    confirmations,
    unsubscriptions,
    calls,
    /** The PEM served at SigningCertURL. */
    get certificatePem() {
      return signing.pem
    },
    /** The PEM of the stranger key's certificate (never served). */
    get strangerCertificatePem() {
      return stranger.pem
    },
    /** The `SigningCertURL` of every message signed by this emulator. */
    get certUrl() {
      return `${requireUrl()}/${certFile}`
    },
    /** What the broker gets as AWS_SNS_TRUSTED_CERT_PREFIX. */
    get certPrefix() {
      return `${requireUrl()}/`
    },
    /** `arn:aws:sns:<region>:<account>:aws-mp-<kind>-notification-<productCode>`. */
    topicArn(kind: 'subscription' | 'entitlement', productCode: string, account: string = DEFAULT_ACCOUNT) {
      return `arn:aws:sns:${region}:${account}:aws-mp-${kind}-notification-${productCode}`
    },
    /** The subscription ARN SNS keeps for this endpoint on a topic (x-amz-sns-subscription-arn). */
    subscriptionArn(topicArn: string) {
      return subscriptionArnFor(topicArn)
    },
    /** A signed SNS Notification; an object `message` is sent as its JSON text. */
    notification(topicArn: string, message: object | string, opts: SignOptions & { subject?: string } = {}): SnsMessage {
      const url = requireUrl()
      const body = {
        Type: 'Notification' as const,
        MessageId: opts.messageId ?? randomUUID(),
        TopicArn: topicArn,
        ...(opts.subject !== undefined ? { Subject: opts.subject } : {}),
        Message: typeof message === 'string' ? message : JSON.stringify(message),
        Timestamp: opts.timestamp ?? new Date().toISOString(),
        SignatureVersion: String(opts.signatureVersion ?? 1) as '1' | '2',
        SigningCertURL: opts.signingCertUrl ?? `${url}/${certFile}`,
        UnsubscribeURL: `${url}/?Action=Unsubscribe&SubscriptionArn=${subscriptionArnFor(topicArn)}`,
      }
      return sign(body, opts.signWith === 'stranger' ? stranger : signing)
    },
    /** A signed SubscriptionConfirmation whose SubscribeURL points at this emulator. */
    subscriptionConfirmation(topicArn: string, opts: SignOptions & { subscribeUrl?: string; token?: string } = {}): SnsMessage {
      return confirmationMessage('SubscriptionConfirmation', topicArn, opts)
    },
    /** A signed UnsubscribeConfirmation (its SubscribeURL re-confirms). */
    unsubscribeConfirmation(topicArn: string, opts: SignOptions & { subscribeUrl?: string; token?: string } = {}): SnsMessage {
      return confirmationMessage('UnsubscribeConfirmation', topicArn, opts)
    },
    /** Re-sign a message after editing it (e.g. another TopicArn, still validly signed). */
    resign(snsMessage: SnsMessage): SnsMessage {
      return sign(snsMessage)
    },
    /** The same message signed with a key whose certificate is NOT the one at SigningCertURL. */
    forgeWithStrangerKey(snsMessage: SnsMessage): SnsMessage {
      return sign(snsMessage, stranger)
    },
    /** The Message object AWS Marketplace publishes on its SNS topics (keys as AWS spells them). */
    marketplaceMessage(
      action: MarketplaceAction,
      fields: { customerIdentifier: string; productCode: string; offerIdentifier?: string; isFreeTrialTermPresent?: boolean | 'true' | 'false' },
    ): MarketplaceMessage {
      if (action === 'entitlement-updated') {
        return { action, 'customer-identifier': fields.customerIdentifier, 'product-code': fields.productCode }
      }
      const withOffer = action === 'subscribe-success' || action === 'subscribe-fail'
      return {
        action,
        'customer-identifier': fields.customerIdentifier,
        'product-code': fields.productCode,
        ...(withOffer && fields.offerIdentifier !== undefined ? { 'offer-identifier': fields.offerIdentifier } : {}),
        isFreeTrialTermPresent: String(fields.isFreeTrialTermPresent ?? false) as 'true' | 'false',
      }
    },
    /** POST a message to an HTTP(S) subscriber as SNS does; `body` replaces the JSON text (forgeries). */
    async deliver(url: string, snsMessage: object, opts: { body?: string } = {}): Promise<Response> {
      const message = snsMessage as Partial<SnsMessage>
      const headers: Record<string, string> = {
        'content-type': 'text/plain; charset=UTF-8',
        'user-agent': 'Amazon Simple Notification Service Agent',
      }
      if (message.Type) headers['x-amz-sns-message-type'] = message.Type
      if (message.MessageId) headers['x-amz-sns-message-id'] = message.MessageId
      if (message.TopicArn) {
        headers['x-amz-sns-topic-arn'] = message.TopicArn
        if (message.Type !== 'SubscriptionConfirmation') headers['x-amz-sns-subscription-arn'] = subscriptionArnFor(message.TopicArn)
      }
      return fetch(url, { method: 'POST', headers, body: opts.body ?? JSON.stringify(snsMessage), redirect: 'manual' })
    },
    eventBridgeEvent,
    agreementDetail,
    licenseDetail,
    /** The full event for one of the SaaS detail-types, its `detail` built from `ids`. */
    saasEvent(
      detailType: SaasDetailType,
      ids: SaasIds,
      opts: { id?: string; time?: string; account?: string; agreement?: AgreementFields } = {},
    ): EventBridgeEvent<AgreementDetail | LicenseDetail> {
      if (detailType.startsWith('License ') && ids.productCode === undefined) throw new Error(`${detailType} needs a productCode`)
      const detail = detailType.startsWith('License ')
        ? licenseDetail({ ...ids, productCode: ids.productCode! })
        : agreementDetail(detailType.includes('Created') ? 'created' : detailType.includes('Amended') ? 'amended' : 'ended', ids, opts.agreement)
      return eventBridgeEvent<AgreementDetail | LicenseDetail>(detailType, detail, opts)
    },
    /**
     * The two copies a seller that is both manufacturer and proposer receives for one agreement
     * change: the same detail and time, two EventBridge ids.
     */
    roleCopies(kind: 'Purchase Agreement Created' | 'Purchase Agreement Amended' | 'Purchase Agreement Ended', ids: SaasIds, opts: { time?: string; agreement?: AgreementFields } = {}) {
      const time = opts.time ?? new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')
      const detail = agreementDetail(kind === 'Purchase Agreement Created' ? 'created' : kind === 'Purchase Agreement Amended' ? 'amended' : 'ended', ids, opts.agreement)
      return (['Manufacturer', 'Proposer'] as const).map((role) => eventBridgeEvent<AgreementDetail>(`${kind} - ${role}`, detail, { time }))
    },
    /** One of the documented detail-types that change no entitlement; `extra` joins its detail. */
    otherEvent(detailType: OtherDetailType | string, ids: SaasIds, extra: Record<string, unknown> = {}) {
      const detail = {
        requestId: ids.requestId ?? randomUUID(),
        catalog: 'AWSMarketplace' as const,
        agreement: { id: ids.agreementId },
        acceptor: { accountId: ids.buyerAccountId },
        proposer: { accountId: ids.proposerAccountId ?? SELLER_ACCOUNT },
        offer: { id: ids.offerId },
        ...(detailType.startsWith('Purchase Agreement Ending') ? { daysBeforeEndTime: 30 } : {}),
        ...extra,
      }
      return eventBridgeEvent(detailType, detail)
    },
    /** POST an event as an EventBridge API destination with an API-key connection `Authorization: Bearer <secret>`. */
    async deliverEvent(url: string, event: object, secret: string | null, opts: { body?: string } = {}): Promise<Response> {
      const headers: Record<string, string> = {
        'content-type': 'application/json; charset=utf-8',
        'user-agent': 'Amazon/EventBridge/ApiDestinations',
        range: 'bytes=0-1048575',
        'accept-encoding': 'gzip,deflate',
      }
      if (secret !== null) headers.authorization = `Bearer ${secret}`
      return fetch(url, { method: 'POST', headers, body: opts.body ?? JSON.stringify(event), redirect: 'manual' })
    },
    failNext(route: NotificationsRoute, status: number, times = 1) {
      faults.push({ route, status, remaining: times })
    },
    callsTo(route: NotificationsRoute) {
      return calls.filter((call) => call.route === route)
    },
    async listen(): Promise<{ url: string; close: () => Promise<void> }> {
      const serveAt = (request: Request) => {
        if (!basePath) return app.fetch(request)
        const url = new URL(request.url)
        if (url.pathname !== basePath && !url.pathname.startsWith(`${basePath}/`)) return options.otherPaths?.(request) ?? new Response('Not Found', { status: 404 })
        url.pathname = url.pathname.slice(basePath.length) || '/'
        return app.fetch(new Request(url, request))
      }
      const listening = await listenOnLoopback(serveAt)
      baseUrl = `${listening.url}${basePath}`
      return listening
    },
  }
}

export type AwsNotificationsEmulator = Awaited<ReturnType<typeof createAwsNotificationsEmulator>>
