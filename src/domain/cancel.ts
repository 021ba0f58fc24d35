import { ProviderError, PurchaseRefusedError } from '../../providers/errors'
import { isPartner } from '../../providers/types'
import * as entitlementsDb from '../db/entitlements'
import type { EntitlementRow } from '../db/schema'
import type { AppDeps } from '../deps'
import { ApiError, notFound } from '../errors'
import type { Logger } from '../logger'
import { type AuditContext, auditStatement, diffFields } from './audit'
import { purchaseOf } from './entitlements'
import { loadProviderIntegration } from './integrations'
import { applyMarketplaceState } from './lifecycle'

/**
 * A seller's cancel of an entitlement at its marketplace (contract §15, `POST …/cancel` of the
 * Suger-compatible API): only Azure lets a publisher unsubscribe a buyer (AWS and Google buyers
 * cancel in their marketplace). Microsoft is asked first; the entitlement then follows what it
 * answered through the normal change path (its CANCEL event and webhook, source "api"), with one
 * audit entry, `entitlement.cancelled`, in the same write. While Microsoft is still at it the
 * entitlement is PENDING_CANCEL; its Unsubscribe webhook or the reconciliation brings the end.
 * An entitlement that is CANCELLED already is answered as it is, without a call.
 */
export async function cancelEntitlement(deps: AppDeps, orgId: string, id: string, log: Logger, audit: AuditContext): Promise<EntitlementRow> {
  const row = await entitlementsDb.findEntitlement(deps.db, orgId, id)
  if (!row || !isPartner(row.partner)) throw notFound('Entitlement')
  const provider = deps.providers[row.partner]
  if (!provider.cancel) {
    throw new ApiError('VALIDATION_ERROR', `Only Azure entitlements can be cancelled by the seller; a ${row.partner} buyer cancels in the marketplace.`)
  }
  if (row.status === 'CANCELLED') return row
  const integration = await loadProviderIntegration(deps, orgId, row.partner)
  if (!integration) throw new ApiError('VALIDATION_ERROR', `The org has no ${row.partner} integration to cancel with.`)
  const providerLog = log.child({ orgId, partner: row.partner, entitlementId: id })
  let outcome
  try {
    outcome = await provider.cancel(integration, purchaseOf(row), { log: providerLog })
  } catch (error) {
    if (error instanceof PurchaseRefusedError) throw new ApiError('VALIDATION_ERROR', `${error.message}.`)
    if (error instanceof ProviderError) throw new ApiError('UPSTREAM_ERROR', `The ${row.partner} marketplace could not be asked now; try again later.`)
    throw error
  }
  const also = (before: EntitlementRow, after: EntitlementRow) => [
    auditStatement(deps, audit, {
      orgId,
      action: 'entitlement.cancelled',
      targetType: 'entitlement',
      targetId: id,
      changes: diffFields({ status: before.status }, { status: after.status }),
    }),
  ]
  const data = { action: 'cancel', ...(outcome.operationId ? { operationId: outcome.operationId } : {}) }
  const { row: updated, event } = await applyMarketplaceState(deps, row, outcome.purchase, data, also, 'api')
  providerLog.info('entitlement cancelled at the marketplace', { status: updated.status, event })
  return updated
}
