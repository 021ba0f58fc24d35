import type { z } from 'zod'
import { awsIntegrationSchema, splitAwsIntegration } from './aws/settings'
import { createAzureProvider } from './azure/provider'
import { azureIntegrationSchema, splitAzureIntegration } from './azure/settings'
import { gcpIntegrationSchema, splitGcpIntegration } from './gcp/settings'
import type { FetchLike } from './shared/http'
import type { MarketplaceProvider, Partner } from './types'

export interface IntegrationSpec {
  /** The `PUT …/integrations/{partner}` body. */
  schema: z.ZodType
  /** Separates what may be shown back (settings) from what is sealed at rest (secrets). */
  split(input: any): { settings: Record<string, unknown>; secrets: Record<string, unknown> }
}

/** How each marketplace's integration is configured; an exhaustive record, so a new partner can't be forgotten. */
export const integrationSpecs: Record<Partner, IntegrationSpec> = {
  azure: { schema: azureIntegrationSchema, split: splitAzureIntegration },
  aws: { schema: awsIntegrationSchema, split: splitAwsIntegration },
  gcp: { schema: gcpIntegrationSchema, split: splitGcpIntegration },
}

export interface ProviderEndpoints {
  azure: { apiUrl: string; loginUrl: string }
}

/** The landing's providers by partner; null marks a marketplace whose plugin does not exist yet. */
export type ProviderRegistry = Record<Partner, MarketplaceProvider | null>

export function createProviders(endpoints: ProviderEndpoints, fetchFn?: FetchLike): ProviderRegistry {
  return {
    azure: createAzureProvider({ ...endpoints.azure, fetch: fetchFn }),
    aws: null,
    gcp: null,
  }
}

export * from './types'
export * from './errors'
