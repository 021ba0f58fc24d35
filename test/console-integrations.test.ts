import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { integrationSpecs } from '../providers/index'
import { PARTNERS, type Partner } from '../providers/types'
import { loadProviderIntegration } from '../src/domain/integrations'
import { INTEGRATION_FIELDS } from '../src/pages/console/integration-forms'
import { type AwsEmulator, createAwsEmulator } from '../sandbox/emulators/aws'
import { type GcpEmulator, createGcpEmulator } from '../sandbox/emulators/gcp'
import { consoleUser, textOf } from './console'
import { type AzureSetup, type TestBroker, createTestBroker, startAzure } from './helpers'

/**
 * The console's Integrations page (contract §14, §3, §13) over HTTP, against the marketplaces'
 * emulators: the cards show what GET …/integrations answers and never a secret, Check
 * credentials makes the real calls, the edit form keeps a secret left blank, the AWS
 * notification secret is shown once, and forged or another org's posts change nothing.
 */

interface Check {
  ok: boolean
  checks: Array<{ name: string; ok: boolean; message: string }>
}
type Integration = Record<string, unknown> & { partner: Partner; partnerId: string; signupUrl: string; notificationUrl: string; createdAt: string }

let azure: AzureSetup
let aws: AwsEmulator
let awsServer: { url: string; close: () => Promise<void> }
let gcp: GcpEmulator
let gcpServer: { url: string; close: () => Promise<void> }
let broker: TestBroker
const awsKeys = { accessKeyId: 'AKIACONSOLETEST00001', secretAccessKey: `con/${randomBytes(18).toString('base64')}` }
const gcpProvider = 'console-provider'
let gcpKey: Record<string, string>
/** Every secret configured in this file: none may be in a page. */
const secrets: string[] = []

beforeAll(async () => {
  azure = await startAzure()
  aws = createAwsEmulator()
  awsServer = await aws.listen()
  aws.addCredentials(awsKeys.accessKeyId, awsKeys.secretAccessKey, 'arn:aws:iam::444455556666:user/console')
  gcp = await createGcpEmulator()
  gcpServer = await gcp.listen()
  gcpKey = (await gcp.createServiceAccount(gcpProvider)) as unknown as Record<string, string>
  gcp.addPurchase({ providerId: gcpProvider, plan: 'team', state: 'ENTITLEMENT_ACTIVE' })
  secrets.push(azure.clientSecret, awsKeys.secretAccessKey, gcpKey.private_key!, ...gcpKey.private_key!.split('\n').filter((line) => line && !line.startsWith('-----')))
  broker = await createTestBroker({
    AZURE_MARKETPLACE_API_URL: azure.url,
    AZURE_LOGIN_URL: azure.url,
    AWS_STS_URL: awsServer.url,
    AWS_MARKETPLACE_METERING_URL: awsServer.url,
    AWS_MARKETPLACE_ENTITLEMENT_URL: awsServer.url,
    GCP_OAUTH_TOKEN_URL: gcp.tokenUrl,
    GCP_PROCUREMENT_API_URL: gcpServer.url,
    GCP_MARKETPLACE_CERTS_URL: gcp.certsUrl,
  })
})
afterAll(async () => {
  await broker?.close()
  await azure?.close()
  await awsServer?.close()
  await gcpServer?.close()
})

const noSecretIn = (html: string) => {
  for (const secret of secrets) expect(html).not.toContain(secret)
  expect(html).not.toContain('PRIVATE KEY')
  expect(html).not.toMatch(/mbn_[A-Za-z0-9_-]{20,}/)
}

/** An org and a console user signed in with its key; the JSON API beside it for comparison. */
async function signedIn(name = 'Acme') {
  const { org, apiKey } = await broker.createOrg({ name })
  const user = consoleUser((url, init) => broker.app.request(url, init))
  await user.signIn(apiKey)
  const path = `/console/orgs/${org.id}/integrations`
  const api = async <T,>(route: string, init: { method?: string; json?: unknown } = {}) => {
    const answer = await broker.request(`/api/v1/orgs/${org.id}${route}`, { token: apiKey, ...init })
    return { status: answer.status, body: (await answer.json()) as T }
  }
  const integrations = async () => (await api<{ items: Integration[] }>('/integrations')).body.items
  const audit = async () => (await api<{ items: Array<{ action: string; actor: Record<string, unknown>; targetId: string; changes: Record<string, { from: unknown; to: unknown }> }> }>('/audit-log')).body.items
  const stored = async (partner: Partner) => (await loadProviderIntegration(broker.deps, org.id, partner))?.secrets
  const save = (partner: Partner, fields: Record<string, string>) => user.submit(`${path}/${partner}/edit`, `${path}/${partner}/edit`, fields)
  return { orgId: org.id, apiKey, user, path, api, integrations, audit, stored, save }
}

const azureForm = () => ({ tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret })
const gcpForm = () => ({ providerId: gcpProvider, audience: 'app.console.example', serviceAccountKey: JSON.stringify(gcpKey, null, 2), autoApprovePlanChanges: 'on' })

/** The card of one marketplace on the page. */
const cardOf = (html: string, partner: Partner) => {
  const start = html.indexOf(`aria-labelledby="${partner}-title"`)
  expect(start, `${partner} card`).toBeGreaterThan(0)
  return html.slice(start, html.indexOf('</section>', html.indexOf(`id="${partner}-title"`)) + 10)
}

/** What a setting reads on the card, as the API answers it. */
const settingText = (value: unknown): string =>
  typeof value === 'boolean'
    ? value ? 'yes' : 'no'
    : Array.isArray(value)
      ? value.join(' ')
      : value && typeof value === 'object'
        ? Object.entries(value).map(([key, inner]) => `${key} = ${inner}`).join(' ')
        : String(value)

/** The card shows every field of the API's answer, the two URLs as copy fields. */
function expectCardIs(html: string, integration: Integration) {
  const card = cardOf(html, integration.partner)
  const text = textOf(card)
  expect(text).toContain('Configured')
  for (const [key, value] of Object.entries(integration)) {
    if (['partner', 'signupUrl', 'notificationUrl', 'createdAt', 'updatedAt'].includes(key)) continue
    expect(text, key).toContain(settingText(value))
  }
  expect(text).toContain(integration.createdAt.replace('T', ' ').replace(/\.\d+Z$/, ' UTC'))
  expect(card).toContain(`id="${integration.partner}-signup-url" value="${integration.signupUrl.replace(/&/g, '&amp;')}" readonly`)
  expect(card).toContain(`id="${integration.partner}-notification-url" value="${integration.notificationUrl.replace(/&/g, '&amp;')}" readonly`)
  expect(card).toContain(`data-copy="${integration.partner}-signup-url"`)
  expect(card).toContain(`data-copy="${integration.partner}-notification-url"`)
}

describe('the Integrations page', () => {
  test('a new org: an empty state says what to do; one card per marketplace, none configured, each saying where its credentials are', async () => {
    const s = await signedIn()
    const page = await s.user.get(s.path)
    expect(page.status).toBe(200)
    const text = textOf(page.html)
    expect(text).toContain('No marketplace connected yet')
    expect(text).toContain('Pick the marketplace you sell on')
    for (const [partner, name, where] of [
      ['azure', 'Azure', 'Partner Center'],
      ['aws', 'AWS', 'IAM'],
      ['gcp', 'Google Cloud', 'Producer Portal'],
    ] as const) {
      const card = textOf(cardOf(page.html, partner))
      expect(card).toContain('Not configured')
      expect(card).toContain(where)
      expect(card).toContain(`Set up ${name}`)
      expect(page.html).toContain(`href="${s.path}/${partner}/edit"`)
    }
    expect(page.html).not.toContain('Check credentials')
    const form = await s.user.get(`${s.path}/azure/edit`)
    expect(form.status).toBe(200)
    expect(textOf(form.html)).toContain('Set up Azure')
    for (const field of INTEGRATION_FIELDS.azure) expect(form.html).toContain(`<label class="field" for="azure-${field.name}">`)
  })

  test('Azure set up through the form: the card is what the API answers, with the URLs to copy; never the secret; one audit entry by the console, the secret redacted', async () => {
    const s = await signedIn()
    const saved = await s.save('azure', { ...azureForm(), offerTypes: 'gold = SUBSCRIPTION\r\n silver=PRIVATE ' })
    expect(saved.status).toBe(303)
    expect(saved.location).toBe(`${s.path}?notice=saved-azure`)
    const [integration] = await s.integrations()
    expect(integration).toMatchObject({ partner: 'azure', tenantId: azure.tenantId, clientId: azure.clientId, offerTypes: { gold: 'SUBSCRIPTION', silver: 'PRIVATE' } })
    const page = await s.user.get(saved.location!)
    expect(textOf(page.html)).toContain('Azure integration saved.')
    expect(textOf(page.html)).not.toContain('No marketplace connected yet')
    expectCardIs(page.html, integration!)
    expect(textOf(cardOf(page.html, 'aws'))).toContain('Not configured')
    noSecretIn(page.html)
    const audit = await s.audit()
    expect(audit.filter((entry) => entry.action.startsWith('integration.'))).toEqual([
      expect.objectContaining({
        action: 'integration.created',
        targetId: 'azure',
        actor: { type: 'console', id: expect.stringMatching(/^key_/), name: 'default' },
        changes: expect.objectContaining({ clientSecret: { from: null, to: '[redacted]' }, tenantId: { from: null, to: azure.tenantId } }),
      }),
    ])
    noSecretIn(JSON.stringify(audit))
    // The edit form shows the settings, never the secret.
    const form = await s.user.get(`${s.path}/azure/edit`)
    expect(textOf(form.html)).toContain('Edit the Azure integration')
    expect(form.html).toContain(`value="${azure.tenantId}"`)
    expect(form.html).toMatch(/<textarea[^>]*name="offerTypes"[^>]*>gold = SUBSCRIPTION\nsilver = PRIVATE<\/textarea>/)
    expect(form.html).toMatch(/<input type="password" id="azure-clientSecret" name="clientSecret"[^>]*placeholder="[^"]*stored\)"\/?>/)
    expect(form.html).not.toMatch(/name="clientSecret"[^>]*value=/)
    noSecretIn(form.html)
  })

  test('Check credentials: the checks as the API answers them; a wrong secret shows the failed check and why, never a secret', async () => {
    const s = await signedIn()
    await s.save('azure', azureForm())
    const checked = await s.user.submit(s.path, `${s.path}/azure/check`)
    expect(checked.status).toBe(200)
    const api = (await s.api<Check>('/integrations/azure/check', { method: 'POST' })).body
    expect(api.ok).toBe(true)
    const text = textOf(cardOf(checked.html, 'azure'))
    expect(text).toContain('Credentials work')
    for (const check of api.checks) expect(text).toContain(`${check.name} ${check.message} passed`)
    expect(textOf(checked.html)).toContain('Azure: every credentials check passed.')
    noSecretIn(checked.html)

    const wrong = `sec~${randomBytes(12).toString('base64url')}`
    secrets.push(wrong)
    expect((await s.api('/integrations/azure', { method: 'PUT', json: { ...azureForm(), clientSecret: wrong } })).status).toBe(200)
    const failed = await s.user.submit(s.path, `${s.path}/azure/check`)
    const failedApi = (await s.api<Check>('/integrations/azure/check', { method: 'POST' })).body
    expect(failedApi.ok).toBe(false)
    const failedText = textOf(cardOf(failed.html, 'azure'))
    expect(failedText).toContain('Credentials check failed')
    for (const check of failedApi.checks) expect(failedText).toContain(`${check.name} ${check.message} ${check.ok ? 'passed' : 'failed'}`)
    expect(failedText).toMatch(/AADSTS7000215/)
    expect(textOf(failed.html)).toContain('a credentials check failed')
    noSecretIn(failed.html)
    // A marketplace without an integration has nothing to check.
    expect((await s.user.submit(s.path, `${s.path}/gcp/check`)).status).toBe(404)
  })

  test('editing with the secret left blank keeps the stored one (the check still passes); one audit entry with the change only; a new secret is redacted', async () => {
    const s = await signedIn()
    await s.save('azure', azureForm())
    const before = await s.stored('azure')
    const edited = await s.save('azure', { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: '', offerTypes: 'gold = PRIVATE' })
    expect(edited.status).toBe(303)
    expect(await s.stored('azure')).toEqual(before)
    expect((await s.integrations())[0]).toMatchObject({ offerTypes: { gold: 'PRIVATE' } })
    expect((await s.api<Check>('/integrations/azure/check', { method: 'POST' })).body.ok).toBe(true)
    const updates = (await s.audit()).filter((entry) => entry.action === 'integration.updated')
    expect(updates).toEqual([expect.objectContaining({ actor: expect.objectContaining({ type: 'console' }), changes: { offerTypes: { from: null, to: { gold: 'PRIVATE' } } } })])
    // The same form again: nothing to write, no entry.
    await s.save('azure', { tenantId: azure.tenantId, clientId: azure.clientId, offerTypes: 'gold = PRIVATE' })
    expect((await s.audit()).filter((entry) => entry.action === 'integration.updated')).toHaveLength(1)

    const replaced = `sec~${randomBytes(12).toString('base64url')}`
    secrets.push(replaced)
    await s.save('azure', { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: replaced, offerTypes: 'gold = PRIVATE' })
    expect((await s.stored('azure'))!.clientSecret).toBe(replaced)
    const [latest] = await s.audit()
    expect(latest).toMatchObject({ action: 'integration.updated', changes: { clientSecret: { from: '[redacted]', to: '[redacted]' } } })
    noSecretIn(JSON.stringify(await s.audit()))
    // The API's PUT is still a whole replacement: without the secret it is refused.
    expect((await s.api('/integrations/azure', { method: 'PUT', json: { tenantId: azure.tenantId, clientId: azure.clientId } })).status).toBe(400)
  })

  test('AWS: created through the form, the notification secret once in the answer, which then authenticates EventBridge; rotate shows a new one once, the old one refused', async () => {
    const s = await signedIn()
    const created = await s.save('aws', { accessKeyId: awsKeys.accessKeyId, secretAccessKey: awsKeys.secretAccessKey, region: '' })
    expect(created.status).toBe(200)
    expect(created.location).toBeNull()
    expect(created.response.headers.get('cache-control')).toBe('no-store')
    const first = /mbn_[A-Za-z0-9_-]{40,}/.exec(created.html)?.[0]
    expect(first).toBeDefined()
    expect(textOf(created.html)).toContain('Your AWS notification secret')
    expect(textOf(created.html)).toContain('AWS integration saved.')
    secrets.push(first!)
    const [integration] = await s.integrations()
    expect(integration).toMatchObject({ partner: 'aws', region: 'us-east-1', accessKeyId: awsKeys.accessKeyId })
    expectCardIs(created.html, integration!)
    const reload = await s.user.get(s.path)
    expect(reload.html).not.toContain(first!)
    noSecretIn(reload.html)

    const path = integration!.notificationUrl.replace('http://broker.test', '')
    const deliver = (secret: string) =>
      broker.request(path, { method: 'POST', token: null, headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` }, body: JSON.stringify({ source: 'aws.other', id: 'x', 'detail-type': 'Nope' }) })
    // Authenticated (the event itself is refused as not AWS Marketplace's) vs. not.
    expect((await deliver(first!)).status).toBe(400)
    expect((await deliver(`mbn_${randomBytes(32).toString('base64url')}`)).status).toBe(401)

    const rotated = await s.user.submit(s.path, `${s.path}/aws/notification-secret`)
    expect(rotated.status).toBe(200)
    expect(rotated.response.headers.get('cache-control')).toBe('no-store')
    const second = /mbn_[A-Za-z0-9_-]{40,}/.exec(rotated.html)?.[0]
    secrets.push(second!)
    expect(second).not.toBe(first)
    expect(rotated.html).not.toContain(first!)
    expect(textOf(rotated.html)).toContain('Your new AWS notification secret')
    expect(textOf(rotated.html)).toContain('The previous secret is refused from now on.')
    expect((await s.user.get(s.path)).html).not.toContain(second!)
    expect((await deliver(first!)).status).toBe(401)
    expect((await deliver(second!)).status).toBe(400)
    expect((await s.audit())[0]).toMatchObject({ action: 'notification_secret.rotated', actor: { type: 'console' }, changes: { notificationSecret: { from: '[redacted]', to: '[redacted]' } } })

    // Check credentials: STS with the stored keys.
    const checked = await s.user.submit(s.path, `${s.path}/aws/check`)
    const api = (await s.api<Check>('/integrations/aws/check', { method: 'POST' })).body
    expect(api.ok).toBe(true)
    for (const check of api.checks) expect(textOf(cardOf(checked.html, 'aws'))).toContain(`${check.name} ${check.message} passed`)
    noSecretIn(checked.html)

    // An edit with the secret access key left blank keeps it (and asks for no new notification secret).
    const edited = await s.save('aws', { accessKeyId: awsKeys.accessKeyId, region: 'us-east-1', offerTypes: 'prod-1 = CONTRACT', notificationTopicArns: '' })
    expect(edited.status).toBe(303)
    expect((await s.stored('aws'))!.secretAccessKey).toBe(awsKeys.secretAccessKey)
    expect((await s.api<Check>('/integrations/aws/check', { method: 'POST' })).body.ok).toBe(true)
    expect((await deliver(second!)).status).toBe(400)
    // Keys cleared: a role alone, or nothing, which the schema refuses with its message.
    const none = await s.save('aws', { accessKeyId: '', region: 'us-east-1' })
    expect(none.status).toBe(400)
    expect(textOf(none.html)).toContain('give credentials or roleArn')
  })

  test('AWS temporary credentials: the session token is kept with the secret access key left blank, and goes with a new one', async () => {
    const s = await signedIn()
    const token = `IQoJb3JpZ2luX2VjE${randomBytes(24).toString('base64url')}`
    secrets.push(token)
    expect((await s.save('aws', { accessKeyId: awsKeys.accessKeyId, secretAccessKey: awsKeys.secretAccessKey, sessionToken: token })).status).toBe(200)
    expect(await s.stored('aws')).toEqual({ secretAccessKey: awsKeys.secretAccessKey, sessionToken: token })
    const form = await s.user.get(`${s.path}/aws/edit`)
    expect(form.html).toContain(`value="${awsKeys.accessKeyId}"`)
    noSecretIn(form.html)
    expect((await s.save('aws', { accessKeyId: awsKeys.accessKeyId, roleArn: '' })).status).toBe(303)
    expect(await s.stored('aws')).toEqual({ secretAccessKey: awsKeys.secretAccessKey, sessionToken: token })
    const fresh = `new/${randomBytes(18).toString('base64')}`
    secrets.push(fresh)
    expect((await s.save('aws', { accessKeyId: awsKeys.accessKeyId, secretAccessKey: fresh })).status).toBe(303)
    expect(await s.stored('aws')).toEqual({ secretAccessKey: fresh })
    const [entry] = await s.audit()
    expect(entry).toMatchObject({ action: 'integration.updated', changes: { secretAccessKey: { from: '[redacted]', to: '[redacted]' }, sessionToken: { from: '[redacted]', to: null } } })
    noSecretIn(JSON.stringify(await s.audit()))
  })

  test('Google Cloud: the service account key pasted once and kept when left blank; the card shows its email, never the key; both checks pass', async () => {
    const s = await signedIn()
    const saved = await s.save('gcp', { ...gcpForm(), pushServiceAccount: 'push@console-provider.iam.gserviceaccount.com', serviceNames: 'prod-1 = prod-1.gcpmarketplace.example.com' })
    expect(saved.status).toBe(303)
    const [integration] = await s.integrations()
    expect(integration).toMatchObject({ partner: 'gcp', serviceAccountEmail: gcpKey.client_email, autoApprovePlanChanges: true, serviceNames: { 'prod-1': 'prod-1.gcpmarketplace.example.com' } })
    const page = await s.user.get(s.path)
    expectCardIs(page.html, integration!)
    expect(textOf(cardOf(page.html, 'gcp'))).toContain(`Service account ${gcpKey.client_email}`)
    noSecretIn(page.html)
    const checked = await s.user.submit(s.path, `${s.path}/gcp/check`)
    const api = (await s.api<Check>('/integrations/gcp/check', { method: 'POST' })).body
    expect(api.ok).toBe(true)
    expect(api.checks.length).toBe(2)
    for (const check of api.checks) expect(textOf(cardOf(checked.html, 'gcp'))).toContain(`${check.name} ${check.message} passed`)
    noSecretIn(checked.html)

    const form = await s.user.get(`${s.path}/gcp/edit`)
    expect(form.html).toMatch(/<textarea[^>]*name="serviceAccountKey"[^>]*><\/textarea>/)
    expect(form.html).toMatch(/<input type="checkbox" id="gcp-autoApprovePlanChanges" name="autoApprovePlanChanges" value="on" checked=""/)
    noSecretIn(form.html)
    const before = await s.stored('gcp')
    // Unchecked: the box is not sent at all.
    const edited = await s.save('gcp', { providerId: gcpProvider, audience: 'app.console.example', pushServiceAccount: 'push@console-provider.iam.gserviceaccount.com' })
    expect(edited.status).toBe(303)
    expect(await s.stored('gcp')).toEqual(before)
    expect((await s.integrations())[0]).toMatchObject({ autoApprovePlanChanges: false })
    expect(textOf(cardOf((await s.user.get(s.path)).html, 'gcp'))).toContain('Approve plan changes at once no')
    expect((await s.api<Check>('/integrations/gcp/check', { method: 'POST' })).body.ok).toBe(true)
    const [entry] = await s.audit()
    expect(entry).toMatchObject({ action: 'integration.updated', actor: { type: 'console' } })
    expect(Object.keys(entry!.changes).sort()).toEqual(['autoApprovePlanChanges', 'serviceNames'])
  })

  test('a refused form: the API’s message, the non-secret values as typed, the secrets typed gone; nothing changed', async () => {
    const s = await signedIn()
    const typedSecret = `sec~typed-${randomBytes(8).toString('hex')}`
    const bad = { tenantId: 'bad tenant!', clientId: azure.clientId, clientSecret: typedSecret }
    const api = await s.api<{ error: { message: string } }>('/integrations/azure', { method: 'PUT', json: bad })
    expect(api.status).toBe(400)
    const refused = await s.save('azure', { ...bad, offerTypes: 'gold = SUBSCRIPTION' })
    expect(refused.status).toBe(400)
    expect(textOf(refused.html)).toContain(api.body.error.message)
    expect(refused.html).toContain('value="bad tenant!"')
    expect(refused.html).toMatch(/name="offerTypes"[^>]*>gold = SUBSCRIPTION</)
    expect(refused.html).not.toContain(typedSecret)
    // What the form itself cannot read names its field.
    const pairs = await s.save('azure', { ...azureForm(), offerTypes: 'gold SUBSCRIPTION' })
    expect(pairs.status).toBe(400)
    expect(textOf(pairs.html)).toContain('Offer types by plan: line 1 must be "key = value".')
    const json = await s.save('gcp', { ...gcpForm(), serviceAccountKey: '{"client_email": "x@y.z", ' })
    expect(json.status).toBe(400)
    expect(textOf(json.html)).toContain('Service account key (JSON): paste the whole JSON key file')
    expect(json.html).toContain('value="app.console.example"')
    const offerType = await s.save('azure', { ...azureForm(), offerTypes: 'gold = NOPE' })
    expect(offerType.status).toBe(400)
    expect(textOf(offerType.html)).toMatch(/Invalid azure integration: offerTypes\.gold/)
    expect(await s.integrations()).toEqual([])
    expect((await s.audit()).filter((entry) => entry.action.startsWith('integration.'))).toEqual([])
  })

  test('hostile values are text: markup in the org name and in settings', async () => {
    const s = await signedIn('<script>alert("org")</script>')
    const hostile = await s.save('azure', { ...azureForm(), offerTypes: '<img src=x onerror=alert(1)> = SUBSCRIPTION' })
    expect(hostile.status, textOf(hostile.html)).toBe(303)
    await s.save('gcp', { ...gcpForm(), audience: '"><script>alert(2)</script>' })
    for (const path of [s.path, `${s.path}/gcp/edit`, `${s.path}/azure/edit`]) {
      const page = await s.user.get(path)
      expect(page.status).toBe(200)
      expect(page.html).not.toMatch(/<script>alert|<img src=x/)
    }
    const page = await s.user.get(s.path)
    expect(page.html).toContain('&lt;img src=x onerror=alert(1)&gt; = SUBSCRIPTION')
    expect(page.html).toContain('&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;')
    expect(textOf(page.html)).toContain('<script>alert("org")</script>')
  })

  test('another org’s integrations, an unknown marketplace: 404, and nothing changes', async () => {
    const a = await signedIn()
    const b = await signedIn()
    await b.save('azure', azureForm())
    await b.save('aws', { accessKeyId: awsKeys.accessKeyId, secretAccessKey: awsKeys.secretAccessKey })
    const theirs = { integrations: await b.integrations(), audit: await b.audit(), secrets: await b.stored('azure') }
    const csrf = a.user.csrfOf((await a.user.get(a.path)).html)!
    expect((await a.user.get(b.path)).status).toBe(404)
    expect((await a.user.get(`${b.path}/azure/edit`)).status).toBe(404)
    for (const action of ['azure/check', 'azure/edit', 'aws/notification-secret']) {
      expect((await a.user.post(`${b.path}/${action}`, { _csrf: csrf, ...azureForm(), clientSecret: 'hijack' })).status, action).toBe(404)
    }
    expect((await a.user.get(`${a.path}/paypal/edit`)).status).toBe(404)
    expect((await a.user.post(`${a.path}/paypal/edit`, { _csrf: csrf })).status).toBe(404)
    expect((await a.user.post(`${a.path}/paypal/check`, { _csrf: csrf })).status).toBe(404)
    expect((await a.user.post(`${a.path}/aws/notification-secret`, { _csrf: csrf })).status).toBe(404)
    expect({ integrations: await b.integrations(), audit: await b.audit(), secrets: await b.stored('azure') }).toEqual(theirs)
  })

  test('forged posts (no token, another session’s token, a cross-site Origin) are refused and change nothing', async () => {
    const s = await signedIn()
    await s.save('azure', azureForm())
    await s.save('aws', { accessKeyId: awsKeys.accessKeyId, secretAccessKey: awsKeys.secretAccessKey })
    const other = consoleUser((url, init) => broker.app.request(url, init))
    await other.signIn(s.apiKey)
    const othersToken = other.csrfOf((await other.get(s.path)).html)!
    const ownToken = s.user.csrfOf((await s.user.get(s.path)).html)!
    const rows = () => broker.deps.db.selectFrom('integrations').selectAll().where('org_id', '=', s.orgId).orderBy('partner').execute()
    const before = { rows: await rows(), audit: await s.audit() }
    const tokenCalls = azure.emulator.callsTo('token').length
    const hijack = { tenantId: 'evil', clientId: 'evil', clientSecret: 'evil-secret' }
    for (const [action, fields] of [
      [`${s.path}/azure/edit`, hijack],
      [`${s.path}/azure/check`, {}],
      [`${s.path}/aws/notification-secret`, {}],
    ] as const) {
      expect((await s.user.post(action, fields)).status, action).toBe(403)
      expect((await s.user.post(action, { ...fields, _csrf: othersToken })).status, action).toBe(403)
      const crossSite = await s.user.post(action, { ...fields, _csrf: ownToken }, { origin: 'https://evil.example' })
      expect(crossSite.status, action).toBe(403)
      expect(crossSite.html).not.toMatch(/mbn_/)
    }
    expect({ rows: await rows(), audit: await s.audit() }).toEqual(before)
    expect(azure.emulator.callsTo('token').length).toBe(tokenCalls)
  })

  test('each form has a field for every field of the PUT body, and its secret fields are exactly the sealed ones', () => {
    for (const partner of PARTNERS) {
      const schema = integrationSpecs[partner].schema as unknown as { shape: Record<string, unknown> }
      const top = new Set(INTEGRATION_FIELDS[partner].map((field) => field.path[0]))
      expect([...top].sort(), partner).toEqual(Object.keys(schema.shape).sort())
      const secretFields = INTEGRATION_FIELDS[partner].filter((field) => field.kind === 'secret' || field.kind === 'secret-json').map((field) => field.name)
      const sealed = { azure: ['clientSecret'], aws: ['secretAccessKey', 'sessionToken'], gcp: ['serviceAccountKey'] }[partner]
      expect(secretFields.sort(), partner).toEqual(sealed.sort())
      const ids = INTEGRATION_FIELDS[partner].map((field) => field.name)
      expect(new Set(ids).size).toBe(ids.length)
    }
  })

  test('fast-check: whatever each form carries, never a 5xx, and a refused form never shows a typed secret', async () => {
    const s = await signedIn()
    await s.save('azure', azureForm())
    await s.save('aws', { accessKeyId: awsKeys.accessKeyId, secretAccessKey: awsKeys.secretAccessKey })
    const csrf = s.user.csrfOf((await s.user.get(s.path)).html)!
    const value = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.constantFrom('', ' ', '<script>x</script>', 'a = b', '__proto__ = PRIVATE', 'constructor = SUBSCRIPTION', '{}', '[]', 'null', '{"client_email":"a@b.c","private_key":"PRIVATE KEY"}', 'on', 'AKIAIOSFODNN7EXAMPLE', 'arn:aws:iam::123456789012:role/x', 'us-east-1'),
    )
    for (const partner of PARTNERS) {
      const names = INTEGRATION_FIELDS[partner].map((field) => field.name)
      const secretNames = INTEGRATION_FIELDS[partner].filter((field) => field.kind.startsWith('secret')).map((field) => field.name)
      await fc.assert(
        fc.asyncProperty(fc.dictionary(fc.constantFrom(...names, 'extra', '_csrf2'), value, { maxKeys: names.length + 2 }), async (fields) => {
          const answer = await s.user.post(`${s.path}/${partner}/edit`, { ...fields, _csrf: csrf })
          expect(answer.status, JSON.stringify(fields)).toBeLessThan(500)
          expect([200, 303, 400]).toContain(answer.status)
          if (answer.status !== 400) return
          const shown = names.filter((name) => !secretNames.includes(name)).map((name) => fields[name] ?? '')
          for (const name of secretNames) {
            const typed = (fields[name] ?? '').trim()
            if (typed.length >= 12 && !shown.some((other) => other.includes(typed))) expect(answer.html).not.toContain(typed)
          }
        }),
        { numRuns: 40 },
      )
    }
    expect((await s.user.get(s.path)).status).toBe(200)
  })
})
