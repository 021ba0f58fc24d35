import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { runJobs } from '../src/domain/jobs'
import { createLandingService } from '../src/domain/landing'
import { type AwsEmulator, createAwsEmulator } from '../sandbox/emulators/aws'
import { SAAS_DETAIL_TYPES } from '../providers/aws/eventbridge'
import { type AwsAgreementEmulator, createAwsAgreementEmulator } from '../sandbox/emulators/aws-agreement'
import { type AwsNotificationsEmulator, OTHER_DETAIL_TYPES, type SnsMessage, createAwsNotificationsEmulator, eventLicenseArn } from '../sandbox/emulators/aws-notifications'
import { createTestBroker, landAwsBuyer, lifecycleProbe } from './helpers'

/**
 * AWS's side of contract §7 through the real route: SNS messages verified with WebCrypto
 * against the certificate at SigningCertURL (v1 SHA1withRSA and v2 SHA256withRSA), the
 * marketplace topics only, SubscriptionConfirmation confirmed through SubscribeURL, EventBridge
 * events with the integration's notification secret, and GetEntitlements asked for
 * entitlement-updated, License Updated and agreement changes.
 */
let aws: AwsEmulator
let sns: AwsNotificationsEmulator
let agreement: AwsAgreementEmulator
let agreementUrl: string
const closers: Array<() => Promise<void>> = []
let awsUrl: string
const seller = { accessKeyId: 'AKIALIFECYCLE0000001', secretAccessKey: 'lifecycle/secret' }

beforeAll(async () => {
  aws = createAwsEmulator()
  const a = await aws.listen()
  awsUrl = a.url
  sns = await createAwsNotificationsEmulator()
  const s = await sns.listen()
  agreement = createAwsAgreementEmulator()
  const g = await agreement.listen()
  agreementUrl = g.url
  closers.push(a.close, s.close, g.close)
  aws.addCredentials(seller.accessKeyId, seller.secretAccessKey)
  agreement.addCredentials(seller.accessKeyId, seller.secretAccessKey)
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
    AWS_MARKETPLACE_AGREEMENT_URL: agreementUrl,
    AWS_SNS_TRUSTED_CERT_PREFIX: sns.certPrefix,
  })
  const { org, apiKey } = await broker.createOrg()
  const put = await broker.request(`/api/v1/orgs/${org.id}/integrations/aws`, { method: 'PUT', token: apiKey, json: { credentials: seller, ...settings } })
  expect(put.status, await put.clone().text()).toBe(200)
  const { integration } = (await put.json()) as { integration: Integration }
  const path = integration.notificationUrl.replace('http://broker.test', '')
  const land = async (productCode: string, customer: Partial<{ CustomerIdentifier: string; CustomerAWSAccountId: string; LicenseArn: string }> = {}) => {
    const { customer: c, token } = aws.addCustomer({ ProductCode: productCode, ...customer })
    return { customer: c, id: await landAwsBuyer(broker, org.id, token) }
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

  test('License Deprovisioned cancels the licence’s entitlement (its ARN printed without arn:); an agreement AWS does not show waits; an event that is not JSON or not AWS Marketplace’s is 400', async () => {
    const s = await scenario()
    const licenseArn = 'arn:aws:license-manager::123456789012:license:l-deprov'
    const licensed = await s.land('prod-lic', { LicenseArn: licenseArn })
    const ids = (buyer: string, extra: Record<string, string> = {}) => ({ agreementId: 'agmt-2', buyerAccountId: buyer, offerId: 'offer-2', ...extra })
    const deprovisioned = sns.saasEvent('License Deprovisioned - Manufacturer', ids(licensed.customer.CustomerAWSAccountId, { productCode: 'prod-lic', productId: 'p', licenseArn: eventLicenseArn(licenseArn) }))
    expect((deprovisioned.detail as { license: { arn: string } }).license.arn).toBe('aws:license-manager:us-east-1:123456789012:l-deprov')
    expect((await s.deliverEvent(deprovisioned, s.integration.notificationSecret!)).status).toBe(200)
    await s.settled()
    expect((await s.read(licensed.id)).status).toBe('CANCELLED')

    // The buyer's only entitlement is never "the account's newest" for an agreement nobody named.
    const other = await s.land('prod-agmt', { LicenseArn: 'arn:aws:license-manager::123456789012:license:l-other' })
    const ended = sns.saasEvent('Purchase Agreement Ended - Manufacturer', ids(other.customer.CustomerAWSAccountId, { agreementId: 'agmt-unknown' }))
    expect((await s.deliverEvent(ended, s.integration.notificationSecret!)).status).toBe(200)
    const rows = await s.settled()
    expect(rows.find((row) => row.action === 'Purchase Agreement Ended - Manufacturer')!.status).toBe('WAITING')
    expect((await s.read(other.id)).status).toBe('ACTIVE')
    expect(await s.events(other.id)).toEqual([])
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

describe('AWS concurrent agreements (contract §17)', () => {
  const arn = (id: string) => `arn:aws:license-manager::123456789012:license:${id}`
  const licenseUpdated = (agreementId: string, buyerAccountId: string, licenseId: string, productCode: string) =>
    sns.saasEvent('License Updated - Manufacturer', { agreementId, buyerAccountId, offerId: 'offer-c', productCode, licenseArn: eventLicenseArn(arn(licenseId)) })

  test('two agreements of one account are two entitlements; License Updated records each agreement id; Ended (Manufacturer and Proposer copies) cancels only its own, once', async () => {
    const s = await scenario()
    const first = await s.land('prod-conc', { LicenseArn: arn('l-conc1') })
    const account = first.customer.CustomerAWSAccountId
    const second = await s.land('prod-conc', { LicenseArn: arn('l-conc2'), CustomerAWSAccountId: account })
    expect(second.id).not.toBe(first.id)
    for (const [agreementId, license] of [['agmt-conc1', 'l-conc1'], ['agmt-conc2', 'l-conc2']] as const) {
      expect((await s.deliverEvent(licenseUpdated(agreementId, account, license, 'prod-conc'), s.integration.notificationSecret!)).status).toBe(200)
    }
    await s.settled()
    expect((await s.read(first.id)).info.agreementId).toBe('agmt-conc1')
    expect((await s.read(second.id)).info.agreementId).toBe('agmt-conc2')

    // The older agreement ends; the newer one (the account's newest entitlement) is not touched.
    const copies = sns.roleCopies('Purchase Agreement Ended', { agreementId: 'agmt-conc1', buyerAccountId: account, offerId: 'offer-c' })
    expect(copies.map((e) => e['detail-type'])).toEqual(['Purchase Agreement Ended - Manufacturer', 'Purchase Agreement Ended - Proposer'])
    expect(copies[0]!.id).not.toBe(copies[1]!.id)
    const searches = agreement.callsTo('SearchAgreements').length
    for (const copy of copies) expect((await s.deliverEvent(copy, s.integration.notificationSecret!)).status).toBe(200)
    await s.settled()
    expect((await s.read(first.id)).status).toBe('CANCELLED')
    expect((await s.read(second.id)).status).toBe('ACTIVE')
    expect((await s.events(first.id)).map((e) => [e.type, e.data.action])).toEqual([['CANCEL', 'Purchase Agreement Ended - Manufacturer']])
    expect(await s.events(second.id)).toEqual([])
    expect((await s.rows()).filter((row) => row.action.startsWith('Purchase Agreement Ended'))).toHaveLength(1)
    // A known agreement needs no lookup.
    expect(agreement.callsTo('SearchAgreements').length).toBe(searches)
  })

  test('an agreement id not yet known is found through SearchAgreements (the seller as proposer, the buyer’s account) and applied to its license’s entitlement only', async () => {
    const s = await scenario()
    const mine = await s.land('prod-search', { LicenseArn: arn('l-search1') })
    const account = mine.customer.CustomerAWSAccountId
    const newer = await s.land('prod-search', { LicenseArn: arn('l-search2'), CustomerAWSAccountId: account })
    agreement.addAgreement({ agreementId: 'agmt-search2', acceptorAccountId: account, licenseArns: [arn('l-search2')] })
    agreement.addAgreement({ agreementId: 'agmt-search1', acceptorAccountId: account, licenseArns: [arn('l-search1')] })
    const before = agreement.callsTo('SearchAgreements').length
    const ended = sns.saasEvent('Purchase Agreement Ended - Manufacturer', { agreementId: 'agmt-search1', buyerAccountId: account, offerId: 'offer-s' })
    expect((await s.deliverEvent(ended, s.integration.notificationSecret!)).status).toBe(200)
    await s.settled()
    const calls = agreement.callsTo('SearchAgreements').slice(before)
    expect(calls).toHaveLength(1)
    expect(calls[0]!.service).toBe('aws-marketplace')
    expect(calls[0]!.input).toMatchObject({
      catalog: 'AWSMarketplace',
      filters: expect.arrayContaining([
        { name: 'PartyType', values: ['Proposer'] },
        { name: 'AgreementType', values: ['PurchaseAgreement'] },
        { name: 'AcceptorAccountId', values: [account] },
      ]),
    })
    expect((await s.read(mine.id)).status).toBe('CANCELLED')
    expect((await s.read(mine.id)).info.agreementId).toBe('agmt-search1')
    expect((await s.read(newer.id)).status).toBe('ACTIVE')
  })

  test('an agreement event before its landing waits under its license and is applied when the buyer lands; one AWS does not show waits for the License Updated that names it', async () => {
    const s = await scenario()
    const account = '444455556666'
    agreement.addAgreement({ agreementId: 'agmt-early', acceptorAccountId: account, licenseArns: [arn('l-early2')] })
    await s.deliverEvent(sns.saasEvent('Purchase Agreement Ended - Manufacturer', { agreementId: 'agmt-early', buyerAccountId: account, offerId: 'o' }), s.integration.notificationSecret!)
    expect((await s.settled()).map((row) => [row.status, row.subject])).toEqual([['WAITING', 'license:l-early2']])
    const early = await s.land('prod-early2', { LicenseArn: arn('l-early2'), CustomerAWSAccountId: account })
    await runJobs(s.broker.deps, createLandingService(s.broker.deps), s.broker.deps.logger)
    expect((await s.read(early.id)).status).toBe('CANCELLED')

    const late = await s.land('prod-early2', { LicenseArn: arn('l-late'), CustomerAWSAccountId: account })
    await s.deliverEvent(sns.saasEvent('Purchase Agreement Ended - Manufacturer', { agreementId: 'agmt-hidden', buyerAccountId: account, offerId: 'o' }), s.integration.notificationSecret!)
    await s.settled()
    expect((await s.read(late.id)).status).toBe('ACTIVE')
    await s.deliverEvent(licenseUpdated('agmt-hidden', account, 'l-late', 'prod-early2'), s.integration.notificationSecret!)
    await s.settled()
    await runJobs(s.broker.deps, createLandingService(s.broker.deps), s.broker.deps.logger)
    expect((await s.read(late.id)).status).toBe('CANCELLED')
    expect((await s.read(late.id)).info.agreementId).toBe('agmt-hidden')
    expect((await s.events(late.id)).map((e) => [e.type, e.data.action])).toEqual([['CANCEL', 'Purchase Agreement Ended - Manufacturer']])
  })

  test('every other documented detail-type, and one AWS may add, is answered 200, stored and settled as not acted on; nothing changes', async () => {
    const s = await scenario()
    const { id, customer } = await s.land('prod-other', { LicenseArn: arn('l-other1') })
    await s.deliverEvent(licenseUpdated('agmt-other', customer.CustomerAWSAccountId, 'l-other1', 'prod-other'), s.integration.notificationSecret!)
    await s.settled()
    const before = JSON.stringify(await s.read(id))
    const ids = { agreementId: 'agmt-other', buyerAccountId: customer.CustomerAWSAccountId, offerId: 'offer-o' }
    for (const detailType of [...OTHER_DETAIL_TYPES, 'Purchase Agreement Something New - Manufacturer']) {
      const response = await s.deliverEvent(sns.otherEvent(detailType, ids), s.integration.notificationSecret!)
      expect(response.status, detailType).toBe(200)
    }
    const rows = (await s.settled()).filter((row) => row.action !== 'License Updated - Manufacturer')
    expect(rows).toHaveLength(OTHER_DETAIL_TYPES.length + 1)
    expect(rows.every((row) => row.status === 'IGNORED')).toBe(true)
    expect(JSON.stringify(await s.read(id))).toBe(before)
    expect(await s.events(id)).toEqual([])
  })

  test('property: any EventBridge body with the secret is never a 5xx; a refused one (400) stores and changes nothing; an accepted one never touches another agreement’s entitlement', async () => {
    const s = await scenario()
    const { id, customer } = await s.land('prod-prop', { LicenseArn: arn('l-prop1') })
    await s.deliverEvent(licenseUpdated('agmt-prop', customer.CustomerAWSAccountId, 'l-prop1', 'prod-prop'), s.integration.notificationSecret!)
    await s.settled()
    const before = JSON.stringify(await s.read(id))
    const detailTypes = [...SAAS_DETAIL_TYPES.flatMap((kind) => [`${kind} - Manufacturer`, `${kind} - Proposer`]), ...OTHER_DETAIL_TYPES, 'x', '']
    const ids = fc.record({ agreementId: fc.oneof(fc.constantFrom('agmt-other', 'agmt-x'), fc.string({ maxLength: 30 })), buyerAccountId: fc.oneof(fc.constant(customer.CustomerAWSAccountId), fc.string({ maxLength: 14 })), offerId: fc.string({ maxLength: 10 }) })
    const detail = fc.oneof(
      fc.jsonValue(),
      ids.map((v) => sns.agreementDetail('ended', v)),
      fc.tuple(ids, fc.oneof(fc.constant(eventLicenseArn(arn('l-prop2'))), fc.string({ maxLength: 60 }))).map(([v, licenseArn]) => sns.licenseDetail({ ...v, productCode: 'prod-prop', licenseArn })),
    )
    const body = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.record({ source: fc.constantFrom('aws.agreement-marketplace', 'aws.other'), id: fc.string({ maxLength: 40 }), 'detail-type': fc.constantFrom(...detailTypes), time: fc.oneof(fc.constant(new Date().toISOString()), fc.string({ maxLength: 30 })), detail }, { requiredKeys: ['source', 'detail-type', 'detail'] }).map((v) => JSON.stringify(v)),
    )
    await fc.assert(
      fc.asyncProperty(body, async (text) => {
        const stored = (await s.rows()).length
        const response = await s.broker.request(s.path, { method: 'POST', token: null, headers: { 'content-type': 'application/json', authorization: `Bearer ${s.integration.notificationSecret}` }, body: text })
        expect(response.status, text.slice(0, 200)).toBeLessThan(500)
        if (response.status === 400) expect((await s.rows()).length).toBe(stored)
        else expect(response.status).toBe(200)
      }),
      { numRuns: 150 },
    )
    await s.settled()
    // None named agmt-prop or l-prop1: the buyer's one entitlement is as it was.
    expect(JSON.stringify(await s.read(id))).toBe(before)
  })
})
