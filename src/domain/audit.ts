import type { Expression, SqlBool } from 'kysely'
import * as auditDb from '../db/audit'
import type { Statement } from '../db/batch'
import type { AuditLogRow, Executor } from '../db/schema'
import { type AppDeps, nowIso, nowMs } from '../deps'
import type { Caller } from './caller'
import { decodeCursor, encodeCursor } from './cursor'
import * as orgsDb from '../db/orgs'
import { notFound } from '../errors'
import { newId } from './ids'

/**
 * The audit log (contract §13): every change made through the API writes one entry, in the same
 * atomic write as the change (a D1 batch, or one transaction), so there is never a change without
 * its entry nor an entry for a change that did not happen.
 *
 * What counts: a settings write (PATCH org, PUT integration, PUT signup form) that changes no
 * field writes nothing, neither the row nor an entry: the log says what changed, and a client
 * re-sending its configuration every deploy would otherwise bury the real changes. An action
 * (create, rotate, retry, refresh, test ping) always writes its entry, with the fields it changed,
 * which may be none (a refresh the marketplace agreed with).
 */

export type AuditActor = { type: 'api_key' | 'admin' | 'console'; id: string | null; name: string | null }
/** Who asked and which request it was: what a route hands the domain for the entry. */
export interface AuditContext {
  actor: AuditActor
  requestId: string | null
}
export type AuditChanges = Record<string, { from: unknown; to: unknown }>

export interface AuditEntry {
  id: string
  orgId: string
  action: string
  actor: AuditActor
  targetType: string
  targetId: string | null
  requestId: string | null
  changes: AuditChanges
  createdAt: string
}

/**
 * Every action an entry is written with, and what it means to a reader (the console's filter
 * offers these; test/console-audit.test.ts checks that each `action:` written under src/domain
 * is here).
 */
export const AUDIT_ACTIONS: Readonly<Record<string, string>> = {
  'org.created': 'Org created',
  'org.updated': 'Org updated',
  'integration.created': 'Integration created',
  'integration.updated': 'Integration updated',
  'notification_secret.rotated': 'AWS notification secret rotated',
  'webhook_secret.rotated': 'Webhook secret rotated',
  'webhook.test_sent': 'Webhook test ping sent',
  'webhook_delivery.retried': 'Webhook delivery retried',
  'api_key.created': 'API key created',
  'api_key.rotated': 'API key rotated',
  'api_key.revoked': 'API key revoked',
  'signup_form.created': 'Signup form created',
  'signup_form.updated': 'Signup form updated',
  'entitlement.refreshed': 'Entitlement refreshed from the marketplace',
  'entitlement.cancelled': 'Entitlement cancelled at the marketplace (Suger-compatible API)',
}

/** What stands for a secret's value in `changes`: whether it changed is told, never what it was. */
export const REDACTED = '[redacted]'

export function actorOf(caller: Caller | undefined): AuditActor {
  if (caller?.kind === 'org') return { type: 'api_key', id: caller.keyId ?? null, name: caller.keyName ?? null }
  return { type: 'admin', id: null, name: null }
}

/** JSON with object keys sorted: the same settings sent in another key order are no change. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  )
}

/**
 * The fields that differ between `before` (null: the object is new) and `after`, as {from, to};
 * a missing field is null. `secret` fields are compared but both sides shown as REDACTED (null
 * when there was none).
 */
export function diffFields(before: Record<string, unknown> | null, after: Record<string, unknown>, secret: Record<string, unknown> = {}, secretBefore: Record<string, unknown> | null = null): AuditChanges {
  const changes: AuditChanges = {}
  for (const key of new Set([...Object.keys(before ?? {}), ...Object.keys(after)])) {
    const from = before?.[key] ?? null
    const to = after[key] ?? null
    if (canonical(from) !== canonical(to)) changes[key] = { from, to }
  }
  for (const key of new Set([...Object.keys(secretBefore ?? {}), ...Object.keys(secret)])) {
    const from = secretBefore?.[key] ?? null
    const to = secret[key] ?? null
    if (canonical(from) !== canonical(to)) changes[key] = { from: from === null ? null : REDACTED, to: to === null ? null : REDACTED }
  }
  return changes
}

/**
 * The statement that writes one audit entry: put it in the atomic write of the change it records
 * (src/db/batch.ts `atomically`, or a transaction's `run`). For every helper that adds a change,
 * the api-keys ones included: `auditStatement(deps, context, { orgId, action: 'api_key.created',
 * targetType: 'api_key', targetId: key.id, changes: { name: { from: null, to: key.name } } })`.
 */
export function auditStatement(
  deps: AppDeps,
  context: AuditContext,
  entry: { orgId: string; action: string; targetType: string; targetId: string | null; changes: AuditChanges; when?: Expression<SqlBool> },
  db: Executor = deps.db,
): Statement {
  return auditDb.insertAuditEntry(db, {
    id: newId('aud'),
    org_id: entry.orgId,
    action: entry.action,
    actor: JSON.stringify(context.actor),
    target_type: entry.targetType,
    target_id: entry.targetId,
    request_id: context.requestId,
    changes: JSON.stringify(entry.changes),
    created_at: nowIso(deps),
  }, entry.when)
}

export function toAuditEntry(row: AuditLogRow): AuditEntry {
  return {
    id: row.id,
    orgId: row.org_id,
    action: row.action,
    actor: JSON.parse(row.actor) as AuditActor,
    targetType: row.target_type,
    targetId: row.target_id,
    requestId: row.request_id,
    changes: JSON.parse(row.changes) as AuditChanges,
    createdAt: row.created_at,
  }
}

/** `GET …/audit-log`: a page, newest first. */
export async function listAuditLog(
  deps: AppDeps,
  orgId: string,
  query: { action?: string; limit: number; cursor?: string },
): Promise<{ items: AuditEntry[]; nextCursor: string | null }> {
  const before = query.cursor ? decodeCursor(query.cursor) : undefined
  // The org read straight from the data layer: orgs.ts writes entries, so importing it here would close a circle.
  if (!(await orgsDb.findOrg(deps.db, orgId))) throw notFound('Org')
  const page = await auditDb.listAuditEntries(deps.db, { orgId, action: query.action, limit: query.limit, before })
  const last = page.rows.at(-1)
  return { items: page.rows.map(toAuditEntry), nextCursor: page.hasMore && last ? encodeCursor(last) : null }
}

/** Entries deleted per statement, and statements per job run, when pruning. */
const PRUNE_BATCH = 500
const PRUNE_BATCHES = 20

/** The job's part: forgets entries older than AUDIT_RETENTION_DAYS, at most PRUNE_BATCH × PRUNE_BATCHES a run. */
export async function pruneAuditLog(deps: AppDeps): Promise<number> {
  const before = new Date(nowMs(deps) - deps.config.AUDIT_RETENTION_DAYS * 86_400_000).toISOString()
  let deleted = 0
  for (let batch = 0; batch < PRUNE_BATCHES; batch++) {
    const count = await auditDb.deleteAuditEntriesBefore(deps.db, before, PRUNE_BATCH)
    deleted += count
    if (count < PRUNE_BATCH) break
  }
  return deleted
}
