import { BoundedMap } from '../bounded-map'
import * as orgsDb from '../db/orgs'
import type { OrgRow } from '../db/schema'
import { type AppDeps, nowIso, nowMs } from '../deps'
import { ApiError, notFound } from '../errors'
import { type AuditContext, REDACTED, auditStatement } from './audit'
import { randomBytes } from './crypto'

/**
 * How webhooks to the ISV (contract §8) are signed, and their secrets kept, per Standard
 * Webhooks: `webhook-id` (the delivery's msg_ id, the same on every attempt), `webhook-timestamp` (unix seconds), `webhook-signature`
 * `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` keyed with the secret's bytes; during the
 * 24 h after a rotation the old secret's signature goes along, space-separated.
 */

const SECRET_PREFIX = 'whsec_'
/** After a rotation the old secret keeps signing this long, so receivers can switch over. */
const PREVIOUS_SECRET_MS = 24 * 3600 * 1000
const sealContext = (orgId: string) => `webhook:${orgId}`

function base64(bytes: Uint8Array): string {
  let binary = ''
  for (const byte of bytes) binary += String.fromCharCode(byte)
  return btoa(binary)
}

/** `whsec_<base64 of 32 random bytes>`: what Standard Webhooks libraries take as the key. */
export function newWebhookSecret(): string {
  return `${SECRET_PREFIX}${base64(randomBytes(32))}`
}

export async function sealWebhookSecret(deps: AppDeps, orgId: string, secret: string): Promise<string> {
  return deps.secrets.seal(secret, sealContext(orgId))
}

function secretBytes(secret: string): Uint8Array<ArrayBuffer> {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret
  const binary = atob(encoded)
  return Uint8Array.from(binary, (ch) => ch.charCodeAt(0))
}

const hmacKey = (secret: string) => crypto.subtle.importKey('raw', secretBytes(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])

/** The `v1,<signature>` of one secret's key over `{id}.{timestamp}.{body}`. */
async function signWith(key: CryptoKey, id: string, timestamp: number, body: string): Promise<string> {
  const mac = await crypto.subtle.sign('HMAC', key, new TextEncoder().encode(`${id}.${timestamp}.${body}`))
  return `v1,${base64(new Uint8Array(mac))}`
}

/**
 * HMAC keys by org and sealed secret, per key holder: a delivery does not decrypt the secret and
 * import the key again (most of a send's CPU besides the request itself). A rotated secret is new
 * sealed text, so it is never served from here stale.
 */
const keysByBox = new WeakMap<object, BoundedMap<string, Promise<CryptoKey>>>()

function signingKey(deps: AppDeps, orgId: string, sealed: string): Promise<CryptoKey> {
  let keys = keysByBox.get(deps.secrets)
  if (!keys) {
    keys = new BoundedMap(1000)
    keysByBox.set(deps.secrets, keys)
  }
  const cacheKey = `${orgId}\n${sealed}`
  let key = keys.get(cacheKey)
  if (!key) {
    key = deps.secrets.open(sealed, sealContext(orgId)).then(hmacKey)
    key.catch(() => keys.delete(cacheKey))
    keys.set(cacheKey, key)
  }
  return key
}

/** `POST /api/v1/orgs/{orgId}/webhook-secret`: a new secret, shown once; the old one signs along for 24 h. */
export async function rotateWebhookSecret(deps: AppDeps, orgId: string, audit: AuditContext): Promise<string> {
  const org = await orgsDb.findOrg(deps.db, orgId)
  if (!org) throw notFound('Org')
  if (!org.webhook_url) throw new ApiError('VALIDATION_ERROR', 'The org has no webhookUrl; set one first (PATCH /api/v1/orgs/{orgId}).')
  const secret = newWebhookSecret()
  await orgsDb.updateWebhookSecret(deps.db, orgId, {
    webhook_secret: await sealWebhookSecret(deps, orgId, secret),
    webhook_secret_previous: org.webhook_secret,
    webhook_secret_previous_until: org.webhook_secret ? new Date(nowMs(deps) + PREVIOUS_SECRET_MS).toISOString() : null,
    updated_at: nowIso(deps),
  }, [
    auditStatement(deps, audit, {
      orgId,
      action: 'webhook_secret.rotated',
      targetType: 'org',
      targetId: orgId,
      changes: { webhookSecret: { from: org.webhook_secret ? REDACTED : null, to: REDACTED } },
    }),
  ])
  return secret
}

/** The `webhook-signature` header: the current secret's signature, and the previous one's during its 24 h. */
export async function signatures(deps: AppDeps, org: OrgRow, id: string, timestamp: number, body: string): Promise<string> {
  const sealed = [org.webhook_secret!]
  if (org.webhook_secret_previous && org.webhook_secret_previous_until && org.webhook_secret_previous_until > nowIso(deps)) sealed.push(org.webhook_secret_previous)
  return (await Promise.all(sealed.map(async (secret) => signWith(await signingKey(deps, org.id, secret), id, timestamp, body)))).join(' ')
}
