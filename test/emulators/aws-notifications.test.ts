import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { X509Certificate, createVerify } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type AwsNotificationsEmulator, OTHER_DETAIL_TYPES, type SnsMessage, createAwsNotificationsEmulator, eventLicenseArn } from '../../sandbox/emulators/aws-notifications'

/**
 * The emulator's signatures are checked here the way AWS's "Verifying the signatures of Amazon SNS
 * messages" describes, written out again independently of the emulator: the certificate is fetched
 * over HTTP from SigningCertURL, the string to sign is rebuilt from the JSON as received, and
 * node:crypto verifies SHA1withRSA (v1) or SHA256withRSA (v2).
 */

let sns: AwsNotificationsEmulator
let close: () => Promise<void>
let receiver: { url: string; close: () => Promise<void> }
const received: Array<{ headers: Record<string, string>; body: string }> = []

beforeAll(async () => {
  sns = await createAwsNotificationsEmulator()
  ;({ close } = await sns.listen())
  const app = new Hono()
  app.post('/hook', async (c) => {
    received.push({ headers: Object.fromEntries(c.req.raw.headers), body: await c.req.text() })
    return c.body(null, 204)
  })
  receiver = await new Promise((resolve) => {
    const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, (info: AddressInfo) =>
      resolve({ url: `http://127.0.0.1:${info.port}`, close: () => new Promise<void>((done) => server.close(() => done())) }),
    )
  })
})
afterAll(async () => {
  await receiver.close()
  await close()
})

function stringToSign(message: Record<string, string>): string {
  const fields =
    message.Type === 'Notification'
      ? ['Message', 'MessageId', ...('Subject' in message ? ['Subject'] : []), 'Timestamp', 'TopicArn', 'Type']
      : ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type']
  return fields.map((key) => `${key}\n${message[key]}\n`).join('')
}

async function verifyOverHttp(message: Record<string, string>): Promise<boolean> {
  const response = await fetch(message.SigningCertURL!)
  expect(response.status).toBe(200)
  const certificate = new X509Certificate(await response.text())
  const algorithm = message.SignatureVersion === '1' ? 'RSA-SHA1' : message.SignatureVersion === '2' ? 'RSA-SHA256' : null
  if (!algorithm) return false
  return createVerify(algorithm).update(stringToSign(message), 'utf8').verify(certificate.publicKey, message.Signature!, 'base64')
}

/** The message as the subscriber parses it from the wire. */
const wire = (message: SnsMessage) => JSON.parse(JSON.stringify(message)) as Record<string, string>

describe.each([1, 2] as const)('SignatureVersion %i', (version) => {
  const topic = () => sns.topicArn('subscription', 'prodcode123')

  test('a Notification without Subject verifies against the served certificate', async () => {
    const message = sns.notification(
      topic(),
      sns.marketplaceMessage('subscribe-success', { customerIdentifier: 'cust-1', productCode: 'prodcode123', offerIdentifier: 'offer-abc' }),
      { signatureVersion: version },
    )
    expect(message).not.toHaveProperty('Subject')
    expect(message.SignatureVersion).toBe(String(version))
    await expect(verifyOverHttp(wire(message))).resolves.toBe(true)
  })

  test('a Notification with a Subject verifies, and the Subject is part of what is signed', async () => {
    const message = sns.notification(topic(), { action: 'unsubscribe-pending' }, { signatureVersion: version, subject: 'AWS Marketplace' })
    expect(message.Subject).toBe('AWS Marketplace')
    await expect(verifyOverHttp(wire(message))).resolves.toBe(true)
    await expect(verifyOverHttp({ ...wire(message), Subject: 'Other' })).resolves.toBe(false)
    const { Subject: _dropped, ...withoutSubject } = wire(message)
    await expect(verifyOverHttp(withoutSubject)).resolves.toBe(false)
  })

  test('a Message with newlines, quotes and non-ASCII survives the JSON round trip and verifies', async () => {
    const message = sns.notification(topic(), 'line one\nline "two"\tünïcode ✓', { signatureVersion: version, subject: 'Sübject' })
    const parsed = JSON.parse(JSON.stringify(message)) as Record<string, string>
    expect(parsed.Message).toContain('\n')
    await expect(verifyOverHttp(parsed)).resolves.toBe(true)
  })

  test('a SubscriptionConfirmation verifies, SubscribeURL and Token included', async () => {
    const message = sns.subscriptionConfirmation(topic(), { signatureVersion: version })
    expect(message.Type).toBe('SubscriptionConfirmation')
    expect(message.SubscribeURL).toBe(`${sns.certPrefix}?Action=ConfirmSubscription&TopicArn=${topic()}&Token=${message.Token}`)
    await expect(verifyOverHttp(wire(message))).resolves.toBe(true)
    await expect(verifyOverHttp({ ...wire(message), SubscribeURL: 'https://evil.example/?Action=ConfirmSubscription' })).resolves.toBe(false)
    await expect(verifyOverHttp({ ...wire(message), Token: 'other' })).resolves.toBe(false)
  })

  test('an UnsubscribeConfirmation verifies', async () => {
    const message = sns.unsubscribeConfirmation(topic(), { signatureVersion: version })
    await expect(verifyOverHttp(wire(message))).resolves.toBe(true)
  })

  test('a tampered Message, TopicArn or Timestamp fails; re-signing an edit makes it valid again', async () => {
    const message = sns.notification(topic(), sns.marketplaceMessage('unsubscribe-success', { customerIdentifier: 'cust-1', productCode: 'prodcode123' }), {
      signatureVersion: version,
    })
    const forgedMessage = JSON.stringify({ ...JSON.parse(message.Message), action: 'subscribe-success' })
    await expect(verifyOverHttp({ ...wire(message), Message: forgedMessage })).resolves.toBe(false)
    await expect(verifyOverHttp({ ...wire(message), TopicArn: sns.topicArn('subscription', 'other') })).resolves.toBe(false)
    await expect(verifyOverHttp({ ...wire(message), Timestamp: new Date(0).toISOString() })).resolves.toBe(false)
    await expect(verifyOverHttp(wire(sns.resign({ ...message, Message: forgedMessage })))).resolves.toBe(true)
  })

  test('a message signed with the stranger key does not verify against the served certificate', async () => {
    const genuine = sns.notification(topic(), { action: 'subscribe-success' }, { signatureVersion: version })
    await expect(verifyOverHttp(wire(sns.forgeWithStrangerKey(genuine)))).resolves.toBe(false)
    await expect(verifyOverHttp(wire(sns.notification(topic(), { action: 'subscribe-success' }, { signatureVersion: version, signWith: 'stranger' })))).resolves.toBe(
      false,
    )
    // ...though it is a well-formed signature by the stranger's own certificate.
    const forged = wire(sns.forgeWithStrangerKey(genuine))
    const algorithm = version === 1 ? 'RSA-SHA1' : 'RSA-SHA256'
    expect(createVerify(algorithm).update(stringToSign(forged)).verify(new X509Certificate(sns.strangerCertificatePem).publicKey, forged.Signature!, 'base64')).toBe(true)
  })
})

test('the signature version decides the hash: a v1 signature relabelled as v2 fails', async () => {
  const message = wire(sns.notification(sns.topicArn('entitlement', 'prodcode123'), { action: 'entitlement-updated' }, { signatureVersion: 1 }))
  await expect(verifyOverHttp(message)).resolves.toBe(true)
  await expect(verifyOverHttp({ ...message, SignatureVersion: '2' })).resolves.toBe(false)
})

test('message shape follows AWS: fields, key order, timestamp, URLs', () => {
  const topicArn = sns.topicArn('subscription', 'prodcode123')
  expect(topicArn).toBe('arn:aws:sns:us-east-1:123456789012:aws-mp-subscription-notification-prodcode123')
  expect(sns.topicArn('entitlement', 'p', '287250355862')).toBe('arn:aws:sns:us-east-1:287250355862:aws-mp-entitlement-notification-p')
  const message = sns.notification(topicArn, { action: 'subscribe-success' }, { subject: 's', messageId: 'm-1', timestamp: '2012-05-02T00:54:06.655Z' })
  expect(Object.keys(message)).toEqual(['Type', 'MessageId', 'TopicArn', 'Subject', 'Message', 'Timestamp', 'SignatureVersion', 'Signature', 'SigningCertURL', 'UnsubscribeURL'])
  expect(message).toMatchObject({ Type: 'Notification', MessageId: 'm-1', Timestamp: '2012-05-02T00:54:06.655Z', SignatureVersion: '1', SigningCertURL: sns.certUrl })
  expect(message.Message).toBe('{"action":"subscribe-success"}')
  expect(sns.certUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/SimpleNotificationService-[0-9a-f]{32}\.pem$/)
  expect(sns.certUrl.startsWith(sns.certPrefix)).toBe(true)
  expect(message.UnsubscribeURL).toBe(`${sns.certPrefix}?Action=Unsubscribe&SubscriptionArn=${sns.subscriptionArn(topicArn)}`)
  expect(new Date().getTime() - Date.parse(sns.notification(topicArn, 'x').Timestamp)).toBeLessThan(5_000)
  expect(sns.notification(topicArn, 'x').Timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)

  const confirmation = sns.subscriptionConfirmation(topicArn)
  expect(Object.keys(confirmation)).toEqual(['Type', 'MessageId', 'Token', 'TopicArn', 'Message', 'SubscribeURL', 'Timestamp', 'SignatureVersion', 'Signature', 'SigningCertURL'])
  expect(confirmation.Message).toBe(`You have chosen to subscribe to the topic ${topicArn}.\nTo confirm the subscription, visit the SubscribeURL included in this message.`)
})

test('the certificate is a real X.509 certificate; other paths under the prefix are 404', async () => {
  const pem = await (await fetch(sns.certUrl)).text()
  expect(pem).toBe(sns.certificatePem)
  const certificate = new X509Certificate(pem)
  expect(certificate.subject).toContain('CN=sns.amazonaws.com')
  expect(certificate.publicKey.asymmetricKeyType).toBe('rsa')
  expect((await fetch(`${sns.certPrefix}SimpleNotificationService-00000000000000000000000000000000.pem`)).status).toBe(404)
  expect(sns.callsTo('cert').length).toBeGreaterThan(0)
})

test('fetching SubscribeURL confirms the subscription and answers ConfirmSubscriptionResponse XML', async () => {
  const topicArn = sns.topicArn('subscription', 'confirmme')
  const message = sns.subscriptionConfirmation(topicArn)
  const before = sns.confirmations.length
  const response = await fetch(message.SubscribeURL!)
  expect(response.status).toBe(200)
  expect(response.headers.get('content-type')).toContain('text/xml')
  const xml = await response.text()
  expect(xml).toContain('<ConfirmSubscriptionResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">')
  expect(xml).toContain(`<SubscriptionArn>${sns.subscriptionArn(topicArn)}</SubscriptionArn>`)
  expect(xml).toMatch(/<RequestId>[0-9a-f-]{36}<\/RequestId>/)
  expect(sns.confirmations.length).toBe(before + 1)
  expect(sns.confirmations.at(-1)).toMatchObject({ topicArn, token: message.Token, subscriptionArn: sns.subscriptionArn(topicArn) })
})

test('ConfirmSubscription with an unknown token or topic is an SNS XML error and records nothing', async () => {
  const topicArn = sns.topicArn('subscription', 'errors')
  sns.subscriptionConfirmation(topicArn)
  const before = sns.confirmations.length
  const badToken = await fetch(`${sns.certPrefix}?Action=ConfirmSubscription&TopicArn=${topicArn}&Token=deadbeef`)
  expect(badToken.status).toBe(400)
  expect(await badToken.text()).toMatch(/<ErrorResponse xmlns="http:\/\/sns\.amazonaws\.com\/doc\/2010-03-31\/"><Error><Type>Sender<\/Type><Code>InvalidParameter<\/Code>/)
  const otherTopic = sns.topicArn('subscription', 'never-offered')
  const badTopic = await fetch(`${sns.certPrefix}?Action=ConfirmSubscription&TopicArn=${otherTopic}&Token=deadbeef`)
  expect(badTopic.status).toBe(404)
  expect(await badTopic.text()).toContain('<Code>NotFound</Code>')
  // A genuine token offered for one topic does not confirm another.
  const token = sns.subscriptionConfirmation(sns.topicArn('entitlement', 'errors')).Token
  expect((await fetch(`${sns.certPrefix}?Action=ConfirmSubscription&TopicArn=${topicArn}&Token=${token}`)).status).toBe(400)
  expect(sns.confirmations.length).toBe(before)
})

test('faults can be injected on the certificate and on ConfirmSubscription', async () => {
  sns.failNext('cert', 503)
  expect((await fetch(sns.certUrl)).status).toBe(503)
  expect((await fetch(sns.certUrl)).status).toBe(200)
  const message = sns.subscriptionConfirmation(sns.topicArn('subscription', 'faulty'))
  sns.failNext('confirm', 500)
  expect((await fetch(message.SubscribeURL!)).status).toBe(500)
  expect((await fetch(message.SubscribeURL!)).status).toBe(200)
})

test('deliver POSTs as SNS: text/plain, x-amz-sns-* headers, the JSON body (or a raw override)', async () => {
  const topicArn = sns.topicArn('subscription', 'deliver')
  const message = sns.notification(topicArn, { action: 'subscribe-success' })
  received.length = 0
  const response = await sns.deliver(`${receiver.url}/hook`, message)
  expect(response.status).toBe(204)
  const [request] = received
  expect(request!.headers).toMatchObject({
    'content-type': 'text/plain; charset=UTF-8',
    'x-amz-sns-message-type': 'Notification',
    'x-amz-sns-message-id': message.MessageId,
    'x-amz-sns-topic-arn': topicArn,
    'x-amz-sns-subscription-arn': sns.subscriptionArn(topicArn),
    'user-agent': 'Amazon Simple Notification Service Agent',
  })
  expect(JSON.parse(request!.body)).toEqual(message)
  await expect(verifyOverHttp(JSON.parse(request!.body))).resolves.toBe(true)

  const confirmation = sns.subscriptionConfirmation(topicArn)
  await sns.deliver(`${receiver.url}/hook`, confirmation)
  expect(received[1]!.headers['x-amz-sns-message-type']).toBe('SubscriptionConfirmation')
  expect(received[1]!.headers).not.toHaveProperty('x-amz-sns-subscription-arn')

  await sns.deliver(`${receiver.url}/hook`, message, { body: '{"Type":"Notification","forged":true}' })
  expect(received[2]!.body).toBe('{"Type":"Notification","forged":true}')
  expect(received[2]!.headers['x-amz-sns-message-id']).toBe(message.MessageId)
})

test('marketplaceMessage uses AWS spellings; offer-identifier only on subscribe-success/-fail; free-trial flag a string', () => {
  const fields = { customerIdentifier: 'X01EXAMPLEX', productCode: 'n0123EXAMPLEXXXXXXXXXXXX', offerIdentifier: 'offer-abcexample123' }
  expect(sns.marketplaceMessage('subscribe-success', { ...fields, isFreeTrialTermPresent: true })).toEqual({
    action: 'subscribe-success',
    'customer-identifier': 'X01EXAMPLEX',
    'product-code': 'n0123EXAMPLEXXXXXXXXXXXX',
    'offer-identifier': 'offer-abcexample123',
    isFreeTrialTermPresent: 'true',
  })
  expect(sns.marketplaceMessage('subscribe-fail', fields)).toMatchObject({ 'offer-identifier': 'offer-abcexample123', isFreeTrialTermPresent: 'false' })
  expect(sns.marketplaceMessage('unsubscribe-pending', fields)).not.toHaveProperty('offer-identifier')
  expect(sns.marketplaceMessage('unsubscribe-success', fields)).not.toHaveProperty('offer-identifier')
  expect(sns.marketplaceMessage('entitlement-updated', fields)).toEqual({
    action: 'entitlement-updated',
    'customer-identifier': 'X01EXAMPLEX',
    'product-code': 'n0123EXAMPLEXXXXXXXXXXXX',
  })
})

test('EventBridge events follow the seller guide examples for agreements and licenses', () => {
  const ids = {
    agreementId: 'agmt-4mwg1nevbokzw95eca5797ixs',
    buyerAccountId: '845735284135',
    proposerAccountId: '123456512334',
    offerId: 'offer-1234567890123',
    productCode: 'aw4fgf5tyo5w2ap6fEXAMPLE',
    productId: 'prod-qtwveEXAMPLE',
    licenseArn: 'arn:aws:license-manager::123456512334:license:l-e52ca6f38bf84d0fafb8802ca15ac11x',
    requestId: '3d4c9f9b-b809-4f5e-9fac-a9ae98b05cbb',
  }
  const created = sns.saasEvent('Purchase Agreement Created - Manufacturer', ids, { id: 'evt-1', time: '2024-08-30T21:36:03Z', account: '123456512334' })
  expect(created).toEqual({
    version: '0',
    id: 'evt-1',
    'detail-type': 'Purchase Agreement Created - Manufacturer',
    source: 'aws.agreement-marketplace',
    account: '123456512334',
    time: '2024-08-30T21:36:03Z',
    region: 'us-east-1',
    resources: ['arn:aws:aws-marketplace::aws:agreement:agmt-4mwg1nevbokzw95eca5797ixs'],
    detail: {
      requestId: ids.requestId,
      catalog: 'AWSMarketplace',
      agreement: {
        id: ids.agreementId,
        intent: 'NEW',
        status: 'ACTIVE',
        acceptanceTime: expect.stringMatching(/Z$/),
        startTime: expect.stringMatching(/Z$/),
        endTime: expect.stringMatching(/Z$/),
      },
      resaleAuthorization: { id: null },
      acceptor: { accountId: '845735284135' },
      proposer: { accountId: '123456512334' },
      offer: { id: 'offer-1234567890123' },
    },
  })
  expect(sns.saasEvent('Purchase Agreement Amended - Manufacturer', ids).detail).toMatchObject({ agreement: { intent: 'AMEND', status: 'ACTIVE' } })
  expect(sns.saasEvent('Purchase Agreement Ended - Manufacturer', ids).detail.agreement).toEqual({ id: ids.agreementId, status: 'CANCELLED' })
  for (const detailType of ['License Updated - Manufacturer', 'License Deprovisioned - Manufacturer'] as const) {
    expect(sns.saasEvent(detailType, ids).detail).toEqual({
      requestId: ids.requestId,
      catalog: 'AWSMarketplace',
      agreement: { id: ids.agreementId },
      product: { code: ids.productCode, id: ids.productId },
      license: { arn: ids.licenseArn },
      acceptor: { accountId: '845735284135' },
      proposer: { accountId: '123456512334' },
      offer: { id: 'offer-1234567890123' },
    })
  }
  const event = sns.eventBridgeEvent('License Updated - Manufacturer', sns.licenseDetail({ ...ids, licenseArn: undefined }))
  expect(event.detail.license.arn).toMatch(/^arn:aws:license-manager::123456512334:license:l-[0-9a-f]{32}$/)
  expect(event.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)
  expect(event.id).toMatch(/^[0-9a-f-]{36}$/)
})

test('deliverEvent POSTs as an API destination: JSON, EventBridge user agent, the Bearer secret or none', async () => {
  const event = sns.saasEvent('License Updated - Manufacturer', { agreementId: 'agmt-1', buyerAccountId: '845735284135', offerId: 'offer-1', productCode: 'pc' })
  received.length = 0
  expect((await sns.deliverEvent(`${receiver.url}/hook`, event, 's3cret')).status).toBe(204)
  expect(received[0]!.headers).toMatchObject({
    'content-type': 'application/json; charset=utf-8',
    'user-agent': 'Amazon/EventBridge/ApiDestinations',
    authorization: 'Bearer s3cret',
  })
  expect(JSON.parse(received[0]!.body)).toEqual(event)
  await sns.deliverEvent(`${receiver.url}/hook`, event, null)
  expect(received[1]!.headers).not.toHaveProperty('authorization')
})

test('concurrent-agreements shapes: License ARNs printed as the License example does, both role copies of an agreement change, and the other documented detail-types', () => {
  expect(eventLicenseArn('arn:aws:license-manager::294406891311:license:l-0123abcd')).toBe('aws:license-manager:us-east-1:294406891311:l-0123abcd')
  expect(eventLicenseArn('not-an-arn')).toBe('not-an-arn')
  const ids = { agreementId: 'agmt-copies', buyerAccountId: '845735284135', offerId: 'offer-c' }
  const [manufacturer, proposer] = sns.roleCopies('Purchase Agreement Ended', ids, { time: '2025-01-01T00:00:00Z' })
  expect(manufacturer!['detail-type']).toBe('Purchase Agreement Ended - Manufacturer')
  expect(proposer!['detail-type']).toBe('Purchase Agreement Ended - Proposer')
  expect(manufacturer!.id).not.toBe(proposer!.id)
  expect(proposer!.detail).toEqual(manufacturer!.detail)
  expect([manufacturer!.time, proposer!.time]).toEqual(['2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z'])
  expect(manufacturer!.detail).not.toHaveProperty('license')
  expect(manufacturer!.detail).not.toHaveProperty('product')
  expect(OTHER_DETAIL_TYPES).toHaveLength(12)
  for (const detailType of OTHER_DETAIL_TYPES) {
    const event = sns.otherEvent(detailType, ids)
    expect(event).toMatchObject({ source: 'aws.agreement-marketplace', 'detail-type': detailType, region: 'us-east-1', detail: { agreement: { id: 'agmt-copies' }, acceptor: { accountId: '845735284135' } } })
  }
  expect(sns.otherEvent('Purchase Agreement Ending - Proposer', ids).detail).toMatchObject({ daysBeforeEndTime: 30 })
})
