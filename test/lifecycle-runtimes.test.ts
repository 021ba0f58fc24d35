import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { Webhook } from 'standardwebhooks'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type AwsEmulator, createAwsEmulator } from '../sandbox/emulators/aws'
import { type AwsAgreementEmulator, createAwsAgreementEmulator } from '../sandbox/emulators/aws-agreement'
import { type AwsNotificationsEmulator, OTHER_DETAIL_TYPES, createAwsNotificationsEmulator, eventLicenseArn } from '../sandbox/emulators/aws-notifications'
import { type GcpEmulator, createGcpEmulator } from '../sandbox/emulators/gcp'
import { type AzureSetup, type ReceivedHook, type TestBroker, createTestBroker, sleep, startAzure, startHookReceiver, waitFor as waitForSignal } from './helpers'
import { type WorkerProcess, httpBroker, openPersistedD1, startWorker } from './worker-process'

/**
 * Marketplace notifications on both runtimes, through the real route: the in-process Node app
 * on SQLite and `npm run dev:worker` (workerd + D1, the apply running in `waitUntil`). Both are
 * driven only through HTTP and judged only by what the API shows.
 */
let azure: AzureSetup
let aws: AwsEmulator
let sns: AwsNotificationsEmulator
let agreement: AwsAgreementEmulator
let gcp: GcpEmulator
const closers: Array<() => Promise<void>> = []
let received: ReceivedHook[]
let hookUrl: string
let node: TestBroker
let worker: WorkerProcess
let persistTo: string

beforeAll(async () => {
  const receiver = await startHookReceiver()
  ;({ url: hookUrl, received } = receiver)
  closers.push(receiver.close)
  azure = await startAzure()
  aws = createAwsEmulator()
  const awsServer = await aws.listen()
  sns = await createAwsNotificationsEmulator()
  closers.push(awsServer.close, (await sns.listen()).close)
  aws.addCredentials('AKIARUNTIMES00000001', 'runtimes/secret')
  agreement = createAwsAgreementEmulator()
  const agreementServer = await agreement.listen()
  closers.push(agreementServer.close)
  agreement.addCredentials('AKIARUNTIMES00000001', 'runtimes/secret')
  gcp = await createGcpEmulator()
  const gcpServer = await gcp.listen()
  closers.push(gcpServer.close)
  const upstream = {
    GCP_MARKETPLACE_CERTS_URL: gcp.certsUrl,
    GCP_OAUTH_TOKEN_URL: gcp.tokenUrl,
    GCP_PROCUREMENT_API_URL: gcpServer.url,
    GCP_OIDC_CERTS_URL: gcp.oidcCertsUrl,
    AZURE_MARKETPLACE_API_URL: azure.url,
    AZURE_LOGIN_URL: azure.url,
    AWS_MARKETPLACE_METERING_URL: awsServer.url,
    AWS_MARKETPLACE_ENTITLEMENT_URL: awsServer.url,
    AWS_MARKETPLACE_AGREEMENT_URL: agreementServer.url,
    AWS_SNS_TRUSTED_CERT_PREFIX: sns.certPrefix,
  }
  node = await createTestBroker(upstream)
  persistTo = mkdtempSync(join(tmpdir(), 'marketbridge-lifecycle-'))
  worker = await startWorker(persistTo, upstream)
}, 120_000)

afterAll(async () => {
  await worker?.stop()
  await node?.close()
  await azure?.close()
  for (const close of closers) await close()
  rmSync(persistTo, { recursive: true, force: true })
})

type Client = Pick<TestBroker, 'request' | 'createOrg'>
interface InboxRow {
  message_id: string
  status: string
  attempts: number
  lease_until: string | null
}
/** An org's notification inbox as the database holds it (node: the app's SQLite; workerd: the persisted D1 file). */
type Inbox = (orgId: string) => Promise<InboxRow[]>
const runtimes: Array<[string, () => Client, Inbox]> = [
  ['node + SQLite', () => node, (orgId) => node.deps.db.selectFrom('notifications').select(['message_id', 'status', 'attempts', 'lease_until']).where('org_id', '=', orgId).execute()],
  [
    'workerd + D1',
    () => httpBroker(worker.url),
    async (orgId) => {
      const d1 = openPersistedD1(persistTo)
      try {
        return d1.prepare('select message_id, status, attempts, lease_until from notifications where org_id = ?').all(orgId) as InboxRow[]
      } finally {
        d1.close()
      }
    },
  ],
]

interface Entitlement {
  id: string
  status: string
  planId: string | null
}

describe.each(runtimes)('%s', (_runtime, client, inbox) => {
  async function setup() {
    const broker = client()
    const { org, apiKey } = await broker.createOrg()
    const put = await broker.request(`/api/v1/orgs/${org.id}/integrations/azure`, {
      method: 'PUT',
      token: apiKey,
      json: { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret },
    })
    const { integration } = (await put.json()) as { integration: { notificationUrl: string } }
    const notificationPath = new URL(integration.notificationUrl).pathname + new URL(integration.notificationUrl).search
    const sub = azure.emulator.addSubscription({ appId: azure.clientId, planId: 'silver' })
    const landing = await broker.request(`/public/signup/azure/orgId/${org.id}?token=${encodeURIComponent(azure.emulator.issuePurchaseToken(sub.id))}`, { token: null })
    expect(landing.status).toBe(303)
    const id = new URL(landing.headers.get('location')!).searchParams.get('sugerEntitlementId')!
    const notify = async (body: unknown, token?: string | null) => {
      const jwt = token === undefined ? await azure.emulator.mintWebhookToken({ tenantId: azure.tenantId, clientId: azure.clientId }) : token
      return broker.request(notificationPath, {
        method: 'POST',
        token: null,
        headers: { 'content-type': 'application/json', ...(jwt ? { authorization: `Bearer ${jwt}` } : {}) },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      })
    }
    const read = async () => (await (await broker.request(`/api/v1/orgs/${org.id}/entitlements/${id}`, { token: apiKey })).json()) as Entitlement
    const events = async () =>
      ((await (await broker.request(`/api/v1/orgs/${org.id}/entitlements/${id}/events`, { token: apiKey })).json()) as { items: Array<{ type: string; source: string; data: Record<string, unknown> }> }).items
    /** The apply runs after the 200 (workerd: waitUntil): wait until the entitlement shows `check`. */
    const until = async (check: (e: Entitlement) => boolean) => {
      for (let i = 0; i < 100; i++) {
        const current = await read()
        if (check(current)) return current
        await sleep(50)
      }
      throw new Error(`entitlement never reached the expected state: ${JSON.stringify(await read())}`)
    }
    /**
     * The positive signal before asserting that nothing (more) changed: the inbox holds `count`
     * notifications and none is being applied (each settled, or released for a retry).
     */
    const settled = (count: number) =>
      waitForSignal(`${count} notifications in the inbox, none being applied`, async () => {
        const rows = await inbox(org.id)
        return rows.length === count && rows.every((row) => row.status !== 'PENDING' || (row.lease_until === null && row.attempts > 0)) ? rows : null
      })
    return { broker, org, apiKey, sub, id, notify, read, events, until, settled, notificationPath }
  }

  test('Suspend, redelivered; Reinstate (acknowledged once); ChangePlan: each applied once with its event', async () => {
    const s = await setup()
    const suspend = azure.emulator.startOperation(s.sub.id, 'Suspend').webhookBody
    expect((await s.notify(suspend)).status).toBe(200)
    await s.until((e) => e.status === 'SUSPENDED')
    expect((await s.notify(suspend)).status).toBe(200)

    const reinstate = azure.emulator.startOperation(s.sub.id, 'Reinstate').webhookBody
    expect((await s.notify(reinstate)).status).toBe(200)
    await s.until((e) => e.status === 'ACTIVE')
    expect(azure.emulator.callsTo('patchOperation').filter((call) => call.path.includes(reinstate.id))).toHaveLength(1)

    const change = azure.emulator.startOperation(s.sub.id, 'ChangePlan', { planId: 'gold' }).webhookBody
    const changed = await s.notify(change)
    expect(changed.status).toBe(200)
    await s.until((e) => e.planId === 'gold')
    // The redelivery is taken as the notification already stored, and its apply is over.
    const redelivered = await s.notify(change)
    expect(redelivered.status).toBe(200)
    expect(((await redelivered.json()) as { notificationId: string }).notificationId).toBe(((await changed.json()) as { notificationId: string }).notificationId)
    await s.settled(3)
    const marketplace = (await s.events()).filter((e) => e.source === 'marketplace')
    expect(marketplace.map((e) => [e.type, e.data.action])).toEqual([
      ['SUSPEND', 'Suspend'],
      ['REINSTATE', 'Reinstate'],
      ['UPDATE', 'ChangePlan'],
    ])
  })

  test('forged or missing tokens are 401 and change nothing; an unknown operation is 200 and changes nothing; too large is 413', async () => {
    const s = await setup()
    const suspend = azure.emulator.startOperation(s.sub.id, 'Suspend').webhookBody
    const stranger = await azure.emulator.mintWebhookToken({ tenantId: azure.tenantId, clientId: azure.clientId, key: await azure.emulator.strangerKey() })
    for (const token of [null, stranger]) {
      const refused = await s.notify(suspend, token)
      expect(refused.status).toBe(401)
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('UNAUTHORIZED')
    }
    azure.emulator.forgetOperation(suspend.id)
    expect((await s.notify(suspend)).status).toBe(200)
    const big = await s.notify({ ...suspend, pad: 'x'.repeat(300 * 1024) })
    expect(big.status).toBe(413)
    // The unknown operation was asked of Microsoft and its apply is over; only it was stored.
    await waitForSignal('the operation looked up', () => azure.emulator.callsTo('getOperation').some((call) => call.path.endsWith(`/operations/${suspend.id}`)))
    expect((await s.settled(1)).map((row) => row.message_id)).toEqual([expect.stringContaining(suspend.id)])
    expect((await s.read()).status).toBe('ACTIVE')
    expect((await s.events()).filter((e) => e.source === 'marketplace')).toEqual([])
  })

  test('refresh: a change made without a webhook is re-read and applied with data.reconciled', async () => {
    const s = await setup()
    azure.emulator.subscriptions.get(s.sub.id)!.saasSubscriptionStatus = 'Suspended'
    const refreshed = await s.broker.request(`/api/v1/orgs/${s.org.id}/entitlements/${s.id}/refresh`, { method: 'POST', token: s.apiKey })
    expect(refreshed.status).toBe(200)
    expect(((await refreshed.json()) as Entitlement).status).toBe('SUSPENDED')
    expect((await s.events()).at(-1)).toMatchObject({ type: 'SUSPEND', source: 'marketplace', data: { reconciled: true } })
  })

  /** Polls the entitlement (over HTTP, like an ISV) until `check` holds; the apply runs after the 200. */
  async function waitFor(broker: Client, orgId: string, apiKey: string, id: string, check: (e: Entitlement & { quantity: number | null; term: { end: string | null } }) => boolean) {
    let last: unknown
    for (let i = 0; i < 100; i++) {
      const current = (await (await broker.request(`/api/v1/orgs/${orgId}/entitlements/${id}`, { token: apiKey })).json()) as Entitlement & { quantity: number | null; term: { end: string | null } }
      if (check(current)) return current
      last = current
      await sleep(40)
    }
    throw new Error(`never reached: ${JSON.stringify(last)}`)
  }
  const marketplaceActions = async (broker: Client, orgId: string, apiKey: string, id: string) =>
    ((await (await broker.request(`/api/v1/orgs/${orgId}/entitlements/${id}/events`, { token: apiKey })).json()) as { items: Array<{ type: string; source: string; data: { action?: string } }> }).items
      .filter((e) => e.source === 'marketplace')
      .map((e) => `${e.type}:${e.data.action}`)

  /** An org with the AWS integration; `land` brings a buyer of `productCode` and answers its entitlement id. */
  async function awsOrg(options: { webhookUrl?: string } = {}) {
    const broker = client()
    const { org, apiKey } = options.webhookUrl
      ? ((await (await broker.request('/api/v1/orgs', { method: 'POST', json: { name: 'AWS hooks', fulfillmentUrl: 'https://hooks.example/s', webhookUrl: options.webhookUrl } })).json()) as { org: { id: string }; apiKey: string })
      : await broker.createOrg()
    const put = await broker.request(`/api/v1/orgs/${org.id}/integrations/aws`, {
      method: 'PUT',
      token: apiKey,
      json: { credentials: { accessKeyId: 'AKIARUNTIMES00000001', secretAccessKey: 'runtimes/secret' } },
    })
    const { integration } = (await put.json()) as { integration: { notificationUrl: string; notificationSecret: string } }
    const path = new URL(integration.notificationUrl).pathname + new URL(integration.notificationUrl).search
    const land = async (productCode: string, customer: { CustomerIdentifier?: string; CustomerAWSAccountId?: string; LicenseArn?: string } = {}) => {
      const { customer: c, token } = aws.addCustomer({ ProductCode: productCode, ...customer })
      const landing = await broker.request(`/public/signup/aws/orgId/${org.id}`, {
        method: 'POST',
        token: null,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ 'x-amzn-marketplace-token': token }).toString(),
      })
      return { customer: c, id: new URL(landing.headers.get('location')!).searchParams.get('sugerEntitlementId')! }
    }
    const snsPost = (message: unknown) => broker.request(path, { method: 'POST', token: null, headers: { 'content-type': 'text/plain; charset=UTF-8' }, body: JSON.stringify(message) })
    const eventPost = (event: object, secret = integration.notificationSecret) =>
      broker.request(path, { method: 'POST', token: null, headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` }, body: JSON.stringify(event) })
    return { broker, org, apiKey, integration, land, snsPost, eventPost }
  }

  /** An org with the Google integration and a push service account; `push` sends a Pub/Sub push with an OIDC token (or the one given). */
  async function gcpOrg(name: string) {
    const broker = client()
    const { org, apiKey } = await broker.createOrg()
    const providerId = `${name}-${org.id.slice(-10)}`
    const pushAccount = `push@${name}-project.iam.gserviceaccount.com`
    const put = await broker.request(`/api/v1/orgs/${org.id}/integrations/gcp`, {
      method: 'PUT',
      token: apiKey,
      json: { providerId, audience: `${name}.example`, serviceAccountKey: await gcp.createServiceAccount(providerId), pushServiceAccount: pushAccount },
    })
    const { integration } = (await put.json()) as { integration: { notificationUrl: string } }
    const path = new URL(integration.notificationUrl).pathname + new URL(integration.notificationUrl).search
    const land = async (accountId: string) => {
      const landing = await broker.request(`/public/signup/gcp/orgId/${org.id}`, {
        method: 'POST',
        token: null,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ 'x-gcp-marketplace-token': await gcp.mintToken({ aud: `${name}.example`, sub: accountId }) }).toString(),
      })
      return new URL(landing.headers.get('location')!).searchParams.get('sugerEntitlementId')!
    }
    let n = 0
    const push = async (data: unknown, token?: string) =>
      broker.request(path, {
        method: 'POST',
        token: null,
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${token ?? (await gcp.mintOidcToken({ audience: integration.notificationUrl, email: pushAccount }))}`,
        },
        body: JSON.stringify({ message: { data: Buffer.from(JSON.stringify(data)).toString('base64'), messageId: `${name}-${org.id}-${n++}` }, subscription: `projects/p/subscriptions/${name}` }),
      })
    return { broker, org, apiKey, providerId, pushAccount, integration, land, push }
  }

  test('AWS concurrent agreements: a landing without CustomerIdentifier is a 303 with its entitlement; two agreements of one account are two; a license event printed without arn: cancels its own; its final hour still takes usage', async () => {
    const s = await awsOrg()
    const productCode = `prod-ca-${s.org.id.slice(-8).toLowerCase()}`
    aws.addProduct(productCode, undefined, { concurrentAgreements: true })
    const first = await s.land(productCode)
    const second = await s.land(productCode, { CustomerAWSAccountId: first.customer.CustomerAWSAccountId })
    const read = async (id: string) => (await (await s.broker.request(`/api/v1/orgs/${s.org.id}/entitlements/${id}`, { token: s.apiKey })).json()) as Record<string, any>
    const [a, b] = [await read(first.id), await read(second.id)]
    expect(a.id).not.toBe(b.id)
    for (const [entitlement, landed] of [[a, first], [b, second]] as const) {
      expect(entitlement).toMatchObject({ status: 'ACTIVE', externalId: landed.customer.LicenseArn, buyer: { accountId: first.customer.CustomerAWSAccountId, customerId: null } })
    }
    const licenseId = first.customer.LicenseArn!.split(':').at(-1)!
    const event = sns.saasEvent('License Deprovisioned - Manufacturer', {
      agreementId: `agmt-${s.org.id}`, buyerAccountId: first.customer.CustomerAWSAccountId, offerId: 'offer-ca', productCode, productId: 'prod-id',
      licenseArn: `aws:license-manager:us-east-1:${first.customer.CustomerAWSAccountId}:${licenseId}`,
    })
    expect((await s.eventPost(event)).status).toBe(200)
    await waitFor(s.broker, s.org.id, s.apiKey, first.id, (e) => e.status === 'CANCELLED')
    expect((await read(second.id)).status).toBe('ACTIVE')
    const events = (await (await s.broker.request(`/api/v1/orgs/${s.org.id}/entitlements/${first.id}/events`, { token: s.apiKey })).json()) as { items: Array<{ type: string; createdAt: string }> }
    const hour = Math.floor(Date.parse(events.items.find((e) => e.type === 'CANCEL')!.createdAt) / 3600_000) * 3600_000
    const record = (id: string, timestamp: number, idempotencyKey: string) =>
      s.broker.request(`/api/v1/orgs/${s.org.id}/entitlements/${id}/usage`, { method: 'POST', token: s.apiKey, json: { dimension: 'requests', quantity: 2, timestamp: new Date(timestamp).toISOString(), idempotencyKey } })
    expect((await record(first.id, hour, `final-${s.org.id}`)).status).toBe(202)
    expect((await record(first.id, hour - 60_000, `earlier-${s.org.id}`)).status).toBe(400)
  })

  test('AWS: SNS messages signed v1 (SHA1withRSA) and v2 (SHA256withRSA) and an EventBridge event with the notification secret, verified and applied; a forgery is 401', async () => {
    const s = await awsOrg()
    const licenseArn = `arn:aws:license-manager::123456789012:license:l-${s.org.id}`
    const { customer, id } = await s.land('prod-rt', { LicenseArn: licenseArn })
    const topic = sns.topicArn('subscription', 'prod-rt')
    const msg = (action: 'unsubscribe-pending' | 'subscribe-success') => sns.marketplaceMessage(action, { customerIdentifier: customer.CustomerIdentifier, productCode: 'prod-rt' })
    expect((await s.snsPost(sns.forgeWithStrangerKey(sns.notification(topic, msg('unsubscribe-pending'))))).status).toBe(401)
    expect((await s.snsPost(sns.notification(topic, msg('unsubscribe-pending'), { signatureVersion: 1 }))).status).toBe(200)
    await waitFor(s.broker, s.org.id, s.apiKey, id, (e) => e.status === 'PENDING_CANCEL')
    expect((await s.snsPost(sns.notification(topic, msg('subscribe-success'), { signatureVersion: 2 }))).status).toBe(200)
    await waitFor(s.broker, s.org.id, s.apiKey, id, (e) => e.status === 'ACTIVE')
    const event = sns.saasEvent('License Deprovisioned - Manufacturer', {
      agreementId: 'agmt-rt', buyerAccountId: customer.CustomerAWSAccountId, offerId: 'offer-rt', productCode: 'prod-rt', productId: 'prod-id', licenseArn,
    })
    expect((await s.eventPost(event, 'mbn_wrong')).status).toBe(401)
    expect((await s.eventPost(event)).status).toBe(200)
    await waitFor(s.broker, s.org.id, s.apiKey, id, (e) => e.status === 'CANCELLED')
  })

  test('Google: Pub/Sub push with an OIDC token verified, the creation approved at Google, the cancellation applied; a forged token is 401', async () => {
    const s = await gcpOrg('rt')
    const { accountId, entitlement } = gcp.addPurchase({ providerId: s.providerId })
    const entitlementId = entitlement!.name.split('/').pop()!
    const id = await s.land(accountId)
    const created = gcp.pubsubMessage('ENTITLEMENT_CREATION_REQUESTED', { entitlementId, providerId: s.providerId })
    const forged = await gcp.mintOidcToken({ audience: s.integration.notificationUrl, email: s.pushAccount, key: await gcp.strangerKey() })
    expect((await s.push(created, forged)).status).toBe(401)
    expect((await s.push(created)).status).toBe(200)
    for (let i = 0; i < 100 && gcp.entitlements.get(entitlement!.name)!.state !== 'ENTITLEMENT_ACTIVE'; i++) await sleep(50)
    expect(gcp.entitlements.get(entitlement!.name)!.state).toBe('ENTITLEMENT_ACTIVE')
    expect((await s.push(gcp.setEntitlementState(entitlementId, 'ENTITLEMENT_CANCELLED'))).status).toBe(200)
    await waitFor(s.broker, s.org.id, s.apiKey, id, (e) => e.status === 'CANCELLED')
  })

  test('every Azure row: ChangeQuantity, Renew, Unsubscribe (after the Suspend/Reinstate/ChangePlan above)', async () => {
    const s = await setup()
    const quantity = azure.emulator.startOperation(s.sub.id, 'ChangeQuantity', { quantity: 7, webhookQuantity: 'padded' }).webhookBody
    expect((await s.notify(quantity)).status).toBe(200)
    await waitFor(s.broker, s.org.id, s.apiKey, s.id, (e) => e.quantity === 7)
    const endBefore = azure.emulator.subscriptions.get(s.sub.id)!.term.endDate
    expect((await s.notify(azure.emulator.startOperation(s.sub.id, 'Renew').webhookBody)).status).toBe(200)
    await waitFor(s.broker, s.org.id, s.apiKey, s.id, (e) => e.term.end !== null && e.term.end !== endBefore)
    expect((await s.notify(azure.emulator.startOperation(s.sub.id, 'Unsubscribe').webhookBody)).status).toBe(200)
    await waitFor(s.broker, s.org.id, s.apiKey, s.id, (e) => e.status === 'CANCELLED')
    expect(await marketplaceActions(s.broker, s.org.id, s.apiKey, s.id)).toEqual(['UPDATE:ChangeQuantity', 'UPDATE:Renew', 'CANCEL:Unsubscribe'])
  })

  test('every AWS row: subscribe-fail, unsubscribe-success, entitlement-updated; EventBridge License Updated, Agreement Created, Amended, Ended', async () => {
    const s = await awsOrg()
    const { broker, org, apiKey } = s
    const sent = async (response: Promise<Response>) => expect((await response).status).toBe(200)
    const snsMessage = (productCode: string, action: Parameters<AwsNotificationsEmulator['marketplaceMessage']>[0], customerIdentifier: string, kind: 'subscription' | 'entitlement' = 'subscription') =>
      s.snsPost(sns.notification(sns.topicArn(kind, productCode), sns.marketplaceMessage(action, { customerIdentifier, productCode }), { signatureVersion: 2 }))

    const failed = await s.land(`fail-${org.id.slice(-6)}`)
    await sent(snsMessage(`fail-${org.id.slice(-6)}`, 'subscribe-fail', failed.customer.CustomerIdentifier))
    await waitFor(broker, org.id, apiKey, failed.id, (e) => e.status === 'CANCELLED')

    const gone = await s.land(`gone-${org.id.slice(-6)}`)
    await sent(snsMessage(`gone-${org.id.slice(-6)}`, 'unsubscribe-success', gone.customer.CustomerIdentifier))
    await waitFor(broker, org.id, apiKey, gone.id, (e) => e.status === 'CANCELLED')

    const productCode = `contract-${org.id.slice(-6)}`
    const customerIdentifier = `cust-${org.id.slice(-8)}`
    const licenseArn = `arn:aws:license-manager::123456789012:license:l-${org.id.slice(-10)}`
    aws.addEntitlement({ ProductCode: productCode, Dimension: 'seats', CustomerIdentifier: customerIdentifier, LicenseArn: licenseArn, Value: { IntegerValue: 5 } })
    const contract = await s.land(productCode, { CustomerIdentifier: customerIdentifier, LicenseArn: licenseArn })
    const seats = aws.entitlements.find((e) => e.CustomerIdentifier === customerIdentifier)!
    seats.Value.IntegerValue = 6
    await sent(snsMessage(productCode, 'entitlement-updated', customerIdentifier, 'entitlement'))
    await waitFor(broker, org.id, apiKey, contract.id, (e) => e.quantity === 6)
    const ids = { agreementId: `agmt-${org.id.slice(-6)}`, buyerAccountId: contract.customer.CustomerAWSAccountId, offerId: 'offer-x', productCode, productId: 'prod-x', licenseArn }
    seats.Value.IntegerValue = 8
    await sent(s.eventPost(sns.saasEvent('License Updated - Manufacturer', ids)))
    await waitFor(broker, org.id, apiKey, contract.id, (e) => e.quantity === 8)
    seats.Value.IntegerValue = 9
    await sent(s.eventPost(sns.saasEvent('Purchase Agreement Amended - Manufacturer', ids)))
    await waitFor(broker, org.id, apiKey, contract.id, (e) => e.quantity === 9)
    await sent(s.eventPost(sns.saasEvent('Purchase Agreement Created - Manufacturer', ids)))
    await sent(s.eventPost(sns.saasEvent('Purchase Agreement Ended - Manufacturer', ids)))
    await waitFor(broker, org.id, apiKey, contract.id, (e) => e.status === 'CANCELLED')
    expect(await marketplaceActions(broker, org.id, apiKey, contract.id)).toEqual([
      'UPDATE:entitlement-updated',
      'UPDATE:License Updated - Manufacturer',
      'UPDATE:Purchase Agreement Amended - Manufacturer',
      'CANCEL:Purchase Agreement Ended - Manufacturer',
    ])
  })

  test('AWS concurrent agreements: two of one account are two entitlements; Ended (Manufacturer and Proposer copies) cancels only its own, once (one CANCEL, one webhook); an agreement not yet known is found with SearchAgreements; other detail-types are 200', async () => {
    const s = await awsOrg({ webhookUrl: hookUrl })
    const { broker, org, apiKey } = s
    const tag = org.id.slice(-8)
    const productCode = `conc-${tag}`
    const arn = (n: number) => `arn:aws:license-manager::123456789012:license:l-${tag}${n}`
    const first = await s.land(productCode, { LicenseArn: arn(1) })
    const account = first.customer.CustomerAWSAccountId
    const second = await s.land(productCode, { LicenseArn: arn(2), CustomerAWSAccountId: account })
    const ids = (n: number) => ({ agreementId: `agmt-${tag}-${n}`, buyerAccountId: account, offerId: `offer-${n}` })
    const sent = async (event: object) => expect((await s.eventPost(event)).status).toBe(200)
    await sent(sns.saasEvent('License Updated - Manufacturer', { ...ids(1), productCode, licenseArn: eventLicenseArn(arn(1)) }))
    await waitFor(broker, org.id, apiKey, first.id, (e) => (e as unknown as { info: { agreementId?: string } }).info.agreementId === `agmt-${tag}-1`)
    // The second agreement no License event has named: AWS's Agreement API knows its license.
    agreement.addAgreement({ agreementId: `agmt-${tag}-2`, acceptorAccountId: account, licenseArns: [arn(2)] })
    for (const detailType of [...OTHER_DETAIL_TYPES, 'Purchase Agreement Something New - Proposer']) await sent(sns.otherEvent(detailType, ids(2)))

    for (const copy of sns.roleCopies('Purchase Agreement Ended', ids(1))) await sent(copy)
    await waitFor(broker, org.id, apiKey, first.id, (e) => e.status === 'CANCELLED')
    const searches = agreement.callsTo('SearchAgreements').length
    await sent(sns.saasEvent('Purchase Agreement Ended - Proposer', ids(2)))
    await waitFor(broker, org.id, apiKey, second.id, (e) => e.status === 'CANCELLED')
    expect(agreement.callsTo('SearchAgreements').length).toBe(searches + 1)
    expect(await marketplaceActions(broker, org.id, apiKey, first.id)).toEqual(['CANCEL:Purchase Agreement Ended - Manufacturer'])
    expect(await marketplaceActions(broker, org.id, apiKey, second.id)).toEqual(['CANCEL:Purchase Agreement Ended - Proposer'])
    const cancelled = () =>
      received.map((r) => JSON.parse(r.body) as { type: string; orgId: string; entityId: string }).filter((b) => b.orgId === org.id && b.type === 'entitlement.cancelled')
    for (let i = 0; i < 100 && !cancelled().some((b) => b.entityId === second.id); i++) await sleep(50)
    expect(cancelled().map((b) => b.entityId).sort()).toEqual([first.id, second.id].sort())
  })

  test('every Google row: plan change requested and changed, pending cancellation, reverted, deleted; account deleted', async () => {
    const s = await gcpOrg('rows')
    const { broker, org, apiKey, providerId } = s
    const push = async (data: unknown) => expect((await s.push(data)).status).toBe(200)
    const first = gcp.addPurchase({ providerId, state: 'ENTITLEMENT_ACTIVE', plan: 'standard' })
    const id = await s.land(first.accountId)
    const entitlementId = first.entitlement!.name.split('/').pop()!
    await push(gcp.requestPlanChange(entitlementId, 'premium'))
    for (let i = 0; i < 100 && gcp.entitlements.get(first.entitlement!.name)!.state !== 'ENTITLEMENT_PENDING_PLAN_CHANGE'; i++) await sleep(40)
    await push(gcp.completePlanChange(entitlementId))
    await waitFor(broker, org.id, apiKey, id, (e) => e.planId === 'premium')
    await push(gcp.setEntitlementState(entitlementId, 'ENTITLEMENT_PENDING_CANCELLATION'))
    await waitFor(broker, org.id, apiKey, id, (e) => e.status === 'PENDING_CANCEL')
    await push(gcp.setEntitlementState(entitlementId, 'ENTITLEMENT_ACTIVE'))
    await waitFor(broker, org.id, apiKey, id, (e) => e.status === 'ACTIVE')
    await push(gcp.deleteEntitlement(entitlementId))
    await waitFor(broker, org.id, apiKey, id, (e) => e.status === 'CANCELLED')
    expect(await marketplaceActions(broker, org.id, apiKey, id)).toEqual([
      'UPDATE:ENTITLEMENT_PLAN_CHANGED',
      'PENDING_CANCEL:ENTITLEMENT_PENDING_CANCELLATION',
      'ACTIVATE:ENTITLEMENT_CANCELLATION_REVERTED',
      'CANCEL:ENTITLEMENT_DELETED',
    ])

    const second = gcp.addPurchase({ providerId, state: 'ENTITLEMENT_ACTIVE' })
    const secondId = await s.land(second.accountId)
    await push(gcp.deleteAccount(second.accountId))
    await waitFor(broker, org.id, apiKey, secondId, (e) => e.status === 'CANCELLED')
  })

  test('Google automatic offer approval: OFFER_ACCEPTED with a future start stays PENDING_START, nothing approved, ACTIVE once Google is; RENEWED is UPDATE; PLAN_CHANGE_CANCELLED changes nothing; an account message without eventType is 200', async () => {
    const s = await gcpOrg('auto')
    const { broker, org, apiKey, providerId } = s
    const product = `auto-${org.id.slice(-8)}.endpoints.acme-public.cloud.goog`
    gcp.configureProduct(product, { automaticOfferApproval: true })
    const start = new Date(Date.now() + 24 * 3600_000).toISOString()
    const { accountId, entitlement, offerAccepted } = gcp.addPurchase({ providerId, product, private: true, offerStartTime: start })
    const entitlementId = entitlement!.name.split('/').pop()!
    const gets = () => gcp.callsTo('getEntitlement').filter((call) => call.path.endsWith(`/entitlements/${entitlementId}`)).length
    const approvals = () => gcp.callsTo('approveEntitlement').filter((call) => call.path.includes(entitlementId))
    const id = await s.land(accountId)
    const landed = (await waitFor(broker, org.id, apiKey, id, (e) => e.status === 'PENDING_START')) as unknown as { term: { start: string | null; end: string | null } }
    expect(landed.term).toMatchObject({ start, end: entitlement!.offerEndTime })
    const read = gets()
    expect((await s.push(offerAccepted)).status).toBe(200)
    // The message was handled (the entitlement re-read at Google) before anything is judged.
    for (let i = 0; i < 100 && gets() === read; i++) await sleep(40)
    expect(gets()).toBeGreaterThan(read)
    expect(((await waitFor(broker, org.id, apiKey, id, () => true)) as Entitlement).status).toBe('PENDING_START')

    const active = gcp.startOffer(entitlementId)
    expect((await s.push(active)).status).toBe(200)
    await waitFor(broker, org.id, apiKey, id, (e) => e.status === 'ACTIVE')
    expect(approvals()).toEqual([])

    const renewed = gcp.renewEntitlement(entitlementId)
    expect((await s.push(renewed)).status).toBe(200)
    await waitFor(broker, org.id, apiKey, id, (e) => e.term.end === entitlement!.offerEndTime)

    gcp.requestPlanChange(entitlementId, 'premium')
    const beforeWithdrawn = gets()
    expect((await s.push(gcp.cancelPlanChange(entitlementId))).status).toBe(200)
    for (let i = 0; i < 100 && gets() === beforeWithdrawn; i++) await sleep(40)
    expect((await s.push(gcp.setEntitlementState(entitlementId, 'ENTITLEMENT_PENDING_CANCELLATION', { eventType: 'ENTITLEMENT_CANCELLING' }))).status).toBe(200)
    await waitFor(broker, org.id, apiKey, id, (e) => e.status === 'PENDING_CANCEL')
    expect(await marketplaceActions(broker, org.id, apiKey, id)).toEqual(['ACTIVATE:ENTITLEMENT_ACTIVE', 'UPDATE:ENTITLEMENT_RENEWED', 'PENDING_CANCEL:ENTITLEMENT_CANCELLING'])

    const accountReads = () => gcp.callsTo('getAccount').filter((call) => call.path.endsWith(`/accounts/${accountId}`)).length
    const beforeAccount = accountReads()
    const message = gcp.accountMessage(accountId)
    expect(message.eventType).toBeUndefined()
    expect((await s.push(message)).status).toBe(200)
    for (let i = 0; i < 100 && accountReads() === beforeAccount; i++) await sleep(40)
    expect(accountReads()).toBeGreaterThan(beforeAccount)
    expect(approvals()).toEqual([])
  })

  test('Google: random Pub/Sub bodies with the 2025–26 event types and account messages, with a valid push token: never a 5xx, nothing changes', async () => {
    const s = await gcpOrg('fuzzpub')
    const { accountId } = gcp.addPurchase({ providerId: s.providerId, state: 'ENTITLEMENT_ACTIVE' })
    const id = await s.land(accountId)
    const before = JSON.stringify(await marketplaceActions(s.broker, s.org.id, s.apiKey, id))
    const token = await gcp.mintOidcToken({ audience: s.integration.notificationUrl, email: s.pushAccount })
    const eventTypes = ['ENTITLEMENT_OFFER_ACCEPTED', 'ENTITLEMENT_RENEWED', 'ENTITLEMENT_OFFER_ENDED', 'ENTITLEMENT_CANCELLING', 'ENTITLEMENT_PLAN_CHANGE_CANCELLED', 'ACCOUNT_ACTIVE', 'ACCOUNT_DELETED']
    const time = fc.oneof(fc.constant(''), fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), fc.string({ maxLength: 30 }))
    await fc.assert(
      fc.asyncProperty(
        fc.record(
          {
            eventId: fc.string({ maxLength: 40 }),
            eventType: fc.oneof(fc.constantFrom(...eventTypes), fc.string({ maxLength: 30 })),
            providerId: fc.oneof(fc.constant(s.providerId), fc.string({ maxLength: 20 })),
            entitlement: fc.record(
              { id: fc.oneof(fc.uuid(), fc.string({ maxLength: 250 })), updateTime: time, newOfferDuration: fc.oneof(fc.constant(''), fc.constant('P1Y'), fc.string()), newOfferStartTime: time, newOfferEndTime: time },
              { requiredKeys: [] },
            ),
            account: fc.record({ id: fc.oneof(fc.uuid(), fc.string({ maxLength: 250 })), updateTime: time }, { requiredKeys: [] }),
          },
          { requiredKeys: [] },
        ),
        async (data) => {
          const response = await s.push(data, token)
          const text = await response.text()
          expect(response.status, text.slice(0, 200)).toBeLessThan(500)
          expect(text).not.toMatch(/\bat .*\.(ts|js):\d+/)
        },
      ),
      { numRuns: 40 },
    )
    // The landed buyer's own account message, after the random ones: once it is handled, nothing changed.
    const reads = gcp.callsTo('getAccount').filter((call) => call.path.endsWith(`/accounts/${accountId}`)).length
    expect((await s.push(gcp.accountMessage(accountId), token)).status).toBe(200)
    for (let i = 0; i < 100 && gcp.callsTo('getAccount').filter((call) => call.path.endsWith(`/accounts/${accountId}`)).length === reads; i++) await sleep(40)
    expect(JSON.stringify(await marketplaceActions(s.broker, s.org.id, s.apiKey, id))).toBe(before)
    expect(((await waitFor(s.broker, s.org.id, s.apiKey, id, () => true)) as Entitlement).status).toBe('ACTIVE')
  })

  test('webhooks: the landing and a Suspend notification reach the ISV signed per Standard Webhooks (verified with the standardwebhooks package)', async () => {
    const broker = client()
    const created = await broker.request('/api/v1/orgs', { method: 'POST', json: { name: 'Hooks', fulfillmentUrl: 'https://hooks.example/s', webhookUrl: hookUrl } })
    const { org, apiKey, webhookSecret } = (await created.json()) as { org: { id: string }; apiKey: string; webhookSecret: string }
    const put = await broker.request(`/api/v1/orgs/${org.id}/integrations/azure`, {
      method: 'PUT',
      token: apiKey,
      json: { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret },
    })
    const { integration } = (await put.json()) as { integration: { notificationUrl: string } }
    const sub = azure.emulator.addSubscription({ appId: azure.clientId })
    const landing = await broker.request(`/public/signup/azure/orgId/${org.id}?token=${encodeURIComponent(azure.emulator.issuePurchaseToken(sub.id))}`, { token: null })
    const id = new URL(landing.headers.get('location')!).searchParams.get('sugerEntitlementId')!
    const mine = () => received.filter((r) => r.body.includes(org.id))
    for (let i = 0; i < 100 && mine().length < 2; i++) await sleep(50)
    const path = new URL(integration.notificationUrl).pathname + new URL(integration.notificationUrl).search
    const jwt = await azure.emulator.mintWebhookToken({ tenantId: azure.tenantId, clientId: azure.clientId })
    const notified = await broker.request(path, {
      method: 'POST',
      token: null,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${jwt}` },
      body: JSON.stringify(azure.emulator.startOperation(sub.id, 'Suspend').webhookBody),
    })
    expect(notified.status).toBe(200)
    for (let i = 0; i < 100 && mine().length < 3; i++) await sleep(50)
    const verifier = new Webhook(webhookSecret)
    const bodies = mine().map((r) => verifier.verify(r.body, r.headers) as { type: string; entityId: string; entityStatus: string; data: { entitlement: { status: string } } })
    // Ordering is not promised (deliveries go out concurrently); each carries its entitlement's state.
    expect(bodies.map((b) => b.type).sort()).toEqual(['entitlement.activated', 'entitlement.created', 'entitlement.suspended'])
    expect(bodies.every((b) => b.entityId === id)).toBe(true)
    expect(bodies.find((b) => b.type === 'entitlement.suspended')!.data.entitlement.status).toBe('SUSPENDED')
    const log = async () => ((await (await broker.request(`/api/v1/orgs/${org.id}/webhook-deliveries`, { token: apiKey })).json()) as { items: Array<{ status: string }> }).items
    // Each attempt is recorded right after the receiver's answer.
    for (let i = 0; i < 100 && !(await log()).every((d) => d.status === 'SUCCEEDED'); i++) await sleep(50)
    expect((await log()).map((d) => d.status)).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED'])
  })

  test('random requests to the webhook routes (query, ids, bodies, keys): never a 5xx, another org never gets one', async () => {
    const broker = client()
    const created = await broker.request('/api/v1/orgs', { method: 'POST', json: { name: 'Fuzz', fulfillmentUrl: 'https://fuzz.example/s', webhookUrl: hookUrl } })
    const { org, apiKey } = (await created.json()) as { org: { id: string }; apiKey: string }
    const other = await broker.createOrg({ name: 'Other' })
    const ping = (await (await broker.request(`/api/v1/orgs/${org.id}/webhooks/test`, { method: 'POST', token: apiKey })).json()) as { id: string }
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('GET /webhook-deliveries', 'POST /webhook-deliveries/{id}/retry', 'POST /webhooks/test', 'POST /webhook-secret'),
        fc.oneof(fc.constant(ping.id), fc.string({ maxLength: 80 })),
        fc.dictionary(fc.constantFrom('status', 'limit', 'cursor'), fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('PENDING', 'FAILED', '0', '1001', '5'))),
        fc.constantFrom(apiKey, other.apiKey, 'mbk_nope'),
        async (route, id, query, token) => {
          const [method, path] = route.split(' ') as [string, string]
          const search = new URLSearchParams(query).toString()
          const response = await broker.request(`/api/v1/orgs/${org.id}${path.replace('{id}', encodeURIComponent(id))}${search ? `?${search}` : ''}`, { method, token, body: method === 'POST' ? '{}' : undefined })
          const text = await response.text()
          expect(response.status, text.slice(0, 200)).toBeLessThan(500)
          // Another org's key (or none that exists) never gets an answer with data (a malformed query may still be its 400).
          if (token !== apiKey) expect([400, 401, 404]).toContain(response.status)
        },
      ),
      { numRuns: 40 },
    )
  })

  test('random requests to the three notification routes: never a 5xx, never a stack trace, nothing changes', async () => {
    const s = await setup()
    // Every route reaches its authentication: the org has all three integrations.
    const aws = await s.broker.request(`/api/v1/orgs/${s.org.id}/integrations/aws`, {
      method: 'PUT',
      token: s.apiKey,
      json: { credentials: { accessKeyId: 'AKIARUNTIMES00000001', secretAccessKey: 'runtimes/secret' } },
    })
    const { notificationSecret } = ((await aws.json()) as { integration: { notificationSecret: string } }).integration
    const gcpPut = await s.broker.request(`/api/v1/orgs/${s.org.id}/integrations/gcp`, {
      method: 'PUT',
      token: s.apiKey,
      json: { providerId: 'fuzz', audience: 'fuzz.example', serviceAccountKey: await gcp.createServiceAccount('fuzz'), pushServiceAccount: 'push@fuzz.iam.gserviceaccount.com' },
    })
    expect(gcpPut.status).toBe(200)
    const before = JSON.stringify(await s.events())
    const stored = new Set<string>()
    const jwt = await azure.emulator.mintWebhookToken({ tenantId: azure.tenantId, clientId: azure.clientId })
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('azure', 'aws', 'gcp', 'nope'),
        fc.oneof(fc.constant(s.org.id), fc.string({ maxLength: 80 })),
        fc.constantFrom('application/json', 'text/plain; charset=UTF-8', 'application/x-www-form-urlencoded', ''),
        fc.oneof(fc.constant(null), fc.constant(jwt), fc.constant(notificationSecret), fc.string({ maxLength: 200 })),
        fc.oneof(
          fc.string({ maxLength: 500 }),
          fc.json(),
          fc.record({ id: fc.string(), subscriptionId: fc.oneof(fc.constant(s.sub.id), fc.string()), action: fc.constantFrom('Suspend', 'Unsubscribe', 'ChangePlan', 'x') }).map((v) => JSON.stringify(v)),
          fc.record({ Type: fc.constantFrom('Notification', 'SubscriptionConfirmation'), MessageId: fc.string(), TopicArn: fc.string(), Message: fc.string(), Timestamp: fc.string(), SignatureVersion: fc.constantFrom('1', '2', 'x'), Signature: fc.string(), SigningCertURL: fc.webUrl() }).map((v) => JSON.stringify(v)),
          fc.record({ source: fc.constantFrom('aws.agreement-marketplace', 'x'), id: fc.string(), 'detail-type': fc.constantFrom('License Updated - Manufacturer', 'Purchase Agreement Ended - Manufacturer', 'y'), detail: fc.jsonValue() }).map((v) => JSON.stringify(v)),
          fc.record({ message: fc.record({ data: fc.oneof(fc.base64String(), fc.string()), messageId: fc.string() }), subscription: fc.string() }).map((v) => JSON.stringify(v)),
        ),
        async (partner, orgId, contentType, token, body) => {
          const response = await s.broker.request(`/public/notifications/${partner}/orgId/${encodeURIComponent(orgId)}`, {
            method: 'POST',
            token: null,
            headers: { ...(contentType ? { 'content-type': contentType } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
            body,
          })
          const text = await response.text()
          expect(response.status, text.slice(0, 200)).toBeLessThan(500)
          expect(text).not.toMatch(/\bat .*\.(ts|js):\d+/)
          const notificationId = response.status === 200 ? (JSON.parse(text) as { notificationId?: string }).notificationId : undefined
          if (notificationId) stored.add(notificationId)
        },
      ),
      { numRuns: 60 },
    )
    // Every notification the fuzz got stored has been applied (or given up on) before looking.
    await s.settled(stored.size)
    expect(JSON.stringify(await s.events())).toBe(before)
    expect((await s.read()).status).toBe('ACTIVE')
  })
})
