import type { z } from 'zod'
import { createAwsProvider } from './aws/provider'
import { awsIntegrationSchema, keepAwsSecrets, splitAwsIntegration } from './aws/settings'
import { createAzureProvider } from './azure/provider'
import { azureIntegrationSchema, keepAzureSecrets, splitAzureIntegration } from './azure/settings'
import { createGcpProvider } from './gcp/provider'
import { gcpIntegrationSchema, keepGcpSecrets, splitGcpIntegration } from './gcp/settings'
import { type RetryPolicy, defaultRetryPolicy } from './shared/http'
import type { UpstreamObserver } from './shared/telemetry'
import type { MarketplaceProvider, Partner } from './types'

export interface IntegrationSpec {
  /** The `PUT …/integrations/{partner}` body. */
  schema: z.ZodType
  /** Separates what may be shown back (settings) from what is sealed at rest (secrets). */
  split(input: any): { settings: Record<string, unknown>; secrets: Record<string, unknown> }
  /**
   * The body with each secret it leaves out taken from the stored integration's (opened) secrets:
   * an edit that does not retype them (the console's form). The API's PUT does not use it.
   */
  keepSecrets(input: Record<string, unknown>, stored: any): Record<string, unknown>
}

/** How each marketplace's integration is configured; an exhaustive record, so a new partner can't be forgotten. */
export const integrationSpecs: Record<Partner, IntegrationSpec> = {
  azure: { schema: azureIntegrationSchema, split: splitAzureIntegration, keepSecrets: keepAzureSecrets },
  aws: { schema: awsIntegrationSchema, split: splitAwsIntegration, keepSecrets: keepAwsSecrets },
  gcp: { schema: gcpIntegrationSchema, split: splitGcpIntegration, keepSecrets: keepGcpSecrets },
}

export interface ProviderEndpoints {
  azure: { apiUrl: string; loginUrl: string }
  aws: { meteringUrl?: string; entitlementUrl?: string; agreementUrl?: string; stsUrl?: string; snsTrustedCertPrefix?: string }
  gcp: { certsUrl: string; procurementUrl: string; tokenUrl: string; oidcCertsUrl?: string; serviceControlUrl?: string }
}

/** The landing's providers by partner: an exhaustive record, so a marketplace cannot be left out. */
export type ProviderRegistry = Record<Partner, MarketplaceProvider>

/** `observe` is told how each marketplace call ended (the runtime's metrics); every call is a span as well. */
export function createProviders(endpoints: ProviderEndpoints, retryPolicy: RetryPolicy = defaultRetryPolicy, observe?: UpstreamObserver): ProviderRegistry {
  return {
    azure: createAzureProvider({ ...endpoints.azure, retryPolicy, observe }),
    aws: createAwsProvider({ ...endpoints.aws, retryPolicy, observe }),
    gcp: createGcpProvider({ ...endpoints.gcp, retryPolicy, observe }),
  }
}

export * from './types'
export * from './errors'
