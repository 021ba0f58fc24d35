import { importX509 } from 'jose'
import { NotificationFormatError } from '../errors'
import type { FetchLike } from '../shared/http'
import type { ProviderLogger } from '../types'
import { parseJsonObject } from '../shared/notification-body'
import { isUnderTrustedPrefix, parseHttpUrl } from '../shared/trusted-url'

/**
 * Amazon SNS message verification, as AWS documents it ("Verifying the signatures of Amazon SNS
 * messages"), with WebCrypto so it runs on Node and workerd alike:
 * - the certificate comes only from `SigningCertURL`, which must be https on
 *   `sns.<region>.amazonaws.com` (or lie under AWS_SNS_TRUSTED_CERT_PREFIX, for tests and
 *   private mirrors: the same origin and a path below the prefix's, compared as parsed URLs);
 *   the same rule holds for a SubscriptionConfirmation's `SubscribeURL`;
 * - the signed string is `key\nvalue\n` for the documented keys in order (Subject only when
 *   present); SignatureVersion 1 is SHA1withRSA, 2 SHA256withRSA.
 */

export interface SnsMessage {
  Type: 'Notification' | 'SubscriptionConfirmation' | 'UnsubscribeConfirmation'
  MessageId: string
  TopicArn: string
  Message: string
  Timestamp: string
  SignatureVersion: string
  Signature: string
  SigningCertURL: string
  Subject?: string
  Token?: string
  SubscribeURL?: string
  UnsubscribeURL?: string
}

const NOTIFICATION_KEYS = ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type'] as const
const CONFIRMATION_KEYS = ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'] as const
const MAX_CERTS = 50

/** The marketplace's two topics (`aws-mp-subscription-notification-<code>`, `aws-mp-entitlement-notification-<code>`). */
export const MARKETPLACE_TOPIC = /^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:aws-mp-(subscription|entitlement)-notification-[A-Za-z0-9_-]+$/

const text = (value: unknown) => (typeof value === 'string' ? value : null)

/** Parses an SNS delivery; anything that is not one is a format error (400), never a crash. */
export function parseSnsMessage(body: string): SnsMessage {
  const message = parseJsonObject(body)
  const type = text(message.Type)
  if (type !== 'Notification' && type !== 'SubscriptionConfirmation' && type !== 'UnsubscribeConfirmation') {
    throw new NotificationFormatError('not an SNS message (Type)')
  }
  for (const key of ['MessageId', 'TopicArn', 'Message', 'Timestamp', 'SignatureVersion', 'Signature', 'SigningCertURL'] as const) {
    if (text(message[key]) === null) throw new NotificationFormatError(`SNS message without ${key}`)
  }
  if (type !== 'Notification' && (text(message.Token) === null || text(message.SubscribeURL) === null)) {
    throw new NotificationFormatError('SNS confirmation without Token or SubscribeURL')
  }
  if (message.Subject !== undefined && text(message.Subject) === null) throw new NotificationFormatError('SNS Subject is not a string')
  return message as unknown as SnsMessage
}

/** The string SNS signed for this message. */
export function snsStringToSign(message: SnsMessage): string {
  const keys = message.Type === 'Notification' ? NOTIFICATION_KEYS : CONFIRMATION_KEYS
  let signed = ''
  for (const key of keys) {
    const value = (message as unknown as Record<string, unknown>)[key]
    if (key === 'Subject' && value === undefined) continue
    signed += `${key}\n${String(value)}\n`
  }
  return signed
}

/** SNS's own endpoints: `sns.<region>.amazonaws.com` (`.com.cn` in the China regions). */
const SNS_HOST = /^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$/

/** Whether a URL SNS gave us (certificate, SubscribeURL) may be fetched. */
export function isTrustedSnsUrl(value: string, trustedPrefix: string | undefined): boolean {
  if (trustedPrefix) return isUnderTrustedPrefix(value, trustedPrefix)
  const url = parseHttpUrl(value)
  return url !== null && url.protocol === 'https:' && SNS_HOST.test(url.hostname) && url.port === ''
}

function base64Bytes(value: string): Uint8Array<ArrayBuffer> | null {
  try {
    const binary = atob(value)
    const bytes = new Uint8Array(binary.length)
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
    return bytes
  } catch {
    return null
  }
}

export function createSnsVerifier(options: { trustedCertPrefix?: string; fetch?: FetchLike; timeoutMs?: number }) {
  const fetchFn = options.fetch ?? ((input, init) => fetch(input, init))
  // The certificate's public key as SPKI, by URL (SNS rotates certificates rarely).
  const keys = new Map<string, Promise<ArrayBuffer>>()

  async function spkiOf(url: string): Promise<ArrayBuffer> {
    let key = keys.get(url)
    if (!key) {
      key = (async () => {
        // Redirects are not followed (workerd has no redirect: 'error'): a 3xx is a failure like any non-2xx.
        const response = await fetchFn(url, { signal: AbortSignal.timeout(options.timeoutMs ?? 5_000), redirect: 'manual' })
        if (!response.ok) throw new Error(`certificate fetch answered ${response.status}`)
        const pem = (await response.text()).trim()
        const publicKey = await importX509(pem, 'RS256', { extractable: true })
        return crypto.subtle.exportKey('spki', publicKey as CryptoKey)
      })()
      if (keys.size >= MAX_CERTS) keys.delete(keys.keys().next().value!)
      keys.set(url, key)
      key.catch(() => keys.delete(url))
    }
    return key
  }

  /** True when the message is SNS's and signed by it; false (and a log line saying why) otherwise. */
  return async function verify(message: SnsMessage, log: ProviderLogger): Promise<boolean> {
    const refuse = (reason: string) => {
      log.warn('sns message refused', { reason })
      return false
    }
    if (!isTrustedSnsUrl(message.SigningCertURL, options.trustedCertPrefix)) return refuse('SigningCertURL is not an SNS certificate URL')
    if (message.SubscribeURL !== undefined && !isTrustedSnsUrl(message.SubscribeURL, options.trustedCertPrefix)) return refuse('SubscribeURL is not an SNS URL')
    const hash = message.SignatureVersion === '1' ? 'SHA-1' : message.SignatureVersion === '2' ? 'SHA-256' : null
    if (!hash) return refuse('unknown SignatureVersion')
    const signature = base64Bytes(message.Signature)
    if (!signature) return refuse('Signature is not base64')
    let spki: ArrayBuffer
    try {
      spki = await spkiOf(message.SigningCertURL)
    } catch (error) {
      return refuse(`certificate unavailable: ${error instanceof Error ? error.message : 'error'}`)
    }
    const key = await crypto.subtle.importKey('spki', spki, { name: 'RSASSA-PKCS1-v1_5', hash }, false, ['verify'])
    const valid = await crypto.subtle.verify('RSASSA-PKCS1-v1_5', key, signature, new TextEncoder().encode(snsStringToSign(message)))
    return valid || refuse('bad signature')
  }
}
