import { ConfigurationError, InvalidTokenError, UpstreamError } from '../../providers/errors'
import {
  type EntitlementStatus,
  type LandingInput,
  type NormalizedPurchase,
  type Partner,
  isPartner,
} from '../../providers/types'
import * as entitlementsDb from '../db/entitlements'
import * as orgsDb from '../db/orgs'
import type { EntitlementRow } from '../db/schema'
import { type AppDeps, nowIso } from '../deps'
import type { Logger } from '../logger'
import type { EventType } from '../schemas'
import { sha256Hex } from './crypto'
import { purchaseColumns, recordEvent } from './entitlements'
import { newId } from './ids'
import { loadProviderIntegration } from './integrations'

/** How long a token -> entitlement mapping answers refreshes (Azure tokens live about 24 h). */
const LANDING_TOKEN_TTL_MS = 24 * 3600 * 1000

export type LandingFailure =
  /** Unknown org, partner, integration, or a partnerId that does not match. */
  | 'not-found'
  | 'missing-token'
  | 'invalid-token'
  /** The ISV's integration is misconfigured: the buyer is asked to try later. */
  | 'configuration'
  /** The marketplace could not be reached after retries. */
  | 'upstream'
  /** The purchase was stored but the marketplace did not confirm activation yet. */
  | 'activation-pending'

export type LandingOutcome =
  | { kind: 'redirect'; location: string; entitlementId: string; replay: boolean }
  | { kind: 'failure'; reason: LandingFailure; partner: Partner | null }

export interface LandingRequest {
  partner: string
  orgId: string
  partnerId: string | null
  input: LandingInput
  log: Logger
}

/** Adds the three redirect parameters to the ISV's URL, keeping its own query and fragment. */
export function fulfillmentLocation(fulfillmentUrl: string, entitlement: Pick<EntitlementRow, 'id' | 'partner' | 'offer_type'>) {
  const url = new URL(fulfillmentUrl)
  url.searchParams.set('sugerEntitlementId', entitlement.id)
  url.searchParams.set('partner', entitlement.partner)
  url.searchParams.set('offerType', entitlement.offer_type)
  return url.toString()
}

/** The event a change of marketplace status stands for, if any. */
function statusEvent(from: EntitlementStatus, to: EntitlementStatus): EventType | null {
  if (from === to) return null
  switch (to) {
    case 'ACTIVE':
      return from === 'SUSPENDED' ? 'REINSTATE' : 'ACTIVATE'
    case 'SUSPENDED':
      return 'SUSPEND'
    case 'PENDING_CANCEL':
      return 'PENDING_CANCEL'
    case 'CANCELLED':
      return 'CANCEL'
    default:
      return 'UPDATE'
  }
}

/**
 * The landing's orchestration: claim the token -> provider.resolve -> store the purchase ->
 * provider.activate -> remember the token -> redirect. One instance per app, because it
 * keeps the in-flight map that makes a double click in one process share one marketplace
 * sequence (the database's unique keys cover the rest).
 */
export function createLandingService(deps: AppDeps) {
  const inflight = new Map<string, Promise<LandingOutcome>>()

  async function land(request: LandingRequest): Promise<LandingOutcome> {
    const fail = (reason: LandingFailure, partner: Partner | null = null): LandingOutcome => ({ kind: 'failure', reason, partner })
    if (!isPartner(request.partner)) return fail('not-found')
    const partner = request.partner
    const org = await orgsDb.findOrg(deps.db, request.orgId)
    if (!org) return fail('not-found', partner)
    const provider = deps.providers[partner]
    const integration = await loadProviderIntegration(deps, org.id, partner)
    if (!integration || (request.partnerId !== null && request.partnerId !== integration.partnerId)) {
      return fail('not-found', partner)
    }

    const token = provider.tokenFrom(request.input)
    if (token === null || token === '') return fail('missing-token', partner)
    if (!provider.isPlausibleToken(token)) return fail('invalid-token', partner)

    // Only a hash of the token is ever stored or used as a key.
    const tokenHash = await sha256Hex(`${partner}\n${org.id}\n${token}`)
    const known = await entitlementsDb.findLandingToken(deps.db, tokenHash, nowIso(deps))
    if (known) {
      return { kind: 'redirect', location: fulfillmentLocation(org.fulfillment_url, known), entitlementId: known.id, replay: true }
    }

    let pending = inflight.get(tokenHash)
    if (!pending) {
      pending = fulfil().finally(() => inflight.delete(tokenHash))
      inflight.set(tokenHash, pending)
    }
    return pending

    async function fulfil(): Promise<LandingOutcome> {
      const log = request.log.child({ orgId: org!.id, partner })
      const ctx = { log }
      try {
        const purchase = await provider.resolve(integration!, token!, ctx)
        let entitlement = await storePurchase(purchase)
        if (purchase.needsActivation) {
          try {
            const activated = await provider.activate(integration!, purchase, ctx)
            entitlement = await applyActivation(entitlement, activated)
          } catch (error) {
            // The purchase is stored as PENDING_START: a revisit (or a later job) activates it.
            log.error('activation failed; the purchase is stored and waits for activation', {
              entitlementId: entitlement.id,
              error: describe(error),
            })
            return fail(error instanceof ConfigurationError ? 'configuration' : 'activation-pending', partner)
          }
        }
        const now = deps.now?.() ?? new Date()
        await entitlementsDb.saveLandingToken(deps.db, {
          token_hash: tokenHash,
          org_id: org!.id,
          partner,
          entitlement_id: entitlement.id,
          expires_at: new Date(now.getTime() + LANDING_TOKEN_TTL_MS).toISOString(),
          created_at: now.toISOString(),
        })
        return {
          kind: 'redirect',
          location: fulfillmentLocation(org!.fulfillment_url, entitlement),
          entitlementId: entitlement.id,
          replay: false,
        }
      } catch (error) {
        if (error instanceof InvalidTokenError) {
          log.info('marketplace token refused', { reason: error.message })
          return fail('invalid-token', partner)
        }
        if (error instanceof ConfigurationError) {
          // For the ISV (operator log), not the buyer: the buyer only sees "try later".
          log.error('integration misconfigured: the marketplace refused our credentials', {
            error: error.message,
            ...error.detail,
          })
          return fail('configuration', partner)
        }
        if (error instanceof UpstreamError) {
          log.error('marketplace unavailable', { error: error.message, status: error.status })
          return fail('upstream', partner)
        }
        throw error
      }
    }

    async function storePurchase(purchase: NormalizedPurchase): Promise<EntitlementRow> {
      const now = nowIso(deps)
      const previous = await entitlementsDb.findEntitlementByExternalId(deps.db, org!.id, partner, purchase.externalId)
      const { row, created } = await entitlementsDb.upsertEntitlement(deps.db, {
        id: newId('ent'),
        org_id: org!.id,
        partner,
        partner_id: integration!.partnerId,
        external_id: purchase.externalId,
        ...purchaseColumns(purchase),
        created_at: now,
        updated_at: now,
      })
      const summary = { status: row.status, planId: row.plan_id, quantity: row.quantity, offerType: row.offer_type }
      if (created || !previous) {
        await recordEvent(deps, row, 'CREATE', 'signup', summary, now)
      } else {
        const type =
          statusEvent(previous.status as EntitlementStatus, row.status as EntitlementStatus) ??
          (previous.plan_id !== row.plan_id || previous.quantity !== row.quantity ? 'UPDATE' : null)
        if (type) await recordEvent(deps, row, type, 'signup', { ...summary, previousStatus: previous.status }, now)
      }
      return row
    }

    async function applyActivation(entitlement: EntitlementRow, activated: NormalizedPurchase): Promise<EntitlementRow> {
      const now = nowIso(deps)
      const updated = await entitlementsDb.updateEntitlement(deps.db, entitlement.id, { ...purchaseColumns(activated), updated_at: now })
      const row = updated ?? entitlement
      const type = statusEvent(entitlement.status as EntitlementStatus, row.status as EntitlementStatus)
      if (type) {
        await recordEvent(deps, row, type, 'signup', { status: row.status, planId: row.plan_id, quantity: row.quantity }, now)
      }
      return row
    }
  }

  return { land }
}

/** Forgets token -> entitlement mappings past their lifetime (the entitlements themselves stay). */
export async function pruneLandingTokens(deps: Pick<AppDeps, 'db' | 'now'>): Promise<void> {
  await entitlementsDb.deleteExpiredLandingTokens(deps.db, nowIso(deps))
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error)
}
