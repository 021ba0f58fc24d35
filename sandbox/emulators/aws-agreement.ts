import { Hono } from 'hono'
import { randomBytes, randomUUID } from 'node:crypto'
import { type Credential, verifySignature } from './aws'
import { listenOnLoopback } from './listen'

/**
 * AWS Marketplace Agreement API emulator (service `AWSMPCommerceService_v20200301`), written from
 * the API reference ("SearchAgreements", "AgreementViewSummary", "Filter"), not from the broker.
 *
 * - awsJson 1.0: `POST /`, `Content-Type: application/x-amz-json-1.0`, `X-Amz-Target:
 *   AWSMPCommerceService_v20200301.SearchAgreements`, SigV4 with signing name `aws-marketplace`;
 *   errors are `{"__type", "message"}` (AccessDeniedException, ValidationException,
 *   ThrottlingException, InternalServerException).
 * - SearchAgreements `{catalog?, filters?: [{name, values}], sort?, maxResults?, nextToken?}` ->
 *   `{agreementViewSummaries: [{agreementId, acceptanceTime, startTime, endTime, lastUpdateTime
 *   (epoch seconds), agreementType, acceptor: {accountId}, proposer: {accountId}, proposalSummary:
 *   {resources: [{id, type}], offerId}, status, entitlements: [{licenseArn}], initialAgreementId}],
 *   nextToken?}`. "A proposer can use any combination of the preceding filters along with
 *   AgreementType, which is required"; an acceptor only the documented combinations (AgreementType
 *   with Status, EndTime, ResourceIdentifier, ResourceType, OfferId or OfferSetId). `PartyType`
 *   says which side the caller is: only agreements where the caller's account is that party are
 *   searched. The caller's account is the one its access key belongs to (`addCredentials`).
 * - Filters: ResourceIdentifier, ResourceType, PartyType, AcceptorAccountId, OfferId, Status,
 *   AgreementType, InitialAgreementId, LicenseArn (the Before/After*Time filters take an ISO date).
 *   Uncertain, from the reference itself: the page size when `maxResults` is absent is not stated
 *   (10 here, so callers meet `nextToken`), nor whether a PartyType is required (here: yes).
 */

export interface EmulatedAgreement {
  agreementId: string
  acceptorAccountId: string
  /** Defaults to the seller account (a direct offer); a channel partner's account for CPPO. */
  proposerAccountId?: string
  offerId?: string
  productId?: string
  /** `SaaSProduct` by default. */
  resourceType?: string
  status?: 'ACTIVE' | 'ARCHIVED' | 'CANCELLED' | 'EXPIRED' | 'RENEWED' | 'REPLACED' | 'ROLLED_BACK' | 'SUPERSEDED' | 'TERMINATED'
  licenseArns?: string[]
  initialAgreementId?: string
  /** Epoch seconds. */
  startTime?: number
  endTime?: number
}

export interface AgreementCall {
  target: string
  accessKeyId: string | null
  service: string | null
  region: string | null
  input: Record<string, unknown> | null
}

const TARGET_PREFIX = 'AWSMPCommerceService_v20200301.'
const SELLER_ACCOUNT = '111122223333'
const PAGE = 10
const ACCEPTOR_FILTERS = ['ResourceIdentifier', 'ResourceType', 'OfferId', 'OfferSetId']

export function createAwsAgreementEmulator(options: { sellerAccountId?: string } = {}) {
  const credentials = new Map<string, Credential>()
  const accounts = new Map<string, string>()
  const agreements: EmulatedAgreement[] = []
  const calls: AgreementCall[] = []
  const faults: Array<{ status: number; type: string; remaining: number }> = []
  const sellerAccountId = options.sellerAccountId ?? SELLER_ACCOUNT

  const app = new Hono()
  app.post('/', async (c) => {
    const body = await c.req.text()
    const target = c.req.header('x-amz-target') ?? ''
    const auth = verifySignature(c.req.raw, body, credentials)
    let input: Record<string, unknown> | null = null
    try {
      const parsed = JSON.parse(body || '{}') as unknown
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) input = parsed as Record<string, unknown>
    } catch {
      input = null
    }
    calls.push({ target: target.replace(TARGET_PREFIX, ''), accessKeyId: auth.accessKeyId, service: auth.service, region: auth.region, input })
    const error = (status: number, type: string, message: string) =>
      c.json({ __type: type, message }, status as 400, { 'x-amzn-errortype': type, 'x-amzn-requestid': randomUUID() })

    if (!auth.ok) return error(403, auth.code, auth.message)
    if (auth.service !== 'aws-marketplace') return error(403, 'InvalidSignatureException', 'Credential should be scoped to correct service: aws-marketplace.')
    const fault = faults.find((f) => f.remaining > 0)
    if (fault) {
      fault.remaining--
      return error(fault.status, fault.type, 'injected fault')
    }
    if ((c.req.header('content-type') ?? '') !== 'application/x-amz-json-1.0') return error(400, 'SerializationException', 'Expected application/x-amz-json-1.0.')
    if (!input) return error(400, 'SerializationException', 'Malformed JSON.')
    if (target !== `${TARGET_PREFIX}SearchAgreements`) return error(400, 'UnknownOperationException', `Unknown operation ${target}`)

    const invalid = (message: string) => error(400, 'ValidationException', message)
    if (input.catalog !== undefined && input.catalog !== 'AWSMarketplace') return invalid('catalog must be AWSMarketplace.')
    const filters = new Map<string, string[]>()
    for (const filter of (Array.isArray(input.filters) ? input.filters : []) as Array<{ name?: unknown; values?: unknown }>) {
      if (typeof filter?.name !== 'string' || !Array.isArray(filter.values) || filter.values.some((v) => typeof v !== 'string')) return invalid('Each filter needs a name and string values.')
      filters.set(filter.name, filter.values as string[])
    }
    const partyType = filters.get('PartyType')?.[0]
    if (partyType !== 'Proposer' && partyType !== 'Acceptor') return invalid('PartyType must be Proposer or Acceptor.')
    if (filters.get('AgreementType')?.[0] !== 'PurchaseAgreement') return invalid('AgreementType is required (PurchaseAgreement).')
    if (partyType === 'Acceptor') {
      // AgreementType [+ one of ACCEPTOR_FILTERS] [+ Status, except with ResourceType] [+ EndTime].
      const others = [...filters.keys()].filter((name) => !['PartyType', 'AgreementType', 'BeforeEndTime', 'AfterEndTime', 'Status'].includes(name))
      if (others.length > 1 || !others.every((n) => ACCEPTOR_FILTERS.includes(n)) || (others[0] === 'ResourceType' && filters.has('Status'))) {
        return invalid('The filter combination is not supported for PartyType Acceptor.')
      }
    }
    const caller = accounts.get(auth.accessKeyId) ?? sellerAccountId
    const maxResults = input.maxResults === undefined ? PAGE : Number(input.maxResults)
    if (!Number.isInteger(maxResults) || maxResults < 1 || maxResults > 50) return invalid('maxResults must be between 1 and 50.')
    const offset = input.nextToken === undefined ? 0 : Number(input.nextToken)
    if (!Number.isInteger(offset) || offset < 0) return invalid('nextToken is invalid.')

    const has = (name: string, value: string | undefined) => !filters.has(name) || (value !== undefined && filters.get(name)!.includes(value))
    const time = (name: string, at: number | undefined, before: boolean) => {
      const bound = filters.get(name)?.[0]
      if (bound === undefined) return true
      const ms = Date.parse(bound)
      return at !== undefined && (before ? at * 1000 < ms : at * 1000 > ms)
    }
    const matches = agreements.filter((a) => {
      const proposer = a.proposerAccountId ?? sellerAccountId
      return (
        (partyType === 'Proposer' ? proposer === caller : a.acceptorAccountId === caller) &&
        has('AcceptorAccountId', a.acceptorAccountId) &&
        has('OfferId', a.offerId) &&
        has('Status', a.status ?? 'ACTIVE') &&
        has('ResourceIdentifier', a.productId) &&
        has('ResourceType', a.resourceType ?? 'SaaSProduct') &&
        has('InitialAgreementId', a.initialAgreementId ?? a.agreementId) &&
        (!filters.has('LicenseArn') || (a.licenseArns ?? []).some((arn) => filters.get('LicenseArn')!.includes(arn))) &&
        time('BeforeEndTime', a.endTime, true) &&
        time('AfterEndTime', a.endTime, false) &&
        time('BeforeStartTime', a.startTime, true) &&
        time('AfterStartTime', a.startTime, false)
      )
    })
    const page = matches.slice(offset, offset + maxResults)
    const next = offset + maxResults < matches.length ? String(offset + maxResults) : undefined
    return c.json({ agreementViewSummaries: page.map(summary), ...(next ? { nextToken: next } : {}) })
  })

  function summary(a: EmulatedAgreement) {
    const start = a.startTime ?? Math.floor(Date.now() / 1000)
    return {
      agreementId: a.agreementId,
      acceptanceTime: start,
      startTime: start,
      ...(a.endTime !== undefined ? { endTime: a.endTime } : {}),
      lastUpdateTime: start,
      agreementType: 'PurchaseAgreement',
      acceptor: { accountId: a.acceptorAccountId },
      proposer: { accountId: a.proposerAccountId ?? sellerAccountId },
      proposalSummary: { resources: a.productId ? [{ id: a.productId, type: a.resourceType ?? 'SaaSProduct' }] : [], offerId: a.offerId ?? `offer-${randomBytes(6).toString('hex')}` },
      status: a.status ?? 'ACTIVE',
      entitlements: (a.licenseArns ?? []).map((licenseArn) => ({ licenseArn })),
      initialAgreementId: a.initialAgreementId ?? a.agreementId,
    }
  }

  return {
    app,
    calls,
    agreements,
    sellerAccountId,
    /** An access key of `accountId` (the seller's account by default). */
    addCredentials(accessKeyId: string, secretAccessKey: string, accountId: string = sellerAccountId) {
      credentials.set(accessKeyId, { secretAccessKey })
      accounts.set(accessKeyId, accountId)
    },
    addAgreement(agreement: EmulatedAgreement) {
      agreements.push(agreement)
      return agreement
    },
    /** The next `times` calls fail with `type` (e.g. 500 InternalServerException, 400 ThrottlingException). */
    failNext(status: number, type: string, times = 1) {
      faults.push({ status, type, remaining: times })
    },
    callsTo(operation: 'SearchAgreements') {
      return calls.filter((call) => call.target === operation)
    },
    async listen(): Promise<{ url: string; close: () => Promise<void> }> {
      return listenOnLoopback(app.fetch)
    },
  }
}

export type AwsAgreementEmulator = ReturnType<typeof createAwsAgreementEmulator>
