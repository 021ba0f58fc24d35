import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { runJobs } from '../src/domain/jobs'
import { createLandingService } from '../src/domain/landing'
import { type AwsEmulator, createAwsEmulator } from '../sandbox/emulators/aws'
import { type AwsNotificationsEmulator, type SnsMessage, createAwsNotificationsEmulator } from '../sandbox/emulators/aws-notifications'
import { createTestBroker, lifecycleProbe } from './helpers'

/**
 * AWS's side of contract §7 through the real route: SNS messages verified with WebCrypto
 * against the certificate at SigningCertURL (v1 SHA1withRSA and v2 SHA256withRSA), the
 * marketplace topics only, SubscriptionConfirmation confirmed through SubscribeURL, EventBridge
 * events with the integration's notification secret, and GetEntitlements asked for
 * entitlement-updated, License Updated and agreement changes.
 */
let aws: AwsEmulator
let sns: AwsNotificationsEmulator
const closers: Array<() => Promise<void>> = []
let awsUrl: string
const seller = { accessKeyId: 'AKIALIFECYCLE0000001', secretAccessKey: 'lifecycle/secret' }

beforeAll(async () => {
  aws = createAwsEmulator()
  const a = await aws.listen()
  awsUrl = a.url
  sns = await createAwsNotificationsEmulator()
  const s = await sns.listen()
  closers.push(a.close, s.close)
  aws.addCredentials(seller.accessKeyId, seller.secretAccessKey)
})
afterAll(async () => {
  for (const close of closers) await close()
})

interface Integration {
  partnerId: string
  notificationUrl: string
  notificationSecret?: string
}

async function scenario(settings: Record<string, unknown> = {}) {
  const broker = await createTestBroker({
    AWS_MARKETPLACE_METERING_URL: awsUrl,
    AWS_MARKETPLACE_ENTITLEMENT_URL: awsUrl,
    AWS_SNS_TRUSTED_CERT_PREFIX: sns.certPrefix,
  })
  const { org, apiKey } = await broker.createOrg()
  const put = await broker.request(`/api/v1/orgs/${org.id}/integrations/aws`, { method: 'PUT', token: apiKey, json: { credentials: seller, ...settings } })
  expect(put.status, await put.clone().text()).toBe(200)
  const { integration } = (await put.json()) as { integration: Integration }
  const path = integration.notificationUrl.replace('http://broker.test', '')
  const land = async (productCode: string, customer: Partial<{ CustomerIdentifier: string; CustomerAWSAccountId: string; LicenseArn: string }> = {}) => {
    const { customer: c, token } = aws.addCustomer({ ProductCode: productCode, ...customer })
    const landing = await broker.request(`/public/signup/aws/orgId/${org.id}`, {
      method: 'POST',
      token: null,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ 'x-amzn-marketplace-token': token }).toString(),
    })
    expect(landing.status).toBe(303)
    return { customer: c, id: new URL(landing.headers.get('location')!).searchParams.get('sugerEntitlementId')! }
  }
  const deliver = (message: SnsMessage | string) =>
    broker.request(path, { method: 'POST', token: null, headers: { 'content-type': 'text/plain; charset=UTF-8' }, body: typeof message === 'string' ? message : JSON.stringify(message) })
  const deliverEvent = (event: object, secret: string | null) =>
    broker.request(path, {
      method: 'POST',
      token: null,
      headers: { 'content-type': 'application/json; charset=utf-8', ...(secret ? { authorization: `Bearer ${secret}` } : {}) },
      body: JSON.stringify(event),
    })
  const { read, events, rows, settled } = lifecycleProbe(broker, org.id, apiKey)
  return { broker, org, apiKey, integration, path, land, deliver, deliverEvent, read, events, rows, settled }
}

const message = (action: Parameters<AwsNotificationsEmulator['marketplaceMessage']>[0], productCode: string, customerIdentifier: string) =>
  sns.marketplaceMessage(action, { customerIdentifier, productCode, offerIdentifier: 'offer-1' })

describe('AWS SNS notifications', () => {
  test('unsubscribe-pending (v1), unsubscribe-success (v2), a redelivery and a late, older subscribe-success: PENDING_CANCEL then CANCELLED, once each', async () => {
    const s = await scenario()
    const { customer, id } = await s.land('prod-sns')
    const topic = sns.topicArn('subscription', 'prod-sns')
    const early = new Date(Date.now() - 60_000).toISOString()
    const pending = sns.notification(topic, message('unsubscribe-pending', 'prod-sns', customer.CustomerIdentifier), { signatureVersion: 1 })
    expect((await s.deliver(pending)).status).toBe(200)
    await s.settled()
    expect((await s.read(id)).status).toBe('PENDING_CANCEL')
    const done = sns.notification(topic, message('unsubscribe-success', 'prod-sns', customer.CustomerIdentifier), { signatureVersion: 2 })
    expect((await s.deliver(done)).status).toBe(200)
    expect((await s.deliver(done)).status).toBe(200)
    await s.settled()
    expect((await s.read(id)).status).toBe('CANCELLED')
    const late = sns.notification(topic, message('subscribe-success', 'prod-sns', customer.CustomerIdentifier), { timestamp: early })
    expect((await s.deliver(late)).status).toBe(200)
    await s.settled()
    expect((await s.read(id)).status).toBe('CANCELLED')
    expect((await s.events(id)).map((e) => [e.type, e.data.action])).toEqual([
      ['PENDING_CANCEL', 'unsubscribe-pending'],
      ['CANCEL', 'unsubscribe-success'],
    ])
    expect(await s.rows()).toHaveLength(3)
  })

  test('subscribe-fail: CANCELLED with the reason; a contract’s entitlement-updated re-reads GetEntitlements (UPDATE with the new quantity)', async () => {
    const s = await scenario()
    const failed = await s.land('prod-fail')
    await s.deliver(sns.notification(sns.topicArn('subscription', 'prod-fail'), message('subscribe-fail', 'prod-fail', failed.customer.CustomerIdentifier)))
    await s.settled()
    expect((await s.read(failed.id)).status).toBe('CANCELLED')
    expect((await s.events(failed.id))[0]!.data.reason).toMatch(/subscribe-fail/)

    const contract = { ProductCode: 'prod-contract', Dimension: 'seats', Value: { IntegerValue: 10 } }
    const customerIdentifier = 'contract-customer-1'
    aws.addEntitlement({ ...contract, CustomerIdentifier: customerIdentifier })
    const { id } = await s.land('prod-contract', { CustomerIdentifier: customerIdentifier })
    expect((await s.read(id)).quantity).toBe(10)
    // The buyer raised their seats: AWS's entitlement now says 25.
    aws.entitlements.find((e) => e.CustomerIdentifier === customerIdentifier)!.Value.IntegerValue = 25
    const calls = aws.callsTo('GetEntitlements').length
    await s.deliver(sns.notification(sns.topicArn('entitlement', 'prod-contract'), message('entitlement-updated', 'prod-contract', customerIdentifier)))
    await s.settled()
    expect(aws.callsTo('GetEntitlements').length).toBe(calls + 1)
    expect((await s.read(id)).quantity).toBe(25)
    expect((await s.events(id)).map((e) => [e.type, e.data.action])).toEqual([['UPDATE', 'entitlement-updated']])
  })

  test('SubscriptionConfirmation is confirmed by fetching its SubscribeURL', async () => {
    const s = await scenario()
    const before = sns.confirmations.length
    const confirmation = sns.subscriptionConfirmation(sns.topicArn('subscription', 'prod-confirm'), { signatureVersion: 2 })
    expect((await s.deliver(confirmation)).status).toBe(200)
    const [row] = await s.settled()
    expect(row!.status).toBe('APPLIED')
    expect(sns.confirmations.length).toBe(before + 1)
    expect(sns.confirmations.at(-1)!.topicArn).toBe(sns.topicArn('subscription', 'prod-confirm'))
  })

  test('forged, tampered, off-host certificate, foreign topic, not SNS: 401, nothing stored', async () => {
    const s = await scenario({ notificationTopicArns: [sns.topicArn('subscription', 'prod-only')] })
    const { customer } = await s.land('prod-only')
    const topic = sns.topicArn('subscription', 'prod-only')
    const good = sns.notification(topic, message('unsubscribe-success', 'prod-only', customer.CustomerIdentifier))
    const forged = [
      sns.forgeWithStrangerKey(good),
      { ...good, Message: good.Message.replace('unsubscribe-success', 'unsubscribe-pending') },
      sns.notification(topic, message('unsubscribe-success', 'prod-only', customer.CustomerIdentifier), { signingCertUrl: 'https://attacker.example/cert.pem' }),
      sns.notification('arn:aws:sns:us-east-1:123456789012:my-own-topic', message('unsubscribe-success', 'prod-only', customer.CustomerIdentifier)),
      sns.notification(sns.topicArn('subscription', 'prod-other'), message('unsubscribe-success', 'prod-only', customer.CustomerIdentifier)),
      { ...good, SignatureVersion: '3' },
    ]
    for (const [i, message] of forged.entries()) expect((await s.deliver(message as SnsMessage)).status, `forgery ${i}`).toBe(401)
    expect((await s.deliver('not json')).status).toBe(401)
    expect((await s.deliver(JSON.stringify({ Type: 'Notification' }))).status).toBe(401)
    expect(await s.rows()).toEqual([])
    expect((await s.deliver(good)).status).toBe(200)
  })

  test('an unsubscribe that overtakes its buyer waits, and is applied after the landing', async () => {
    const s = await scenario()
    const customerIdentifier = 'early-customer-1'
    await s.deliver(sns.notification(sns.topicArn('subscription', 'prod-early'), message('unsubscribe-success', 'prod-early', customerIdentifier)))
    expect((await s.settled())[0]!.status).toBe('WAITING')
    const { id } = await s.land('prod-early', { CustomerIdentifier: customerIdentifier, LicenseArn: 'arn:aws:license-manager::123456789012:license:l-early' })
    expect((await s.read(id)).externalId).toBe('arn:aws:license-manager::123456789012:license:l-early')
    await runJobs(s.broker.deps, createLandingService(s.broker.deps), s.broker.deps.logger)
    expect((await s.rows())[0]!.status).toBe('APPLIED')
    expect((await s.read(id)).status).toBe('CANCELLED')
  })
})

describe('AWS EventBridge notifications', () => {
  test('the notification secret: shown once at creation, kept by a later PUT, rotated by POST (the old one refused)', async () => {
    const s = await scenario()
    expect(s.integration.notificationSecret).toMatch(/^mbn_[A-Za-z0-9_-]{40,}$/)
    const again = (await (await s.broker.request(`/api/v1/orgs/${s.org.id}/integrations/aws`, { method: 'PUT', token: s.apiKey, json: { credentials: seller } })).json()) as {
      integration: Integration
    }
    expect(again.integration.notificationSecret).toBeUndefined()
    const listed = await (await s.broker.request(`/api/v1/orgs/${s.org.id}/integrations`, { token: s.apiKey })).text()
    expect(listed).not.toContain(s.integration.notificationSecret!)
    const { customer } = await s.land('prod-eb', { LicenseArn: 'arn:aws:license-manager::123456789012:license:l-eb1' })
    const event = sns.saasEvent('License Updated - Manufacturer', {
      agreementId: 'agmt-1', buyerAccountId: customer.CustomerAWSAccountId, offerId: 'offer-1', productCode: 'prod-eb', productId: 'prod-id', licenseArn: 'arn:aws:license-manager::123456789012:license:l-eb1',
    })
    expect((await s.deliverEvent(event, s.integration.notificationSecret!)).status).toBe(200)
    const rotated = await s.broker.request(`/api/v1/orgs/${s.org.id}/integrations/aws/notification-secret`, { method: 'POST', token: s.apiKey })
    expect(rotated.status).toBe(200)
    const { notificationSecret } = (await rotated.json()) as { notificationSecret: string }
    expect(notificationSecret).not.toBe(s.integration.notificationSecret)
    expect((await s.deliverEvent({ ...event, id: 'another' }, s.integration.notificationSecret!)).status).toBe(401)
    expect((await s.deliverEvent({ ...event, id: 'another' }, notificationSecret)).status).toBe(200)
    expect((await s.deliverEvent({ ...event, id: 'third' }, null)).status).toBe(401)
    const other = await s.broker.createOrg({ name: 'Other' })
    expect((await s.broker.request(`/api/v1/orgs/${s.org.id}/integrations/aws/notification-secret`, { method: 'POST', token: other.apiKey })).status).toBe(404)
  })

  test('License Deprovisioned cancels the licence’s entitlement; Purchase Agreement Ended cancels the buyer’s; a Proposer event is ignored', async () => {
    const s = await scenario()
    const licenseArn = 'arn:aws:license-manager::123456789012:license:l-deprov'
    const licensed = await s.land('prod-lic', { LicenseArn: licenseArn })
    const ids = (buyer: string, extra: Record<string, string> = {}) => ({ agreementId: 'agmt-2', buyerAccountId: buyer, offerId: 'offer-2', ...extra })
    const proposer = sns.saasEvent('License Deprovisioned - Proposer' as never, ids(licensed.customer.CustomerAWSAccountId, { productCode: 'prod-lic', productId: 'p', licenseArn }))
    expect((await s.deliverEvent(proposer, s.integration.notificationSecret!)).status).toBe(200)
    await s.settled()
    expect((await s.read(licensed.id)).status).toBe('ACTIVE')
    const deprovisioned = sns.saasEvent('License Deprovisioned - Manufacturer', ids(licensed.customer.CustomerAWSAccountId, { productCode: 'prod-lic', productId: 'p', licenseArn }))
    expect((await s.deliverEvent(deprovisioned, s.integration.notificationSecret!)).status).toBe(200)
    await s.settled()
    expect((await s.read(licensed.id)).status).toBe('CANCELLED')

    const agreement = await s.land('prod-agmt')
    const ended = sns.saasEvent('Purchase Agreement Ended - Manufacturer', ids(agreement.customer.CustomerAWSAccountId))
    expect((await s.deliverEvent(ended, s.integration.notificationSecret!)).status).toBe(200)
    await s.settled()
    expect((await s.read(agreement.id)).status).toBe('CANCELLED')
    expect((await s.events(agreement.id)).map((e) => [e.type, e.data.action])).toEqual([['CANCEL', 'Purchase Agreement Ended - Manufacturer']])
    expect((await s.rows()).map((row) => row.status)).toEqual(['IGNORED', 'APPLIED', 'APPLIED'])
    expect((await s.deliverEvent({ source: 'aws.other', id: 'x', 'detail-type': 'Nope' }, s.integration.notificationSecret!)).status).toBe(400)
  })

  test('a license event printed without arn: finds its own entitlement among two concurrent agreements of one account (by the l- id)', async () => {
    const s = await scenario()
    aws.addProduct('prod-conc', undefined, { concurrentAgreements: true })
    const older = await s.land('prod-conc')
    const newer = await s.land('prod-conc', { CustomerAWSAccountId: older.customer.CustomerAWSAccountId })
    const licenseId = older.customer.LicenseArn!.split(':').at(-1)!
    // As AWS's License events print it: no arn:, a region, no license: segment.
    const printed = `aws:license-manager:us-east-1:${older.customer.CustomerAWSAccountId}:${licenseId}`
    const event = sns.saasEvent('License Deprovisioned - Manufacturer', {
      agreementId: 'agmt-conc-1', buyerAccountId: older.customer.CustomerAWSAccountId, offerId: 'offer-c', productCode: 'prod-conc', productId: 'p', licenseArn: printed,
    })
    expect((await s.deliverEvent(event, s.integration.notificationSecret!)).status).toBe(200)
    await s.settled()
    expect((await s.read(older.id)).status).toBe('CANCELLED')
    expect((await s.read(newer.id)).status).toBe('ACTIVE')
    expect((await s.read(older.id)).externalId).toBe(older.customer.LicenseArn)
  })
})
