import { Hono } from 'hono'
import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto'
import { listenOnLoopback } from './listen'

/**
 * AWS emulator: AWS Marketplace Metering (ResolveCustomer, BatchMeterUsage), the Marketplace
 * Entitlement Service (GetEntitlements) and STS (AssumeRole), written from AWS's API references
 * and the Signature Version 4 documentation, not from the broker's client.
 *
 * - Metering and Entitlement speak awsJson 1.1: `POST /`, `Content-Type:
 *   application/x-amz-json-1.1`, `X-Amz-Target: AWSMPMeteringService.ResolveCustomer` or
 *   `AWSMPEntitlementService.GetEntitlements` or `AWSMPMeteringService.BatchMeterUsage`; errors
 *   are `{"__type", "message"}`.
 * - BatchMeterUsage (AWS Marketplace API Reference pages "BatchMeterUsage", "UsageRecord",
 *   "UsageRecordResult"): `{ProductCode?, UsageRecords: [{Timestamp (epoch s), CustomerIdentifier |
 *   CustomerAWSAccountId (mutually exclusive), LicenseArn?, Dimension, Quantity? (integer
 *   0..2147483647, default 0), UsageAllocations?}]}`, 0..25 records. The newer form is
 *   `CustomerAWSAccountId` + `LicenseArn` without `ProductCode`; the older `ProductCode` +
 *   `CustomerIdentifier` still works. Whole-request errors: over 25 records or a field constraint
 *   broken -> 400 ValidationException; unknown ProductCode (or none while a record has no
 *   LicenseArn) -> InvalidProductCodeException; a LicenseArn unknown, not the customer's or of
 *   another product -> InvalidLicenseException; a dimension the product did not declare (only when
 *   declared with `addProduct`) -> InvalidUsageDimensionException; allocations not summing to
 *   Quantity -> InvalidUsageAllocationsException, over 5 tags -> InvalidTagException; any Timestamp
 *   6 hours or more in the past, or in the future -> TimestampOutOfBoundsException (AWS: the whole
 *   batch is not processed). Per-record `Status`: `Success`; `CustomerNotSubscribed` (unknown
 *   customer, not a customer of this product, or `setSubscribed(..., false)`); `DuplicateRecord`
 *   (AWS: an earlier metered record had the same customer, dimension and time but a different
 *   quantity; "time" is taken here as the UTC hour). The same record again is idempotent: `Success`
 *   with the first MeteringRecordId, metered once. `leaveUnprocessedNext` puts records in
 *   `UnprocessedRecords` (unmetered) on the next call. AWS: "Sending metering records with both
 *   ProductCode and LicenseArn for the same customer within the same hour will result in
 *   duplicate billing": the product form (request `ProductCode`) and the license form
 *   (`CustomerAWSAccountId` + `LicenseArn`, no `ProductCode`) are metered apart, so one hour in
 *   both forms is two metered records; each records its `form`. After a license ends
 *   (`endLicense`), usage from before its end is taken for one more hour, then CustomerNotSubscribed.
 * - Products integrated under concurrent agreements (`addProduct(code, dims, {concurrentAgreements:
 *   true})`; ResolveCustomer reference: "For new SaaS product integrations, the CustomerIdentifier
 *   field is not populated"): ResolveCustomer answers `CustomerAWSAccountId`, `LicenseArn` and
 *   `ProductCode` only, every purchase is its own license (one account may hold several at once),
 *   GetEntitlements shows no CustomerIdentifier, and only the license form meters (a record
 *   without a LicenseArn is CustomerNotSubscribed: "CustomerIdentifier is not supported for new
 *   SaaS product integrations").
 * - GetEntitlements filters (GetEntitlementsRequest.Filter): `CUSTOMER_IDENTIFIER`,
 *   `CUSTOMER_AWS_ACCOUNT_ID` (mutually exclusive: InvalidParameterException), `LICENSE_ARN`,
 *   `DIMENSION`; values of one key are unioned, keys intersected.
 * - STS speaks the query protocol: a form `Action=AssumeRole&Version=2011-06-15&...`, XML back.
 *   `GetCallerIdentity` (STS API reference; no permission needed) answers the caller's `Arn`,
 *   `UserId` and `Account`: an IAM user's ARN and `AIDA…` id for a static key, the session's
 *   `arn:aws:sts::<account>:assumed-role/<role>/<session>` and `AROA…:<session>` for assumed-role
 *   credentials. An unknown access key is 403 `InvalidClientTokenId`, a wrong secret 403
 *   `SignatureDoesNotMatch` (the query protocol's names for them).
 * - Every request must carry a valid SigV4 signature by a configured access key (and its
 *   session token, for assumed-role credentials): else 403 UnrecognizedClientException,
 *   InvalidSignatureException or (STS) SignatureDoesNotMatch.
 */

export interface EmulatedCustomer {
  /** AWS's handle for the customer; not shown to the seller for a concurrent-agreements product. */
  CustomerIdentifier: string
  CustomerAWSAccountId: string
  ProductCode: string
  LicenseArn?: string
}

export interface EmulatedEntitlement {
  ProductCode: string
  Dimension: string
  /** Given one of CustomerIdentifier and LicenseArn, `addEntitlement` fills in the others from the customer. */
  CustomerIdentifier?: string
  CustomerAWSAccountId?: string
  LicenseArn?: string
  Value: { IntegerValue?: number; DoubleValue?: number; BooleanValue?: boolean; StringValue?: string }
  /** Epoch seconds (awsJson timestamps). */
  ExpirationDate?: number
}

export interface AwsCall {
  target: string
  accessKeyId: string | null
  service: string | null
  region: string | null
  body: string
}

export type AwsRoute = 'ResolveCustomer' | 'GetEntitlements' | 'AssumeRole' | 'GetCallerIdentity' | 'BatchMeterUsage'

/** A UsageRecord as awsJson carries it (Timestamp in epoch seconds). */
export interface AwsUsageRecord {
  Timestamp: number
  CustomerIdentifier?: string
  CustomerAWSAccountId?: string
  LicenseArn?: string
  Dimension: string
  Quantity?: number
  UsageAllocations?: Array<{ AllocatedUsageQuantity: number; Tags?: Array<{ Key: string; Value: string }> }>
}

/** A record BatchMeterUsage answered `Success` for (an idempotent replay is not added again). */
export interface AwsMeteringRecord {
  MeteringRecordId: string
  ProductCode: string
  /** The customer the record resolved to, whichever identifier the request used. */
  CustomerIdentifier: string
  CustomerAWSAccountId: string
  LicenseArn?: string
  Dimension: string
  Quantity: number
  /** Epoch seconds, as sent. */
  Timestamp: number
  UsageAllocations?: AwsUsageRecord['UsageAllocations']
  /** The usage record exactly as received. */
  UsageRecord: AwsUsageRecord
  /**
   * How the request identified the customer: `product` (request ProductCode: the record's
   * CustomerIdentifier or account) or `license` (the record's CustomerAWSAccountId + LicenseArn,
   * no ProductCode). AWS meters the two apart: one customer's hour in both is billed twice.
   */
  form: 'product' | 'license'
  receivedAt: number
}

export type AwsUsageRecordStatus = 'Success' | 'CustomerNotSubscribed' | 'DuplicateRecord'

/** Who a credential is, as GetCallerIdentity answers it. */
export interface CallerIdentity {
  arn: string
  userId: string
  account: string
}

export interface Credential {
  secretAccessKey: string
  sessionToken?: string
  expiresAt?: number
  /** Set by this emulator (the others that share `verifySignature` have no STS). */
  identity?: CallerIdentity
}

/** The account of an IAM ARN (`arn:aws:iam::<account>:…`). */
const accountOf = (arn: string) => arn.split(':')[4] ?? ''
/** IAM unique ids (IAM User Guide, "Unique identifiers"): a four-letter prefix by kind, then 17 characters. */
const uniqueId = (prefix: 'AIDA' | 'AROA') => `${prefix}${randomBytes(12).toString('hex').toUpperCase().slice(0, 17)}`

export function createAwsEmulator() {
  const credentials = new Map<string, Credential>()
  const roles = new Map<string, { externalId?: string; trusted: Set<string>; roleId: string }>()
  const tokens = new Map<string, { customer: EmulatedCustomer; expiresAt: number }>()
  const entitlements: EmulatedEntitlement[] = []
  const calls: AwsCall[] = []
  const faults: Array<{ route: AwsRoute; status: number; type: string; remaining: number }> = []
  const customers: Array<{ customer: EmulatedCustomer; subscribed: boolean; endedAt?: number }> = []
  const products = new Map<string, { dimensions?: Set<string>; concurrentAgreements?: boolean }>()
  const concurrent = (productCode: string) => products.get(productCode)?.concurrentAgreements === true
  const meteringRecords: AwsMeteringRecord[] = []
  const meteredByHour = new Map<string, AwsMeteringRecord>()
  const unprocessedPlans: Array<(record: AwsUsageRecord, index: number, count: number) => boolean> = []
  const registerCustomer = (customer: EmulatedCustomer) => {
    if (!customers.some((entry) => entry.customer === customer)) customers.push({ customer, subscribed: true })
    if (!products.has(customer.ProductCode)) products.set(customer.ProductCode, {})
  }
  const matchesCustomer = (target: Partial<EmulatedCustomer>, customer: EmulatedCustomer) =>
    (target.CustomerIdentifier === undefined || target.CustomerIdentifier === customer.CustomerIdentifier) &&
    (target.CustomerAWSAccountId === undefined || target.CustomerAWSAccountId === customer.CustomerAWSAccountId) &&
    (target.LicenseArn === undefined || target.LicenseArn === customer.LicenseArn) &&
    (target.ProductCode === undefined || target.ProductCode === customer.ProductCode)

  const app = new Hono()

  app.post('/', async (c) => {
    const body = await c.req.text()
    const target = c.req.header('x-amz-target') ?? ''
    const form = (c.req.header('content-type') ?? '').startsWith('application/x-www-form-urlencoded') ? new URLSearchParams(body) : null
    const route = (form ? form.get('Action') : target.split('.')[1]) ?? ''
    const auth = verifySignature(c.req.raw, body, credentials)
    calls.push({ target: route, accessKeyId: auth.accessKeyId, service: auth.service, region: auth.region, body })

    const jsonError = (status: number, type: string, message: string) =>
      c.json({ __type: type, message }, status as 400, { 'x-amzn-errortype': type, 'x-amzn-requestid': randomUUID() })
    const xmlError = (status: number, code: string, message: string) =>
      c.body(
        `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`,
        status as 400,
        { 'content-type': 'text/xml' },
      )

    if (!auth.ok) {
      return form ? xmlError(403, auth.code === 'UnrecognizedClientException' ? 'InvalidClientTokenId' : 'SignatureDoesNotMatch', auth.message) : jsonError(403, auth.code, auth.message)
    }
    const fault = faults.find((f) => f.route === route && f.remaining > 0)
    if (fault) {
      fault.remaining--
      return form ? xmlError(fault.status, fault.type, 'injected fault') : jsonError(fault.status, fault.type, 'injected fault')
    }

    if (form) {
      if (form.get('Version') !== '2011-06-15') return xmlError(400, 'InvalidAction', 'Unsupported version.')
      if (auth.service !== 'sts') return xmlError(403, 'SignatureDoesNotMatch', 'Credential should be scoped to correct service: sts.')
      const requestId = `<ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata>`
      const action = form.get('Action')
      if (action === 'GetCallerIdentity') {
        // No permission is needed (STS API reference): any caller whose signature holds learns who it is.
        const who = credentials.get(auth.accessKeyId)!.identity!
        return c.body(
          `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>${who.arn}</Arn><UserId>${who.userId}</UserId><Account>${who.account}</Account></GetCallerIdentityResult>${requestId}</GetCallerIdentityResponse>`,
          200,
          { 'content-type': 'text/xml' },
        )
      }
      if (action !== 'AssumeRole') return xmlError(400, 'InvalidAction', 'Unsupported action.')
      const roleArn = form.get('RoleArn') ?? ''
      const role = roles.get(roleArn)
      if (!role || !role.trusted.has(auth.accessKeyId!)) return xmlError(403, 'AccessDenied', `User is not authorized to perform: sts:AssumeRole on resource: ${roleArn}`)
      if (role.externalId !== undefined && form.get('ExternalId') !== role.externalId) {
        return xmlError(403, 'AccessDenied', `User is not authorized to perform: sts:AssumeRole on resource: ${roleArn}`)
      }
      const session = form.get('RoleSessionName')
      if (!session) return xmlError(400, 'ValidationError', 'RoleSessionName is required.')
      // The session's identity (IAM "aws:userid" for a role session: role-id:session-name).
      const identity = {
        arn: `${roleArn.replace(':iam::', ':sts::').replace(':role/', ':assumed-role/')}/${session}`,
        userId: `${role.roleId}:${session}`,
        account: accountOf(roleArn),
      }
      const issued = { accessKeyId: `ASIA${randomBytes(8).toString('hex').toUpperCase()}`, secretAccessKey: randomBytes(30).toString('base64'), sessionToken: randomBytes(64).toString('base64') }
      const expiresAt = Date.now() + Number(form.get('DurationSeconds') ?? 3600) * 1000
      credentials.set(issued.accessKeyId, { secretAccessKey: issued.secretAccessKey, sessionToken: issued.sessionToken, expiresAt, identity })
      return c.body(
        `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>${issued.accessKeyId}</AccessKeyId><SecretAccessKey>${issued.secretAccessKey}</SecretAccessKey><SessionToken>${issued.sessionToken}</SessionToken><Expiration>${new Date(expiresAt).toISOString()}</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>${identity.userId}</AssumedRoleId><Arn>${identity.arn}</Arn></AssumedRoleUser></AssumeRoleResult>${requestId}</AssumeRoleResponse>`,
        200,
        { 'content-type': 'text/xml' },
      )
    }

    if ((c.req.header('content-type') ?? '') !== 'application/x-amz-json-1.1') {
      return jsonError(400, 'SerializationException', 'Expected application/x-amz-json-1.1.')
    }
    let input: Record<string, any>
    try {
      input = JSON.parse(body || '{}')
    } catch {
      return jsonError(400, 'SerializationException', 'Malformed JSON.')
    }

    if (target === 'AWSMPMeteringService.ResolveCustomer') {
      if (auth.service !== 'aws-marketplace') return jsonError(403, 'InvalidSignatureException', 'Credential should be scoped to correct service.')
      const token = input.RegistrationToken
      if (typeof token !== 'string' || token === '') return jsonError(400, 'InvalidTokenException', 'Registration token is required.')
      const entry = tokens.get(token)
      if (!entry) return jsonError(400, 'InvalidTokenException', 'Registration token is invalid.')
      if (entry.expiresAt < Date.now()) return jsonError(400, 'ExpiredTokenException', 'Registration token has expired.')
      const { CustomerIdentifier, ...rest } = entry.customer
      return c.json(concurrent(entry.customer.ProductCode) ? rest : entry.customer)
    }

    if (target === 'AWSMPEntitlementService.GetEntitlements') {
      if (auth.service !== 'aws-marketplace') return jsonError(403, 'InvalidSignatureException', 'Credential should be scoped to correct service.')
      if (auth.region !== 'us-east-1') return jsonError(400, 'InvalidParameterException', 'The Entitlement Service is available only in us-east-1.')
      if (typeof input.ProductCode !== 'string' || input.ProductCode === '') return jsonError(400, 'InvalidParameterException', 'ProductCode is required.')
      const filter = (input.Filter ?? {}) as Record<string, unknown>
      const keys = Object.keys(filter)
      if (typeof filter !== 'object' || Array.isArray(filter) || keys.some((key) => !FILTER_KEYS.has(key) || !Array.isArray(filter[key]) || (filter[key] as unknown[]).some((v) => typeof v !== 'string'))) {
        return jsonError(400, 'InvalidParameterException', 'Filter keys must be CUSTOMER_IDENTIFIER, CUSTOMER_AWS_ACCOUNT_ID, DIMENSION or LICENSE_ARN, each with a list of strings.')
      }
      if (filter.CUSTOMER_IDENTIFIER && filter.CUSTOMER_AWS_ACCOUNT_ID) {
        return jsonError(400, 'InvalidParameterException', 'CustomerIdentifier and CustomerAWSAccountId are mutually exclusive.')
      }
      const hidden = concurrent(input.ProductCode)
      const among = (key: string, value: string | undefined) => !filter[key] || (value !== undefined && (filter[key] as string[]).includes(value))
      const matches = entitlements
        .filter(
          (e) =>
            e.ProductCode === input.ProductCode &&
            among('CUSTOMER_IDENTIFIER', hidden ? undefined : e.CustomerIdentifier) &&
            among('CUSTOMER_AWS_ACCOUNT_ID', e.CustomerAWSAccountId) &&
            among('LICENSE_ARN', e.LicenseArn) &&
            among('DIMENSION', e.Dimension),
        )
        .map((e) => (hidden ? { ...e, CustomerIdentifier: undefined } : e))
      // Pages of MaxResults (default 25 here, to exercise NextToken).
      const size = Math.min(Number(input.MaxResults ?? 25), 25)
      const offset = Number(input.NextToken ?? 0)
      const next = offset + size < matches.length ? String(offset + size) : undefined
      return c.json({ Entitlements: matches.slice(offset, offset + size), ...(next ? { NextToken: next } : {}) })
    }

    if (target === 'AWSMPMeteringService.BatchMeterUsage') {
      if (auth.service !== 'aws-marketplace') return jsonError(403, 'InvalidSignatureException', 'Credential should be scoped to correct service.')
      return batchMeterUsage(input, jsonError, (payload) => c.json(payload))
    }

    return jsonError(400, 'UnknownOperationException', `Unknown operation ${target}`)
  })

  function batchMeterUsage<R>(input: Record<string, any>, jsonError: (status: number, type: string, message: string) => R, ok: (payload: unknown) => R): R {
    const invalid = (message: string) => jsonError(400, 'ValidationException', `1 validation error detected: ${message}`)
    const records = input.UsageRecords
    if (!Array.isArray(records)) return invalid("Value null at 'usageRecords' failed to satisfy constraint: Member must not be null")
    if (records.length > 25) return invalid(`Value at 'usageRecords' failed to satisfy constraint: Member must have length less than or equal to 25`)
    const productCode = input.ProductCode
    if (productCode !== undefined && (typeof productCode !== 'string' || productCode.length < 1 || productCode.length > 255)) {
      return invalid("Value at 'productCode' failed to satisfy constraint: Member must have length between 1 and 255")
    }
    for (const [i, record] of (records as any[]).entries()) {
      const at = `usageRecords.${i + 1}.member`
      if (!record || typeof record !== 'object') return invalid(`Value null at '${at}' failed to satisfy constraint: Member must not be null`)
      if (typeof record.Timestamp !== 'number' || !Number.isFinite(record.Timestamp)) return invalid(`Value null at '${at}.timestamp' failed to satisfy constraint: Member must not be null`)
      if (typeof record.Dimension !== 'string' || record.Dimension.length < 1 || record.Dimension.length > 255) {
        return invalid(`Value at '${at}.dimension' failed to satisfy constraint: Member must have length between 1 and 255`)
      }
      const quantity = record.Quantity ?? 0
      if (typeof quantity !== 'number' || !Number.isInteger(quantity) || quantity < 0 || quantity > 2147483647) {
        return invalid(`Value '${quantity}' at '${at}.quantity' failed to satisfy constraint: Member must be an integer between 0 and 2147483647`)
      }
      const hasId = record.CustomerIdentifier !== undefined
      const hasAccount = record.CustomerAWSAccountId !== undefined
      if (hasId === hasAccount) return invalid(`'${at}': exactly one of CustomerIdentifier and CustomerAWSAccountId must be given`)
      if (hasId && (typeof record.CustomerIdentifier !== 'string' || record.CustomerIdentifier.length > 255)) {
        return invalid(`Value at '${at}.customerIdentifier' failed to satisfy constraint: Member must have length less than or equal to 255`)
      }
      if (hasAccount && (typeof record.CustomerAWSAccountId !== 'string' || !/^[0-9]{1,255}$/.test(record.CustomerAWSAccountId))) {
        return invalid(`Value at '${at}.customerAWSAccountId' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[0-9]+$`)
      }
      if (record.LicenseArn !== undefined && (typeof record.LicenseArn !== 'string' || record.LicenseArn.length < 1)) {
        return invalid(`Value at '${at}.licenseArn' failed to satisfy constraint: Member must have length greater than or equal to 1`)
      }
      if (record.LicenseArn === undefined && productCode === undefined) {
        return jsonError(400, 'InvalidProductCodeException', 'ProductCode is required for a usage record without a LicenseArn.')
      }
      if (record.UsageAllocations !== undefined) {
        const allocations = record.UsageAllocations
        if (!Array.isArray(allocations) || allocations.length < 1 || allocations.length > 2500) {
          return jsonError(400, 'InvalidUsageAllocationsException', 'UsageAllocations must have between 1 and 2500 items.')
        }
        let sum = 0
        for (const allocation of allocations) {
          if (!allocation || !Number.isInteger(allocation.AllocatedUsageQuantity) || allocation.AllocatedUsageQuantity < 0) {
            return jsonError(400, 'InvalidUsageAllocationsException', 'AllocatedUsageQuantity must be a non-negative integer.')
          }
          if (allocation.Tags !== undefined && (!Array.isArray(allocation.Tags) || allocation.Tags.length < 1 || allocation.Tags.length > 5)) {
            return jsonError(400, 'InvalidTagException', 'The tag is invalid, or the number of tags is greater than 5.')
          }
          sum += allocation.AllocatedUsageQuantity
        }
        if (sum !== quantity) return jsonError(400, 'InvalidUsageAllocationsException', 'The sum of AllocatedUsageQuantity must equal the Quantity of the UsageRecord.')
      }
    }
    if (productCode !== undefined && !products.has(productCode)) {
      return jsonError(400, 'InvalidProductCodeException', 'The product code passed does not match the product code used for publishing the product.')
    }
    // Licenses: known, the customer's, and (with a ProductCode) of that product.
    const licensed = new Map<number, EmulatedCustomer>()
    for (const [i, record] of (records as AwsUsageRecord[]).entries()) {
      if (record.LicenseArn === undefined) continue
      const holder = customers.find((entry) => entry.customer.LicenseArn === record.LicenseArn)?.customer
      if (
        !holder ||
        (record.CustomerAWSAccountId !== undefined && holder.CustomerAWSAccountId !== record.CustomerAWSAccountId) ||
        (record.CustomerIdentifier !== undefined && holder.CustomerIdentifier !== record.CustomerIdentifier) ||
        (productCode !== undefined && holder.ProductCode !== productCode)
      ) {
        return jsonError(400, 'InvalidLicenseException', 'Ensure the LicenseArn is valid, matches the customer, and usage is within the license activation period.')
      }
      licensed.set(i, holder)
    }
    for (const [i, record] of (records as AwsUsageRecord[]).entries()) {
      const product = products.get(licensed.get(i)?.ProductCode ?? productCode)
      if (product?.dimensions && !product.dimensions.has(record.Dimension)) {
        return jsonError(400, 'InvalidUsageDimensionException', 'The usage dimension does not match one of the UsageDimensions associated with products.')
      }
    }
    // "Usage records aren't accepted 6 hours or more after an event"; one record out of range fails the batch.
    const now = Date.now()
    for (const record of records as AwsUsageRecord[]) {
      const at = record.Timestamp * 1000
      if (now - at >= 6 * 3600 * 1000 || at > now) {
        return jsonError(400, 'TimestampOutOfBoundsException', 'The timestamp value passed in the UsageRecord is out of allowed range.')
      }
    }

    const plan = unprocessedPlans.shift()
    const Results: Array<{ UsageRecord: AwsUsageRecord; MeteringRecordId: string; Status: AwsUsageRecordStatus }> = []
    const UnprocessedRecords: AwsUsageRecord[] = []
    for (const [i, record] of (records as AwsUsageRecord[]).entries()) {
      if (plan?.(record, i, records.length)) {
        UnprocessedRecords.push(record)
        continue
      }
      const recordProduct: string = licensed.get(i)?.ProductCode ?? productCode
      const form = productCode === undefined ? 'license' : 'product'
      const entry = customers.find(
        (candidate) =>
          candidate.customer.ProductCode === recordProduct &&
          (licensed.has(i)
            ? candidate.customer === licensed.get(i)
            : record.CustomerIdentifier !== undefined
              ? candidate.customer.CustomerIdentifier === record.CustomerIdentifier
              : candidate.customer.CustomerAWSAccountId === record.CustomerAWSAccountId),
      )
      // A concurrent-agreements product meters by license only; an ended license takes usage from before its end for an hour.
      const ended = entry?.endedAt !== undefined && (now >= entry.endedAt + 3600 * 1000 || record.Timestamp * 1000 > entry.endedAt)
      if (!entry || !entry.subscribed || ended || (concurrent(recordProduct) && record.LicenseArn === undefined)) {
        Results.push({ UsageRecord: record, MeteringRecordId: randomUUID(), Status: 'CustomerNotSubscribed' })
        continue
      }
      const quantity = record.Quantity ?? 0
      const key = JSON.stringify([form, recordProduct, form === 'license' ? entry.customer.LicenseArn : entry.customer.CustomerIdentifier, record.Dimension, Math.floor(record.Timestamp / 3600)])
      const earlier = meteredByHour.get(key)
      if (earlier) {
        Results.push(
          earlier.Quantity === quantity
            ? { UsageRecord: record, MeteringRecordId: earlier.MeteringRecordId, Status: 'Success' }
            : { UsageRecord: record, MeteringRecordId: randomUUID(), Status: 'DuplicateRecord' },
        )
        continue
      }
      const accepted: AwsMeteringRecord = {
        MeteringRecordId: randomUUID(),
        ProductCode: recordProduct,
        CustomerIdentifier: entry.customer.CustomerIdentifier,
        CustomerAWSAccountId: entry.customer.CustomerAWSAccountId,
        ...(entry.customer.LicenseArn !== undefined ? { LicenseArn: entry.customer.LicenseArn } : {}),
        Dimension: record.Dimension,
        Quantity: quantity,
        Timestamp: record.Timestamp,
        ...(record.UsageAllocations !== undefined ? { UsageAllocations: record.UsageAllocations } : {}),
        UsageRecord: record,
        form,
        receivedAt: now,
      }
      meteredByHour.set(key, accepted)
      meteringRecords.push(accepted)
      Results.push({ UsageRecord: record, MeteringRecordId: accepted.MeteringRecordId, Status: 'Success' })
    }
    return ok({ Results, UnprocessedRecords })
  }

  return {
    app,
    calls,
    /**
     * An IAM user's (or the seller's) static access key; GetCallerIdentity names it `userArn`
     * (default: user `seller` of account 111122223333).
     */
    addCredentials(accessKeyId: string, secretAccessKey: string, userArn = 'arn:aws:iam::111122223333:user/seller') {
      credentials.set(accessKeyId, { secretAccessKey, identity: { arn: userArn, userId: uniqueId('AIDA'), account: accountOf(userArn) } })
    },
    /** A role that `trustedAccessKeyId` may assume (with `externalId` when given). */
    addRole(roleArn: string, trustedAccessKeyId: string, externalId?: string) {
      roles.set(roleArn, { externalId, trusted: new Set([trustedAccessKeyId]), roleId: roles.get(roleArn)?.roleId ?? uniqueId('AROA') })
    },
    /** A buyer who clicked "Set up your account": returns the registration token AWS would post. */
    addCustomer(customer: Partial<EmulatedCustomer> & { ProductCode: string }, options: { expiresInMs?: number } = {}) {
      const accountId = customer.CustomerAWSAccountId ?? String(100000000000 + Math.floor(Math.random() * 899999999999))
      // AWS keeps one CustomerIdentifier per account and product; each agreement of a concurrent-agreements product is a license of its own.
      const known = customers.find((entry) => entry.customer.ProductCode === customer.ProductCode && entry.customer.CustomerAWSAccountId === accountId)?.customer
      const full: EmulatedCustomer = {
        CustomerIdentifier: known?.CustomerIdentifier ?? randomBytes(8).toString('base64url'),
        CustomerAWSAccountId: accountId,
        ...(concurrent(customer.ProductCode) ? { LicenseArn: licenseArn() } : {}),
        ...customer,
      }
      const token = registrationToken()
      tokens.set(token, { customer: full, expiresAt: Date.now() + (options.expiresInMs ?? 4 * 3600 * 1000) })
      registerCustomer(full)
      return { customer: full, token }
    },
    /** Another token for the same customer (AWS: resolving again returns the same customer). */
    tokenFor(customer: EmulatedCustomer) {
      const token = registrationToken()
      tokens.set(token, { customer, expiresAt: Date.now() + 4 * 3600 * 1000 })
      return token
    },
    /** Every contract entitlement AWS knows; change one in place to model the buyer's upgrade. */
    entitlements,
    addEntitlement(entitlement: EmulatedEntitlement) {
      // The customer it is of (by license, else by identifier) fills in the other identifiers.
      const holder = customers.find((entry) =>
        entitlement.LicenseArn !== undefined
          ? entry.customer.LicenseArn === entitlement.LicenseArn
          : entry.customer.ProductCode === entitlement.ProductCode && entry.customer.CustomerIdentifier === entitlement.CustomerIdentifier,
      )?.customer
      entitlements.push({
        ...(holder ? { CustomerIdentifier: holder.CustomerIdentifier, CustomerAWSAccountId: holder.CustomerAWSAccountId, ...(holder.LicenseArn ? { LicenseArn: holder.LicenseArn } : {}) } : {}),
        ...entitlement,
      })
    },
    /**
     * The agreement behind `licenseArn` ended now (or at `at`): usage from before then is still
     * metered for an hour after (AWS's final reporting window), then CustomerNotSubscribed.
     */
    endLicense(licenseArn: string, at = Date.now()) {
      for (const entry of customers) if (entry.customer.LicenseArn === licenseArn) entry.endedAt = at
    },
    /** The next `times` calls of `route` fail with `type` (e.g. 500 InternalServiceErrorException). */
    failNext(route: AwsRoute, status: number, type: string, times = 1) {
      faults.push({ route, status, type, remaining: times })
    },
    /** Every usage record BatchMeterUsage answered `Success` for, in order (replays are not repeated). */
    meteringRecords,
    /**
     * A product AWS knows (the products of `addCustomer` customers are known already); with
     * `dimensions`, any other dimension is InvalidUsageDimensionException.
     */
    addProduct(productCode: string, dimensions?: string[], options: { concurrentAgreements?: boolean } = {}) {
      products.set(productCode, { ...(dimensions ? { dimensions: new Set(dimensions) } : {}), ...(options.concurrentAgreements ? { concurrentAgreements: true } : {}) })
    },
    /**
     * (Un)subscribe every known customer matching all the given fields (e.g. `{CustomerAWSAccountId}`,
     * or the `EmulatedCustomer` itself). Unsubscribed customers meter as `CustomerNotSubscribed`.
     * A full customer not yet known is added (with no registration token).
     */
    setSubscribed(customer: Partial<EmulatedCustomer>, subscribed: boolean) {
      if (customer.CustomerIdentifier && customer.CustomerAWSAccountId && customer.ProductCode && !customers.some((entry) => matchesCustomer(customer, entry.customer))) {
        registerCustomer(customer as EmulatedCustomer)
      }
      for (const entry of customers) if (matchesCustomer(customer, entry.customer)) entry.subscribed = subscribed
    },
    /**
     * The next BatchMeterUsage call that passes validation returns some records in
     * `UnprocessedRecords`, unmetered: the last `which` records, or those `which` picks.
     */
    leaveUnprocessedNext(which: number | ((record: AwsUsageRecord, index: number) => boolean)) {
      unprocessedPlans.push(typeof which === 'number' ? (_record, index, count) => index >= count - which : (record, index) => which(record, index))
    },
    callsTo(route: AwsRoute) {
      return calls.filter((call) => call.target === route)
    },
    async listen(): Promise<{ url: string; close: () => Promise<void> }> {
      return listenOnLoopback(app.fetch)
    },
  }
}

export type AwsEmulator = ReturnType<typeof createAwsEmulator>

const FILTER_KEYS = new Set(['CUSTOMER_IDENTIFIER', 'CUSTOMER_AWS_ACCOUNT_ID', 'DIMENSION', 'LICENSE_ARN'])

/** A License Manager license ARN as ResolveCustomer prints it (the l- id is 32 hex digits). */
function licenseArn(): string {
  return `arn:aws:license-manager::294406891311:license:l-${randomBytes(16).toString('hex')}`
}

/** Registration tokens are long base64 strings; each one here has "+" and "/" so tests exercise both. */
function registrationToken(): string {
  for (;;) {
    const token = randomBytes(120).toString('base64')
    if (token.includes('+') && token.includes('/')) return token
  }
}

// ---- Signature Version 4 (AWS General Reference, "Create a signed AWS API request") ------

export type SignatureCheck =
  | { ok: true; accessKeyId: string; service: string; region: string }
  | { ok: false; code: string; message: string; accessKeyId: string | null; service: string | null; region: string | null }

const sha256 = (data: string) => createHash('sha256').update(data, 'utf8').digest('hex')
const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data, 'utf8').digest()

function uriEncode(text: string) {
  return encodeURIComponent(text).replace(/[!'()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`)
}

export function verifySignature(request: Request, body: string, credentials: Map<string, Credential>): SignatureCheck {
  const header = request.headers.get('authorization') ?? ''
  const match = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(header)
  if (!match) return { ok: false, code: 'MissingAuthenticationTokenException', message: 'Missing or malformed Authorization header.', accessKeyId: null, service: null, region: null }
  const [, accessKeyId, date, region, service, signedHeaders, signature] = match as unknown as string[]
  const base = { accessKeyId: accessKeyId!, service: service!, region: region! }
  const credential = credentials.get(accessKeyId!)
  if (!credential || (credential.expiresAt !== undefined && credential.expiresAt < Date.now())) {
    return { ok: false, code: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.', ...base }
  }
  if (credential.sessionToken !== undefined && request.headers.get('x-amz-security-token') !== credential.sessionToken) {
    return { ok: false, code: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.', ...base }
  }
  const amzDate = request.headers.get('x-amz-date') ?? ''
  const signedAt = Date.parse(amzDate.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z'))
  if (!amzDate.startsWith(date!) || Number.isNaN(signedAt) || Math.abs(Date.now() - signedAt) > 15 * 60 * 1000) {
    return { ok: false, code: 'InvalidSignatureException', message: 'Signature expired or X-Amz-Date is invalid.', ...base }
  }
  const names = signedHeaders!.split(';')
  if (!names.includes('host')) return { ok: false, code: 'InvalidSignatureException', message: 'The host header must be signed.', ...base }
  const url = new URL(request.url)
  const query = [...url.searchParams.entries()]
    .map(([k, v]) => [uriEncode(k), uriEncode(v)])
    .sort(([a, x], [b, y]) => (a! < b! ? -1 : a! > b! ? 1 : x! < y! ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join('&')
  const canonicalHeaders = names.map((name) => `${name}:${(request.headers.get(name) ?? '').trim().replace(/\s+/g, ' ')}\n`).join('')
  const payloadHash = request.headers.get('x-amz-content-sha256') ?? sha256(body)
  const canonicalRequest = [request.method, url.pathname || '/', query, canonicalHeaders, signedHeaders, payloadHash].join('\n')
  const scope = `${date}/${region}/${service}/aws4_request`
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonicalRequest)].join('\n')
  const key = hmac(hmac(hmac(hmac(`AWS4${credential.secretAccessKey}`, date!), region!), service!), 'aws4_request')
  const expected = createHmac('sha256', key).update(stringToSign, 'utf8').digest('hex')
  if (expected !== signature) {
    return { ok: false, code: 'InvalidSignatureException', message: 'The request signature we calculated does not match the signature you provided.', ...base }
  }
  return { ok: true, ...base }
}
