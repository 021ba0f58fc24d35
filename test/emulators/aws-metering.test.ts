import { GetEntitlementsCommand, type GetEntitlementsCommandInput, InvalidParameterException, MarketplaceEntitlementServiceClient } from '@aws-sdk/client-marketplace-entitlement-service'
import {
  BatchMeterUsageCommand,
  type BatchMeterUsageCommandInput,
  InvalidLicenseException,
  InvalidProductCodeException,
  MarketplaceMeteringClient,
  ResolveCustomerCommand,
  TimestampOutOfBoundsException,
} from '@aws-sdk/client-marketplace-metering'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type AwsEmulator, createAwsEmulator } from '../../sandbox/emulators/aws'

// The emulator's BatchMeterUsage (its two record forms), ResolveCustomer and GetEntitlements for
// concurrent agreements, driven by AWS's own SDK v3 clients (awsJson 1.1 + SigV4).

let aws: AwsEmulator
let url: string
let close: () => Promise<void>
const seller = { accessKeyId: 'AKIASELLERMETER00001', secretAccessKey: 'meter/secret+key=' }

beforeAll(async () => {
  aws = createAwsEmulator()
  ;({ url, close } = await aws.listen())
  aws.addCredentials(seller.accessKeyId, seller.secretAccessKey)
})
afterAll(async () => {
  await close()
})

const client = (credentials = seller, maxAttempts = 1) => new MarketplaceMeteringClient({ endpoint: url, region: 'us-east-1', credentials, maxAttempts })
const meter = (input: BatchMeterUsageCommandInput, c = client()) => c.send(new BatchMeterUsageCommand(input))
const minutesAgo = (minutes: number) => new Date(Date.now() - minutes * 60_000)
let serial = 0
const product = () => `prod-meter-${++serial}`
const licensed = (productCode: string) => aws.addCustomer({ ProductCode: productCode, LicenseArn: `arn:aws:license-manager::294406891311:license:l-${productCode}` }).customer

describe('BatchMeterUsage', () => {
  test('success: the ProductCode + CustomerIdentifier form and the CustomerAWSAccountId + LicenseArn form', async () => {
    const code = product()
    const old = aws.addCustomer({ ProductCode: code }).customer
    const modern = licensed(code)
    const when = minutesAgo(5)
    const before = aws.meteringRecords.length

    const legacy = await meter({ ProductCode: code, UsageRecords: [{ Timestamp: when, CustomerIdentifier: old.CustomerIdentifier, Dimension: 'requests', Quantity: 7 }] })
    expect(legacy.Results).toHaveLength(1)
    expect(legacy.Results![0]).toMatchObject({ Status: 'Success', UsageRecord: { CustomerIdentifier: old.CustomerIdentifier, Dimension: 'requests', Quantity: 7 } })
    expect(legacy.Results![0]!.MeteringRecordId).toMatch(/\S/)
    expect(legacy.Results![0]!.UsageRecord!.Timestamp!.getTime()).toBe(when.getTime())
    expect(legacy.UnprocessedRecords).toEqual([])

    const current = await meter({
      UsageRecords: [{ Timestamp: when, CustomerAWSAccountId: modern.CustomerAWSAccountId, LicenseArn: modern.LicenseArn, Dimension: 'requests', Quantity: 0 }],
    })
    expect(current.Results![0]).toMatchObject({ Status: 'Success' })

    expect(aws.meteringRecords.slice(before)).toMatchObject([
      { ProductCode: code, CustomerIdentifier: old.CustomerIdentifier, CustomerAWSAccountId: old.CustomerAWSAccountId, Dimension: 'requests', Quantity: 7, MeteringRecordId: legacy.Results![0]!.MeteringRecordId },
      { ProductCode: code, CustomerAWSAccountId: modern.CustomerAWSAccountId, LicenseArn: modern.LicenseArn, Dimension: 'requests', Quantity: 0 },
    ])
    const call = aws.callsTo('BatchMeterUsage').at(-1)!
    expect(call).toMatchObject({ accessKeyId: seller.accessKeyId, service: 'aws-marketplace' })
    expect(JSON.parse(call.body)).not.toHaveProperty('ProductCode')
    expect(typeof JSON.parse(call.body).UsageRecords[0].Timestamp).toBe('number')
  })

  test('duplicate: same customer, dimension and hour with another quantity is DuplicateRecord; the same record again is an idempotent Success', async () => {
    const code = product()
    const customer = licensed(code)
    const when = minutesAgo(10)
    const record = { Timestamp: when, CustomerAWSAccountId: customer.CustomerAWSAccountId, LicenseArn: customer.LicenseArn, Dimension: 'gb' }
    const first = await meter({ UsageRecords: [{ ...record, Quantity: 3 }] })
    expect(first.Results![0]!.Status).toBe('Success')
    const count = aws.meteringRecords.length

    const again = await meter({ UsageRecords: [{ ...record, Quantity: 3 }, { ...record, Quantity: 4 }, { ...record, Dimension: 'users', Quantity: 4 }] })
    expect(again.Results!.map((r) => r.Status)).toEqual(['Success', 'DuplicateRecord', 'Success'])
    expect(again.Results![0]!.MeteringRecordId).toBe(first.Results![0]!.MeteringRecordId)
    expect(aws.meteringRecords.length).toBe(count + 1)
    expect(aws.meteringRecords.at(-1)).toMatchObject({ Dimension: 'users', Quantity: 4 })
  })

  test('customer not subscribed: unsubscribed or unknown customers get CustomerNotSubscribed, others in the batch still meter', async () => {
    const code = product()
    const gone = aws.addCustomer({ ProductCode: code }).customer
    const staying = aws.addCustomer({ ProductCode: code }).customer
    aws.setSubscribed(gone, false)
    const when = minutesAgo(1)
    const result = await meter({
      ProductCode: code,
      UsageRecords: [
        { Timestamp: when, CustomerIdentifier: gone.CustomerIdentifier, Dimension: 'requests', Quantity: 1 },
        { Timestamp: when, CustomerIdentifier: 'no-such-customer', Dimension: 'requests', Quantity: 1 },
        { Timestamp: when, CustomerAWSAccountId: '999999999999', Dimension: 'requests', Quantity: 1 },
        { Timestamp: when, CustomerIdentifier: staying.CustomerIdentifier, Dimension: 'requests', Quantity: 1 },
      ],
    })
    expect(result.Results!.map((r) => r.Status)).toEqual(['CustomerNotSubscribed', 'CustomerNotSubscribed', 'CustomerNotSubscribed', 'Success'])
    expect(aws.meteringRecords.filter((r) => r.ProductCode === code).map((r) => r.CustomerIdentifier)).toEqual([staying.CustomerIdentifier])

    aws.setSubscribed({ CustomerIdentifier: gone.CustomerIdentifier }, true)
    const back = await meter({ ProductCode: code, UsageRecords: [{ Timestamp: when, CustomerIdentifier: gone.CustomerIdentifier, Dimension: 'requests', Quantity: 1 }] })
    expect(back.Results![0]!.Status).toBe('Success')
  })

  test('timestamp out of bounds: 6 hours or more back, or in the future, fails the whole batch', async () => {
    const code = product()
    const customer = licensed(code)
    const record = { CustomerAWSAccountId: customer.CustomerAWSAccountId, LicenseArn: customer.LicenseArn, Dimension: 'requests', Quantity: 1 }
    const before = aws.meteringRecords.length
    for (const stale of [minutesAgo(6 * 60), minutesAgo(6 * 60 + 1), new Date(Date.now() + 10 * 60_000)]) {
      const error = await meter({ UsageRecords: [{ ...record, Timestamp: minutesAgo(1) }, { ...record, Dimension: 'other', Timestamp: stale }] }).catch((e) => e)
      expect(error).toBeInstanceOf(TimestampOutOfBoundsException)
      expect(error.$metadata.httpStatusCode).toBe(400)
    }
    expect(aws.meteringRecords.length).toBe(before)
    const inside = await meter({ UsageRecords: [{ ...record, Timestamp: minutesAgo(6 * 60 - 2) }] })
    expect(inside.Results![0]!.Status).toBe('Success')
  })

  test('26 records are refused (up to 25); 25 are accepted', async () => {
    const code = product()
    const customer = aws.addCustomer({ ProductCode: code }).customer
    const when = minutesAgo(2)
    const records = (n: number) => Array.from({ length: n }, (_, i) => ({ Timestamp: when, CustomerIdentifier: customer.CustomerIdentifier, Dimension: `d${i}`, Quantity: i }))
    const before = aws.meteringRecords.length
    const error = await meter({ ProductCode: code, UsageRecords: records(26) }).catch((e) => e)
    expect(error.name).toBe('ValidationException')
    expect(error.$metadata.httpStatusCode).toBe(400)
    expect(aws.meteringRecords.length).toBe(before)
    const ok = await meter({ ProductCode: code, UsageRecords: records(25) })
    expect(ok.Results).toHaveLength(25)
    expect(ok.Results!.every((r) => r.Status === 'Success')).toBe(true)
  })

  test('unprocessed records come back in UnprocessedRecords, unmetered, and succeed on retry', async () => {
    const code = product()
    const customer = licensed(code)
    const when = minutesAgo(3)
    const UsageRecords = ['a', 'b', 'c', 'd'].map((Dimension) => ({ Timestamp: when, CustomerAWSAccountId: customer.CustomerAWSAccountId, LicenseArn: customer.LicenseArn, Dimension, Quantity: 2 }))
    aws.leaveUnprocessedNext(2)
    const first = await meter({ UsageRecords })
    expect(first.Results!.map((r) => r.UsageRecord!.Dimension)).toEqual(['a', 'b'])
    expect(first.UnprocessedRecords!.map((r) => r.Dimension)).toEqual(['c', 'd'])
    expect(aws.meteringRecords.filter((r) => r.ProductCode === code).map((r) => r.Dimension)).toEqual(['a', 'b'])

    const retry = await meter({ UsageRecords: first.UnprocessedRecords! })
    expect(retry.Results!.map((r) => r.Status)).toEqual(['Success', 'Success'])
    expect(retry.UnprocessedRecords).toEqual([])

    aws.leaveUnprocessedNext((record) => record.Dimension === 'b')
    const picked = await meter({ UsageRecords })
    expect(picked.UnprocessedRecords!.map((r) => r.Dimension)).toEqual(['b'])
    expect(picked.Results!.map((r) => r.Status)).toEqual(['Success', 'Success', 'Success'])
  })

  test('a bad signature or an unknown key is refused before anything is metered', async () => {
    const code = product()
    const customer = aws.addCustomer({ ProductCode: code }).customer
    const input = { ProductCode: code, UsageRecords: [{ Timestamp: minutesAgo(1), CustomerIdentifier: customer.CustomerIdentifier, Dimension: 'requests', Quantity: 1 }] }
    const before = aws.meteringRecords.length
    const wrongSecret = await meter(input, client({ accessKeyId: seller.accessKeyId, secretAccessKey: 'not-the-secret' })).catch((e) => e)
    expect(wrongSecret.name).toBe('InvalidSignatureException')
    expect(wrongSecret.$metadata.httpStatusCode).toBe(403)
    const unknownKey = await meter(input, client({ accessKeyId: 'AKIAUNKNOWN000000000', secretAccessKey: 'x' })).catch((e) => e)
    expect(unknownKey.name).toBe('UnrecognizedClientException')
    expect(aws.meteringRecords.length).toBe(before)
  })

  test('failNext works for BatchMeterUsage (the SDK retries a 500)', async () => {
    const code = product()
    const customer = aws.addCustomer({ ProductCode: code }).customer
    const input = { ProductCode: code, UsageRecords: [{ Timestamp: minutesAgo(1), CustomerIdentifier: customer.CustomerIdentifier, Dimension: 'requests', Quantity: 1 }] }
    aws.failNext('BatchMeterUsage', 400, 'ThrottlingException')
    const throttled = await meter(input).catch((e) => e)
    expect(throttled.name).toBe('ThrottlingException')
    const calls = aws.callsTo('BatchMeterUsage').length
    aws.failNext('BatchMeterUsage', 500, 'InternalServiceErrorException')
    const retried = await meter(input, client(seller, 3))
    expect(retried.Results![0]!.Status).toBe('Success')
    expect(aws.callsTo('BatchMeterUsage').length).toBe(calls + 2)
  })

  test('unknown product code, foreign license, undeclared dimension and bad quantity are request errors', async () => {
    const code = product()
    aws.addProduct(code, ['requests'])
    const customer = licensed(code)
    const other = licensed(product())
    const base = { Timestamp: minutesAgo(1), CustomerAWSAccountId: customer.CustomerAWSAccountId, LicenseArn: customer.LicenseArn, Dimension: 'requests', Quantity: 1 }
    await expect(meter({ ProductCode: 'prod-nobody-published', UsageRecords: [{ Timestamp: base.Timestamp, CustomerIdentifier: 'x', Dimension: 'requests' }] })).rejects.toBeInstanceOf(InvalidProductCodeException)
    await expect(meter({ UsageRecords: [{ ...base, LicenseArn: other.LicenseArn }] })).rejects.toBeInstanceOf(InvalidLicenseException)
    await expect(meter({ ProductCode: code, UsageRecords: [{ ...base, LicenseArn: other.LicenseArn, CustomerAWSAccountId: other.CustomerAWSAccountId }] })).rejects.toBeInstanceOf(InvalidLicenseException)
    await expect(meter({ UsageRecords: [{ ...base, Dimension: 'storage' }] })).rejects.toMatchObject({ name: 'InvalidUsageDimensionException' })
    await expect(meter({ UsageRecords: [{ ...base, Quantity: 2147483648 }] })).rejects.toMatchObject({ name: 'ValidationException' })
    await expect(meter({ UsageRecords: [{ ...base, CustomerIdentifier: 'both' }] })).rejects.toMatchObject({ name: 'ValidationException' })
    await expect(meter({ UsageRecords: [{ ...base, Quantity: 3, UsageAllocations: [{ AllocatedUsageQuantity: 1 }] }] })).rejects.toMatchObject({ name: 'InvalidUsageAllocationsException' })
    const fine = await meter({ UsageRecords: [{ ...base, Quantity: 3, UsageAllocations: [{ AllocatedUsageQuantity: 1, Tags: [{ Key: 'team', Value: 'a' }] }, { AllocatedUsageQuantity: 2 }] }] })
    expect(fine.Results![0]!.Status).toBe('Success')
  })
})

const entitlementService = () => new MarketplaceEntitlementServiceClient({ endpoint: url, region: 'us-east-1', credentials: seller, maxAttempts: 1 })
const entitlementsOf = async (input: GetEntitlementsCommandInput) => (await entitlementService().send(new GetEntitlementsCommand(input))).Entitlements ?? []

describe('concurrent agreements', () => {
  test('ResolveCustomer answers the account, license and product only; one account holds two licenses, each with its own entitlements', async () => {
    const code = product()
    aws.addProduct(code, undefined, { concurrentAgreements: true })
    const first = aws.addCustomer({ ProductCode: code })
    const second = aws.addCustomer({ ProductCode: code, CustomerAWSAccountId: first.customer.CustomerAWSAccountId })
    expect(second.customer.LicenseArn).toMatch(/^arn:aws:license-manager::\d{12}:license:l-[0-9a-f]{32}$/)
    expect(second.customer.LicenseArn).not.toBe(first.customer.LicenseArn)
    aws.addEntitlement({ ProductCode: code, Dimension: 'seats', LicenseArn: first.customer.LicenseArn, Value: { IntegerValue: 5 } })
    aws.addEntitlement({ ProductCode: code, Dimension: 'seats', LicenseArn: second.customer.LicenseArn, Value: { IntegerValue: 9 } })

    const resolved = await client().send(new ResolveCustomerCommand({ RegistrationToken: second.token }))
    expect(resolved).not.toHaveProperty('CustomerIdentifier')
    expect(resolved).toMatchObject({ CustomerAWSAccountId: first.customer.CustomerAWSAccountId, LicenseArn: second.customer.LicenseArn, ProductCode: code })

    const byLicense = await entitlementsOf({ ProductCode: code, Filter: { LICENSE_ARN: [second.customer.LicenseArn!] } })
    expect(byLicense.map((e) => [e.LicenseArn, e.CustomerAWSAccountId, e.Value?.IntegerValue])).toEqual([[second.customer.LicenseArn, first.customer.CustomerAWSAccountId, 9]])
    expect(byLicense[0]).not.toHaveProperty('CustomerIdentifier')
    expect((await entitlementsOf({ ProductCode: code, Filter: { CUSTOMER_AWS_ACCOUNT_ID: [first.customer.CustomerAWSAccountId] } })).map((e) => e.Value?.IntegerValue)).toEqual([5, 9])
    // Values of one key are unioned, keys intersected.
    const both = [first.customer.LicenseArn!, second.customer.LicenseArn!]
    expect(await entitlementsOf({ ProductCode: code, Filter: { LICENSE_ARN: both, CUSTOMER_AWS_ACCOUNT_ID: ['999999999999'] } })).toEqual([])
    expect(await entitlementsOf({ ProductCode: code, Filter: { LICENSE_ARN: both } })).toHaveLength(2)
    expect(await entitlementsOf({ ProductCode: code, Filter: { CUSTOMER_IDENTIFIER: [first.customer.CustomerIdentifier] } })).toEqual([])
    await expect(
      entitlementsOf({ ProductCode: code, Filter: { CUSTOMER_IDENTIFIER: ['x'], CUSTOMER_AWS_ACCOUNT_ID: [first.customer.CustomerAWSAccountId] } }),
    ).rejects.toBeInstanceOf(InvalidParameterException)
  })

  test('a concurrent-agreements product meters by license only: each license its own record; the ProductCode form is CustomerNotSubscribed', async () => {
    const code = product()
    aws.addProduct(code, undefined, { concurrentAgreements: true })
    const a = aws.addCustomer({ ProductCode: code }).customer
    const b = aws.addCustomer({ ProductCode: code, CustomerAWSAccountId: a.CustomerAWSAccountId }).customer
    const when = minutesAgo(5)
    const before = aws.meteringRecords.length
    const licensed = await meter({
      UsageRecords: [a, b].map((c) => ({ Timestamp: when, CustomerAWSAccountId: c.CustomerAWSAccountId, LicenseArn: c.LicenseArn, Dimension: 'calls', Quantity: 2 })),
    })
    expect(licensed.Results!.map((r) => r.Status)).toEqual(['Success', 'Success'])
    const legacy = await meter({ ProductCode: code, UsageRecords: [{ Timestamp: when, CustomerAWSAccountId: a.CustomerAWSAccountId, Dimension: 'calls', Quantity: 2 }] })
    expect(legacy.Results!.map((r) => r.Status)).toEqual(['CustomerNotSubscribed'])
    expect(aws.meteringRecords.slice(before).map((r) => [r.LicenseArn, r.form])).toEqual([
      [a.LicenseArn, 'license'],
      [b.LicenseArn, 'license'],
    ])
  })

  test('both forms for one customer in one hour are metered twice (AWS bills twice), and each record says its form', async () => {
    const code = product()
    const customer = aws.addCustomer({ ProductCode: code, LicenseArn: `arn:aws:license-manager::294406891311:license:l-${code}` }).customer
    const when = minutesAgo(3)
    const before = aws.meteringRecords.length
    await meter({ ProductCode: code, UsageRecords: [{ Timestamp: when, CustomerIdentifier: customer.CustomerIdentifier, Dimension: 'gb', Quantity: 4 }] })
    await meter({ UsageRecords: [{ Timestamp: when, CustomerAWSAccountId: customer.CustomerAWSAccountId, LicenseArn: customer.LicenseArn, Dimension: 'gb', Quantity: 4 }] })
    // The same record again in its own form is still the idempotent replay.
    await meter({ UsageRecords: [{ Timestamp: when, CustomerAWSAccountId: customer.CustomerAWSAccountId, LicenseArn: customer.LicenseArn, Dimension: 'gb', Quantity: 4 }] })
    expect(aws.meteringRecords.slice(before).map((r) => [r.form, r.Quantity, r.CustomerAWSAccountId])).toEqual([
      ['product', 4, customer.CustomerAWSAccountId],
      ['license', 4, customer.CustomerAWSAccountId],
    ])
  })

  test('an ended license takes usage from before its end for one hour, then CustomerNotSubscribed', async () => {
    const code = product()
    const recent = aws.addCustomer({ ProductCode: code, LicenseArn: `arn:aws:license-manager::294406891311:license:l-${code}a` }).customer
    const old = aws.addCustomer({ ProductCode: code, LicenseArn: `arn:aws:license-manager::294406891311:license:l-${code}b` }).customer
    aws.endLicense(recent.LicenseArn!, minutesAgo(30).getTime())
    aws.endLicense(old.LicenseArn!, minutesAgo(61).getTime())
    const record = (c: typeof recent, at: Date) => ({ Timestamp: at, CustomerAWSAccountId: c.CustomerAWSAccountId, LicenseArn: c.LicenseArn, Dimension: 'calls', Quantity: 1 })
    const result = await meter({ UsageRecords: [record(recent, minutesAgo(40)), record(recent, minutesAgo(10)), record(old, minutesAgo(70))] })
    expect(result.Results!.map((r) => r.Status)).toEqual(['Success', 'CustomerNotSubscribed', 'CustomerNotSubscribed'])
  })
})
