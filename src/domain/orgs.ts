import * as orgsDb from '../db/orgs'
import type { OrgRow } from '../db/schema'
import { type AppDeps, nowIso } from '../deps'
import { ApiError, notFound } from '../errors'
import type { Org } from '../schemas'
import { type AuditContext, auditStatement, diffFields } from './audit'
import type { Caller } from './caller'
import { API_KEY_PREFIX, authenticateKey, newDefaultKey, rememberedKey } from './api-keys'
import { timingSafeEqual } from './crypto'
import { decodeCursor, encodeCursor } from './cursor'
import { newId } from './ids'
import { newWebhookSecret, sealWebhookSecret } from './webhook-signing'

/**
 * Where buyers are sent: an absolute https URL (plain http only for localhost/127.0.0.1,
 * for development), with no credentials in it. Anything else — `javascript:`, `data:`,
 * http to another host, `user:pass@` — would let a redirect leak or execute.
 */
export function checkRedirectUrl(field: string, value: string): string {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new ApiError('VALIDATION_ERROR', `${field} must be an absolute URL.`)
  }
  const local = url.hostname === 'localhost' || url.hostname === '127.0.0.1'
  if (!(url.protocol === 'https:' || (url.protocol === 'http:' && local))) {
    throw new ApiError('VALIDATION_ERROR', `${field} must be an https: URL (http: is allowed only for localhost and 127.0.0.1).`)
  }
  if (url.username || url.password) {
    throw new ApiError('VALIDATION_ERROR', `${field} must not contain credentials.`)
  }
  if (!url.hostname) throw new ApiError('VALIDATION_ERROR', `${field} must name a host.`)
  return url.toString()
}

export function toOrg(row: OrgRow): Org {
  return {
    id: row.id,
    name: row.name,
    fulfillmentUrl: row.fulfillment_url,
    webhookUrl: row.webhook_url,
    createdAt: row.created_at,
  }
}

export async function createOrg(
  deps: AppDeps,
  input: { name: string; fulfillmentUrl: string; webhookUrl?: string | null },
  audit: AuditContext,
): Promise<{ org: Org; apiKey: string; webhookSecret?: string }> {
  const fulfillmentUrl = checkRedirectUrl('fulfillmentUrl', input.fulfillmentUrl)
  const webhookUrl = input.webhookUrl ? checkRedirectUrl('webhookUrl', input.webhookUrl) : null
  const now = nowIso(deps)
  const orgId = newId('org')
  const { key: apiKey, row: keyRow } = await newDefaultKey(deps, orgId)
  // The webhook signing secret, when there is a webhookUrl: sealed at rest, shown only in this answer.
  const webhookSecret = webhookUrl ? newWebhookSecret() : undefined
  const row = await orgsDb.insertOrgWithKey(
    deps.db,
    {
      id: orgId,
      name: input.name,
      fulfillment_url: fulfillmentUrl,
      webhook_url: webhookUrl,
      webhook_secret: webhookSecret ? await sealWebhookSecret(deps, orgId, webhookSecret) : null,
      created_at: now,
      updated_at: now,
    },
    keyRow,
    [
      auditStatement(deps, audit, {
        orgId,
        action: 'org.created',
        targetType: 'org',
        targetId: orgId,
        changes: diffFields(null, { name: input.name, fulfillmentUrl, webhookUrl }, webhookSecret ? { webhookSecret } : {}),
      }),
    ],
  )
  return { org: toOrg(row), apiKey, ...(webhookSecret ? { webhookSecret } : {}) }
}

export async function getOrg(deps: AppDeps, orgId: string): Promise<Org> {
  const row = await orgsDb.findOrg(deps.db, orgId)
  if (!row) throw notFound('Org')
  return toOrg(row)
}

/** Every org, newest first, a page at a time (the operator's org list in the console). */
export async function listOrgs(deps: AppDeps, query: { limit: number; cursor?: string }): Promise<{ items: Org[]; nextCursor: string | null }> {
  const { rows, hasMore } = await orgsDb.listOrgs(deps.db, { limit: query.limit, before: query.cursor ? decodeCursor(query.cursor) : undefined })
  const last = rows.at(-1)
  return { items: rows.map(toOrg), nextCursor: hasMore && last ? encodeCursor(last) : null }
}

export async function updateOrg(
  deps: AppDeps,
  orgId: string,
  patch: { name?: string; fulfillmentUrl?: string; webhookUrl?: string | null },
  audit: AuditContext,
): Promise<Org & { webhookSecret?: string }> {
  const webhookUrl = patch.webhookUrl === undefined || patch.webhookUrl === null ? patch.webhookUrl : checkRedirectUrl('webhookUrl', patch.webhookUrl)
  const before = await orgsDb.findOrg(deps.db, orgId)
  if (!before) throw notFound('Org')
  // A webhookUrl set for the first time brings the org its signing secret, shown only in this answer.
  const webhookSecret = webhookUrl && !before.webhook_secret ? newWebhookSecret() : undefined
  const set = {
    ...(patch.name !== undefined ? { name: patch.name } : {}),
    ...(patch.fulfillmentUrl !== undefined ? { fulfillment_url: checkRedirectUrl('fulfillmentUrl', patch.fulfillmentUrl) } : {}),
    ...(webhookUrl !== undefined ? { webhook_url: webhookUrl } : {}),
  }
  const old = toOrg(before)
  const changes = diffFields(
    { name: old.name, fulfillmentUrl: old.fulfillmentUrl, webhookUrl: old.webhookUrl },
    { name: set.name ?? old.name, fulfillmentUrl: set.fulfillment_url ?? old.fulfillmentUrl, webhookUrl: set.webhook_url === undefined ? old.webhookUrl : set.webhook_url },
    webhookSecret ? { webhookSecret } : {},
  )
  // Nothing differs: nothing is written, and no audit entry (see domain/audit.ts).
  if (Object.keys(changes).length === 0) return old
  const row = await orgsDb.updateOrg(
    deps.db,
    orgId,
    { ...set, ...(webhookSecret ? { webhook_secret: await sealWebhookSecret(deps, orgId, webhookSecret) } : {}), updated_at: nowIso(deps) },
    [auditStatement(deps, audit, { orgId, action: 'org.updated', targetType: 'org', targetId: orgId, changes })],
  )
  if (!row) throw notFound('Org')
  return { ...toOrg(row), ...(webhookSecret ? { webhookSecret } : {}) }
}

/**
 * Who a bearer token belongs to: the operator (ADMIN_TOKEN) or one org (one of its API keys).
 * `background` takes work that must not delay the answer (see authenticateKey).
 */
export async function authenticate(deps: AppDeps, bearer: string | null, background?: (work: Promise<unknown>) => void): Promise<Caller | null> {
  const known = knownCaller(deps, bearer, background)
  return known !== undefined ? known : authenticateKey(deps, bearer!, background)
}

/**
 * authenticate without waiting, for the API's every request: the caller, or null (refused),
 * when that needs nothing but memory; undefined when an API key must be hashed or looked up.
 */
export function knownCaller(deps: AppDeps, bearer: string | null, background?: (work: Promise<unknown>) => void, now?: number): Caller | null | undefined {
  if (!bearer || bearer.length > 512) return null
  if (timingSafeEqual(bearer, deps.config.ADMIN_TOKEN)) return { kind: 'admin' }
  if (!bearer.startsWith(API_KEY_PREFIX)) return null
  return rememberedKey(deps, bearer, background, now)
}
