import type { Partner } from '../providers/types'
import { createAwsEmulator } from '../sandbox/emulators/aws'
import { createAzureEmulator } from '../sandbox/emulators/azure'
import { createGcpEmulator } from '../sandbox/emulators/gcp'

/**
 * What the shared provider contract suite needs to know about one marketplace: how to point
 * the broker at its emulator, how to configure the integration, how a buyer arrives with a
 * fresh purchase (and with a bad token), and how to make its first call fail once. A fourth
 * marketplace adds a folder under providers/, a registration, an emulator and one of these.
 */
export interface Arrival {
  method: 'GET' | 'POST'
  query?: Record<string, string>
  form?: Record<string, string>
}

export interface HarnessPurchase {
  arrival: Arrival
  /** Fields the stored Entitlement must carry (mapping completeness). */
  expected: Record<string, unknown> & { externalId: string; offerType: string }
}

export interface ProviderHarness {
  partner: Partner
  start(): Promise<void>
  stop(): Promise<void>
  /** Broker environment variables pointing at the emulator. */
  env(): Record<string, string>
  integration(): Promise<Record<string, unknown>>
  purchase(): Promise<HarnessPurchase>
  badToken(): Promise<Arrival>
  /** The next marketplace call of the landing's first step answers 5xx once. */
  failOnce(): void
  /** Marketplace calls made so far (token endpoints and certificates excluded). */
  upstreamCalls(): number
  /** How many times the purchase was confirmed with the marketplace (Azure Activate; others have none). */
  activations(externalId: string): number
}

export function azureHarness(): ProviderHarness {
  const emulator = createAzureEmulator()
  let server: { url: string; close: () => Promise<void> }
  const app = { tenantId: 'contract-tenant', clientId: 'contract-client', clientSecret: 'contract~secret' }
  return {
    partner: 'azure',
    async start() {
      server = await emulator.listen()
      emulator.registerApp(app)
    },
    stop: () => server.close(),
    env: () => ({ AZURE_MARKETPLACE_API_URL: server.url, AZURE_LOGIN_URL: server.url }),
    integration: async () => ({ ...app }),
    async purchase() {
      const sub = emulator.addSubscription({ appId: app.clientId, planId: 'gold', quantity: 4 })
      return {
        arrival: { method: 'GET', query: { token: emulator.issuePurchaseToken(sub.id) } },
        expected: {
          externalId: sub.id,
          offerType: 'DEFAULT',
          status: 'ACTIVE',
          productId: sub.offerId,
          planId: 'gold',
          quantity: 4,
          buyer: { accountId: sub.beneficiary.tenantId, customerId: sub.beneficiary.objectId, email: sub.beneficiary.emailId, tenantId: sub.beneficiary.tenantId, name: null },
        },
      }
    },
    badToken: async () => ({ method: 'GET', query: { token: 'dGhpcyBpcyBub3QgYSB0b2tlbg+/==' } }),
    failOnce: () => emulator.failNext('resolve', 503, 1),
    upstreamCalls: () => emulator.calls.filter((call) => call.path.startsWith('/api/saas/')).length,
    activations: (externalId) => emulator.callsTo('activate').filter((call) => call.path.includes(externalId)).length,
  }
}

export function awsHarness(): ProviderHarness {
  const emulator = createAwsEmulator()
  let server: { url: string; close: () => Promise<void> }
  const keys = { accessKeyId: 'AKIACONTRACTTEST0001', secretAccessKey: 'contract/secret/key+value' }
  return {
    partner: 'aws',
    async start() {
      server = await emulator.listen()
      emulator.addCredentials(keys.accessKeyId, keys.secretAccessKey)
    },
    stop: () => server.close(),
    env: () => ({ AWS_MARKETPLACE_METERING_URL: server.url, AWS_MARKETPLACE_ENTITLEMENT_URL: server.url, AWS_STS_URL: server.url }),
    integration: async () => ({ region: 'us-east-1', credentials: keys }),
    async purchase() {
      const { customer, token } = emulator.addCustomer({ ProductCode: 'prod-contract', LicenseArn: `arn:aws:license-manager::294406891311:license:l-${Math.random().toString(16).slice(2)}` })
      emulator.addEntitlement({ ProductCode: 'prod-contract', Dimension: 'users', CustomerIdentifier: customer.CustomerIdentifier, CustomerAWSAccountId: customer.CustomerAWSAccountId, Value: { IntegerValue: 25 }, ExpirationDate: 1924992000 })
      return {
        arrival: { method: 'POST', form: { 'x-amzn-marketplace-token': token } },
        expected: {
          externalId: customer.LicenseArn!,
          offerType: 'CONTRACT',
          status: 'ACTIVE',
          productId: 'prod-contract',
          buyer: { accountId: customer.CustomerAWSAccountId, customerId: customer.CustomerIdentifier, email: null, tenantId: null, name: null },
        },
      }
    },
    badToken: async () => ({ method: 'POST', form: { 'x-amzn-marketplace-token': 'bm90LWEtcmVhbC10b2tlbg+/==' } }),
    failOnce: () => emulator.failNext('ResolveCustomer', 500, 'InternalServiceErrorException', 1),
    upstreamCalls: () => emulator.calls.filter((call) => call.target !== 'AssumeRole').length,
    activations: () => 0,
  }
}

export function gcpHarness(): ProviderHarness {
  let emulator: Awaited<ReturnType<typeof createGcpEmulator>>
  let server: { url: string; close: () => Promise<void> }
  const providerId = 'contract-provider'
  const audience = 'contract.acme.example'
  return {
    partner: 'gcp',
    async start() {
      emulator = await createGcpEmulator()
      server = await emulator.listen()
    },
    stop: () => server.close(),
    env: () => ({ GCP_MARKETPLACE_CERTS_URL: emulator.certsUrl, GCP_OAUTH_TOKEN_URL: emulator.tokenUrl, GCP_PROCUREMENT_API_URL: server.url }),
    integration: async () => ({ providerId, audience, serviceAccountKey: await emulator.createServiceAccount(providerId) }),
    async purchase() {
      const { accountId, entitlement } = emulator.addPurchase({ providerId, plan: 'team', state: 'ENTITLEMENT_ACTIVE' })
      const token = await emulator.mintToken({ aud: audience, sub: accountId, 'google.user_identity': `user-${accountId.slice(0, 8)}` })
      return {
        arrival: { method: 'POST', form: { 'x-gcp-marketplace-token': token } },
        expected: {
          externalId: entitlement!.name.split('/').pop()!,
          offerType: 'DEFAULT',
          status: 'ACTIVE',
          productId: entitlement!.productExternalName,
          planId: 'team',
          buyer: { accountId, customerId: `user-${accountId.slice(0, 8)}`, email: null, tenantId: null, name: null },
        },
      }
    },
    badToken: async () => ({
      method: 'POST',
      form: { 'x-gcp-marketplace-token': await emulator.mintToken({ aud: 'someone-else.example', sub: 'acct' }) },
    }),
    failOnce: () => emulator.failNext('approve', 503, 1),
    upstreamCalls: () => emulator.calls.filter((call) => call.route !== 'certs' && call.route !== 'token').length,
    activations: () => 0,
  }
}

export function landingRequest(arrival: Arrival, path: string): [string, RequestInit] {
  const query = arrival.query ? `?${new URLSearchParams(arrival.query).toString()}` : ''
  if (arrival.method === 'GET') return [`${path}${query}`, { method: 'GET' }]
  return [
    `${path}${query}`,
    { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(arrival.form ?? {}).toString() },
  ]
}
