import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type AwsEmulator, createAwsEmulator } from '../sandbox/emulators/aws'
import { type AwsNotificationsEmulator, createAwsNotificationsEmulator } from '../sandbox/emulators/aws-notifications'
import { listenOnLoopback } from '../sandbox/emulators/listen'
import { type TestBroker, createTestBroker, landAwsBuyer, sleep } from './helpers'
import { type WorkerProcess, httpBroker, startWorker } from './worker-process'

/**
 * AWS_SNS_TRUSTED_CERT_PREFIX is a trust boundary: whatever certificate lies under it signs SNS
 * messages the broker believes. Here an attacker serves their own certificate at URLs that only
 * look like they lie under the prefix and signs a forged `unsubscribe-success` with its key. On
 * both runtimes the broker must refuse each forgery (401, nothing stored) without ever asking the
 * attacker's server: a comparison of strings (`/sns-rogue/` under `/sns`, `127.0.0.10` under
 * `127.0.0.1`, another port, userinfo) would fetch the certificate, verify the signature and cancel
 * a real customer.
 *
 * Two prefixes: a path on a shared host (`<sns>/sns/`, the attacker owning `/sns-rogue/` on the
 * same host) and an origin alone (`http://127.0.0.1`, i.e. port 80, as `https://mirror.example.com`
 * would be; the attacker on `127.0.0.10` and on another port of 127.0.0.1).
 */
let aws: AwsEmulator
let sns: AwsNotificationsEmulator
const closers: Array<() => Promise<void>> = []
/** Every request the attacker's servers got. */
const rogueRequests: string[] = []
const rogue = (request: Request) => {
  rogueRequests.push(request.url)
  return new Response(sns.strangerCertificatePem, { headers: { 'content-type': 'application/x-x509-ca-cert' } })
}
let rogueOtherPort: string
let rogueOtherHost: string
const ORIGIN_PREFIX = 'http://127.0.0.1'
const seller = { accessKeyId: 'AKIASNSTRUST00000001', secretAccessKey: 'sns-trust/secret' }

let node: { path: TestBroker; origin: TestBroker }
let worker: { path: WorkerProcess; origin: WorkerProcess }
const dirs: string[] = []

beforeAll(async () => {
  aws = createAwsEmulator()
  const awsServer = await aws.listen()
  aws.addCredentials(seller.accessKeyId, seller.secretAccessKey)
  sns = await createAwsNotificationsEmulator({ basePath: '/sns', otherPaths: rogue })
  const snsServer = await sns.listen()
  const otherPort = await listenOnLoopback(rogue)
  const otherHost = await listenOnLoopback(rogue, '127.0.0.10')
  rogueOtherPort = otherPort.url
  rogueOtherHost = otherHost.url
  closers.push(awsServer.close, snsServer.close, otherPort.close, otherHost.close)
  expect(sns.certPrefix).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/sns\/$/)
  const env = (prefix: string) => ({ AWS_MARKETPLACE_METERING_URL: awsServer.url, AWS_MARKETPLACE_ENTITLEMENT_URL: awsServer.url, AWS_SNS_TRUSTED_CERT_PREFIX: prefix })
  node = { path: await createTestBroker(env(sns.certPrefix)), origin: await createTestBroker(env(ORIGIN_PREFIX)) }
  const start = async (prefix: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'marketbridge-sns-trust-'))
    dirs.push(dir)
    return startWorker(dir, env(prefix))
  }
  worker = { path: await start(sns.certPrefix), origin: await start(ORIGIN_PREFIX) }
}, 180_000)

afterAll(async () => {
  await worker?.path?.stop()
  await worker?.origin?.stop()
  await node?.path?.close()
  await node?.origin?.close()
  for (const close of closers) await close()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

type Client = Pick<TestBroker, 'request' | 'createOrg'>
const runtimes: Array<[string, (prefix: 'path' | 'origin') => Client]> = [
  ['node + SQLite', (prefix) => node[prefix]],
  ['workerd + D1', (prefix) => httpBroker(worker[prefix].url)],
]

describe.each(runtimes)('%s', (_runtime, client) => {
  /** An org with the AWS integration and one landed buyer of `productCode`. */
  async function landedBuyer(broker: Client, productCode: string) {
    const { org, apiKey } = await broker.createOrg()
    const put = await broker.request(`/api/v1/orgs/${org.id}/integrations/aws`, { method: 'PUT', token: apiKey, json: { credentials: seller } })
    expect(put.status).toBe(200)
    const { integration } = (await put.json()) as { integration: { notificationUrl: string } }
    const path = new URL(integration.notificationUrl).pathname + new URL(integration.notificationUrl).search
    const { customer, token } = aws.addCustomer({ ProductCode: productCode })
    const id = await landAwsBuyer(broker, org.id, token)
    const read = async () => (await (await broker.request(`/api/v1/orgs/${org.id}/entitlements/${id}`, { token: apiKey })).json()) as { status: string }
    const events = async () =>
      ((await (await broker.request(`/api/v1/orgs/${org.id}/entitlements/${id}/events`, { token: apiKey })).json()) as { items: Array<{ type: string; source: string; data: { action?: string } }> }).items
        .filter((e) => e.source === 'marketplace')
        .map((e) => `${e.type}:${e.data.action}`)
    const post = (message: unknown) => broker.request(path, { method: 'POST', token: null, headers: { 'content-type': 'text/plain; charset=UTF-8' }, body: JSON.stringify(message) })
    const topic = sns.topicArn('subscription', productCode)
    const message = (action: 'unsubscribe-success' | 'unsubscribe-pending') => sns.marketplaceMessage(action, { customerIdentifier: customer.CustomerIdentifier, productCode })
    /** The attacker's forgery: signed with its own key, its certificate at `certUrl`. */
    const forged = (certUrl: string) => sns.notification(topic, message('unsubscribe-success'), { signWith: 'stranger', signingCertUrl: certUrl, signatureVersion: 2 })
    return { read, events, post, topic, message, forged }
  }

  /** Each message is refused with 401 (observed), and only then: the attacker's servers were never asked. */
  async function refusedUnseen(post: (message: unknown) => Promise<Response>, messages: Array<[string, unknown]>) {
    const before = rogueRequests.length
    for (const [label, message] of messages) {
      const response = await post(message)
      expect(response.status, label).toBe(401)
      expect(((await response.json()) as { error: { code: string } }).error.code, label).toBe('UNAUTHORIZED')
    }
    expect(rogueRequests.slice(before)).toEqual([])
  }

  test('prefix <sns>/sns/: certificate and SubscribeURL on /sns-rogue/ (also via ../) or over https are refused unseen; /sns/ itself still verifies', async () => {
    const s = await landedBuyer(client('path'), `path-${Math.random().toString(36).slice(2, 8)}`)
    const before = await s.read()
    const origin = new URL(sns.certPrefix).origin
    const file = new URL(sns.certUrl).pathname.split('/').pop()!
    const confirmations = sns.confirmations.length
    await refusedUnseen(s.post, [
      ['/sns-rogue/', s.forged(`${origin}/sns-rogue/${file}`)],
      ['/sns-rogue/ through a dot segment', s.forged(`${origin}/sns/../sns-rogue/${file}`)],
      ['/sns-rogue/ through an encoded dot segment', s.forged(`${origin}/sns/%2e%2e/sns-rogue/${file}`)],
      ['/snsrogue.pem', s.forged(`${origin}/snsrogue.pem`)],
      ['https instead of http', s.forged(`${origin.replace('http:', 'https:')}/sns/${file}`)],
      // Signed by SNS's own key (its certificate under /sns/), but the URL the broker would visit is the attacker's.
      ['SubscribeURL on /sns-rogue/', sns.subscriptionConfirmation(s.topic, { subscribeUrl: `${origin}/sns-rogue/?Action=ConfirmSubscription&TopicArn=${s.topic}&Token=t` })],
    ])
    expect(sns.confirmations.length).toBe(confirmations)
    expect(await s.events()).toEqual([])
    expect((await s.read()).status).toBe(before.status)

    // The prefix, kept with its slash, still admits SNS itself: a real message is applied.
    expect((await s.post(sns.notification(s.topic, s.message('unsubscribe-pending'), { signatureVersion: 2 }))).status).toBe(200)
    for (let i = 0; i < 100 && (await s.read()).status !== 'PENDING_CANCEL'; i++) await sleep(50)
    expect((await s.read()).status).toBe('PENDING_CANCEL')
    expect(await s.events()).toEqual(['PENDING_CANCEL:unsubscribe-pending'])
  })

  test('prefix http://127.0.0.1 (an origin): a look-alike host, another port and userinfo are refused unseen', async () => {
    const s = await landedBuyer(client('origin'), `origin-${Math.random().toString(36).slice(2, 8)}`)
    const before = await s.read()
    const hostAndPort = new URL(rogueOtherHost).host
    await refusedUnseen(s.post, [
      ['127.0.0.10 under 127.0.0.1 (as mirror.example.com.evil.test under mirror.example.com)', s.forged(`${rogueOtherHost}/SimpleNotificationService-x.pem`)],
      ['another port', s.forged(`${rogueOtherPort}/SimpleNotificationService-x.pem`)],
      ['userinfo', s.forged(`${ORIGIN_PREFIX}@${hostAndPort}/SimpleNotificationService-x.pem`)],
      ['userinfo with the port', s.forged(`${ORIGIN_PREFIX}:80@${hostAndPort}/SimpleNotificationService-x.pem`)],
    ])
    expect(await s.events()).toEqual([])
    expect((await s.read()).status).toBe(before.status)
  })
})
