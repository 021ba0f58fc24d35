import { z } from 'zod'
import { offerTypesSchema } from '../azure/settings'

const accessKeyId = z.string().trim().regex(/^[A-Z0-9]{16,128}$/, 'must look like an AWS access key id')

/** `PUT /api/v1/orgs/{orgId}/integrations/aws` body (contract §3): static keys, or a role to assume. */
export const awsIntegrationSchema = z
  .strictObject({
    region: z.string().trim().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region such as us-east-1').default('us-east-1'),
    credentials: z
      .strictObject({
        accessKeyId,
        secretAccessKey: z.string().min(1).max(1024),
        sessionToken: z.string().min(1).max(8192).optional(),
      })
      .optional(),
    roleArn: z.string().trim().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/.+$/, 'must be an IAM role ARN').optional(),
    externalId: z.string().trim().min(2).max(1224).optional(),
    offerTypes: offerTypesSchema.optional(),
    // The SNS topics this integration takes messages from; any AWS Marketplace topic when absent.
    notificationTopicArns: z
      .array(z.string().trim().regex(/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:aws-mp-(subscription|entitlement)-notification-[A-Za-z0-9_-]+$/, 'must be an aws-mp-*-notification-* SNS topic ARN'))
      .max(20)
      .optional(),
  })
  .refine((value) => value.credentials || value.roleArn, {
    message: 'give credentials or roleArn',
    path: ['credentials'],
  })

export type AwsIntegrationInput = z.infer<typeof awsIntegrationSchema>
export type AwsSettings = Omit<AwsIntegrationInput, 'credentials'> & { accessKeyId?: string }
export type AwsSecrets = { secretAccessKey?: string; sessionToken?: string }

export function splitAwsIntegration(input: AwsIntegrationInput): { settings: AwsSettings; secrets: AwsSecrets } {
  const { credentials, ...rest } = input
  return {
    settings: { ...rest, ...(credentials ? { accessKeyId: credentials.accessKeyId } : {}) },
    secrets: credentials
      ? { secretAccessKey: credentials.secretAccessKey, ...(credentials.sessionToken ? { sessionToken: credentials.sessionToken } : {}) }
      : {},
  }
}

/**
 * An edit whose credentials leave the secret access key out keeps the stored one, and with it
 * the stored session token (they belong to one key pair); a new secret access key comes with
 * its own session token or none.
 */
export function keepAwsSecrets(input: Record<string, unknown>, stored: AwsSecrets): Record<string, unknown> {
  const credentials = input.credentials
  if (!credentials || typeof credentials !== 'object' || Array.isArray(credentials)) return input
  const given = credentials as Record<string, unknown>
  if (given.secretAccessKey !== undefined || stored.secretAccessKey === undefined) return input
  const sessionToken = given.sessionToken ?? stored.sessionToken
  return { ...input, credentials: { ...given, secretAccessKey: stored.secretAccessKey, ...(sessionToken !== undefined ? { sessionToken } : {}) } }
}
