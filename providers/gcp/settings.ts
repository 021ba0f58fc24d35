import { z } from 'zod'
import { offerTypesSchema } from '../azure/settings'

/** The service account's JSON key as Google issues it; only these fields are needed, others are kept. */
const serviceAccountKeySchema = z.looseObject({
  client_email: z.string().trim().email(),
  private_key: z.string().includes('PRIVATE KEY', { message: 'must be a PEM private key' }).max(16384),
  private_key_id: z.string().optional(),
  token_uri: z.string().optional(),
})

/** `PUT /api/v1/orgs/{orgId}/integrations/gcp` body (contract §3). */
export const gcpIntegrationSchema = z.strictObject({
  providerId: z.string().trim().regex(/^[A-Za-z0-9._-]{1,200}$/, 'must be the Producer Portal provider id'),
  audience: z.string().trim().min(1).max(500),
  serviceAccountKey: serviceAccountKeySchema,
  offerTypes: offerTypesSchema.optional(),
  // Pub/Sub push (contract §7): the push subscription's service account (required before Google's
  // notifications are accepted) and its OIDC audience (default: the notificationUrl, exactly).
  pushServiceAccount: z.string().trim().email().max(320).optional(),
  pushAudience: z.string().trim().min(1).max(2000).optional(),
  // Approve a buyer's plan change at once (ENTITLEMENT_PLAN_CHANGE_REQUESTED); false leaves it to the ISV.
  autoApprovePlanChanges: z.boolean().default(true),
  // Usage reports (contract §9): the Service Control service name per product (default: the product id).
  serviceNames: z
    .record(
      z.string().regex(/^[A-Za-z0-9._-]{1,200}$/, 'must be a product id'),
      z.string().trim().regex(/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/, 'must be a service name, e.g. example-messaging-service.gcpmarketplace.example.com'),
    )
    .refine((names) => Object.keys(names).length <= 100, 'at most 100 products')
    .optional(),
})

export type GcpIntegrationInput = z.infer<typeof gcpIntegrationSchema>
export type GcpSettings = Omit<GcpIntegrationInput, 'serviceAccountKey'> & { serviceAccountEmail: string }
export type GcpSecrets = { serviceAccountKey: z.infer<typeof serviceAccountKeySchema> }

export function splitGcpIntegration(input: GcpIntegrationInput): { settings: GcpSettings; secrets: GcpSecrets } {
  const { serviceAccountKey, ...rest } = input
  return { settings: { ...rest, serviceAccountEmail: serviceAccountKey.client_email }, secrets: { serviceAccountKey } }
}

/** An edit that leaves the service account key out keeps the stored one. */
export function keepGcpSecrets(input: Record<string, unknown>, stored: Partial<GcpSecrets>): Record<string, unknown> {
  return input.serviceAccountKey === undefined && stored.serviceAccountKey !== undefined ? { ...input, serviceAccountKey: stored.serviceAccountKey } : input
}
