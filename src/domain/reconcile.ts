import { ProviderError } from '../../providers/errors'
import { isPartner } from '../../providers/types'
import * as entitlementsDb from '../db/entitlements'
import * as notificationsDb from '../db/notifications'
import type { EntitlementRow } from '../db/schema'
import { type AppDeps, nowIso, nowMs } from '../deps'
import { ApiError, notFound } from '../errors'
import type { Logger } from '../logger'
import { type AuditContext, auditStatement, diffFields } from './audit'
import { getEntitlementJson, purchaseOf } from './entitlements'
import { loadProviderIntegration } from './integrations'
import { applyMarketplaceState } from './lifecycle'

/** Every entitlement that is not cancelled is re-read from its marketplace at least this often. */
const RECONCILE_EVERY_MS = 24 * 3600 * 1000
/** After a failed re-read, the next try comes this long later (not on every job run). */
const RETRY_AFTER_MS = 3600 * 1000

/** A re-read taken by an instance that died is due again after this (§12: taken over within 2 minutes). */
const RECONCILE_LEASE_MS = 90_000
/** Re-reads per job run: a slow trickle that stays within every marketplace's rate limits. */
const JOB_BATCH = 20

/**
 * Re-reads one entitlement from its marketplace and applies what differs, like a notification
 * would (source "marketplace", `data.reconciled: true`). Marketplaces change things without
 * telling us: Azure sends no webhook for a publisher's own API changes, and a lost message is
 * only noticed this way.
 */
async function reconcile(deps: AppDeps, row: EntitlementRow, log: Logger, audit?: AuditContext): Promise<EntitlementRow> {
  if (!isPartner(row.partner)) return row
  const integration = await loadProviderIntegration(deps, row.org_id, row.partner)
  if (!integration) return row
  const current = await deps.providers[row.partner].refresh(integration, purchaseOf(row), { log })
  // A refresh asked through the API is audited with what it changed (maybe nothing); the job's own re-reads are not changes made through the API.
  const also = audit
    ? (before: EntitlementRow, after: EntitlementRow) => [
        auditStatement(deps, audit, { orgId: row.org_id, action: 'entitlement.refreshed', targetType: 'entitlement', targetId: row.id, changes: diffFields(auditedFields(before), auditedFields(after)) }),
      ]
    : undefined
  const { row: updated, event } = await applyMarketplaceState(deps, row, current, { action: 'reconcile', reconciled: true }, also)
  await notificationsDb.markReconciled(deps.db, row.id, nowIso(deps))
  if (event) log.info('reconciliation changed an entitlement', { entitlementId: row.id, event })
  return updated
}

/** What an entitlement refresh's audit entry compares (the marketplace's raw detail, `info`, is left out). */
const auditedFields = (row: EntitlementRow) => ({ status: row.status, planId: row.plan_id, quantity: row.quantity, term: JSON.parse(row.term) as unknown, externalId: row.external_id })

/** `POST /api/v1/orgs/{orgId}/entitlements/{id}/refresh`: reconcile now, answer the Entitlement as GET shows it. */
export async function refreshEntitlement(deps: AppDeps, orgId: string, id: string, log: Logger, audit: AuditContext): Promise<string> {
  const row = await entitlementsDb.findEntitlement(deps.db, orgId, id)
  if (!row) throw notFound('Entitlement')
  try {
    await reconcile(deps, row, log.child({ orgId, partner: row.partner, entitlementId: id }), audit)
  } catch (error) {
    if (error instanceof ProviderError) {
      throw new ApiError('UPSTREAM_ERROR', `The ${row.partner} marketplace could not be asked now; try again later.`)
    }
    throw error
  }
  return getEntitlementJson(deps, orgId, id)
}

/** The job's part: the entitlements due for their daily re-read, a batch per run. */
export async function reconcileDue(deps: AppDeps, log: Logger): Promise<number> {
  const now = nowMs(deps)
  const due = await notificationsDb.dueReconciliations(deps.db, new Date(now - RECONCILE_EVERY_MS).toISOString(), JOB_BATCH)
  for (const { id, org_id, checked_at } of due) {
    const jobLog = log.child({ job: 'reconcile', orgId: org_id, entitlementId: id })
    // Another instance that read the same due row may have taken it: then it is theirs to re-read.
    if (!(await notificationsDb.claimReconciliation(deps.db, id, checked_at, new Date(now - RECONCILE_EVERY_MS + RECONCILE_LEASE_MS).toISOString()))) continue
    const row = await entitlementsDb.findEntitlement(deps.db, org_id, id)
    if (!row) continue
    try {
      await reconcile(deps, row, jobLog)
    } catch (error) {
      jobLog.warn('reconciliation failed; retried later', { error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) })
      await notificationsDb.markReconciled(deps.db, id, new Date(now - RECONCILE_EVERY_MS + RETRY_AFTER_MS).toISOString())
    }
  }
  return due.length
}
