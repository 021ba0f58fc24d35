import type { Expression, Insertable, SqlBool } from 'kysely'
import { BoundedMap } from '../bounded-map'
import * as keysDb from '../db/api-keys'
import { findOrg } from '../db/orgs'
import type { ApiKeyRow, ApiKeysTable } from '../db/schema'
import { type AppDeps, nowIso, nowMs } from '../deps'
import { ApiError, notFound } from '../errors'
import type { ApiKey } from '../schemas'
import type { Caller, KeyScope } from './caller'
import { createHashCache, randomSecret, sha256Hex } from './crypto'
import { newId } from './ids'
import { type AuditContext, auditStatement } from './audit'

export const API_KEY_PREFIX = 'mbk_'
/** `mbk_` and the next 4 characters: enough to tell keys apart, far too little to guess the rest. */
const START_LENGTH = API_KEY_PREFIX.length + 4
const DEFAULT_GRACE_SECONDS = 86_400

/** A new secret and its row; only the hash and the `start` are kept. */
async function newKey(
  deps: AppDeps,
  orgId: string,
  fields: { name: string; scope: KeyScope; rateLimitPerMinute: number | null; expiresAt: string | null },
): Promise<{ key: string; row: Insertable<ApiKeysTable> }> {
  const key = `${API_KEY_PREFIX}${randomSecret(32)}`
  return {
    key,
    row: {
      id: newId('key'),
      org_id: orgId,
      key_hash: await sha256Hex(key),
      prefix: key.slice(0, START_LENGTH),
      name: fields.name,
      scope: fields.scope,
      expires_at: fields.expiresAt,
      rate_limit_per_minute: fields.rateLimitPerMinute,
      last_used_at: null,
      created_at: nowIso(deps),
      revoked_at: null,
    },
  }
}

/** The org's first key (POST /api/v1/orgs): `default`, full scope, no expiry, the default limit. */
export const newDefaultKey = (deps: AppDeps, orgId: string) => newKey(deps, orgId, { name: 'default', scope: 'full', rateLimitPerMinute: null, expiresAt: null })

export function toApiKey(row: ApiKeyRow, now: number): ApiKey {
  const status = row.revoked_at !== null ? 'REVOKED' : row.expires_at !== null && Date.parse(row.expires_at) <= now ? 'EXPIRED' : 'ACTIVE'
  return {
    id: row.id,
    name: row.name,
    start: row.prefix.slice(0, START_LENGTH),
    scope: row.scope,
    rateLimitPerMinute: row.rate_limit_per_minute === null ? null : Number(row.rate_limit_per_minute),
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    lastUsedAt: row.last_used_at,
    revokedAt: row.revoked_at,
    status,
  }
}

async function assertOrg(deps: AppDeps, orgId: string): Promise<void> {
  if (!(await findOrg(deps.db, orgId))) throw notFound('Org')
}

async function orgKey(deps: AppDeps, orgId: string, id: string): Promise<ApiKeyRow> {
  const row = await keysDb.findKey(deps.db, orgId, id)
  if (!row) throw notFound('API key')
  return row
}

export async function createApiKey(
  deps: AppDeps,
  orgId: string,
  input: { name: string; scope?: KeyScope; expiresAt?: string; rateLimitPerMinute?: number },
  audit: AuditContext,
): Promise<{ apiKey: ApiKey; key: string }> {
  const now = nowMs(deps)
  const expires = input.expiresAt === undefined ? null : Date.parse(input.expiresAt)
  if (expires !== null && !(expires > now)) throw new ApiError('VALIDATION_ERROR', 'expiresAt must be in the future.')
  await assertOrg(deps, orgId)
  const { key, row } = await newKey(deps, orgId, {
    name: input.name,
    scope: input.scope ?? 'full',
    rateLimitPerMinute: input.rateLimitPerMinute ?? null,
    expiresAt: expires === null ? null : new Date(expires).toISOString(),
  })
  const entry = auditStatement(deps, audit, {
    orgId,
    action: 'api_key.created',
    targetType: 'api_key',
    targetId: row.id,
    changes: {
      name: { from: null, to: row.name },
      scope: { from: null, to: row.scope },
      rateLimitPerMinute: { from: null, to: row.rate_limit_per_minute ?? null },
      expiresAt: { from: null, to: row.expires_at ?? null },
    },
  })
  return { apiKey: toApiKey(await keysDb.insertKey(deps.db, row, [entry]), now), key }
}

export async function listApiKeys(deps: AppDeps, orgId: string): Promise<ApiKey[]> {
  await assertOrg(deps, orgId)
  const now = nowMs(deps)
  return (await keysDb.listKeys(deps.db, orgId)).map((row) => toApiKey(row, now))
}

/** Revokes a key (the calling one included). Revoking it again answers it as it is, revoked at the first time. */
export async function revokeApiKey(deps: AppDeps, orgId: string, id: string, audit: AuditContext): Promise<ApiKey> {
  const before = await orgKey(deps, orgId, id)
  const now = nowIso(deps)
  // Written only by the call that revokes it: a second DELETE changes nothing and records nothing.
  const entry = (when: Expression<SqlBool>) =>
    auditStatement(deps, audit, { orgId, action: 'api_key.revoked', targetType: 'api_key', targetId: id, changes: { revokedAt: { from: null, to: now } }, when })
  const row = (await keysDb.revokeKey(deps.db, orgId, id, now, entry)) ?? before
  forget(deps, before.key_hash)
  return toApiKey(row, nowMs(deps))
}

/**
 * A new key with the old one's name, scope and limit; the old key keeps working for the grace
 * period (never longer than it would have anyway), so its users can switch without downtime.
 */
export async function rotateApiKey(deps: AppDeps, orgId: string, id: string, input: { gracePeriodSeconds?: number }, audit: AuditContext): Promise<{ apiKey: ApiKey; key: string }> {
  const old = await orgKey(deps, orgId, id)
  const now = nowMs(deps)
  if (toApiKey(old, now).status !== 'ACTIVE') throw new ApiError('CONFLICT', 'Only an active API key can be rotated.')
  const { key, row } = await newKey(deps, orgId, { name: old.name, scope: old.scope, rateLimitPerMinute: old.rate_limit_per_minute, expiresAt: null })
  const oldExpiresAt = new Date(now + (input.gracePeriodSeconds ?? DEFAULT_GRACE_SECONDS) * 1000).toISOString()
  const effective = old.expires_at !== null && old.expires_at < oldExpiresAt ? old.expires_at : oldExpiresAt
  const entry = auditStatement(deps, audit, {
    orgId,
    action: 'api_key.rotated',
    targetType: 'api_key',
    targetId: old.id,
    changes: { expiresAt: { from: old.expires_at, to: effective }, replacedBy: { from: null, to: row.id } },
  })
  await keysDb.rotateKey(deps.db, old, oldExpiresAt, row, [entry])
  forget(deps, old.key_hash)
  return { apiKey: toApiKey(await orgKey(deps, orgId, row.id), now), key }
}

/*
 * API key -> caller, remembered briefly: every API request authenticates. An entry lives at most
 * KEY_CACHE_MS (by the injected clock and by the monotonic one, whichever runs out first), so a
 * key revoked or rotated on another instance or isolate is refused within that time; the instance
 * that revokes or rotates forgets the key at once. Expiry is compared with the clock on every
 * request, not when the entry was made. One cache per AppDeps: per instance, never shared between
 * two brokers in one process.
 */
const KEY_CACHE_MS = 5_000
const KEY_CACHE_SIZE = 10_000
/** lastUsedAt is written at most this often per key (contract §13: it may lag up to a minute). */
const TOUCH_EVERY_MS = 60_000

type KeyCaller = Extract<Caller, { kind: 'org' }>
interface CachedKey {
  caller: KeyCaller
  expiresAt: number | null
  until: number
  monotonicUntil: number
  /** When this key's use was last recorded (as far as this instance knows). */
  usedAt: number
}

const caches = new WeakMap<AppDeps, BoundedMap<string, CachedKey>>()
const keyHash = createHashCache()

function cacheOf(deps: AppDeps): BoundedMap<string, CachedKey> {
  let cache = caches.get(deps)
  if (!cache) caches.set(deps, (cache = new BoundedMap(KEY_CACHE_SIZE)))
  return cache
}

function forget(deps: AppDeps, hash: string): void {
  caches.get(deps)?.delete(hash)
}

/** An entry made less than KEY_CACHE_MS ago, by the injected clock and by the monotonic one. */
const fresh = (entry: CachedKey | undefined, now: number): entry is CachedKey => entry !== undefined && entry.until > now && entry.monotonicUntil > performance.now()

/** The key's caller if it may be used at `now` (not expired), recording its use at most once a minute. */
function admit(deps: AppDeps, entry: CachedKey, now: number, background?: (work: Promise<unknown>) => void): KeyCaller | null {
  if (entry.expiresAt !== null && entry.expiresAt <= now) return null
  if (entry.usedAt <= now - TOUCH_EVERY_MS) {
    entry.usedAt = now
    const keyId = entry.caller.keyId
    const touching = keysDb.touchKey(deps.db, keyId, new Date(now).toISOString(), new Date(now - TOUCH_EVERY_MS).toISOString()).catch((error: unknown) => {
      deps.logger.error('API key use not recorded (lastUsedAt)', { keyId, error: error instanceof Error ? error.message : String(error) })
    })
    background?.(touching)
  }
  return entry.caller
}

/**
 * authenticateKey without waiting: the key's caller (or null, expired) when this instance
 * checked it within KEY_CACHE_MS, else undefined (the database must be asked). Every API
 * request passes here first, so a remembered key costs no promise.
 */
export function rememberedKey(deps: AppDeps, bearer: string, background?: (work: Promise<unknown>) => void, now = nowMs(deps)): KeyCaller | null | undefined {
  const hash = keyHash.known(bearer)
  const entry = hash === undefined ? undefined : caches.get(deps)?.get(hash)
  return fresh(entry, now) ? admit(deps, entry, now, background) : undefined
}

/**
 * The org and key a bearer `mbk_…` key stands for, or null (unknown, revoked or expired).
 * Recording the use (at most once a minute) is handed to `background` so the answer does not
 * wait for it (Workers: waitUntil); without one it runs on after the answer. Its failure is logged.
 */
export async function authenticateKey(deps: AppDeps, bearer: string, background?: (work: Promise<unknown>) => void): Promise<KeyCaller | null> {
  const now = nowMs(deps)
  const remembered = rememberedKey(deps, bearer, background, now)
  if (remembered !== undefined) return remembered
  const hash = await keyHash(bearer)
  const cache = cacheOf(deps)
  // Its hash had left the (smaller) hash cache while the key itself is still remembered.
  const held = cache.get(hash)
  if (fresh(held, now)) return admit(deps, held, now, background)
  const row = await keysDb.findKeyByHash(deps.db, hash)
  if (!row) {
    cache.delete(hash)
    return null
  }
  const entry: CachedKey = {
    caller: {
      kind: 'org',
      orgId: row.org_id,
      keyId: row.id,
      keyName: row.name,
      scope: row.scope,
      rateLimitPerMinute: row.rate_limit_per_minute === null ? null : Number(row.rate_limit_per_minute),
    },
    expiresAt: row.expires_at === null ? null : Date.parse(row.expires_at),
    until: now + KEY_CACHE_MS,
    monotonicUntil: performance.now() + KEY_CACHE_MS,
    usedAt: row.last_used_at === null ? Number.NEGATIVE_INFINITY : Date.parse(row.last_used_at),
  }
  cache.set(hash, entry)
  return admit(deps, entry, now, background)
}
