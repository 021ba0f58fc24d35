import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto'
import type { AddressInfo } from 'node:net'

/**
 * AWS emulator: AWS Marketplace Metering (ResolveCustomer), the Marketplace Entitlement
 * Service (GetEntitlements) and STS (AssumeRole), written from AWS's API references and the
 * Signature Version 4 documentation, not from the broker's client.
 *
 * - Metering and Entitlement speak awsJson 1.1: `POST /`, `Content-Type:
 *   application/x-amz-json-1.1`, `X-Amz-Target: AWSMPMeteringService.ResolveCustomer` or
 *   `AWSMPEntitlementService.GetEntitlements`; errors are `{"__type", "message"}`.
 * - STS speaks the query protocol: a form `Action=AssumeRole&Version=2011-06-15&...`, XML back.
 * - Every request must carry a valid SigV4 signature by a configured access key (and its
 *   session token, for assumed-role credentials): else 403 UnrecognizedClientException,
 *   InvalidSignatureException or (STS) SignatureDoesNotMatch.
 */

export interface EmulatedCustomer {
  CustomerIdentifier: string
  CustomerAWSAccountId: string
  ProductCode: string
  LicenseArn?: string
}

export interface EmulatedEntitlement {
  ProductCode: string
  Dimension: string
  CustomerIdentifier: string
  CustomerAWSAccountId?: string
  Value: { IntegerValue?: number; DoubleValue?: number; BooleanValue?: boolean; StringValue?: string }
  /** Epoch seconds (awsJson timestamps). */
  ExpirationDate?: number
}

export interface AwsCall {
  target: string
  accessKeyId: string | null
  service: string | null
  region: string | null
  body: string
}

export type AwsRoute = 'ResolveCustomer' | 'GetEntitlements' | 'AssumeRole'

interface Credential {
  secretAccessKey: string
  sessionToken?: string
  expiresAt?: number
}

export function createAwsEmulator() {
  const credentials = new Map<string, Credential>()
  const roles = new Map<string, { externalId?: string; trusted: Set<string> }>()
  const tokens = new Map<string, { customer: EmulatedCustomer; expiresAt: number }>()
  const entitlements: EmulatedEntitlement[] = []
  const calls: AwsCall[] = []
  const faults: Array<{ route: AwsRoute; status: number; type: string; remaining: number }> = []

  const app = new Hono()

  app.post('/', async (c) => {
    const body = await c.req.text()
    const target = c.req.header('x-amz-target') ?? ''
    const form = (c.req.header('content-type') ?? '').startsWith('application/x-www-form-urlencoded') ? new URLSearchParams(body) : null
    const route = (form ? form.get('Action') : target.split('.')[1]) ?? ''
    const auth = verifySignature(c.req.raw, body, credentials)
    calls.push({ target: route, accessKeyId: auth.accessKeyId, service: auth.service, region: auth.region, body })

    const jsonError = (status: number, type: string, message: string) =>
      c.json({ __type: type, message }, status as 400, { 'x-amzn-errortype': type, 'x-amzn-requestid': randomUUID() })
    const xmlError = (status: number, code: string, message: string) =>
      c.body(
        `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`,
        status as 400,
        { 'content-type': 'text/xml' },
      )

    if (!auth.ok) {
      return form ? xmlError(403, auth.code === 'UnrecognizedClientException' ? 'InvalidClientTokenId' : 'SignatureDoesNotMatch', auth.message) : jsonError(403, auth.code, auth.message)
    }
    const fault = faults.find((f) => f.route === route && f.remaining > 0)
    if (fault) {
      fault.remaining--
      return form ? xmlError(fault.status, fault.type, 'injected fault') : jsonError(fault.status, fault.type, 'injected fault')
    }

    if (form) {
      if (form.get('Action') !== 'AssumeRole' || form.get('Version') !== '2011-06-15') return xmlError(400, 'InvalidAction', 'Unsupported action.')
      if (auth.service !== 'sts') return xmlError(403, 'SignatureDoesNotMatch', 'Credential should be scoped to correct service: sts.')
      const roleArn = form.get('RoleArn') ?? ''
      const role = roles.get(roleArn)
      if (!role || !role.trusted.has(auth.accessKeyId!)) return xmlError(403, 'AccessDenied', `User is not authorized to perform: sts:AssumeRole on resource: ${roleArn}`)
      if (role.externalId !== undefined && form.get('ExternalId') !== role.externalId) {
        return xmlError(403, 'AccessDenied', `User is not authorized to perform: sts:AssumeRole on resource: ${roleArn}`)
      }
      if (!form.get('RoleSessionName')) return xmlError(400, 'ValidationError', 'RoleSessionName is required.')
      const issued = { accessKeyId: `ASIA${randomBytes(8).toString('hex').toUpperCase()}`, secretAccessKey: randomBytes(30).toString('base64'), sessionToken: randomBytes(64).toString('base64') }
      const expiresAt = Date.now() + Number(form.get('DurationSeconds') ?? 3600) * 1000
      credentials.set(issued.accessKeyId, { secretAccessKey: issued.secretAccessKey, sessionToken: issued.sessionToken, expiresAt })
      return c.body(
        `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>${issued.accessKeyId}</AccessKeyId><SecretAccessKey>${issued.secretAccessKey}</SecretAccessKey><SessionToken>${issued.sessionToken}</SessionToken><Expiration>${new Date(expiresAt).toISOString()}</Expiration></Credentials><AssumedRoleUser><AssumedRoleId>AROA:${form.get('RoleSessionName')}</AssumedRoleId><Arn>${roleArn.replace(':iam::', ':sts::').replace(':role/', ':assumed-role/')}/${form.get('RoleSessionName')}</Arn></AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></AssumeRoleResponse>`,
        200,
        { 'content-type': 'text/xml' },
      )
    }

    if ((c.req.header('content-type') ?? '') !== 'application/x-amz-json-1.1') {
      return jsonError(400, 'SerializationException', 'Expected application/x-amz-json-1.1.')
    }
    let input: Record<string, any>
    try {
      input = JSON.parse(body || '{}')
    } catch {
      return jsonError(400, 'SerializationException', 'Malformed JSON.')
    }

    if (target === 'AWSMPMeteringService.ResolveCustomer') {
      if (auth.service !== 'aws-marketplace') return jsonError(403, 'InvalidSignatureException', 'Credential should be scoped to correct service.')
      const token = input.RegistrationToken
      if (typeof token !== 'string' || token === '') return jsonError(400, 'InvalidTokenException', 'Registration token is required.')
      const entry = tokens.get(token)
      if (!entry) return jsonError(400, 'InvalidTokenException', 'Registration token is invalid.')
      if (entry.expiresAt < Date.now()) return jsonError(400, 'ExpiredTokenException', 'Registration token has expired.')
      return c.json(entry.customer)
    }

    if (target === 'AWSMPEntitlementService.GetEntitlements') {
      if (auth.service !== 'aws-marketplace') return jsonError(403, 'InvalidSignatureException', 'Credential should be scoped to correct service.')
      if (auth.region !== 'us-east-1') return jsonError(400, 'InvalidParameterException', 'The Entitlement Service is available only in us-east-1.')
      if (typeof input.ProductCode !== 'string' || input.ProductCode === '') return jsonError(400, 'InvalidParameterException', 'ProductCode is required.')
      const filter = (input.Filter ?? {}) as Record<string, string[]>
      const matches = entitlements.filter(
        (e) =>
          e.ProductCode === input.ProductCode &&
          (!filter.CUSTOMER_IDENTIFIER || filter.CUSTOMER_IDENTIFIER.includes(e.CustomerIdentifier)) &&
          (!filter.CUSTOMER_AWS_ACCOUNT_ID || filter.CUSTOMER_AWS_ACCOUNT_ID.includes(e.CustomerAWSAccountId ?? '')) &&
          (!filter.DIMENSION || filter.DIMENSION.includes(e.Dimension)),
      )
      // Pages of MaxResults (default 25 here, to exercise NextToken).
      const size = Math.min(Number(input.MaxResults ?? 25), 25)
      const offset = Number(input.NextToken ?? 0)
      const next = offset + size < matches.length ? String(offset + size) : undefined
      return c.json({ Entitlements: matches.slice(offset, offset + size), ...(next ? { NextToken: next } : {}) })
    }

    return jsonError(400, 'UnknownOperationException', `Unknown operation ${target}`)
  })

  return {
    app,
    calls,
    /** An IAM user's (or the seller's) static access key. */
    addCredentials(accessKeyId: string, secretAccessKey: string) {
      credentials.set(accessKeyId, { secretAccessKey })
    },
    /** A role that `trustedAccessKeyId` may assume (with `externalId` when given). */
    addRole(roleArn: string, trustedAccessKeyId: string, externalId?: string) {
      roles.set(roleArn, { externalId, trusted: new Set([trustedAccessKeyId]) })
    },
    /** A buyer who clicked "Set up your account": returns the registration token AWS would post. */
    addCustomer(customer: Partial<EmulatedCustomer> & { ProductCode: string }, options: { expiresInMs?: number } = {}) {
      const full: EmulatedCustomer = {
        CustomerIdentifier: randomBytes(8).toString('base64url'),
        CustomerAWSAccountId: String(100000000000 + Math.floor(Math.random() * 899999999999)),
        ...customer,
      }
      const token = registrationToken()
      tokens.set(token, { customer: full, expiresAt: Date.now() + (options.expiresInMs ?? 4 * 3600 * 1000) })
      return { customer: full, token }
    },
    /** Another token for the same customer (AWS: resolving again returns the same customer). */
    tokenFor(customer: EmulatedCustomer) {
      const token = registrationToken()
      tokens.set(token, { customer, expiresAt: Date.now() + 4 * 3600 * 1000 })
      return token
    },
    /** Every contract entitlement AWS knows; change one in place to model the buyer's upgrade. */
    entitlements,
    addEntitlement(entitlement: EmulatedEntitlement) {
      entitlements.push(entitlement)
    },
    /** The next `times` calls of `route` fail with `type` (e.g. 500 InternalServiceErrorException). */
    failNext(route: AwsRoute, status: number, type: string, times = 1) {
      faults.push({ route, status, type, remaining: times })
    },
    callsTo(route: AwsRoute) {
      return calls.filter((call) => call.target === route)
    },
    async listen(): Promise<{ url: string; close: () => Promise<void> }> {
      return new Promise((resolve) => {
        const server = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, (info: AddressInfo) => {
          resolve({ url: `http://127.0.0.1:${info.port}`, close: () => new Promise<void>((done) => server.close(() => done())) })
        })
      })
    },
  }
}

export type AwsEmulator = ReturnType<typeof createAwsEmulator>

/** Registration tokens are long base64 strings; each one here has "+" and "/" so tests exercise both. */
function registrationToken(): string {
  for (;;) {
    const token = randomBytes(120).toString('base64')
    if (token.includes('+') && token.includes('/')) return token
  }
}

// ---- Signature Version 4 (AWS General Reference, "Create a signed AWS API request") ------

type SignatureCheck =
  | { ok: true; accessKeyId: string; service: string; region: string }
  | { ok: false; code: string; message: string; accessKeyId: string | null; service: string | null; region: string | null }

const sha256 = (data: string) => createHash('sha256').update(data, 'utf8').digest('hex')
const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data, 'utf8').digest()

function uriEncode(text: string) {
  return encodeURIComponent(text).replace(/[!'()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`)
}

function verifySignature(request: Request, body: string, credentials: Map<string, Credential>): SignatureCheck {
  const header = request.headers.get('authorization') ?? ''
  const match = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(header)
  if (!match) return { ok: false, code: 'MissingAuthenticationTokenException', message: 'Missing or malformed Authorization header.', accessKeyId: null, service: null, region: null }
  const [, accessKeyId, date, region, service, signedHeaders, signature] = match as unknown as string[]
  const base = { accessKeyId: accessKeyId!, service: service!, region: region! }
  const credential = credentials.get(accessKeyId!)
  if (!credential || (credential.expiresAt !== undefined && credential.expiresAt < Date.now())) {
    return { ok: false, code: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.', ...base }
  }
  if (credential.sessionToken !== undefined && request.headers.get('x-amz-security-token') !== credential.sessionToken) {
    return { ok: false, code: 'UnrecognizedClientException', message: 'The security token included in the request is invalid.', ...base }
  }
  const amzDate = request.headers.get('x-amz-date') ?? ''
  const signedAt = Date.parse(amzDate.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z'))
  if (!amzDate.startsWith(date!) || Number.isNaN(signedAt) || Math.abs(Date.now() - signedAt) > 15 * 60 * 1000) {
    return { ok: false, code: 'InvalidSignatureException', message: 'Signature expired or X-Amz-Date is invalid.', ...base }
  }
  const names = signedHeaders!.split(';')
  if (!names.includes('host')) return { ok: false, code: 'InvalidSignatureException', message: 'The host header must be signed.', ...base }
  const url = new URL(request.url)
  const query = [...url.searchParams.entries()]
    .map(([k, v]) => [uriEncode(k), uriEncode(v)])
    .sort(([a, x], [b, y]) => (a! < b! ? -1 : a! > b! ? 1 : x! < y! ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join('&')
  const canonicalHeaders = names.map((name) => `${name}:${(request.headers.get(name) ?? '').trim().replace(/\s+/g, ' ')}\n`).join('')
  const payloadHash = request.headers.get('x-amz-content-sha256') ?? sha256(body)
  const canonicalRequest = [request.method, url.pathname || '/', query, canonicalHeaders, signedHeaders, payloadHash].join('\n')
  const scope = `${date}/${region}/${service}/aws4_request`
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonicalRequest)].join('\n')
  const key = hmac(hmac(hmac(hmac(`AWS4${credential.secretAccessKey}`, date!), region!), service!), 'aws4_request')
  const expected = createHmac('sha256', key).update(stringToSign, 'utf8').digest('hex')
  if (expected !== signature) {
    return { ok: false, code: 'InvalidSignatureException', message: 'The request signature we calculated does not match the signature you provided.', ...base }
  }
  return { ok: true, ...base }
}
