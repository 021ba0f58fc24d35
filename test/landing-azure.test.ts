import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { type AzureSetup, createAzureScenario, startAzure } from './helpers'

let azure: AzureSetup

beforeAll(async () => {
  azure = await startAzure()
})
afterAll(async () => {
  await azure.close()
})

type Scenario = Awaited<ReturnType<typeof createAzureScenario>>

async function land(scenario: Scenario, query: string, init?: RequestInit) {
  return scenario.broker.request(scenario.landingPath(query), { token: null, ...init })
}

function newPurchase(overrides: Parameters<AzureSetup['emulator']['addSubscription']>[0] | object = {}) {
  const sub = azure.emulator.addSubscription({ appId: azure.clientId, quantity: 5, ...overrides })
  return { sub, token: azure.emulator.issuePurchaseToken(sub.id) }
}

const callsFor = (subscriptionId: string, route: 'resolve' | 'activate' | 'plans') =>
  azure.emulator.callsTo(route).filter((call) => route === 'resolve' || call.path.includes(subscriptionId))

async function entitlement(scenario: Scenario, id: string) {
  const response = await scenario.broker.request(`/api/v1/orgs/${scenario.org.id}/entitlements/${id}`, { token: scenario.apiKey })
  expect(response.status).toBe(200)
  return (await response.json()) as Record<string, any>
}

describe('azure landing: happy path', () => {
  test('resolves, activates and 303s to the fulfillment URL with the entitlement, partner and offer type', async () => {
    const scenario = await createAzureScenario(azure)
    const { sub, token } = newPurchase({ planId: 'gold', quantity: 7, isTest: true })
    const resolvesBefore = azure.emulator.callsTo('resolve').length

    const response = await land(scenario, `?token=${encodeURIComponent(token)}`)

    expect(response.status).toBe(303)
    expect(response.headers.get('cache-control')).toBe('no-store')
    const location = new URL(response.headers.get('location')!)
    expect(location.origin + location.pathname).toBe('https://app.acme.example/signup')
    expect(location.searchParams.get('source')).toBe('marketplace') // the ISV's own query is kept
    expect(location.searchParams.get('partner')).toBe('azure')
    expect(location.searchParams.get('offerType')).toBe('DEFAULT')
    const id = location.searchParams.get('sugerEntitlementId')!
    expect(id).toMatch(/^ent_/)

    // The marketplace saw the once-decoded token in the header and one activation with the purchase.
    const resolves = azure.emulator.callsTo('resolve').slice(resolvesBefore)
    expect(resolves).toHaveLength(1)
    expect(resolves[0]!.headers['x-ms-marketplace-token']).toBe(token)
    expect(resolves[0]!.query['api-version']).toBe('2018-08-31')
    expect(resolves[0]!.headers.authorization).toMatch(/^Bearer /)
    const activations = callsFor(sub.id, 'activate')
    expect(activations).toHaveLength(1)
    expect(JSON.parse(activations[0]!.body)).toEqual({ planId: 'gold', quantity: 7 })
    expect(azure.emulator.subscriptions.get(sub.id)!.saasSubscriptionStatus).toBe('Subscribed')

    const ent = await entitlement(scenario, id)
    expect(ent).toMatchObject({
      id,
      orgId: scenario.org.id,
      partner: 'azure',
      partnerId: scenario.integration.partnerId,
      status: 'ACTIVE',
      offerType: 'DEFAULT',
      externalId: sub.id,
      productId: 'offer1',
      planId: 'gold',
      quantity: 7,
      buyer: {
        accountId: sub.beneficiary.tenantId,
        tenantId: sub.beneficiary.tenantId,
        customerId: sub.beneficiary.objectId,
        email: sub.beneficiary.emailId,
        name: null,
      },
      term: { unit: 'P1M', autoRenew: true },
      isFreeTrial: false,
      isTest: true,
    })
    expect(ent.info.subscription.id).toBe(sub.id)
    expect(ent.createdAt).toMatch(/Z$/)

    const events = await scenario.broker.request(`/api/v1/orgs/${scenario.org.id}/entitlements/${id}/events`, { token: scenario.apiKey })
    const { items } = (await events.json()) as { items: Array<{ type: string; source: string; entitlementId: string }> }
    expect(items.map((event) => event.type)).toEqual(['CREATE', 'ACTIVATE'])
    expect(items.every((event) => event.source === 'signup' && event.entitlementId === id)).toBe(true)
  })

  test('a literal "+" in the query stays "+" (tokens are base64)', async () => {
    const scenario = await createAzureScenario(azure)
    const { token } = newPurchase()
    expect(token).toContain('+')
    // Only "/" and "=" encoded, "+" left literal, as some portals and mail clients send it.
    const raw = token.replace(/\//g, '%2F').replace(/=/g, '%3D')
    const response = await land(scenario, `?token=${raw}`)
    expect(response.status).toBe(303)
    expect(azure.emulator.callsTo('resolve').at(-1)!.headers['x-ms-marketplace-token']).toBe(token)
  })

  test('the token is decoded exactly once', async () => {
    const scenario = await createAzureScenario(azure)
    // A token whose own text contains "%2B" must reach Microsoft as "%2B", not "+".
    const sub = azure.emulator.addSubscription({ appId: azure.clientId })
    const token = azure.emulator.issuePurchaseToken(sub.id, { token: 'abc%2Bdef+ghi/jk==' })
    const response = await land(scenario, `?token=${encodeURIComponent(token)}`)
    expect(response.status).toBe(303)
    expect(azure.emulator.callsTo('resolve').at(-1)!.headers['x-ms-marketplace-token']).toBe(token)
  })

  test('a signupUrl with ?partnerId= still works when Azure appends ?token= with a second "?"', async () => {
    const scenario = await createAzureScenario(azure)
    const { token } = newPurchase()
    const signup = new URL(scenario.integration.signupUrl)
    expect(signup.pathname).toBe(`/public/signup/azure/orgId/${scenario.org.id}`)
    const response = await land(scenario, `${signup.search}?token=${encodeURIComponent(token)}`)
    expect(response.status).toBe(303)
    const response2 = await land(scenario, `${signup.search}&token=${encodeURIComponent(newPurchase().token)}`)
    expect(response2.status).toBe(303)
  })

  test('refresh: the same token again gives the same 303 without calling the marketplace', async () => {
    const scenario = await createAzureScenario(azure)
    const { sub, token } = newPurchase()
    const first = await land(scenario, `?token=${encodeURIComponent(token)}`)
    const callsAfterFirst = azure.emulator.calls.length
    const second = await land(scenario, `?token=${encodeURIComponent(token)}`)
    const third = await land(scenario, `?token=${token}`) // literal + this time
    expect(first.status).toBe(303)
    expect(second.status).toBe(303)
    expect(third.status).toBe(303)
    expect(second.headers.get('location')).toBe(first.headers.get('location'))
    expect(third.headers.get('location')).toBe(first.headers.get('location'))
    expect(azure.emulator.calls.length).toBe(callsAfterFirst)
    expect(callsFor(sub.id, 'activate')).toHaveLength(1)
  })

  test('"Manage account" re-entry: a new token for a Subscribed subscription is not activated again', async () => {
    const scenario = await createAzureScenario(azure)
    const { sub, token } = newPurchase()
    const first = await land(scenario, `?token=${encodeURIComponent(token)}`)
    const again = azure.emulator.issuePurchaseToken(sub.id)
    const second = await land(scenario, `?token=${encodeURIComponent(again)}`)
    expect(second.status).toBe(303)
    expect(second.headers.get('location')).toBe(first.headers.get('location'))
    expect(callsFor(sub.id, 'activate')).toHaveLength(1)
    const list = await scenario.broker.request(`/api/v1/orgs/${scenario.org.id}/entitlements`, { token: scenario.apiKey })
    expect(((await list.json()) as { items: unknown[] }).items).toHaveLength(1)
  })

  test('a subscription already Subscribed before its first landing is stored ACTIVE without an activate call', async () => {
    const scenario = await createAzureScenario(azure)
    const { sub, token } = newPurchase({ saasSubscriptionStatus: 'Subscribed', term: { termUnit: 'P1Y', startDate: '2026-01-01T00:00:00Z', endDate: '2026-12-31T00:00:00Z' } })
    const response = await land(scenario, `?token=${encodeURIComponent(token)}`)
    expect(response.status).toBe(303)
    expect(callsFor(sub.id, 'activate')).toHaveLength(0)
    const id = new URL(response.headers.get('location')!).searchParams.get('sugerEntitlementId')!
    expect(await entitlement(scenario, id)).toMatchObject({
      status: 'ACTIVE',
      term: { start: '2026-01-01T00:00:00Z', end: '2026-12-31T00:00:00Z', unit: 'P1Y' },
    })
  })

  test('suspended and unsubscribed subscriptions are recorded as such and never activated', async () => {
    const scenario = await createAzureScenario(azure)
    for (const [status, expected] of [
      ['Suspended', 'SUSPENDED'],
      ['Unsubscribed', 'CANCELLED'],
    ] as const) {
      const { sub, token } = newPurchase({ saasSubscriptionStatus: status })
      const response = await land(scenario, `?token=${encodeURIComponent(token)}`)
      expect(response.status).toBe(303)
      expect(callsFor(sub.id, 'activate')).toHaveLength(0)
      const id = new URL(response.headers.get('location')!).searchParams.get('sugerEntitlementId')!
      expect((await entitlement(scenario, id)).status).toBe(expected)
    }
  })

  test('a plan that is not per seat activates with the plan only', async () => {
    const scenario = await createAzureScenario(azure)
    const { sub, token } = newPurchase({ quantity: undefined })
    const response = await land(scenario, `?token=${encodeURIComponent(token)}`)
    expect(response.status).toBe(303)
    expect(JSON.parse(callsFor(sub.id, 'activate')[0]!.body)).toEqual({ planId: 'silver' })
    const id = new URL(response.headers.get('location')!).searchParams.get('sugerEntitlementId')!
    expect((await entitlement(scenario, id)).quantity).toBeNull()
  })

  test('the Entra token is fetched once and reused across landings', async () => {
    const scenario = await createAzureScenario(azure)
    const before = azure.emulator.callsTo('token').length
    for (let i = 0; i < 4; i++) {
      const response = await land(scenario, `?token=${encodeURIComponent(newPurchase().token)}`)
      expect(response.status).toBe(303)
    }
    const tokenCalls = azure.emulator.callsTo('token').slice(before)
    expect(tokenCalls).toHaveLength(1)
    const form = new URLSearchParams(tokenCalls[0]!.body)
    expect(form.get('grant_type')).toBe('client_credentials')
    expect(form.get('scope')).toBe('20e940b3-4c77-4b0b-9a53-9e16a1b010a7/.default')
    expect(tokenCalls[0]!.path).toBe(`/${azure.tenantId}/oauth2/v2.0/token`)
    // MSAL is given the metadata: no discovery or OpenID configuration requests at all.
    expect(azure.emulator.calls.filter((call) => !call.path.startsWith('/api/saas/') && !call.path.endsWith('/oauth2/v2.0/token'))).toEqual([])
  })
})

describe('azure landing: offer types', () => {
  test('a free trial is FREE_TRIAL (no plan lookup needed)', async () => {
    const scenario = await createAzureScenario(azure)
    const { sub, token } = newPurchase({ isFreeTrial: true })
    const response = await land(scenario, `?token=${encodeURIComponent(token)}`)
    expect(new URL(response.headers.get('location')!).searchParams.get('offerType')).toBe('FREE_TRIAL')
    expect(callsFor(sub.id, 'plans')).toHaveLength(0)
    const id = new URL(response.headers.get('location')!).searchParams.get('sugerEntitlementId')!
    expect(await entitlement(scenario, id)).toMatchObject({ isFreeTrial: true, offerType: 'FREE_TRIAL' })
  })

  test('a private plan is PRIVATE', async () => {
    const scenario = await createAzureScenario(azure)
    azure.emulator.setPlans('private-offer', [
      { planId: 'public', displayName: 'Public', isPrivate: false },
      { planId: 'contoso-only', displayName: 'Private plan for Contoso', isPrivate: true },
    ])
    const { token } = newPurchase({ offerId: 'private-offer', planId: 'contoso-only' })
    const response = await land(scenario, `?token=${encodeURIComponent(token)}`)
    expect(response.status).toBe(303)
    expect(new URL(response.headers.get('location')!).searchParams.get('offerType')).toBe('PRIVATE')
    const { token: publicToken } = newPurchase({ offerId: 'private-offer', planId: 'public' })
    const publicResponse = await land(scenario, `?token=${encodeURIComponent(publicToken)}`)
    expect(new URL(publicResponse.headers.get('location')!).searchParams.get('offerType')).toBe('DEFAULT')
  })

  test("the integration's offerTypes mapping wins over what the marketplace implies", async () => {
    const scenario = await createAzureScenario(azure, { offerTypes: { 'trial-plan': 'PER_USER' } })
    const { sub, token } = newPurchase({ planId: 'trial-plan', isFreeTrial: true })
    const response = await land(scenario, `?token=${encodeURIComponent(token)}`)
    expect(new URL(response.headers.get('location')!).searchParams.get('offerType')).toBe('PER_USER')
    expect(callsFor(sub.id, 'plans')).toHaveLength(0)
  })

  test('a failing plan lookup does not fail the landing: DEFAULT, with a warning logged', async () => {
    const scenario = await createAzureScenario(azure)
    azure.emulator.failNext('plans', 500, 3)
    const response = await land(scenario, `?token=${encodeURIComponent(newPurchase().token)}`)
    expect(response.status).toBe(303)
    expect(new URL(response.headers.get('location')!).searchParams.get('offerType')).toBe('DEFAULT')
    expect(scenario.broker.logs.some((line) => line.includes('plan lookup failed'))).toBe(true)
  })
})

describe('azure landing: buyer errors', () => {
  test('a missing token is a 400 page telling the buyer to use "Configure account", without calling the marketplace', async () => {
    const scenario = await createAzureScenario(azure)
    const before = azure.emulator.calls.length
    for (const query of ['', '?token=', '?partnerId=' + scenario.integration.partnerId]) {
      const response = await land(scenario, query)
      expect(response.status).toBe(400)
      expect(response.headers.get('content-type')).toMatch(/text\/html/)
      expect(response.headers.get('cache-control')).toBe('no-store')
      const html = await response.text()
      expect(html).toContain('Configure account')
      expect(html).toContain('Azure portal')
      expect(html).not.toMatch(/at .*\.ts:\d+/)
    }
    expect(azure.emulator.calls.length).toBe(before)
  })

  test('an invalid token is a 400 page and nothing is stored or activated', async () => {
    const scenario = await createAzureScenario(azure)
    const activationsBefore = azure.emulator.callsTo('activate').length
    const bogus = 'bm90LWEtcmVhbC10b2tlbg+/=='
    const response = await land(scenario, `?token=${encodeURIComponent(bogus)}`)
    expect(response.status).toBe(400)
    const html = await response.text()
    expect(html).toContain('Configure account')
    expect(html).not.toContain(bogus)
    expect(azure.emulator.callsTo('activate').length).toBe(activationsBefore)
    const list = await scenario.broker.request(`/api/v1/orgs/${scenario.org.id}/entitlements`, { token: scenario.apiKey })
    expect(((await list.json()) as { items: unknown[] }).items).toHaveLength(0)
  })

  test('an expired token is a 400 page', async () => {
    const scenario = await createAzureScenario(azure)
    const sub = azure.emulator.addSubscription({ appId: azure.clientId })
    const token = azure.emulator.issuePurchaseToken(sub.id, { expiresInMs: -1000 })
    const response = await land(scenario, `?token=${encodeURIComponent(token)}`)
    expect(response.status).toBe(400)
    expect(await response.text()).toContain('Configure account')
    expect(callsFor(sub.id, 'activate')).toHaveLength(0)
  })

  test('a malformed token (control characters, bad escapes, absurd length) is refused without a marketplace call', async () => {
    const scenario = await createAzureScenario(azure)
    const before = azure.emulator.calls.length
    for (const query of ['?token=abc%0Adef', '?token=%E0%A4%A', `?token=${'A'.repeat(9000)}`, '?token=has%20space']) {
      const response = await land(scenario, query)
      expect(response.status).toBe(400)
    }
    expect(azure.emulator.calls.length).toBe(before)
  })

  test('unknown org, unknown partner, unconfigured partner and a wrong partnerId are 404 pages', async () => {
    const scenario = await createAzureScenario(azure)
    const { token } = newPurchase()
    const q = `?token=${encodeURIComponent(token)}`
    const cases = [
      `/public/signup/azure/orgId/org_doesnotexist${q}`,
      `/public/signup/ebay/orgId/${scenario.org.id}${q}`,
      `/public/signup/aws/orgId/${scenario.org.id}${q}`,
      `/public/signup/gcp/orgId/${scenario.org.id}${q}`,
      `/public/signup/azure/orgId/${scenario.org.id}?partnerId=azure_wrong&token=${encodeURIComponent(token)}`,
    ]
    for (const path of cases) {
      const response = await scenario.broker.request(path, { token: null })
      expect(response.status, path).toBe(404)
      expect(response.headers.get('content-type')).toMatch(/text\/html/)
      expect(response.headers.get('cache-control')).toBe('no-store')
    }
    const other = await scenario.broker.createOrg()
    const unconfigured = await scenario.broker.request(`/public/signup/azure/orgId/${other.org.id}${q}`, { token: null })
    expect(unconfigured.status).toBe(404)
    expect(azure.emulator.callsTo('resolve').some((call) => call.headers['x-ms-marketplace-token'] === token)).toBe(false)
  })

  test('the buyer may also arrive by POST with the token in a form', async () => {
    const scenario = await createAzureScenario(azure)
    const { token } = newPurchase()
    const response = await land(scenario, '', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token }).toString(),
    })
    expect(response.status).toBe(303)
  })
})

describe('azure landing: marketplace and configuration failures', () => {
  test('a transient marketplace 5xx is retried and the buyer still lands', async () => {
    const scenario = await createAzureScenario(azure)
    const { token } = newPurchase()
    azure.emulator.failNext('resolve', 503, 1)
    azure.emulator.failNext('activate', 500, 1)
    const response = await land(scenario, `?token=${encodeURIComponent(token)}`)
    expect(response.status).toBe(303)
  })

  test('a marketplace that stays down gives a 502 "try again" page', async () => {
    const scenario = await createAzureScenario(azure)
    const { token } = newPurchase()
    azure.emulator.failNext('resolve', 503, 3)
    const response = await land(scenario, `?token=${encodeURIComponent(token)}`)
    expect(response.status).toBe(502)
    expect(response.headers.get('cache-control')).toBe('no-store')
    expect(await response.text()).toMatch(/try again/i)
  })

  test('activation that keeps failing leaves a PENDING_START entitlement; a revisit activates it', async () => {
    const scenario = await createAzureScenario(azure)
    const { sub, token } = newPurchase()
    azure.emulator.failNext('activate', 500, 3)
    const first = await land(scenario, `?token=${encodeURIComponent(token)}`)
    expect(first.status).toBe(503)
    expect(await first.text()).toMatch(/purchase was received/i)
    const list = await scenario.broker.request(`/api/v1/orgs/${scenario.org.id}/entitlements`, { token: scenario.apiKey })
    const { items } = (await list.json()) as { items: Array<{ id: string; status: string }> }
    expect(items).toHaveLength(1)
    expect(items[0]!.status).toBe('PENDING_START')

    const second = await land(scenario, `?token=${encodeURIComponent(token)}`)
    expect(second.status).toBe(303)
    expect(new URL(second.headers.get('location')!).searchParams.get('sugerEntitlementId')).toBe(items[0]!.id)
    expect(azure.emulator.subscriptions.get(sub.id)!.saasSubscriptionStatus).toBe('Subscribed')
    expect((await entitlement(scenario, items[0]!.id)).status).toBe('ACTIVE')
  })

  test('activate answering 400 because another tab activated first: the subscription is re-read and the buyer lands', async () => {
    const scenario = await createAzureScenario(azure)
    const { sub, token } = newPurchase()
    azure.emulator.onNext('activate', () => {
      sub.saasSubscriptionStatus = 'Subscribed'
    })
    const response = await land(scenario, `?token=${encodeURIComponent(token)}`)
    expect(response.status).toBe(303)
    expect(azure.emulator.callsTo('get').some((call) => call.path.endsWith(sub.id))).toBe(true)
    const id = new URL(response.headers.get('location')!).searchParams.get('sugerEntitlementId')!
    expect((await entitlement(scenario, id)).status).toBe('ACTIVE')
  })

  test('activate refused for good (400 plan mismatch) is not taken for success: an event says why, nothing is retried', async () => {
    const scenario = await createAzureScenario(azure)
    const { sub, token } = newPurchase()
    azure.emulator.onNext('activate', () => {
      sub.planId = 'changed-behind-our-back'
    })
    const response = await land(scenario, `?token=${encodeURIComponent(token)}`)
    expect(response.status).toBe(502)
    expect(azure.emulator.subscriptions.get(sub.id)!.saasSubscriptionStatus).toBe('PendingFulfillmentStart')
    const { items } = (await (await scenario.broker.request(`/api/v1/orgs/${scenario.org.id}/entitlements`, { token: scenario.apiKey })).json()) as {
      items: Array<{ id: string; status: string }>
    }
    expect(items[0]!.status).toBe('PENDING_START')
    const events = (await (await scenario.broker.request(`/api/v1/orgs/${scenario.org.id}/entitlements/${items[0]!.id}/events`, { token: scenario.apiKey })).json()) as {
      items: Array<{ type: string; data: Record<string, unknown> }>
    }
    expect(events.items.at(-1)).toMatchObject({ type: 'UPDATE', data: { activation: 'refused' } })
    expect(await scenario.broker.deps.db.selectFrom('pending_activations').selectAll().execute()).toHaveLength(0)
  })

  test('a 403 (offer published with another app) is the ISV’s problem: buyer sees "try later", the log names the org', async () => {
    const scenario = await createAzureScenario(azure)
    const otherApp = azure.emulator.addSubscription({ appId: 'some-other-app' })
    const token = azure.emulator.issuePurchaseToken(otherApp.id)
    const response = await land(scenario, `?token=${encodeURIComponent(token)}`)
    expect(response.status).toBe(503)
    const html = await response.text()
    expect(html).toMatch(/try again/i)
    // The page's reference is a random request id whose hex may well contain "403": leave it out.
    const shown = html.replace(/Reference: [0-9a-f-]{36}/, 'Reference: <id>')
    expect(shown).toContain('Reference: <id>')
    expect(shown).not.toMatch(/403|client|secret/i)
    const line = scenario.broker.logs.map((l) => JSON.parse(l)).find((l) => l.msg.includes('integration misconfigured'))
    expect(line).toMatchObject({ level: 'error', orgId: scenario.org.id, partner: 'azure' })
  })

  test('a wrong client secret is reported as configuration, not to the buyer', async () => {
    const scenario = await createAzureScenario(azure, { clientSecret: 'not-the-secret' })
    const response = await land(scenario, `?token=${encodeURIComponent(newPurchase().token)}`)
    expect(response.status).toBe(503)
    const line = scenario.broker.logs.map((l) => JSON.parse(l)).find((l) => l.msg.includes('integration misconfigured'))
    expect(line).toMatchObject({ orgId: scenario.org.id, aadsts: 'AADSTS7000215' })
    expect(JSON.stringify(scenario.broker.logs)).not.toContain('not-the-secret')
  })

  test('a changed secret takes effect at once (the cached client is per integration version)', async () => {
    const scenario = await createAzureScenario(azure, { clientSecret: 'not-the-secret' })
    expect((await land(scenario, `?token=${encodeURIComponent(newPurchase().token)}`)).status).toBe(503)
    await scenario.broker.request(`/api/v1/orgs/${scenario.org.id}/integrations/azure`, {
      method: 'PUT',
      token: scenario.apiKey,
      json: { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret },
    })
    expect((await land(scenario, `?token=${encodeURIComponent(newPurchase().token)}`)).status).toBe(303)
  })
})

describe('azure landing: concurrency and secrecy', () => {
  test('a double click (concurrent requests with one token) creates one entitlement and activates once', async () => {
    const scenario = await createAzureScenario(azure)
    const { sub, token } = newPurchase()
    const responses = await Promise.all(Array.from({ length: 8 }, () => land(scenario, `?token=${encodeURIComponent(token)}`)))
    const locations = new Set(responses.map((response) => response.headers.get('location')))
    expect(responses.map((response) => response.status)).toEqual(Array(8).fill(303))
    expect(locations.size).toBe(1)
    expect(callsFor(sub.id, 'activate')).toHaveLength(1)
    const list = await scenario.broker.request(`/api/v1/orgs/${scenario.org.id}/entitlements`, { token: scenario.apiKey })
    expect(((await list.json()) as { items: unknown[] }).items).toHaveLength(1)
  })

  test('no marketplace token, Entra token or client secret appears in any log line', async () => {
    const scenario = await createAzureScenario(azure)
    const { token } = newPurchase()
    await land(scenario, `?token=${encodeURIComponent(token)}`)
    await land(scenario, `?token=${encodeURIComponent('bogus+token/value==')}`)
    const logs = scenario.broker.logs.join('\n')
    const accessTokens = azure.emulator
      .callsTo('resolve')
      .map((call) => call.headers.authorization!.replace('Bearer ', ''))
    expect(logs).not.toContain(token)
    expect(logs).not.toContain(encodeURIComponent(token))
    expect(logs).not.toContain('bogus+token')
    expect(logs).not.toContain(azure.clientSecret)
    for (const accessToken of accessTokens) expect(logs).not.toContain(accessToken)
    expect(logs).not.toContain(scenario.apiKey)
  })
})

describe('landing token lifetime', () => {
  test('an expired token mapping is pruned; the entitlement stays and a revisit resolves again', async () => {
    const scenario = await createAzureScenario(azure)
    const { sub, token } = newPurchase()
    const first = await land(scenario, `?token=${encodeURIComponent(token)}`)
    const { db } = scenario.broker.deps
    expect(await db.selectFrom('landing_tokens').selectAll().execute()).toHaveLength(1)
    const stored = await db.selectFrom('landing_tokens').selectAll().executeTakeFirstOrThrow()
    expect(stored.token_hash).toMatch(/^[0-9a-f]{64}$/)
    expect(JSON.stringify(stored)).not.toContain(token)
    await db.updateTable('landing_tokens').set({ expires_at: '2000-01-01T00:00:00.000Z' }).execute()
    const { pruneLandingTokens } = await import('../src/domain/landing')
    await pruneLandingTokens(scenario.broker.deps)
    expect(await db.selectFrom('landing_tokens').selectAll().execute()).toHaveLength(0)
    const resolvesBefore = azure.emulator.callsTo('resolve').length
    const second = await land(scenario, `?token=${encodeURIComponent(token)}`)
    expect(second.headers.get('location')).toBe(first.headers.get('location'))
    expect(azure.emulator.callsTo('resolve').length).toBe(resolvesBefore + 1)
    expect(callsFor(sub.id, 'activate')).toHaveLength(1)
  })
})

describe('Entra token under concurrency', () => {
  test('20 landings arriving together for a fresh integration make one token request', async () => {
    const scenario = await createAzureScenario(azure)
    const before = azure.emulator.callsTo('token').length
    const responses = await Promise.all(Array.from({ length: 20 }, () => land(scenario, `?token=${encodeURIComponent(newPurchase().token)}`)))
    expect(responses.every((r) => r.status === 303)).toBe(true)
    expect(azure.emulator.callsTo('token').length - before).toBe(1)
  })
})

describe('short-lived Entra tokens', () => {
  test('a token that lives only two minutes is still reused across landings', async () => {
    const short = await startAzure()
    short.emulator.setAccessTokenLifetime(120)
    try {
      const scenario = await createAzureScenario(short)
      for (let i = 0; i < 3; i++) {
        const sub = short.emulator.addSubscription({ appId: short.clientId })
        const response = await scenario.broker.request(scenario.landingPath(`?token=${encodeURIComponent(short.emulator.issuePurchaseToken(sub.id))}`), { token: null })
        expect(response.status).toBe(303)
      }
      expect(short.emulator.callsTo('token')).toHaveLength(1)
    } finally {
      await short.close()
    }
  })
})
