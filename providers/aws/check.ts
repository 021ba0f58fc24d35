import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts'
import { passed } from '../shared/check'
import type { CredentialCheck, ProviderContext, ProviderIntegration } from '../types'
import type { AwsSecrets, AwsSettings } from './settings'

type AwsIntegration = ProviderIntegration<AwsSettings, AwsSecrets>

interface StaticKeys {
  accessKeyId: string
  secretAccessKey: string
  sessionToken?: string
}

/** The provider's logged SDK call, inside the deadline, rethrowing the SDK's own error. */
export type SdkSend = <T>(
  label: string,
  ctx: ProviderContext,
  run: (options: { abortSignal: AbortSignal }) => Promise<T & { $metadata?: { attempts?: number; httpStatusCode?: number } }>,
) => Promise<T & { $metadata?: { attempts?: number; httpStatusCode?: number } }>

export interface StsOptions {
  /** `AWS_STS_URL`; the SDK's regional default when absent. */
  stsUrl?: string
  maxAttempts: number
  requestHandler: { requestTimeout: number; connectionTimeout: number }
}

/** An STS client for the integration's region, as `credentials` (else the SDK's default chain: env, instance role). */
export function createStsClient(options: StsOptions, region: string, credentials?: StaticKeys) {
  return new STSClient({
    region,
    ...(options.stsUrl ? { endpoint: options.stsUrl } : {}),
    ...(credentials ? { credentials } : {}),
    maxAttempts: options.maxAttempts,
    requestHandler: options.requestHandler,
  })
}

export function staticKeysOf(integration: AwsIntegration): StaticKeys | undefined {
  const { settings, secrets } = integration
  if (!settings.accessKeyId || !secrets.secretAccessKey) return undefined
  return { accessKeyId: settings.accessKeyId, secretAccessKey: secrets.secretAccessKey, ...(secrets.sessionToken ? { sessionToken: secrets.sessionToken } : {}) }
}

export const roleSessionName = (orgId: string) => `marketbridge-${orgId}`.slice(0, 64)

interface SdkFailure {
  name?: string
  $metadata?: { httpStatusCode?: number }
}

/**
 * Why STS refused, from its error code alone. AWS's own message text is never repeated: a
 * SignatureDoesNotMatch message may quote the canonical request, session token header included.
 */
function whyStsRefused(error: unknown, who: string, context: { roleArn?: string; region: string }): string {
  const sdk = (error ?? {}) as SdkFailure
  const code = /^[A-Za-z0-9._:-]{1,64}$/.test(sdk.name ?? '') ? sdk.name! : 'Error'
  const status = sdk.$metadata?.httpStatusCode ?? null
  switch (code) {
    case 'InvalidClientTokenId':
    case 'UnrecognizedClientException':
      return `AWS does not know ${who} (${code}): it was deleted, deactivated or mistyped`
    case 'SignatureDoesNotMatch':
    case 'InvalidSignatureException':
      return `the secret access key does not belong to ${who} (${code})`
    case 'ExpiredToken':
    case 'ExpiredTokenException':
      return `the session token of ${who} has expired (${code})`
    case 'AccessDenied':
      return context.roleArn
        ? `${who} may not assume ${context.roleArn} (${code}): the role's trust policy does not name it, it lacks sts:AssumeRole, or the externalId is missing or wrong`
        : `STS refused ${who} (${code})`
    case 'RegionDisabledException':
      return `STS is not activated in ${context.region} for this account (${code})`
    case 'CredentialsProviderError':
      return 'no credentials to call STS with: the integration has no access key and the broker’s environment provides none'
    case 'TimeoutError':
    case 'AbortError':
      return 'no answer from STS in time'
  }
  if (status === null) return `STS could not be reached (${code})`
  return status >= 500 || status === 429 ? `STS is unavailable (${status} ${code})` : `STS refused the call (${status} ${code})`
}

/**
 * Contract §13 for AWS: `AssumeRole` when the integration has a roleArn, then
 * `GetCallerIdentity` (which needs no permission, so it tests the credentials alone) as the
 * assumed role, or as the access key when there is no role or it could not be assumed. Nothing
 * is cached: the check always reaches STS.
 */
export async function checkAwsCredentials(integration: AwsIntegration, ctx: ProviderContext, options: StsOptions, send: SdkSend): Promise<CredentialCheck[]> {
  const { settings } = integration
  const keys = staticKeysOf(integration)
  const keyName = keys ? `access key ${keys.accessKeyId}` : 'the broker’s default credentials'
  const checks: CredentialCheck[] = []
  let caller = keys
  let who = keyName
  if (settings.roleArn) {
    try {
      const assumed = await send('aws.check.AssumeRole', ctx, (o) =>
        createStsClient(options, settings.region, keys).send(
          new AssumeRoleCommand({ RoleArn: settings.roleArn, RoleSessionName: roleSessionName(integration.orgId), ...(settings.externalId ? { ExternalId: settings.externalId } : {}) }),
          o,
        ),
      )
      const c = assumed.Credentials
      if (!c?.AccessKeyId || !c.SecretAccessKey) throw Object.assign(new Error('AssumeRole answered no credentials'), { name: 'NoCredentialsReturned', $metadata: { httpStatusCode: 200 } })
      caller = { accessKeyId: c.AccessKeyId, secretAccessKey: c.SecretAccessKey, ...(c.SessionToken ? { sessionToken: c.SessionToken } : {}) }
      who = `the session of ${settings.roleArn}`
      checks.push(passed('sts:AssumeRole', `${keyName} assumed ${settings.roleArn}${c.Expiration ? ` (credentials until ${c.Expiration.toISOString()})` : ''}`))
    } catch (error) {
      checks.push({ name: 'sts:AssumeRole', ok: false, message: whyStsRefused(error, keyName, { roleArn: settings.roleArn, region: settings.region }) })
      if (!keys) {
        checks.push({ name: 'sts:GetCallerIdentity', ok: false, message: 'not tried: the role was not assumed and the integration has no access key of its own' })
        return checks
      }
    }
  }
  try {
    const identity = await send('aws.check.GetCallerIdentity', ctx, (o) => createStsClient(options, settings.region, caller).send(new GetCallerIdentityCommand({}), o))
    const arn = (identity.Arn ?? 'an unnamed identity').slice(0, 300)
    const note = settings.roleArn && caller === keys ? ' (the access key itself; the role was not assumed)' : ''
    checks.push(passed('sts:GetCallerIdentity', `signed in as ${arn}${identity.Account ? ` of account ${identity.Account}` : ''}${note}`))
  } catch (error) {
    checks.push({ name: 'sts:GetCallerIdentity', ok: false, message: whyStsRefused(error, who, { region: settings.region }) })
  }
  return checks
}
