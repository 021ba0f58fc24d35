import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type AwsEmulator, createAwsEmulator } from '../sandbox/emulators/aws'
import { createTestBroker } from './helpers'

/** How AWS prints one license: ResolveCustomer's ARN, and the EventBridge events' prints without `arn:`. */
const PRINTS = [
  (_account: string, id: string) => `arn:aws:license-manager::294406891311:license:${id}`,
  (account: string, id: string) => `aws:license-manager:us-east-1:${account}:license:${id}`,
  (account: string, id: string) => `aws:license-manager:us-east-1:${account}:${id}`,
]

let aws: AwsEmulator
let url: string
let close: () => Promise<void>
const seller = { accessKeyId: 'AKIASELLER0000000001', secretAccessKey: 'seller/secret+key=' }

beforeAll(async () => {
  aws = createAwsEmulator()
  ;({ url, close } = await aws.listen())
  aws.addCredentials(seller.accessKeyId, seller.secretAccessKey)
})
afterAll(async () => {
  await close()
})

async function scenario(integration: Record<string, unknown> = { credentials: seller }) {
  const broker = await createTestBroker({ AWS_MARKETPLACE_METERING_URL: url, AWS_MARKETPLACE_ENTITLEMENT_URL: url, AWS_STS_URL: url })
  const { org, apiKey } = await broker.createOrg()
  const put = await broker.request(`/api/v1/orgs/${org.id}/integrations/aws`, { method: 'PUT', token: apiKey, json: integration })
  expect(put.status).toBe(200)
  const post = (token: string | null, extra: Record<string, string> = {}) =>
    broker.request(`/public/signup/aws/orgId/${org.id}`, {
      method: 'POST',
      token: null,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ ...(token === null ? {} : { 'x-amzn-marketplace-token': token }), ...extra }).toString(),
    })
  const entitlement = async (response: Response) => {
    const id = new URL(response.headers.get('location')!).searchParams.get('sugerEntitlementId')!
    return (await (await broker.request(`/api/v1/orgs/${org.id}/entitlements/${id}`, { token: apiKey })).json()) as Record<string, any>
  }
  return { broker, org, apiKey, post, entitlement }
}

describe('aws landing', () => {
  test('a SaaS subscription (no entitlements) is SUBSCRIPTION; without a LicenseArn the id is ProductCode:CustomerIdentifier', async () => {
    const s = await scenario()
    const { customer, token } = aws.addCustomer({ ProductCode: 'prod-sub' })
    const response = await s.post(token)
    expect(response.status).toBe(303)
    expect(new URL(response.headers.get('location')!).searchParams.get('offerType')).toBe('SUBSCRIPTION')
    expect(await s.entitlement(response)).toMatchObject({
      partner: 'aws',
      externalId: `prod-sub:${customer.CustomerIdentifier}`,
      productId: 'prod-sub',
      planId: null,
      offerType: 'SUBSCRIPTION',
      buyer: { accountId: customer.CustomerAWSAccountId, customerId: customer.CustomerIdentifier },
      info: { entitlements: [] },
    })
  })

  test('a contract customer is CONTRACT with every dimension kept (GetEntitlements is paginated)', async () => {
    const s = await scenario()
    const arn = 'arn:aws:license-manager::294406891311:license:l-contract'
    const { customer, token } = aws.addCustomer({ ProductCode: 'prod-con', LicenseArn: arn })
    for (let i = 0; i < 30; i++) {
      aws.addEntitlement({ ProductCode: 'prod-con', Dimension: `dim-${i}`, CustomerIdentifier: customer.CustomerIdentifier, Value: { IntegerValue: i }, ExpirationDate: 1924992000 + i })
    }
    aws.addEntitlement({ ProductCode: 'prod-con', Dimension: 'someone-else', CustomerIdentifier: 'other-customer', Value: { IntegerValue: 1 } })
    const response = await s.post(token)
    expect(new URL(response.headers.get('location')!).searchParams.get('offerType')).toBe('CONTRACT')
    const ent = await s.entitlement(response)
    expect(ent.externalId).toBe(arn)
    expect(ent.info.entitlements).toHaveLength(30)
    expect(ent.info.entitlements[0]).toMatchObject({ Dimension: 'dim-0', Value: { IntegerValue: 0 }, ExpirationDate: new Date(1924992000 * 1000).toISOString() })
    expect(ent.term.end).toBe(new Date((1924992000 + 29) * 1000).toISOString())
    // The license is known: GetEntitlements asks for it (the account may hold other agreements).
    const gets = aws.callsTo('GetEntitlements').filter((call) => call.body.includes(arn))
    expect(gets).toHaveLength(2)
    expect(JSON.parse(gets[0]!.body)).toEqual({ ProductCode: 'prod-con', Filter: { LICENSE_ARN: [arn] } })
  })

  test('a product under the concurrent-agreements model (ResolveCustomer without CustomerIdentifier) lands: the license is the key, CONTRACT from its entitlements', async () => {
    const s = await scenario()
    aws.addProduct('prod-new', undefined, { concurrentAgreements: true })
    const { customer, token } = aws.addCustomer({ ProductCode: 'prod-new' })
    aws.addEntitlement({ ProductCode: 'prod-new', Dimension: 'seats', LicenseArn: customer.LicenseArn, Value: { IntegerValue: 12 }, ExpirationDate: 1924992000 })
    const response = await s.post(token)
    expect(response.status).toBe(303)
    expect(new URL(response.headers.get('location')!).searchParams.get('offerType')).toBe('CONTRACT')
    const ent = await s.entitlement(response)
    expect(ent).toMatchObject({
      status: 'ACTIVE',
      externalId: customer.LicenseArn,
      productId: 'prod-new',
      quantity: 12,
      buyer: { accountId: customer.CustomerAWSAccountId, customerId: null },
      info: { customer: { CustomerIdentifier: null, CustomerAWSAccountId: customer.CustomerAWSAccountId, LicenseArn: customer.LicenseArn, ProductCode: 'prod-new' } },
    })
    expect(ent.info.entitlements).toHaveLength(1)
    const gets = aws.callsTo('GetEntitlements').filter((call) => call.body.includes(customer.LicenseArn!))
    expect(gets.map((call) => JSON.parse(call.body))).toEqual([{ ProductCode: 'prod-new', Filter: { LICENSE_ARN: [customer.LicenseArn] } }])
    // The reconciliation re-read asks for the license too.
    expect((await s.broker.request(`/api/v1/orgs/${s.org.id}/entitlements/${ent.id}/refresh`, { method: 'POST', token: s.apiKey })).status).toBe(200)
    expect(aws.callsTo('GetEntitlements').filter((call) => call.body.includes(customer.LicenseArn!)).map((call) => JSON.parse(call.body).Filter)).toEqual([
      { LICENSE_ARN: [customer.LicenseArn] },
      { LICENSE_ARN: [customer.LicenseArn] },
    ])
  })

  test('two concurrent agreements of one account and product are two entitlements; each token again (and a double click) keeps to its own', async () => {
    const s = await scenario()
    aws.addProduct('prod-two', undefined, { concurrentAgreements: true })
    const first = aws.addCustomer({ ProductCode: 'prod-two' })
    const second = aws.addCustomer({ ProductCode: 'prod-two', CustomerAWSAccountId: first.customer.CustomerAWSAccountId })
    aws.addEntitlement({ ProductCode: 'prod-two', Dimension: 'seats', LicenseArn: first.customer.LicenseArn, Value: { IntegerValue: 3 } })
    aws.addEntitlement({ ProductCode: 'prod-two', Dimension: 'seats', LicenseArn: second.customer.LicenseArn, Value: { IntegerValue: 30 } })
    const a = await s.entitlement(await s.post(first.token))
    const [b1, b2] = await Promise.all([s.post(second.token), s.post(second.token)])
    expect(b1!.headers.get('location')).toBe(b2!.headers.get('location'))
    const b = await s.entitlement(b1!)
    expect(b.id).not.toBe(a.id)
    expect([a.externalId, a.quantity, b.externalId, b.quantity]).toEqual([first.customer.LicenseArn, 3, second.customer.LicenseArn, 30])
    expect(a.buyer.accountId).toBe(b.buyer.accountId)
    expect((await s.post(aws.tokenFor(first.customer))).headers.get('location')).toContain(a.id)
    const listed = (await (await s.broker.request(`/api/v1/orgs/${s.org.id}/entitlements?partner=aws`, { token: s.apiKey })).json()) as { items: unknown[] }
    expect(listed.items).toHaveLength(2)
  })

  test('property: a license printed another way (with or without arn:, a region, license:) is the same entitlement, its externalId kept as first given', async () => {
    const s = await scenario()
    aws.addProduct('prod-prints', undefined, { concurrentAgreements: true })
    const account = '210987654321'
    let n = 0
    await fc.assert(
      fc.asyncProperty(fc.stringMatching(/^[0-9a-f]{8,32}$/), fc.constantFrom(...PRINTS), fc.constantFrom(...PRINTS), async (hex, firstPrint, laterPrint) => {
        const id = `l-${hex}${n++}`
        const { customer, token } = aws.addCustomer({ ProductCode: 'prod-prints', CustomerAWSAccountId: account, LicenseArn: firstPrint(account, id) })
        const before = await s.entitlement(await s.post(token))
        const again = await s.post(aws.tokenFor({ ...customer, LicenseArn: laterPrint(account, id) }))
        expect(again.status).toBe(303)
        const after = await s.entitlement(again)
        expect(after.id).toBe(before.id)
        expect(after.externalId).toBe(firstPrint(account, id))
      }),
      { numRuns: 15 },
    )
  })

  test('the same customer arriving twice (two tokens) gets the same entitlement', async () => {
    const s = await scenario()
    const { customer, token } = aws.addCustomer({ ProductCode: 'prod-twice' })
    const first = await s.post(token)
    const second = await s.post(aws.tokenFor(customer))
    expect(second.headers.get('location')).toBe(first.headers.get('location'))
  })

  test('a form whose "+" was left unencoded (so it decodes to a space) still carries the token', async () => {
    const s = await scenario()
    const { token } = aws.addCustomer({ ProductCode: 'prod-plus' })
    expect(token).toContain('+')
    const body = `x-amzn-marketplace-token=${token.replace(/\//g, '%2F').replace(/=/g, '%3D')}`
    const response = await s.broker.request(`/public/signup/aws/orgId/${s.org.id}`, {
      method: 'POST',
      token: null,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
    })
    expect(response.status).toBe(303)
    expect(JSON.parse(aws.callsTo('ResolveCustomer').at(-1)!.body).RegistrationToken).toBe(token)
  })

  test('the token may come in a GET query too', async () => {
    const s = await scenario()
    const { token } = aws.addCustomer({ ProductCode: 'prod-get' })
    const response = await s.broker.request(`/public/signup/aws/orgId/${s.org.id}?x-amzn-marketplace-token=${encodeURIComponent(token)}`, { token: null })
    expect(response.status).toBe(303)
  })

  test('invalid, expired and missing tokens are 400 pages telling the buyer to "Set up your account" again', async () => {
    const s = await scenario()
    const { token: expired } = aws.addCustomer({ ProductCode: 'prod-exp' }, { expiresInMs: -1 })
    const resolvesBefore = aws.callsTo('ResolveCustomer').length
    const missing = await s.post(null)
    expect(aws.callsTo('ResolveCustomer').length).toBe(resolvesBefore)
    for (const response of [await s.post('aW52YWxpZC10b2tlbg=='), await s.post(expired), missing]) {
      expect(response.status).toBe(400)
      expect(response.headers.get('cache-control')).toBe('no-store')
      const html = await response.text()
      expect(html).toContain('AWS Marketplace')
      expect(html).toContain('Set up your account')
      expect(html).not.toContain(expired)
    }
  })

  test('throttling is retried by the SDK and the buyer lands', async () => {
    const s = await scenario()
    const { token } = aws.addCustomer({ ProductCode: 'prod-throttle' })
    aws.failNext('ResolveCustomer', 400, 'ThrottlingException', 2)
    const response = await s.post(token)
    expect(response.status).toBe(303)
  })

  test('AWS unavailable after 3 attempts: 502 page, nothing stored', async () => {
    const s = await scenario()
    const { token } = aws.addCustomer({ ProductCode: 'prod-down' })
    const before = aws.callsTo('ResolveCustomer').length
    aws.failNext('ResolveCustomer', 500, 'InternalServiceErrorException', 3)
    const response = await s.post(token)
    expect(response.status).toBe(502)
    expect(aws.callsTo('ResolveCustomer').length - before).toBe(3)
  })

  test('wrong seller keys are a configuration problem: 503 for the buyer, an error line naming the org', async () => {
    const s = await scenario({ credentials: { accessKeyId: seller.accessKeyId, secretAccessKey: 'not-the-secret' } })
    const { token } = aws.addCustomer({ ProductCode: 'prod-badkey' })
    const response = await s.post(token)
    expect(response.status).toBe(503)
    const line = s.broker.logs.map((l) => JSON.parse(l)).find((l) => l.msg.includes('integration misconfigured'))
    expect(line).toMatchObject({ orgId: s.org.id, partner: 'aws', awsError: 'InvalidSignatureException' })
    expect(s.broker.logs.join('\n')).not.toContain('not-the-secret')
  })

  test('a roleArn is assumed through STS (with the externalId) and the role’s credentials sign the calls', async () => {
    const roleArn = 'arn:aws:iam::294406891311:role/MarketbridgeMarketplace'
    aws.addRole(roleArn, seller.accessKeyId, 'ext-42')
    const s = await scenario({ credentials: seller, roleArn, externalId: 'ext-42' })
    const { token } = aws.addCustomer({ ProductCode: 'prod-role' })
    const assumesBefore = aws.callsTo('AssumeRole').length
    expect((await s.post(token)).status).toBe(303)
    expect((await s.post(aws.addCustomer({ ProductCode: 'prod-role' }).token)).status).toBe(303)
    const assumes = aws.callsTo('AssumeRole').slice(assumesBefore)
    expect(assumes).toHaveLength(1) // cached until near expiry
    expect(new URLSearchParams(assumes[0]!.body).get('ExternalId')).toBe('ext-42')
    expect(assumes[0]!.service).toBe('sts')
    expect(aws.callsTo('ResolveCustomer').at(-1)!.accessKeyId).toMatch(/^ASIA/)

    const denied = await scenario({ credentials: seller, roleArn, externalId: 'wrong' })
    expect((await denied.post(aws.addCustomer({ ProductCode: 'prod-role' }).token)).status).toBe(503)
  })

  test("the integration's offerTypes mapping wins", async () => {
    const s = await scenario({ credentials: seller, offerTypes: { 'prod-mapped': 'PAYG' } })
    const response = await s.post(aws.addCustomer({ ProductCode: 'prod-mapped' }).token)
    expect(new URL(response.headers.get('location')!).searchParams.get('offerType')).toBe('PAYG')
  })

  test('the registration token never reaches a log line', async () => {
    const s = await scenario()
    const { token } = aws.addCustomer({ ProductCode: 'prod-log' })
    await s.post(token)
    await s.post('aW52YWxpZC10b2tlbg==')
    const logs = s.broker.logs.join('\n')
    expect(logs).not.toContain(token)
    expect(logs).not.toContain('aW52YWxpZC10b2tlbg==')
    expect(logs).not.toContain(seller.secretAccessKey)
  })
})
