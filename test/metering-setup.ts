import { type AwsEmulator, createAwsEmulator } from '../sandbox/emulators/aws'
import { type GcpEmulator, createGcpEmulator } from '../sandbox/emulators/gcp'
import { type ServiceControlEmulator, createServiceControlEmulator } from '../sandbox/emulators/gcp-servicecontrol'
import { type AzureSetup, type TestBroker, startAzure } from './helpers'

/**
 * The three metering emulators (Azure metered billing, AWS BatchMeterUsage, Google Service
 * Control with the Procurement API and token endpoint beside it) and, for any broker a test talks
 * to, orgs with an integration and one active purchase per marketplace: the usage tests, the
 * runtime tests, the crash test and the bench all start from here.
 */
export interface Marketplaces {
  azure: AzureSetup
  aws: AwsEmulator
  gcp: GcpEmulator
  serviceControl: ServiceControlEmulator
  /** The broker's configuration for all of them. */
  env: Record<string, string>
  close: () => Promise<void>
}

export const AWS_KEY = { accessKeyId: 'AKIAMETERING00000001', secretAccessKey: 'metering/secret' }
/** The Service Control service name the gcp integrations map their product to. */
export const GCP_PRODUCT = 'metered-saas'
export const GCP_SERVICE = 'metered-saas.gcpmarketplace.example.com'

export async function startMarketplaces(options: { azureMeteringDelayMs?: number; azureLatencyMs?: number } = {}): Promise<Marketplaces> {
  const azure = await startAzure({ meteringAnswerDelayMs: options.azureMeteringDelayMs, latencyMs: options.azureLatencyMs })
  const aws = createAwsEmulator()
  const awsServer = await aws.listen()
  aws.addCredentials(AWS_KEY.accessKeyId, AWS_KEY.secretAccessKey)
  const gcp = await createGcpEmulator()
  const gcpServer = await gcp.listen()
  const serviceControl = createServiceControlEmulator({ isAuthorized: (bearer) => gcp.isAccessToken(bearer) })
  const scServer = await serviceControl.listen()
  return {
    azure,
    aws,
    gcp,
    serviceControl,
    env: {
      AZURE_MARKETPLACE_API_URL: azure.url,
      AZURE_LOGIN_URL: azure.url,
      AWS_MARKETPLACE_METERING_URL: awsServer.url,
      AWS_MARKETPLACE_ENTITLEMENT_URL: awsServer.url,
      GCP_MARKETPLACE_CERTS_URL: gcp.certsUrl,
      GCP_OAUTH_TOKEN_URL: gcp.tokenUrl,
      GCP_PROCUREMENT_API_URL: gcpServer.url,
      GCP_SERVICE_CONTROL_URL: scServer.url,
    },
    close: async () => {
      await azure.close()
      await awsServer.close()
      await gcpServer.close()
      await scServer.close()
    },
  }
}

type Client = Pick<TestBroker, 'request' | 'createOrg'>

export interface MeteredOrg {
  orgId: string
  apiKey: string
  providerId: string
  /** Land one purchase on the marketplace (active, metered) and answer its entitlement id and marketplace keys. */
  buyAzure(options?: { planId?: string }): Promise<{ id: string; subscriptionId: string; planId: string }>
  /**
   * `concurrent`: a product under AWS's concurrent-agreements model (ResolveCustomer answers no
   * CustomerIdentifier, each purchase its own license); `accountId`: the buyer's account (another agreement of it).
   */
  buyAws(options?: { license?: boolean; concurrent?: boolean; accountId?: string }): Promise<{ id: string; productCode: string; customerIdentifier: string; accountId: string; licenseArn?: string }>
  buyGcp(): Promise<{ id: string; usageReportingId: string }>
  record(entitlementId: string, body: Record<string, unknown>): Promise<Response>
  usage(entitlementId: string): Promise<Array<{ id: string; status: string; marketplaceStatus: string | null; error: string | null; quantity: number; dimension: string; reportedAt: string | null }>>
}

/** An org with all three integrations on `client`'s broker (webhookUrl optional). */
export async function meteredOrg(client: Client, m: Marketplaces, options: { webhookUrl?: string; name?: string } = {}): Promise<MeteredOrg & { webhookSecret?: string }> {
  const created = (await client.createOrg(options.webhookUrl ? { webhookUrl: options.webhookUrl } : {})) as { org: { id: string }; apiKey: string; webhookSecret?: string }
  const { org, apiKey } = created
  const put = async (partner: string, json: unknown) => {
    const response = await client.request(`/api/v1/orgs/${org.id}/integrations/${partner}`, { method: 'PUT', token: apiKey, json })
    if (response.status !== 200) throw new Error(`PUT ${partner}: ${response.status} ${await response.text()}`)
  }
  const providerId = `${options.name ?? 'meter'}-${org.id.slice(-12).toLowerCase()}`
  await put('azure', { tenantId: m.azure.tenantId, clientId: m.azure.clientId, clientSecret: m.azure.clientSecret })
  await put('aws', { credentials: AWS_KEY })
  await put('gcp', { providerId, audience: `${providerId}.example`, serviceAccountKey: await m.gcp.createServiceAccount(providerId), serviceNames: { [GCP_PRODUCT]: GCP_SERVICE } })

  const landed = async (response: Response) => {
    if (response.status !== 303) throw new Error(`landing: ${response.status} ${await response.text()}`)
    return new URL(response.headers.get('location')!).searchParams.get('sugerEntitlementId')!
  }
  const form = (body: Record<string, string>) => ({
    method: 'POST',
    token: null,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(body).toString(),
  })
  let n = 0
  return {
    orgId: org.id,
    apiKey,
    providerId,
    webhookSecret: created.webhookSecret,
    async buyAzure({ planId = 'metered' } = {}) {
      const sub = m.azure.emulator.addSubscription({ appId: m.azure.clientId, planId })
      const id = await landed(await client.request(`/public/signup/azure/orgId/${org.id}?token=${encodeURIComponent(m.azure.emulator.issuePurchaseToken(sub.id))}`, { token: null }))
      return { id, subscriptionId: sub.id, planId }
    },
    async buyAws({ license = true, concurrent = false, accountId }: { license?: boolean; concurrent?: boolean; accountId?: string } = {}) {
      const productCode = `prod-${org.id.slice(-8).toLowerCase()}${concurrent ? '-ca' : ''}`
      if (concurrent) m.aws.addProduct(productCode, undefined, { concurrentAgreements: true })
      const suffix = `${org.id.slice(-6)}${n++}`
      const { customer, token } = m.aws.addCustomer({
        ProductCode: productCode,
        ...(accountId ? { CustomerAWSAccountId: accountId } : {}),
        ...(license && !concurrent ? { LicenseArn: `arn:aws:license-manager::123456789012:license:l-${suffix}`.toLowerCase() } : {}),
      })
      const id = await landed(await client.request(`/public/signup/aws/orgId/${org.id}`, form({ 'x-amzn-marketplace-token': token })))
      return { id, productCode, customerIdentifier: customer.CustomerIdentifier, accountId: customer.CustomerAWSAccountId, licenseArn: customer.LicenseArn }
    },
    async buyGcp() {
      const { accountId, entitlement } = m.gcp.addPurchase({ providerId, product: GCP_PRODUCT, state: 'ENTITLEMENT_ACTIVE' })
      m.serviceControl.addConsumer(GCP_SERVICE, entitlement!.usageReportingId)
      const id = await landed(await client.request(`/public/signup/gcp/orgId/${org.id}`, form({ 'x-gcp-marketplace-token': await m.gcp.mintToken({ aud: `${providerId}.example`, sub: accountId }) })))
      return { id, usageReportingId: entitlement!.usageReportingId }
    },
    record: (entitlementId, body) => client.request(`/api/v1/orgs/${org.id}/entitlements/${entitlementId}/usage`, { method: 'POST', token: apiKey, json: body }),
    async usage(entitlementId) {
      const response = await client.request(`/api/v1/orgs/${org.id}/entitlements/${entitlementId}/usage?limit=1000`, { token: apiKey })
      return ((await response.json()) as { items: Awaited<ReturnType<MeteredOrg['usage']>> }).items
    },
  }
}

const HOUR_MS = 3600_000
/**
 * The reporter closes an hour only GRACE_MS (60 s) after it ends (src/domain/usage-reporter.ts):
 * within this long of an hour's start, "the current hour" is still the one before, so that an
 * hour `inPastHour` names has always ended long enough ago to be reported at once. (A suite that
 * ran in the first minute after 22:00 waited in vain for its 21:10 records to be REPORTED.)
 */
const CLOSABLE_AFTER_MS = 3 * 60_000

/** A time `minutesIn` minutes into the UTC hour that began `hoursAgo` hours before the current one (see CLOSABLE_AFTER_MS). */
export function inPastHour(hoursAgo: number, minutesIn = 10, now = Date.now()): string {
  return new Date(Math.floor((now - CLOSABLE_AFTER_MS) / HOUR_MS) * HOUR_MS - hoursAgo * HOUR_MS + minutesIn * 60_000).toISOString()
}
export const hourStart = (iso: string) => new Date(Math.floor(Date.parse(iso) / HOUR_MS) * HOUR_MS).toISOString()

/**
 * What AWS metered for these buyer accounts, per account, product and UTC hour: the record forms
 * it took (AWS bills one customer's hour twice when it comes in both) and the records.
 */
export function awsHours(aws: AwsEmulator, accountIds: string[]) {
  const hours = new Map<string, { forms: Set<string>; records: AwsEmulator['meteringRecords'] }>()
  for (const record of aws.meteringRecords) {
    if (!accountIds.includes(record.CustomerAWSAccountId)) continue
    const key = `${record.CustomerAWSAccountId} ${record.ProductCode} ${hourStart(new Date(record.Timestamp * 1000).toISOString())}`
    const hour = hours.get(key) ?? { forms: new Set<string>(), records: [] }
    hour.forms.add(record.form)
    hour.records.push(record)
    hours.set(key, hour)
  }
  return [...hours.values()]
}
