import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { runJobs } from '../src/domain/jobs'
import { createLandingService } from '../src/domain/landing'
import { type TestBroker, createTestBroker, startHookReceiver, waitFor } from './helpers'
import { type Marketplaces, type MeteredOrg, inPastHour, meteredOrg, startMarketplaces } from './metering-setup'
import { type SugerShape, sugerProblems, wireProblems } from './suger-schema'

/**
 * The Suger-compatible API (contract §15) on the in-process Node broker: entitlements of the three
 * marketplaces made by real landings against the emulators, usage groups reported by the real job,
 * the Azure cancel at the emulator. Every answer is checked against the broker's strict zod schemas
 * of Suger's shapes and §15's wire rules (test/suger-schema.ts); errors are a JSON string body.
 */
let m: Marketplaces
let broker: TestBroker
let org: MeteredOrg & { webhookSecret?: string }
let other: MeteredOrg
let hooks: Awaited<ReturnType<typeof startHookReceiver>>
const shift = { ms: 0 }

beforeAll(async () => {
  m = await startMarketplaces()
  hooks = await startHookReceiver()
  broker = await createTestBroker(m.env)
  broker.deps.now = () => new Date(Date.now() + shift.ms)
  org = await meteredOrg(broker, m, { webhookUrl: hooks.url, name: 'suger' })
  other = await meteredOrg(broker, m, { name: 'other' })
}, 60_000)

afterAll(async () => {
  await broker?.close()
  await hooks?.close()
  await m?.close()
})

const job = () => runJobs(broker.deps, createLandingService(broker.deps), broker.deps.logger)

interface Call {
  method?: string
  json?: unknown
  body?: string
  /** The whole Authorization header; default `Key <the org's key>`. null: none. */
  auth?: string | null
}

/** A request to the Suger-compatible API as Suger's clients make it: `Authorization: Key <key>`. */
async function suger(path: string, call: Call = {}) {
  const headers = new Headers()
  const auth = call.auth === undefined ? `Key ${org.apiKey}` : call.auth
  if (auth !== null) headers.set('authorization', auth)
  if (call.json !== undefined || call.body !== undefined) headers.set('content-type', 'application/json')
  const response = await broker.request(`/suger${path}`, {
    method: call.method ?? 'GET',
    token: null,
    headers,
    body: call.json !== undefined ? JSON.stringify(call.json) : call.body,
  })
  const text = await response.text()
  let body: any
  try {
    body = JSON.parse(text)
  } catch {
    body = text
  }
  return { status: response.status, body, text, headers: response.headers }
}

const answerOf = (answer: Awaited<ReturnType<typeof suger>>) => ({ contentType: answer.headers.get('content-type'), body: answer.body })

/** The answer, after checking that it is 200 and valid as Suger's shape `shape` (`X[]`: a bare array of X) by the wire rules and the strict schema. */
function valid(answer: Awaited<ReturnType<typeof suger>>, shape: SugerShape) {
  expect(answer.status, answer.text).toBe(200)
  expect(sugerProblems(shape, answerOf(answer))).toEqual([])
  return answer.body
}

/** An error answer: the status, and a JSON string body (Suger's). */
function refused(answer: Awaited<ReturnType<typeof suger>>, status: number, message?: RegExp) {
  expect(answer.status, answer.text).toBe(status)
  expect(wireProblems(answerOf(answer))).toEqual([])
  expect(typeof answer.body, answer.text).toBe('string')
  if (message) expect(answer.body).toMatch(message)
}

const base = () => `/org/${org.orgId}`
let n = 0
const groupId = () => `grp-${Date.now().toString(36)}-${n++}`

/** An AWS contract: the buyer lands with GetEntitlements answering one integer dimension. */
async function buyAwsContract(owner: MeteredOrg, options: { accountId?: string } = {}) {
  const productCode = `contract-${owner.orgId.slice(-8).toLowerCase()}`
  const { customer, token } = m.aws.addCustomer({ ProductCode: productCode, ...(options.accountId ? { CustomerAWSAccountId: options.accountId } : {}) })
  m.aws.addEntitlement({ ProductCode: productCode, CustomerIdentifier: customer.CustomerIdentifier, Dimension: 'seats', Value: { IntegerValue: 25 }, ExpirationDate: Math.floor(Date.now() / 1000) + 365 * 86400 })
  const landing = await broker.request(`/public/signup/aws/orgId/${owner.orgId}`, {
    method: 'POST',
    token: null,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ 'x-amzn-marketplace-token': token }).toString(),
  })
  expect(landing.status).toBe(303)
  return { id: new URL(landing.headers.get('location')!).searchParams.get('sugerEntitlementId')!, productCode, customer }
}

describe('auth', () => {
  test('Key and Bearer (any case) are taken; none, a bad key or an unknown scheme is 401 with a string body', async () => {
    const { id } = await org.buyAzure()
    valid(await suger(`${base()}/entitlement/${id}`), 'WorkloadEntitlement')
    valid(await suger(`${base()}/entitlement/${id}`, { auth: `Bearer ${org.apiKey}` }), 'WorkloadEntitlement')
    valid(await suger(`${base()}/entitlement/${id}`, { auth: `key ${org.apiKey}` }), 'WorkloadEntitlement')
    for (const auth of [null, 'Key', `Key ${org.apiKey}x`, `Basic ${org.apiKey}`, `Key ${other.apiKey.slice(0, -1)}`]) {
      refused(await suger(`${base()}/entitlement/${id}`, { auth }), 401, /Key/)
    }
    // Nothing was looked at without a key: a missing route answers 401 too, never 404.
    refused(await suger(`${base()}/nothing`, { auth: null }), 401)
  })

  test('another org’s key finds neither the org nor its entitlements (404)', async () => {
    const { id } = await org.buyAzure()
    refused(await suger(`${base()}/entitlement/${id}`, { auth: `Key ${other.apiKey}` }), 404, /organization not found/)
    refused(await suger(`${base()}/entitlement`, { auth: `Key ${other.apiKey}` }), 404)
    refused(await suger(`/org/${other.orgId}/entitlement/${id}`, { auth: `Key ${other.apiKey}` }), 404, /entitlement not found/)
  })

  test('a read key reads; its POSTs are 403 and change nothing', async () => {
    const created = await broker.request(`/api/v1/orgs/${org.orgId}/api-keys`, { method: 'POST', token: org.apiKey, json: { name: 'reader', scope: 'read' } })
    const { key } = (await created.json()) as { key: string }
    const { id } = await org.buyAzure()
    valid(await suger(`${base()}/entitlement`, { auth: `Key ${key}` }), 'WorkloadEntitlement[]')
    const gid = groupId()
    refused(await suger(`${base()}/entitlement/${id}/usageRecordGroup`, { method: 'POST', auth: `Key ${key}`, json: { id: gid, entitlementID: id, organizationID: org.orgId, records: { calls: 1 } } }), 403)
    refused(await suger(`${base()}/entitlement/${id}/cancel`, { method: 'POST', auth: `Key ${key}` }), 403)
    expect(m.azure.emulator.callsTo('delete')).toHaveLength(0)
    expect(await org.usage(id)).toEqual([])
  })

  test('the key’s rate limit applies: 429 with Retry-After and a string body', async () => {
    const created = await broker.request(`/api/v1/orgs/${org.orgId}/api-keys`, { method: 'POST', token: org.apiKey, json: { name: 'slow', rateLimitPerMinute: 2 } })
    const { key } = (await created.json()) as { key: string }
    const answers = []
    for (let i = 0; i < 3; i++) answers.push(await suger(`${base()}/entitlement`, { auth: `Key ${key}` }))
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 429])
    refused(answers[2]!, 429)
    expect(Number(answers[2]!.headers.get('retry-after'))).toBeGreaterThan(0)
    expect(answers[0]!.headers.get('ratelimit-policy')).toBeTruthy()
  })
})

describe('entitlements', () => {
  test('Azure: WorkloadEntitlement with the subscription in info.azureSubscriptions, times in Z', async () => {
    const { id, subscriptionId, planId } = await org.buyAzure()
    const sub = m.azure.emulator.subscriptions.get(subscriptionId)!
    const entitlement = valid(await suger(`${base()}/entitlement/${id}`), 'WorkloadEntitlement')
    expect(entitlement).toMatchObject({
      id,
      organizationID: org.orgId,
      partner: 'AZURE',
      status: 'ACTIVE',
      productID: sub.offerId,
      externalProductID: sub.offerId,
      offerID: planId,
      externalID: subscriptionId,
      externalBuyerID: sub.beneficiary.tenantId,
      name: sub.name,
      info: { autoRenew: true },
    })
    // The term as the broker's own API shows it (the landing's resolve came before Microsoft's billing began).
    const own = (await (await broker.request(`/api/v1/orgs/${org.orgId}/entitlements/${id}`, { token: org.apiKey })).json()) as { term: { start: string | null; end: string | null }; createdAt: string; updatedAt: string }
    expect([entitlement.startTime, entitlement.endTime]).toEqual([own.term.start ?? undefined, own.term.end ?? undefined])
    expect([entitlement.creationTime, entitlement.lastUpdateTime]).toEqual([own.createdAt, own.updatedAt])
    expect(entitlement.buyerID).toMatch(/^byr_/)
    expect(entitlement.partnerID).toMatch(/^azure_/)
    const [azure] = entitlement.info.azureSubscriptions
    expect(azure).toMatchObject({ id: subscriptionId, saasSubscriptionStatus: 'Subscribed', planId, beneficiary: { tenantId: sub.beneficiary.tenantId, emailId: sub.beneficiary.emailId } })
    // Microsoft's "0001-01-01T00:00:00" (no zone) is UTC.
    expect(azure.lastModified).toMatch(/Z$/)
    expect(entitlement.info).not.toHaveProperty('awsEntitlements')
  })

  test('AWS: a contract’s entitlements in camelCase under info.awsEntitlements', async () => {
    const { id, productCode, customer } = await buyAwsContract(org)
    const entitlement = valid(await suger(`${base()}/entitlement/${id}`), 'WorkloadEntitlement')
    expect(entitlement).toMatchObject({ partner: 'AWS', productID: productCode, externalBuyerID: customer.CustomerAWSAccountId, status: 'ACTIVE' })
    expect(entitlement).not.toHaveProperty('offerID')
    expect(entitlement.info.awsEntitlements).toEqual([
      { customerIdentifier: customer.CustomerIdentifier, dimension: 'seats', productCode, value: { integerValue: 25 }, expirationDate: expect.stringMatching(/Z$/) },
    ])
    expect(entitlement.endTime).toBe(entitlement.info.awsEntitlements[0].expirationDate)
    // A subscription has no entitlements: the list is omitted, not empty.
    const subscription = valid(await suger(`${base()}/entitlement/${(await org.buyAws()).id}`), 'WorkloadEntitlement')
    expect(subscription.info).toEqual({})
  })

  test('Google: the entitlement with its id and without inputProperties', async () => {
    const { id } = await org.buyGcp()
    const entitlement = valid(await suger(`${base()}/entitlement/${id}`), 'WorkloadEntitlement')
    const [gcp] = entitlement.info.gcpEntitlements
    expect(entitlement).toMatchObject({ partner: 'GCP', externalID: gcp.id, status: 'ACTIVE' })
    expect(gcp.name).toBe(`providers/${org.providerId}/entitlements/${gcp.id}`)
    expect(gcp.state).toBe('ENTITLEMENT_ACTIVE')
    expect(gcp).not.toHaveProperty('inputProperties')
  })

  test('an unknown entitlement is 404 "entitlement not found"', async () => {
    refused(await suger(`${base()}/entitlement/ent_nope`), 404, /^entitlement not found$/)
  })

  test('the list: a bare array, newest first, each filter, partner in any case', async () => {
    const owner = await meteredOrg(broker, m, { name: 'lists' })
    const key = `Key ${owner.apiKey}`
    const azure = await owner.buyAzure({ planId: 'gold' })
    const aws = await owner.buyAws()
    const gcp = await owner.buyGcp()
    const path = `/org/${owner.orgId}/entitlement`
    const all = valid(await suger(path, { auth: key }), 'WorkloadEntitlement[]')
    expect(all.map((e: { id: string }) => e.id)).toEqual([gcp.id, aws.id, azure.id])
    const ids = async (query: string) => (valid(await suger(`${path}?${query}`, { auth: key }), 'WorkloadEntitlement[]') as Array<{ id: string }>).map((e) => e.id)
    for (const partner of ['azure', 'AZURE', 'Azure']) expect(await ids(`partner=${partner}`)).toEqual([azure.id])
    expect(await ids('partner=GCP')).toEqual([gcp.id])
    expect(await ids('partner=STRIPE')).toEqual([])
    expect(await ids('partner=')).toHaveLength(3)
    expect(await ids(`productId=${aws.productCode}`)).toEqual([aws.id])
    expect(await ids('offerId=gold')).toEqual([azure.id])
    expect(await ids(`externalId=${azure.subscriptionId}`)).toEqual([azure.id])
    expect(await ids(`buyerAccountId=${aws.accountId}`)).toEqual([aws.id])
    const buyerID = all.find((e: { id: string }) => e.id === gcp.id).buyerID
    expect(await ids(`buyerId=${buyerID}`)).toEqual([gcp.id])
    expect(await ids(`buyerId=${buyerID}&partner=AWS`)).toEqual([])
    expect(await ids('buyerId=byr_nothing')).toEqual([])
    // Every filter given must match.
    expect(await ids(`productId=${aws.productCode}&partner=azure`)).toEqual([])
  })

  test('limit (default and most 1000) and offset page through the list', async () => {
    const owner = await meteredOrg(broker, m, { name: 'pages' })
    const key = `Key ${owner.apiKey}`
    for (let i = 0; i < 5; i++) await owner.buyAws()
    const path = `/org/${owner.orgId}/entitlement`
    const all = (valid(await suger(path, { auth: key }), 'WorkloadEntitlement[]') as Array<{ id: string }>).map((e) => e.id)
    expect(all).toHaveLength(5)
    const page = async (query: string) => (valid(await suger(`${path}?${query}`, { auth: key }), 'WorkloadEntitlement[]') as Array<{ id: string }>).map((e) => e.id)
    expect([...(await page('limit=2')), ...(await page('limit=2&offset=2')), ...(await page('limit=2&offset=4'))]).toEqual(all)
    expect(await page('limit=2&offset=5')).toEqual([])
    expect(await page('limit=5000')).toEqual(all)
    expect(await page('limit=0')).toEqual(all)
    for (const query of ['limit=abc', 'limit=1.5', 'offset=-1', 'offset=x']) refused(await suger(`${path}?${query}`, { auth: key }), 400)
  })
})

describe('buyers', () => {
  test('GetBuyer answers the IdentityBuyer of each marketplace’s buyerID', async () => {
    const owner = await meteredOrg(broker, m, { name: 'buyers' })
    const key = `Key ${owner.apiKey}`
    const azure = await owner.buyAzure()
    const aws = await owner.buyAws()
    const gcp = await owner.buyGcp()
    const read = async (id: string) => valid(await suger(`/org/${owner.orgId}/entitlement/${id}`, { auth: key }), 'WorkloadEntitlement')
    const buyer = async (id: string) => valid(await suger(`/org/${owner.orgId}/buyer/${(await read(id)).buyerID}`, { auth: key }), 'IdentityBuyer')

    const sub = m.azure.emulator.subscriptions.get(azure.subscriptionId)!
    expect(await buyer(azure.id)).toMatchObject({
      partner: 'AZURE',
      organizationID: owner.orgId,
      externalID: sub.beneficiary.tenantId,
      info: { emailAddress: sub.beneficiary.emailId, azureBuyer: { tenantId: sub.beneficiary.tenantId, objectId: sub.beneficiary.objectId, emailId: sub.beneficiary.emailId } },
    })
    expect(await buyer(aws.id)).toMatchObject({ partner: 'AWS', externalID: aws.accountId, info: { awsBuyer: { awsAccountID: aws.accountId, awsCustomerID: aws.customerIdentifier } } })
    const google = await buyer(gcp.id)
    const account = (await read(gcp.id)).externalBuyerID
    expect(google).toMatchObject({ partner: 'GCP', externalID: account, info: { gcpBuyer: { id: account, provider: owner.providerId, name: `providers/${owner.providerId}/accounts/${account}` } } })
    expect(google.id).toBe((await read(gcp.id)).buyerID)
  })

  test('one buyer account is one byr_ id across its entitlements, another in another org; a forged id is 404', async () => {
    const accountId = String(200000000000 + Math.floor(Math.random() * 99999999))
    const first = await org.buyAws({ accountId })
    const second = await buyAwsContract(org, { accountId })
    const elsewhere = await other.buyAws({ accountId })
    // Another buyer of the same org, whom the filter must leave out.
    await org.buyAws()
    const id = async (owner: MeteredOrg, entitlementId: string) =>
      valid(await suger(`/org/${owner.orgId}/entitlement/${entitlementId}`, { auth: `Key ${owner.apiKey}` }), 'WorkloadEntitlement').buyerID as string
    const mine = await id(org, first.id)
    expect(await id(org, second.id)).toBe(mine)
    const theirs = await id(other, elsewhere.id)
    expect(theirs).not.toBe(mine)
    const buyer = valid(await suger(`${base()}/buyer/${mine}`), 'IdentityBuyer')
    expect(buyer).toMatchObject({ id: mine, externalID: accountId })
    const both = valid(await suger(`${base()}/entitlement?buyerId=${mine}`), 'WorkloadEntitlement[]') as Array<{ id: string }>
    expect(both.map((e) => e.id).sort()).toEqual([first.id, second.id].sort())
    // The other org's id of the same account, a changed character, garbage: not this org's buyers.
    refused(await suger(`${base()}/buyer/${theirs}`), 404, /buyer not found/)
    refused(await suger(`${base()}/buyer/${mine.slice(0, -1)}${mine.endsWith('a') ? 'b' : 'a'}`), 404)
    refused(await suger(`${base()}/buyer/byr_%3Cscript%3E`), 404)
  })
})

describe('usage record groups', () => {
  const report = (entitlementId: string, body: unknown, auth?: string) => suger(`${base()}/entitlement/${entitlementId}/usageRecordGroup`, { method: 'POST', json: body, auth })

  test('a group: 200 CREATED, one §9 usage record per quantity above 0 keyed <group id>:<dimension>', async () => {
    const { id } = await org.buyAzure()
    const gid = groupId()
    const timestamp = inPastHour(1)
    const group = valid(await report(id, { id: gid, entitlementID: id, organizationID: org.orgId, records: { calls: 12.5, storage: 3, idle: 0 }, timestamp }), 'MeteringUsageRecordGroup')
    const entitlement = valid(await suger(`${base()}/entitlement/${id}`), 'WorkloadEntitlement')
    expect(group).toMatchObject({
      id: gid,
      organizationID: org.orgId,
      entitlementID: id,
      buyerID: entitlement.buyerID,
      partner: 'AZURE',
      records: { calls: 12.5, storage: 3 },
      status: 'CREATED',
      metaInfo: { source: 'API', timestamp: new Date(timestamp).toISOString(), originRecords: { calls: 12.5, storage: 3, idle: 0 } },
    })
    expect(group).not.toHaveProperty('reportedTime')
    expect(group.lastUpdateTime).toBe(group.creationTime)
    const records = await org.usage(id)
    expect(records.map((r) => [r.dimension, r.quantity, r.status]).sort()).toEqual([['calls', 12.5, 'PENDING'], ['storage', 3, 'PENDING']])
    expect((records as unknown as Array<{ idempotencyKey: string }>).map((r) => r.idempotencyKey).sort()).toEqual([`${gid}:calls`, `${gid}:storage`])
  })

  test('a group id seen before is 409 whatever the body; ID is id; the answer is the same group', async () => {
    const { id } = await org.buyAzure()
    const gid = groupId()
    const body = { ID: gid, entitlementID: id, organizationID: org.orgId, records: { calls: 1 }, timestamp: inPastHour(1) }
    expect(valid(await report(id, body), 'MeteringUsageRecordGroup').id).toBe(gid)
    refused(await report(id, body), 409, new RegExp(gid))
    refused(await report(id, { ...body, records: { calls: 2, more: 1 } }), 409)
    refused(await report(id, { ...body, ID: undefined, id: gid, records: { other: 0 } }), 409)
    expect(await org.usage(id)).toHaveLength(1)
  })

  test('without an id the broker makes one up (a UUID), each time another', async () => {
    const { id } = await org.buyAzure()
    const body = { entitlementID: id, organizationID: org.orgId, records: { calls: 1 } }
    const a = valid(await report(id, body), 'MeteringUsageRecordGroup')
    const b = valid(await report(id, { ...body, id: '' }), 'MeteringUsageRecordGroup')
    expect(a.id).toMatch(/^[0-9a-f-]{36}$/)
    expect(b.id).not.toBe(a.id)
    expect(a.metaInfo.timestamp).toBe(a.creationTime)
  })

  test('refusals are 400 (404 for an unknown entitlement) and store nothing', async () => {
    const { id } = await org.buyAzure()
    const { id: awsId } = await org.buyAws()
    const ok = { entitlementID: id, organizationID: org.orgId, records: { calls: 1 } }
    const cases: Array<[string, string, unknown, number, RegExp?]> = [
      ['all zero', id, { ...ok, records: { calls: 0, other: 0 } }, 400, /^all the quantity of usage records are zero$/],
      ['no records', id, { ...ok, records: {} }, 400, /zero/],
      ['entitlementID of another', id, { ...ok, entitlementID: awsId }, 400, /entitlementID/],
      ['organizationID of another', id, { ...ok, organizationID: other.orgId }, 400, /organizationID/],
      ['no entitlementID', id, { organizationID: org.orgId, records: { calls: 1 } }, 400],
      ['no organizationID', id, { entitlementID: id, records: { calls: 1 } }, 400],
      ['no records field', id, { entitlementID: id, organizationID: org.orgId }, 400],
      ['negative', id, { ...ok, records: { calls: -1 } }, 400],
      ['a string quantity', id, { ...ok, records: { calls: '1' } }, 400],
      ['id and ID differ', id, { ...ok, id: 'a', ID: 'b' }, 400],
      ['id too long', id, { ...ok, id: 'x'.repeat(37) }, 400],
      ['id with a colon', id, { ...ok, id: 'a:b' }, 400],
      ['a bad dimension', id, { ...ok, records: { ' padded': 1 } }, 400],
      ['billableRecords', id, { ...ok, billableRecords: [{ key: 'calls', quantity: 1 }] }, 400, /billableRecords/],
      ['a future time', id, { ...ok, timestamp: new Date(Date.now() + 3600_000).toISOString() }, 400, /future/],
      ['older than Azure takes', id, { ...ok, timestamp: new Date(Date.now() - 30 * 3600_000).toISOString() }, 400, /too old/],
      ['a time without zone', id, { ...ok, timestamp: '2026-01-01T00:00:00' }, 400],
      ['AWS meters whole units', awsId, { ...ok, entitlementID: awsId, records: { calls: 1.5 } }, 400, /whole/],
      ['an unknown entitlement', 'ent_nope', { ...ok, entitlementID: 'ent_nope' }, 404, /entitlement not found/],
      ['another org’s entitlement', (await other.buyAzure()).id, null, 404, /entitlement not found/],
    ]
    for (const [name, entitlementId, body, status, message] of cases) {
      const sent = body ?? { ...ok, entitlementID: entitlementId }
      const answer = await report(entitlementId, sent)
      expect(answer.status, name).toBe(status)
      refused(answer, status, message)
    }
    refused(await suger(`${base()}/entitlement/${id}/usageRecordGroup`, { method: 'POST', body: '{not json' }), 400)
    refused(await suger(`${base()}/entitlement/${id}/usageRecordGroup`, { method: 'POST', body: '{"entitlementID":"a\\u0000b"}' }), 400)
    expect(await org.usage(id)).toEqual([])
    expect(await org.usage(awsId)).toEqual([])
  })

  test('usage for an entitlement that is not ACTIVE is 400 (cancelled at Microsoft)', async () => {
    const { id } = await org.buyAzure()
    valid(await suger(`${base()}/entitlement/${id}/cancel`, { method: 'POST' }), 'WorkloadEntitlement')
    refused(await report(id, { entitlementID: id, organizationID: org.orgId, records: { calls: 1 } }), 400, /ACTIVE/)
    expect(await org.usage(id)).toEqual([])
  })

  test('reported by the job: CREATED → REPORTED with reportedTime; a record the marketplace rejects makes REPORT_FAILED', async () => {
    const { id, subscriptionId } = await org.buyAzure({ planId: 'metered-dims' })
    const sub = m.azure.emulator.subscriptions.get(subscriptionId)!
    m.azure.emulator.setDimensions(sub.offerId, 'metered-dims', ['calls'])
    const timestamp = inPastHour(2)
    const good = groupId()
    const bad = groupId()
    valid(await report(id, { id: good, entitlementID: id, organizationID: org.orgId, records: { calls: 4 }, timestamp }), 'MeteringUsageRecordGroup')
    valid(await report(id, { id: bad, entitlementID: id, organizationID: org.orgId, records: { calls: 1, unknown_dimension: 2 }, timestamp: inPastHour(3) }), 'MeteringUsageRecordGroup')
    const list = async (query = '') => valid(await suger(`${base()}/usageRecordGroup?entitlementId=${id}${query}`), 'ListUsageRecordGroupsResponse').usageRecordGroups as Array<{ id: string; status: string; reportedTime?: string; lastUpdateTime: string; creationTime: string }>
    expect((await list()).map((g) => [g.id, g.status])).toEqual([[bad, 'CREATED'], [good, 'CREATED']])
    await job()
    const groups = await waitFor('both groups settled', async () => {
      const now = await list()
      return now.every((g) => g.status !== 'CREATED') ? now : null
    })
    const byId = Object.fromEntries(groups.map((g) => [g.id, g]))
    expect(byId[good]).toMatchObject({ status: 'REPORTED', reportedTime: expect.stringMatching(/Z$/) })
    expect(byId[good]!.lastUpdateTime).toBe(byId[good]!.reportedTime)
    expect(byId[good]!.lastUpdateTime > byId[good]!.creationTime).toBe(true)
    expect(byId[bad]!.status).toBe('REPORT_FAILED')
    expect(byId[bad]).not.toHaveProperty('reportedTime')
    expect((await list('&status=REPORTED')).map((g) => g.id)).toEqual([good])
    expect((await list('&status=REPORT_FAILED')).map((g) => g.id)).toEqual([bad])
    expect(await list('&status=CREATED')).toEqual([])
    const usage = await org.usage(id)
    expect(usage.find((r) => r.dimension === 'unknown_dimension')).toMatchObject({ status: 'REJECTED', marketplaceStatus: 'InvalidDimension' })
    expect(m.azure.emulator.usageEventsFor(subscriptionId, 'calls').map((e) => e.quantity).sort()).toEqual([1, 4])
  })
})

describe('a group’s status', () => {
  test('REPORT_FAILED as soon as one record is rejected, even while another is pending; REPORTED once all are reported', async () => {
    const { id } = await org.buyAzure()
    const gid = groupId()
    valid(await suger(`${base()}/entitlement/${id}/usageRecordGroup`, { method: 'POST', json: { id: gid, entitlementID: id, organizationID: org.orgId, records: { a: 1, b: 2 } } }), 'MeteringUsageRecordGroup')
    const status = async () => {
      const { usageRecordGroups } = valid(await suger(`${base()}/usageRecordGroup?entitlementId=${id}`), 'ListUsageRecordGroupsResponse')
      const filtered = await Promise.all(['CREATED', 'REPORTED', 'REPORT_FAILED'].map(async (s) => [s, valid(await suger(`${base()}/usageRecordGroup?entitlementId=${id}&status=${s}`), 'ListUsageRecordGroupsResponse').usageRecordGroups.length]))
      return { status: usageRecordGroups[0].status, reportedTime: usageRecordGroups[0].reportedTime, listedUnder: filtered.filter(([, count]) => count).map(([s]) => s) }
    }
    // What the reporter writes when a record settles (the job itself is exercised above), one record at a time.
    const settle = (key: string, to: 'REPORTED' | 'REJECTED') =>
      broker.deps.db.updateTable('usage_records').set({ status: to, reported_at: to === 'REPORTED' ? new Date(Date.now() + 1000).toISOString() : null }).where('org_id', '=', org.orgId).where('idempotency_key', '=', key).execute()
    expect(await status()).toEqual({ status: 'CREATED', reportedTime: undefined, listedUnder: ['CREATED'] })
    await settle(`${gid}:a`, 'REPORTED')
    expect(await status()).toEqual({ status: 'CREATED', reportedTime: undefined, listedUnder: ['CREATED'] })
    await settle(`${gid}:b`, 'REJECTED')
    expect(await status()).toEqual({ status: 'REPORT_FAILED', reportedTime: undefined, listedUnder: ['REPORT_FAILED'] })
    await settle(`${gid}:b`, 'REPORTED')
    const done = await status()
    expect(done).toMatchObject({ status: 'REPORTED', listedUnder: ['REPORTED'] })
    expect(done.reportedTime).toMatch(/Z$/)
    // Rejected first, the other still pending.
    const next = groupId()
    valid(await suger(`${base()}/entitlement/${id}/usageRecordGroup`, { method: 'POST', json: { id: next, entitlementID: id, organizationID: org.orgId, records: { a: 1, b: 2 } } }), 'MeteringUsageRecordGroup')
    await settle(`${next}:a`, 'REJECTED')
    const groups = valid(await suger(`${base()}/usageRecordGroup?entitlementId=${id}&status=REPORT_FAILED`), 'ListUsageRecordGroupsResponse').usageRecordGroups
    expect(groups.map((g: { id: string; status: string }) => [g.id, g.status])).toEqual([[next, 'REPORT_FAILED']])
  })
})

describe('batch', () => {
  const batch = (body: unknown, auth?: string) => suger(`${base()}/batchCreateUsageRecordGroups`, { method: 'POST', json: body, auth })

  test('several groups: 200 with one MeteringUsageRecordGroup each, in order', async () => {
    const azure = await org.buyAzure()
    const gcp = await org.buyGcp()
    const answer = valid(
      await batch([
        { entitlementID: azure.id, records: { calls: 2 } },
        { entitlementID: gcp.id, records: { calls: 3, idle: 0 }, timestamp: new Date(Date.now() - 60_000).toISOString() },
      ]),
      'MeteringUsageRecordGroup[]',
    )
    expect(answer.map((g: { entitlementID: string; partner: string; records: unknown }) => [g.entitlementID, g.partner, g.records])).toEqual([
      [azure.id, 'AZURE', { calls: 2 }],
      [gcp.id, 'GCP', { calls: 3 }],
    ])
    expect((await org.usage(gcp.id)).map((r) => r.quantity)).toEqual([3])
    valid(await batch([]), 'MeteringUsageRecordGroup[]')
  })

  test('one bad group: 400 naming it, and none of the groups nor their records is stored', async () => {
    const { id } = await org.buyAzure()
    const { id: awsId } = await org.buyAws()
    const kept = groupId()
    const bads: Array<[string, unknown, number]> = [
      ['all zero', { entitlementID: awsId, records: { calls: 0 } }, 400],
      ['not whole (AWS)', { entitlementID: awsId, records: { calls: 0.5 } }, 400],
      ['unknown entitlement', { entitlementID: 'ent_nope', records: { calls: 1 } }, 400],
      ['another org', { entitlementID: awsId, organizationID: other.orgId, records: { calls: 1 } }, 400],
      ['not an object', 'nope', 400],
      ['the same id twice', { id: kept, entitlementID: awsId, records: { calls: 1 } }, 400],
    ]
    for (const [name, bad, status] of bads) {
      const answer = await batch([{ id: kept, entitlementID: id, records: { calls: 1 } }, bad])
      expect(answer.status, name).toBe(status)
      refused(answer, status)
      if (typeof bad === 'object' && name !== 'another org' && name !== 'the same id twice') expect(answer.body, name).toMatch(/usageRecordGroups\[1\]/)
    }
    refused(await batch({ entitlementID: id, records: { calls: 1 } }), 400)
    expect(await org.usage(id)).toEqual([])
    expect(await org.usage(awsId)).toEqual([])
    const listed = valid(await suger(`${base()}/usageRecordGroup?entitlementId=${id}`), 'ListUsageRecordGroupsResponse')
    expect(listed.usageRecordGroups).toEqual([])
    // The good group alone then goes through: nothing of it was kept.
    expect(valid(await batch([{ id: kept, entitlementID: id, records: { calls: 1 } }]), 'MeteringUsageRecordGroup[]')[0].id).toBe(kept)
  })

  test('a group id seen before is 409 and the batch stores nothing', async () => {
    const { id } = await org.buyAzure()
    const seen = groupId()
    valid(await batch([{ id: seen, entitlementID: id, records: { calls: 1 } }]), 'MeteringUsageRecordGroup[]')
    refused(await batch([{ entitlementID: id, records: { calls: 5 } }, { id: seen, entitlementID: id, records: { calls: 9 } }]), 409, new RegExp(seen))
    expect((await org.usage(id)).map((r) => r.quantity)).toEqual([1])
  })

  test('concurrent requests with one group id: exactly one is stored', async () => {
    const { id } = await org.buyAzure()
    const gid = groupId()
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) => suger(`${base()}/entitlement/${id}/usageRecordGroup`, { method: 'POST', json: { id: gid, entitlementID: id, organizationID: org.orgId, records: { [`d${i}`]: i + 1 } } })),
    )
    expect(answers.map((a) => a.status).sort()).toEqual([200, 409, 409, 409, 409, 409])
    const winner = answers.find((a) => a.status === 200)!.body
    expect((await org.usage(id)).map((r) => [r.dimension, r.quantity])).toEqual(Object.entries(winner.records))
  })
})

describe('listing groups', () => {
  test('usageRecordGroups newest first with nextOffset; filters; dates on the creation day, default the last 30 days', async () => {
    const owner = await meteredOrg(broker, m, { name: 'glist' })
    const key = `Key ${owner.apiKey}`
    const azure = await owner.buyAzure()
    const aws = await owner.buyAws()
    const post = (entitlementId: string, records: Record<string, number>) =>
      suger(`/org/${owner.orgId}/entitlement/${entitlementId}/usageRecordGroup`, { method: 'POST', auth: key, json: { entitlementID: entitlementId, organizationID: owner.orgId, records } })
    const made: string[] = []
    for (const [entitlementId, records] of [[azure.id, { a: 1 }], [aws.id, { b: 2 }], [azure.id, { c: 3 }]] as const) made.unshift(valid(await post(entitlementId, records), 'MeteringUsageRecordGroup').id)
    const list = async (query = '') => valid(await suger(`/org/${owner.orgId}/usageRecordGroup${query}`, { auth: key }), 'ListUsageRecordGroupsResponse')
    const everything = await list()
    expect(everything.usageRecordGroups.map((g: { id: string }) => g.id)).toEqual(made)
    expect(everything).not.toHaveProperty('nextOffset')
    const first = await list('?limit=2')
    expect(first.nextOffset).toBe(2)
    const second = await list('?limit=2&offset=2')
    expect(second).not.toHaveProperty('nextOffset')
    expect((await list('?limit=1&offset=1')).nextOffset).toBe(2)
    expect([...first.usageRecordGroups, ...second.usageRecordGroups].map((g: { id: string }) => g.id)).toEqual(made)
    const ids = async (query: string) => (await list(query)).usageRecordGroups.map((g: { id: string }) => g.id)
    expect(await ids(`?entitlementId=${aws.id}`)).toEqual([made[1]])
    expect(await ids('?partner=AZURE')).toEqual([made[0], made[2]])
    expect(await ids('?partner=aws')).toEqual([made[1]])
    const awsBuyer = valid(await suger(`/org/${owner.orgId}/entitlement/${aws.id}`, { auth: key }), 'WorkloadEntitlement').buyerID
    expect(await ids(`?buyerId=${awsBuyer}`)).toEqual([made[1]])
    expect(await ids('?status=CREATED')).toEqual(made)
    for (const status of ['DELETED', 'INVALID', 'REPORT_PENDING']) expect(await ids(`?status=${status}`)).toEqual([])
    expect(await ids('?source=API')).toEqual(made)
    expect(await ids('?source=STRIPE')).toEqual([])
    const today = new Date().toISOString().slice(0, 10)
    const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10)
    expect(await ids(`?startDate=${today}&endDate=${today}`)).toEqual(made)
    expect(await ids(`?endDate=${day(-1)}`)).toEqual([])
    expect(await ids(`?startDate=${day(1)}&endDate=${day(2)}`)).toEqual([])
    expect(await ids(`?startDate=${day(-29)}`)).toEqual(made)
    // 31 days on: out of the default window, inside one that reaches back.
    shift.ms = 31 * 86_400_000
    try {
      expect(await ids('')).toEqual([])
      expect(await ids(`?startDate=${today}`)).toEqual(made)
    } finally {
      shift.ms = 0
    }
    for (const query of ['?status=DONE', '?partner=STRIPE', '?startDate=2026-13-01', '?endDate=yesterday', `?startDate=${day(1)}&endDate=${today}`, '?limit=x', '?offset=-2', '?source=nope']) {
      refused(await suger(`/org/${owner.orgId}/usageRecordGroup${query}`, { auth: key }), 400)
    }
  })
})

describe('approve and cancel', () => {
  test('approve: 200 for ACTIVE and PENDING_START, 400 otherwise', async () => {
    const { id } = await org.buyAzure()
    expect(valid(await suger(`${base()}/entitlement/${id}/approve`, { method: 'POST' }), 'WorkloadEntitlement').status).toBe('ACTIVE')
    const { accountId } = m.gcp.addPurchase({ providerId: org.providerId, product: 'metered-saas', state: 'ENTITLEMENT_ACTIVATION_REQUESTED' })
    const landing = await broker.request(`/public/signup/gcp/orgId/${org.orgId}`, {
      method: 'POST',
      token: null,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ 'x-gcp-marketplace-token': await m.gcp.mintToken({ aud: `${org.providerId}.example`, sub: accountId }) }).toString(),
    })
    const pending = new URL(landing.headers.get('location')!).searchParams.get('sugerEntitlementId')!
    expect(valid(await suger(`${base()}/entitlement/${pending}/approve`, { method: 'POST' }), 'WorkloadEntitlement').status).toBe('PENDING_START')
    valid(await suger(`${base()}/entitlement/${id}/cancel`, { method: 'POST' }), 'WorkloadEntitlement')
    refused(await suger(`${base()}/entitlement/${id}/approve`, { method: 'POST' }), 400, /CANCELLED/)
    refused(await suger(`${base()}/entitlement/ent_nope/approve`, { method: 'POST' }), 404)
  })

  test('cancel (Azure): DELETE at Microsoft, then CANCELLED with its CANCEL event, webhook and audit entry', async () => {
    const { id, subscriptionId } = await org.buyAzure()
    const deletes = m.azure.emulator.callsTo('delete').length
    const cancelled = valid(await suger(`${base()}/entitlement/${id}/cancel`, { method: 'POST' }), 'WorkloadEntitlement')
    expect(cancelled.status).toBe('CANCELLED')
    expect(cancelled.info.azureSubscriptions[0].saasSubscriptionStatus).toBe('Unsubscribed')
    const calls = m.azure.emulator.callsTo('delete').slice(deletes)
    expect(calls.map((call) => [call.path, call.query['api-version']])).toEqual([[`/api/saas/subscriptions/${subscriptionId}`, '2018-08-31']])
    expect(m.azure.emulator.subscriptions.get(subscriptionId)!.saasSubscriptionStatus).toBe('Unsubscribed')
    const events = (await (await broker.request(`/api/v1/orgs/${org.orgId}/entitlements/${id}/events`, { token: org.apiKey })).json()) as { items: Array<{ type: string; source: string; data: Record<string, unknown> }> }
    expect(events.items.at(-1)).toMatchObject({ type: 'CANCEL', source: 'api', data: { action: 'cancel', previousStatus: 'ACTIVE', status: 'CANCELLED' } })
    const hook = await waitFor('the cancelled webhook', () => hooks.received.map((h) => JSON.parse(h.body)).find((body) => body.type === 'entitlement.cancelled' && body.entityId === id))
    expect(hook.data.entitlement.status).toBe('CANCELLED')
    const audit = (await (await broker.request(`/api/v1/orgs/${org.orgId}/audit-log?action=entitlement.cancelled`, { token: org.apiKey })).json()) as { items: Array<Record<string, unknown>> }
    expect(audit.items.find((entry) => entry.targetId === id)).toMatchObject({ targetType: 'entitlement', actor: { type: 'api_key', name: 'default' }, changes: { status: { from: 'ACTIVE', to: 'CANCELLED' } } })
    // Again: the entitlement as it is, no second call to Microsoft.
    expect(valid(await suger(`${base()}/entitlement/${id}/cancel`, { method: 'POST' }), 'WorkloadEntitlement').status).toBe('CANCELLED')
    expect(m.azure.emulator.callsTo('delete').length).toBe(deletes + 1)
  })

  test('cancel while Microsoft is still at it: PENDING_CANCEL, then CANCELLED by Microsoft’s Unsubscribe webhook', async () => {
    const owner = await meteredOrg(broker, m, { name: 'slowcancel' })
    const integration = (await (await broker.request(`/api/v1/orgs/${owner.orgId}/integrations`, { token: owner.apiKey })).json()) as { items: Array<{ partner: string; notificationUrl: string }> }
    const { id } = await owner.buyAzure()
    m.azure.emulator.setCancelDelay(60_000)
    let answer
    try {
      answer = valid(await suger(`/org/${owner.orgId}/entitlement/${id}/cancel`, { method: 'POST', auth: `Key ${owner.apiKey}` }), 'WorkloadEntitlement')
    } finally {
      m.azure.emulator.setCancelDelay(0)
    }
    expect(answer.status).toBe('PENDING_CANCEL')
    const operation = [...m.azure.emulator.operations.values()].find((op) => op.subscriptionId === answer.externalID && op.action === 'Unsubscribe')!
    expect(operation.status).toBe('InProgress')
    // Microsoft finishes and tells the publisher, while its GET still shows the subscription Subscribed (as its own emulator does for a moment).
    operation.status = 'Succeeded'
    const url = integration.items.find((item) => item.partner === 'azure')!.notificationUrl.replace('http://broker.test', '')
    const sent = await broker.request(url, { method: 'POST', token: null, headers: { authorization: `Bearer ${await m.azure.emulator.mintWebhookToken({ tenantId: m.azure.tenantId, clientId: m.azure.clientId })}`, 'content-type': 'application/json' }, body: JSON.stringify(m.azure.emulator.cancelWebhookBody(operation.id)) })
    expect(sent.status).toBe(200)
    await waitFor('CANCELLED', async () => valid(await suger(`/org/${owner.orgId}/entitlement/${id}`, { auth: `Key ${owner.apiKey}` }), 'WorkloadEntitlement').status === 'CANCELLED')
    const events = (await (await broker.request(`/api/v1/orgs/${owner.orgId}/entitlements/${id}/events`, { token: owner.apiKey })).json()) as { items: Array<{ type: string; source: string }> }
    expect(events.items.slice(-2).map((e) => [e.type, e.source])).toEqual([['PENDING_CANCEL', 'api'], ['CANCEL', 'marketplace']])
  })

  test('cancel elsewhere than Azure, or one Microsoft refuses, is 400 and changes nothing', async () => {
    const { id: awsId } = await org.buyAws()
    const { id: gcpId } = await org.buyGcp()
    const deletes = m.azure.emulator.callsTo('delete').length
    refused(await suger(`${base()}/entitlement/${awsId}/cancel`, { method: 'POST' }), 400, /Azure/)
    refused(await suger(`${base()}/entitlement/${gcpId}/cancel`, { method: 'POST' }), 400, /Azure/)
    const sub = m.azure.emulator.addSubscription({ appId: m.azure.clientId, allowedCustomerOperations: ['Read'] })
    const landing = await broker.request(`/public/signup/azure/orgId/${org.orgId}?token=${encodeURIComponent(m.azure.emulator.issuePurchaseToken(sub.id))}`, { token: null })
    const azureId = new URL(landing.headers.get('location')!).searchParams.get('sugerEntitlementId')!
    refused(await suger(`${base()}/entitlement/${azureId}/cancel`, { method: 'POST' }), 400, /allowedCustomerOperations/)
    expect(m.azure.emulator.callsTo('delete').length).toBe(deletes + 1)
    for (const id of [awsId, gcpId, azureId]) expect(valid(await suger(`${base()}/entitlement/${id}`), 'WorkloadEntitlement').status).toBe('ACTIVE')
    refused(await suger(`${base()}/entitlement/ent_nope/cancel`, { method: 'POST' }), 404)
  })

  test('a succeeded cancel is CANCELLED even while Microsoft’s GET still shows it Subscribed (its own emulator lags so)', async () => {
    const { id, subscriptionId } = await org.buyAzure()
    const sub = m.azure.emulator.subscriptions.get(subscriptionId)!
    m.azure.emulator.onNext('get', () => {
      sub.saasSubscriptionStatus = 'Subscribed'
      setTimeout(() => (sub.saasSubscriptionStatus = 'Unsubscribed'), 50)
    })
    expect(valid(await suger(`${base()}/entitlement/${id}/cancel`, { method: 'POST' }), 'WorkloadEntitlement').status).toBe('CANCELLED')
  })

  test('an accepted cancel without an Operation-Location: the subscription itself says whether it is over', async () => {
    const { id, subscriptionId } = await org.buyAzure()
    const sub = m.azure.emulator.subscriptions.get(subscriptionId)!
    // Microsoft takes it at once, but answers without the header.
    m.azure.emulator.onNext('delete', () => (sub.saasSubscriptionStatus = 'Unsubscribed'))
    m.azure.emulator.failNext('delete', 202)
    expect(valid(await suger(`${base()}/entitlement/${id}/cancel`, { method: 'POST' }), 'WorkloadEntitlement').status).toBe('CANCELLED')
    const { id: later } = await org.buyAzure()
    m.azure.emulator.failNext('delete', 202)
    expect(valid(await suger(`${base()}/entitlement/${later}/cancel`, { method: 'POST' }), 'WorkloadEntitlement').status).toBe('PENDING_CANCEL')
  })

  test('a cancel Microsoft ends Failed is 400 and changes nothing', async () => {
    const { id, subscriptionId } = await org.buyAzure()
    m.azure.emulator.setCancelDelay(60_000)
    m.azure.emulator.onNext('getOperation', () => {
      for (const op of m.azure.emulator.operations.values()) if (op.subscriptionId === subscriptionId && op.action === 'Unsubscribe') op.status = 'Failed'
    })
    try {
      refused(await suger(`${base()}/entitlement/${id}/cancel`, { method: 'POST' }), 400, /Failed/)
    } finally {
      m.azure.emulator.setCancelDelay(0)
    }
    expect(valid(await suger(`${base()}/entitlement/${id}`), 'WorkloadEntitlement').status).toBe('ACTIVE')
    const audit = (await (await broker.request(`/api/v1/orgs/${org.orgId}/audit-log?action=entitlement.cancelled`, { token: org.apiKey })).json()) as { items: Array<{ targetId: string }> }
    expect(audit.items.map((entry) => entry.targetId)).not.toContain(id)
  })

  test('Microsoft unreachable: 502, the entitlement unchanged', async () => {
    const { id } = await org.buyAzure()
    const deletes = m.azure.emulator.callsTo('delete').length
    // Every attempt the broker makes (3) fails.
    m.azure.emulator.failNext('delete', 503, 3)
    refused(await suger(`${base()}/entitlement/${id}/cancel`, { method: 'POST' }), 502, /try again/)
    expect(m.azure.emulator.callsTo('delete').length).toBe(deletes + 3)
    expect(valid(await suger(`${base()}/entitlement/${id}`), 'WorkloadEntitlement').status).toBe('ACTIVE')
  })
})

/**
 * The routes, operation ids and parameters of §15 (our contract, written out here): each path under
 * `/suger`, its method, the operation id (Suger's operation name, the generated clients' method)
 * and its parameters as `in:name`. ListUsageRecordGroups also takes Suger's `source` and `metaInfo`.
 */
const SUGER_ROUTES: Array<[method: string, path: string, operationId: string, parameters: string[]]> = [
  ['get', '/org/{orgId}/entitlement/{entitlementId}', 'GetEntitlement', ['path:orgId', 'path:entitlementId']],
  ['get', '/org/{orgId}/entitlement', 'ListEntitlements', ['path:orgId', 'query:partner', 'query:productId', 'query:offerId', 'query:buyerId', 'query:externalId', 'query:buyerAccountId', 'query:limit', 'query:offset']],
  ['post', '/org/{orgId}/entitlement/{entitlementId}/usageRecordGroup', 'ReportUsageRecordGroup', ['path:orgId', 'path:entitlementId']],
  ['post', '/org/{orgId}/batchCreateUsageRecordGroups', 'BatchReportUsageRecordGroups', ['path:orgId']],
  [
    'get',
    '/org/{orgId}/usageRecordGroup',
    'ListUsageRecordGroups',
    ['path:orgId', 'query:partner', 'query:entitlementId', 'query:buyerId', 'query:status', 'query:source', 'query:metaInfo', 'query:startDate', 'query:endDate', 'query:limit', 'query:offset'],
  ],
  ['get', '/org/{orgId}/buyer/{buyerId}', 'GetBuyer', ['path:orgId', 'path:buyerId']],
  ['post', '/org/{orgId}/entitlement/{entitlementId}/approve', 'ApproveEntitlement', ['path:orgId', 'path:entitlementId']],
  ['post', '/org/{orgId}/entitlement/{entitlementId}/cancel', 'CancelEntitlement', ['path:orgId', 'path:entitlementId']],
]

/** The fields §15's mapping names for each answer (and its nested objects), exactly: the answers' schemas are strict. */
const SUGER_FIELDS: Record<string, string[]> = {
  SugerWorkloadEntitlement: ['id', 'organizationID', 'partner', 'partnerID', 'status', 'productID', 'externalProductID', 'offerID', 'externalID', 'buyerID', 'externalBuyerID', 'name', 'creationTime', 'lastUpdateTime', 'startTime', 'endTime', 'info'],
  'SugerWorkloadEntitlement.info': ['autoRenew', 'azureSubscriptions', 'awsEntitlements', 'gcpEntitlements'],
  'SugerWorkloadEntitlement.info.awsEntitlements[]': ['customerIdentifier', 'dimension', 'expirationDate', 'productCode', 'value'],
  'SugerWorkloadEntitlement.info.awsEntitlements[].value': ['integerValue', 'doubleValue', 'booleanValue', 'stringValue'],
  SugerMeteringUsageRecordGroup: ['id', 'organizationID', 'entitlementID', 'buyerID', 'partner', 'records', 'status', 'creationTime', 'lastUpdateTime', 'reportedTime', 'metaInfo'],
  'SugerMeteringUsageRecordGroup.metaInfo': ['source', 'timestamp', 'originRecords'],
  SugerListUsageRecordGroupsResponse: ['usageRecordGroups', 'nextOffset'],
  SugerIdentityBuyer: ['id', 'organizationID', 'partner', 'externalID', 'name', 'creationTime', 'lastUpdateTime', 'info'],
  'SugerIdentityBuyer.info': ['emailAddress', 'awsBuyer', 'azureBuyer', 'gcpBuyer'],
  'SugerIdentityBuyer.info.awsBuyer': ['awsAccountID', 'awsCustomerID'],
  'SugerIdentityBuyer.info.azureBuyer': ['tenantId', 'objectId', 'emailId'],
  'SugerIdentityBuyer.info.gcpBuyer': ['id', 'name', 'provider'],
}

interface OpenApiSchema {
  $ref?: string
  type?: string
  format?: string
  enum?: unknown[]
  items?: OpenApiSchema
  properties?: Record<string, OpenApiSchema>
  additionalProperties?: OpenApiSchema | boolean
  required?: string[]
}

describe('the OpenAPI document', () => {
  test('exactly §15’s routes under the Suger-compatible tag, with its operation ids and parameters; the answers’ schemas strict, with §15’s fields, enums, integers and times', async () => {
    const doc = (await (await broker.request('/api/openapi.json', { token: null })).json()) as {
      paths: Record<string, Record<string, { tags: string[]; operationId: string; parameters?: Array<{ name: string; in: string }>; responses: Record<string, { content?: Record<string, { schema: OpenApiSchema }> }> }>>
      components: { schemas: Record<string, OpenApiSchema>; securitySchemes: Record<string, unknown> }
    }
    const served = Object.entries(doc.paths)
      .filter(([path]) => path.startsWith('/suger/'))
      .flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method} ${path.slice('/suger'.length)}`))
    expect(served.sort()).toEqual(SUGER_ROUTES.map(([method, path]) => `${method} ${path}`).sort())
    for (const [method, path, operationId, parameters] of SUGER_ROUTES) {
      const operation = doc.paths[`/suger${path}`]![method]!
      expect(operation.tags, `${method} ${path}`).toEqual(['Suger-compatible'])
      expect(operation.operationId, `${method} ${path}`).toBe(operationId)
      expect((operation.parameters ?? []).map((p) => `${p.in}:${p.name}`).sort(), `${method} ${path}`).toEqual([...parameters].sort())
      expect(Object.keys(operation.responses[200]?.content ?? {}), `${method} ${path}`).toEqual(['application/json'])
    }
    expect(doc.components.securitySchemes.sugerKey).toMatchObject({ type: 'apiKey', in: 'header', name: 'Authorization' })

    const resolve = (schema: OpenApiSchema): OpenApiSchema => (schema.$ref ? resolve(doc.components.schemas[schema.$ref.split('/').pop()!]!) : schema)
    const at = (where: string): OpenApiSchema =>
      where.split('.').reduce<OpenApiSchema>((schema, step, index) => {
        if (index === 0) return resolve(doc.components.schemas[step]!)
        const field = resolve(schema.properties![step.replace(/\[\]$/, '')]!)
        return step.endsWith('[]') ? resolve(field.items!) : field
      }, {})
    for (const [where, fields] of Object.entries(SUGER_FIELDS)) {
      const schema = at(where)
      expect(Object.keys(schema.properties ?? {}).sort(), where).toEqual([...fields].sort())
      expect(schema.additionalProperties, `${where} refuses unknown keys`).toBe(false)
    }
    const field = (where: string) => resolve(at(where.slice(0, where.lastIndexOf('.'))).properties![where.slice(where.lastIndexOf('.') + 1)]!)
    for (const partner of ['SugerWorkloadEntitlement.partner', 'SugerMeteringUsageRecordGroup.partner', 'SugerIdentityBuyer.partner']) expect(field(partner).enum, partner).toEqual(['AZURE', 'AWS', 'GCP'])
    expect([...(field('SugerWorkloadEntitlement.status').enum ?? [])].sort()).toEqual(['ACTIVE', 'CANCELLED', 'PENDING_CANCEL', 'PENDING_START', 'SUSPENDED'])
    expect(field('SugerMeteringUsageRecordGroup.status').enum).toEqual(['CREATED', 'REPORTED', 'REPORT_FAILED'])
    expect(field('SugerMeteringUsageRecordGroup.metaInfo.source').enum).toEqual(['API'])
    for (const integer of ['SugerListUsageRecordGroupsResponse.nextOffset', 'SugerWorkloadEntitlement.info.awsEntitlements[].value.integerValue']) expect(field(integer).type, integer).toBe('integer')
    for (const time of ['creationTime', 'lastUpdateTime', 'startTime', 'endTime']) expect(field(`SugerWorkloadEntitlement.${time}`).format, time).toBe('date-time')
    for (const time of ['creationTime', 'lastUpdateTime', 'reportedTime', 'metaInfo.timestamp']) expect(field(`SugerMeteringUsageRecordGroup.${time}`).format, time).toBe('date-time')
    for (const time of ['creationTime', 'lastUpdateTime']) expect(field(`SugerIdentityBuyer.${time}`).format, time).toBe('date-time')
    // The requests take every field §15 names (id also as ID); a NewUsageRecordGroup's organizationID too.
    for (const request of ['SugerCreateUsageRecordGroupParams', 'SugerNewUsageRecordGroup']) {
      expect(Object.keys(resolve(doc.components.schemas[request]!).properties ?? {}), request).toEqual(expect.arrayContaining(['id', 'ID', 'entitlementID', 'organizationID', 'records', 'timestamp']))
    }
    expect(resolve(doc.components.schemas.SugerCreateUsageRecordGroupParams!).required).toEqual(expect.arrayContaining(['entitlementID', 'organizationID', 'records']))
  })
})

describe('hostile input never makes a 5xx', () => {
  const jsonValue = fc.oneof(fc.constant(null), fc.boolean(), fc.double(), fc.integer(), fc.string(), fc.constant(''), fc.constant('2026-01-01T00:00:00Z'))
  const records = fc.oneof(jsonValue, fc.dictionary(fc.oneof(fc.string(), fc.constantFrom('calls', '__proto__', 'a:b', ' x', 'é')), fc.oneof(fc.double(), fc.integer({ min: -5, max: 5 }), fc.string(), fc.constant(null))))
  const group = (entitlementId: string) =>
    fc.record(
      {
        id: fc.oneof(fc.string({ maxLength: 40 }), fc.uuid(), jsonValue),
        ID: fc.oneof(fc.string({ maxLength: 40 }), jsonValue),
        entitlementID: fc.oneof(fc.constant(entitlementId), fc.string(), jsonValue),
        organizationID: fc.oneof(fc.constant(org.orgId), fc.string(), jsonValue),
        records,
        timestamp: fc.oneof(fc.date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true }).map((d) => d.toISOString()), fc.string(), jsonValue),
        billableRecords: fc.oneof(fc.array(jsonValue, { maxLength: 2 }), jsonValue),
      },
      { requiredKeys: [] },
    )

  test('usage-record group bodies (single and batch)', async () => {
    const { id } = await org.buyAzure()
    await fc.assert(
      fc.asyncProperty(group(id), fc.array(group(id), { maxLength: 3 }), async (body, bodies) => {
        const single = await suger(`${base()}/entitlement/${id}/usageRecordGroup`, { method: 'POST', json: body })
        expect(single.status, single.text).toBeLessThan(500)
        if (single.status === 200) expect(sugerProblems('MeteringUsageRecordGroup', answerOf(single))).toEqual([])
        else expect(typeof single.body).toBe('string')
        const many = await suger(`${base()}/batchCreateUsageRecordGroups`, { method: 'POST', json: bodies })
        expect(many.status, many.text).toBeLessThan(500)
        if (many.status === 200) expect(sugerProblems('MeteringUsageRecordGroup[]', answerOf(many))).toEqual([])
      }),
      { numRuns: 60 },
    )
  })

  test('list query parameters', async () => {
    const value = fc.oneof(fc.string(), fc.string({ unit: 'grapheme', maxLength: 10 }), fc.integer().map(String), fc.constantFrom('\u0000', 'a\u0000b', '\u007f', 'AZURE', 'aws', 'CREATED', 'REPORTED', 'API', '2026-01-01', '', '-1', '1e3', '%', 'byr_a'))
    const params = fc.dictionary(fc.constantFrom('partner', 'productId', 'offerId', 'buyerId', 'externalId', 'buyerAccountId', 'entitlementId', 'status', 'source', 'metaInfo', 'startDate', 'endDate', 'limit', 'offset'), value)
    await fc.assert(
      fc.asyncProperty(params, fc.constantFrom('entitlement', 'usageRecordGroup'), async (query, route) => {
        const answer = await suger(`${base()}/${route}?${new URLSearchParams(query)}`)
        expect(answer.status, answer.text).toBeLessThan(500)
        if (answer.status === 200) {
          expect(sugerProblems(route === 'entitlement' ? 'WorkloadEntitlement[]' : 'ListUsageRecordGroupsResponse', answerOf(answer))).toEqual([])
        } else {
          refused(answer, 400)
        }
      }),
      { numRuns: 80 },
    )
  })

  test('path values: control characters are 400 (PostgreSQL cannot compare them), other odd ids 404s, never 5xx', async () => {
    for (const id of ['%00', 'a%00b', '%1F', '%7F']) {
      for (const path of [`/entitlement/${id}`, `/buyer/${id}`, `/entitlement/${id}/approve`]) refused(await suger(`${base()}${path}`, { method: path.endsWith('approve') ? 'POST' : 'GET' }), 400)
    }
    refused(await suger(`${base()}/entitlement?productId=a%00b`), 400)
    for (const id of ['%F0%9F%92%A9', '%FF', 'a'.repeat(64), "'; drop table entitlements; --", '<b>x</b>']) {
      for (const path of [`/entitlement/${id}`, `/buyer/${id}`]) {
        const answer = await suger(`${base()}${path}`)
        expect(answer.status, `${path}: ${answer.text}`).toBeLessThan(500)
        expect(typeof answer.body).toBe('string')
      }
    }
  })
})
