import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type AwsEmulator, createAwsEmulator } from '../sandbox/emulators/aws'
import { createTestBroker } from './helpers'

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
    const gets = aws.callsTo('GetEntitlements').filter((call) => call.body.includes(customer.CustomerIdentifier))
    expect(gets).toHaveLength(2)
    expect(JSON.parse(gets[0]!.body)).toEqual({ ProductCode: 'prod-con', Filter: { CUSTOMER_IDENTIFIER: [customer.CustomerIdentifier] } })
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
