import { z } from 'zod'
import { OFFER_TYPES } from '../types'

/** Path-safe identifiers: they end up in the Entra token URL. */
const identifier = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9._-]+$/, 'may contain only letters, digits, ".", "_" and "-"')

export const offerTypesSchema = z.record(z.string().min(1).max(200), z.enum(OFFER_TYPES))

/** `PUT /api/v1/orgs/{orgId}/integrations/azure` body (contract §3). */
export const azureIntegrationSchema = z.strictObject({
  tenantId: identifier,
  clientId: identifier,
  clientSecret: z.string().min(1).max(1024),
  offerTypes: offerTypesSchema.optional(),
})

export type AzureIntegrationInput = z.infer<typeof azureIntegrationSchema>
export type AzureSettings = Omit<AzureIntegrationInput, 'clientSecret'>
export type AzureSecrets = Pick<AzureIntegrationInput, 'clientSecret'>

export function splitAzureIntegration(input: AzureIntegrationInput) {
  const { clientSecret, ...settings } = input
  return { settings: settings satisfies AzureSettings, secrets: { clientSecret } satisfies AzureSecrets }
}

/** An edit that leaves the client secret out keeps the stored one (the console's edit form; the API's PUT replaces). */
export function keepAzureSecrets(input: Record<string, unknown>, stored: Partial<AzureSecrets>): Record<string, unknown> {
  return input.clientSecret === undefined && stored.clientSecret !== undefined ? { ...input, clientSecret: stored.clientSecret } : input
}
