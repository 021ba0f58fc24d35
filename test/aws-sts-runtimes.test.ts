import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type AwsEmulator, createAwsEmulator } from '../sandbox/emulators/aws'
import { type TestBroker, createTestBroker } from './helpers'
import { type WorkerProcess, httpBroker, startWorker } from './worker-process'

/**
 * STS on both runtimes. STS speaks awsQuery: its answers, good or bad, are XML, which the SDK
 * reads with @aws-sdk/xml-builder's parseXML. Bundled for Workers, that package's `browser` field
 * once swapped in a DOMParser parser, and workerd has no DOMParser: every STS answer became a
 * ReferenceError, so an AWS integration with a roleArn could land no buyer and the credentials
 * check said "STS refused the call (200 ReferenceError)" (wrangler.toml's `[alias]` keeps the
 * Node parser). The same assertions on Node + SQLite and on workerd + D1: the AssumeRole of a
 * landing, the check's AssumeRole and GetCallerIdentity, and STS's refusals named by their codes.
 * Metering and the Entitlement Service (awsJson) are signed with the role's session on both.
 */
let aws: AwsEmulator
let closeAws: () => Promise<void>
let node: TestBroker
let worker: WorkerProcess
let persistTo: string

const seller = { accessKeyId: 'AKIASTSRUNTIMES00001', secretAccessKey: 'sts-runtimes/secret+key=' }
const userArn = 'arn:aws:iam::777788889999:user/marketbridge'
const roleArn = 'arn:aws:iam::777788889999:role/MarketbridgeRuntimes'
const externalId = 'ext-runtimes-42'

beforeAll(async () => {
  aws = createAwsEmulator()
  const server = await aws.listen()
  closeAws = server.close
  aws.addCredentials(seller.accessKeyId, seller.secretAccessKey, userArn)
  aws.addRole(roleArn, seller.accessKeyId, externalId)
  const env = { AWS_STS_URL: server.url, AWS_MARKETPLACE_METERING_URL: server.url, AWS_MARKETPLACE_ENTITLEMENT_URL: server.url }
  node = await createTestBroker(env)
  persistTo = mkdtempSync(join(tmpdir(), 'marketbridge-aws-sts-'))
  worker = await startWorker(persistTo, env)
}, 120_000)

afterAll(async () => {
  await worker?.stop()
  await node?.close()
  await closeAws?.()
  if (persistTo) rmSync(persistTo, { recursive: true, force: true })
})

type Client = Pick<TestBroker, 'request' | 'createOrg'>
const runtimes: Array<[string, () => { client: Client; logs: () => string }]> = [
  ['node + SQLite', () => ({ client: node, logs: () => node.logs.join('\n') })],
  ['workerd + D1', () => ({ client: httpBroker(worker.url), logs: () => worker.output() })],
]

interface CheckBody {
  ok: boolean
  checks: Array<{ name: string; ok: boolean; message: string }>
}

describe.each(runtimes)('%s', (_runtime, runtime) => {
  async function withIntegration(body: Record<string, unknown>) {
    const { client } = runtime()
    const { org, apiKey } = await client.createOrg()
    const put = await client.request(`/api/v1/orgs/${org.id}/integrations/aws`, { method: 'PUT', token: apiKey, json: { region: 'us-east-1', ...body } })
    expect(put.status, await put.clone().text()).toBe(200)
    return { client, orgId: org.id, apiKey }
  }

  const land = (client: Client, orgId: string, token: string) =>
    client.request(`/public/signup/aws/orgId/${orgId}`, {
      method: 'POST',
      token: null,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ 'x-amzn-marketplace-token': token }).toString(),
    })

  async function check(body: Record<string, unknown>): Promise<CheckBody> {
    const { client, orgId, apiKey } = await withIntegration(body)
    const response = await client.request(`/api/v1/orgs/${orgId}/integrations/aws/check`, { method: 'POST', token: apiKey })
    const text = await response.text()
    expect(response.status, text).toBe(200)
    expect(text).not.toContain('ReferenceError')
    expect(text).not.toContain(seller.secretAccessKey)
    return JSON.parse(text) as CheckBody
  }

  test('a landing with a roleArn assumes the role through STS (with the externalId) and its session signs Metering and the Entitlement Service', async () => {
    const { client, orgId, apiKey } = await withIntegration({ credentials: seller, roleArn, externalId })
    const productCode = `prod-sts-${Math.random().toString(36).slice(2, 8)}`
    const licenseArn = `arn:aws:license-manager::294406891311:license:l-${Math.random().toString(36).slice(2, 10)}`
    const { customer, token } = aws.addCustomer({ ProductCode: productCode, LicenseArn: licenseArn })
    aws.addEntitlement({ ProductCode: productCode, Dimension: 'seats', CustomerIdentifier: customer.CustomerIdentifier, Value: { IntegerValue: 12 } })
    const seen = { assume: aws.callsTo('AssumeRole').length, resolve: aws.callsTo('ResolveCustomer').length, entitlements: aws.callsTo('GetEntitlements').length }

    const response = await land(client, orgId, token)
    expect(response.status, await response.clone().text()).toBe(303)

    const assumes = aws.callsTo('AssumeRole').slice(seen.assume)
    expect(assumes).toHaveLength(1)
    expect(assumes[0]!).toMatchObject({ service: 'sts', accessKeyId: seller.accessKeyId })
    const asked = new URLSearchParams(assumes[0]!.body)
    expect(asked.get('RoleArn')).toBe(roleArn)
    expect(asked.get('ExternalId')).toBe(externalId)
    expect(asked.get('RoleSessionName')).toBe(`marketbridge-${orgId}`.slice(0, 64))
    // The role's temporary credentials (ASIA…), not the seller's key, sign both awsJson calls.
    const resolve = aws.callsTo('ResolveCustomer').slice(seen.resolve)
    const gets = aws.callsTo('GetEntitlements').slice(seen.entitlements)
    expect(resolve).toHaveLength(1)
    expect(gets.length).toBeGreaterThan(0)
    const session = resolve[0]!.accessKeyId
    expect(session).toMatch(/^ASIA/)
    for (const call of gets) expect(call.accessKeyId).toBe(session)

    // The entitlement landed as AWS answered it.
    const id = new URL(response.headers.get('location')!).searchParams.get('sugerEntitlementId')!
    const entitlement = (await (await client.request(`/api/v1/orgs/${orgId}/entitlements/${id}`, { token: apiKey })).json()) as Record<string, any>
    expect(entitlement).toMatchObject({ partner: 'aws', externalId: licenseArn, productId: productCode, offerType: 'CONTRACT', buyer: { customerId: customer.CustomerIdentifier } })
    expect(entitlement.info.entitlements).toEqual([expect.objectContaining({ Dimension: 'seats', Value: { IntegerValue: 12 } })])
  })

  test('a landing whose externalId STS refuses is a 503, logged as AccessDenied (STS’s error XML read)', async () => {
    const { client, orgId } = await withIntegration({ credentials: seller, roleArn, externalId: 'not-the-one' })
    const before = aws.callsTo('AssumeRole').length
    const response = await land(client, orgId, aws.addCustomer({ ProductCode: 'prod-sts-denied' }).token)
    expect(response.status).toBe(503)
    expect(aws.callsTo('AssumeRole').length).toBeGreaterThan(before)
    const logged = () => runtime().logs().split('\n').find((line) => line.includes('integration misconfigured') && line.includes(orgId))
    await expect.poll(logged).toBeDefined()
    expect(logged()).toContain('"awsError":"AccessDenied"')
    expect(runtime().logs()).not.toContain(seller.secretAccessKey)
  })

  test('the credentials check: static keys and the assumed role pass, signed in as each', async () => {
    expect(await check({ credentials: seller })).toEqual({
      ok: true,
      checks: [{ name: 'sts:GetCallerIdentity', ok: true, message: `signed in as ${userArn} of account 777788889999` }],
    })
    const before = aws.callsTo('AssumeRole').length
    const role = await check({ credentials: seller, roleArn, externalId })
    expect(role.ok).toBe(true)
    expect(role.checks.map((c) => [c.name, c.ok])).toEqual([['sts:AssumeRole', true], ['sts:GetCallerIdentity', true]])
    // The Expiration (an XML timestamp) read as a date.
    expect(role.checks[0]!.message).toMatch(new RegExp(`^access key ${seller.accessKeyId} assumed ${roleArn} \\(credentials until \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z\\)$`))
    expect(role.checks[1]!.message).toMatch(/^signed in as arn:aws:sts::777788889999:assumed-role\/MarketbridgeRuntimes\/marketbridge-org_\S+ of account 777788889999$/)
    expect(new URLSearchParams(aws.callsTo('AssumeRole').at(-1)!.body).get('ExternalId')).toBe(externalId)
    expect(aws.callsTo('AssumeRole').length).toBe(before + 1)
    expect(aws.callsTo('GetCallerIdentity').at(-1)!.accessKeyId).toMatch(/^ASIA/)
  })

  test('the credentials check: STS’s refusals are named by their codes (a wrong secret, an unknown key, a wrong externalId)', async () => {
    const wrongSecret = await check({ credentials: { accessKeyId: seller.accessKeyId, secretAccessKey: 'not/the+secret' } })
    expect(wrongSecret).toEqual({
      ok: false,
      checks: [{ name: 'sts:GetCallerIdentity', ok: false, message: `the secret access key does not belong to access key ${seller.accessKeyId} (SignatureDoesNotMatch)` }],
    })
    const unknown = await check({ credentials: { accessKeyId: 'AKIASTSUNKNOWN000001', secretAccessKey: seller.secretAccessKey } })
    expect(unknown.checks).toEqual([
      { name: 'sts:GetCallerIdentity', ok: false, message: 'AWS does not know access key AKIASTSUNKNOWN000001 (InvalidClientTokenId): it was deleted, deactivated or mistyped' },
    ])
    const denied = await check({ credentials: seller, roleArn, externalId: 'not-the-one' })
    expect(denied.ok).toBe(false)
    expect(denied.checks).toEqual([
      { name: 'sts:AssumeRole', ok: false, message: expect.stringMatching(new RegExp(`^access key ${seller.accessKeyId} may not assume ${roleArn} \\(AccessDenied\\)`)) },
      { name: 'sts:GetCallerIdentity', ok: true, message: `signed in as ${userArn} of account 777788889999 (the access key itself; the role was not assumed)` },
    ])
  })
})
