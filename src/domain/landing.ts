import { licenseSubject } from '../../providers/aws/eventbridge'
import { ConfigurationError, InvalidTokenError, PurchaseRefusedError, UpstreamError } from '../../providers/errors'
import {
  type EntitlementStatus,
  type LandingInput,
  type MarketplaceProvider,
  type NormalizedPurchase,
  type Partner,
  type ProviderContext,
  type ProviderIntegration,
  isPartner,
} from '../../providers/types'
import { type Statement, atomically } from '../db/batch'
import * as claimsDb from '../db/claims'
import * as entitlementsDb from '../db/entitlements'
import * as orgsDb from '../db/orgs'
import type { EntitlementRow, OrgRow, PendingActivationRow } from '../db/schema'
import { type AppDeps, nowIso, nowMs } from '../deps'
import type { Logger } from '../logger'
import { sha256Hex } from './crypto'
import { purchaseColumns, purchaseOf, statusEvent } from './entitlements'
import { newId } from './ids'
import { type RetryPolicy, doubling, nextAttempt } from './retry'
import { wakeNotifications } from './inbox'
import { loadProviderIntegration } from './integrations'
import { changeEntitlement, storePurchase as storeResolvedPurchase } from './lifecycle'

/** How long a token -> entitlement mapping answers refreshes (Azure tokens live about 24 h). */
const LANDING_TOKEN_TTL_MS = 24 * 3600 * 1000
/** Waiters look for the owner's outcome this often. */
const WAIT_POLL_MS = 100
/** The activation job backs off from 5 s, doubling per failed attempt, up to 30 min (×0.5–1), and never gives up: the buyer paid. */
export const ACTIVATION_RETRY: RetryPolicy = { delaysMs: doubling(5_000, 30 * 60 * 1000), jitter: [0.5, 1], giveUpAfterMs: null, maxAttempts: null }
/** A crashed landing is retried by the job this many times before its claim is dropped. */
const MAX_CLAIM_ATTEMPTS = 5
const JOB_BATCH = 25

export type LandingFailure =
  /** Unknown org, partner, integration, or a partnerId that does not match. */
  | 'not-found'
  | 'missing-token'
  | 'invalid-token'
  /** The ISV's integration is misconfigured: the buyer is asked to try later. */
  | 'configuration'
  /** The marketplace could not be reached after retries, or refused the purchase for good. */
  | 'upstream'
  /** The purchase is stored but not confirmed yet (activation pending, or still being processed). */
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

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error)
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Everything one marketplace token is worked with, whoever works it (a request or the job). */
interface Work {
  org: OrgRow
  partner: Partner
  provider: MarketplaceProvider
  integration: ProviderIntegration
  token: string
  tokenHash: string
  log: Logger
}

type ActivationResult = 'settled' | 'pending' | 'refused' | 'busy' | 'configuration'

/**
 * The landing, made durable with two single-statement hand-overs (so it holds across
 * processes and on D1):
 *
 * 1. A claim row per token hash. Whoever inserts it runs Resolve -> store -> Activate; the
 *    others wait (bounded) and answer with the owner's redirect. The claim keeps the token
 *    sealed, so if the owner dies after Resolve the job finishes the work.
 * 2. A pending-activation row, written leased before Activate is called. A failed Activate
 *    leaves the entitlement PENDING_START with that row; the job retries it with backoff (and
 *    asks the marketplace first, so an Activate that went through is never sent twice), and a
 *    buyer's revisit retries at once.
 */
export function createLandingService(deps: AppDeps) {
  const inflight = new Map<string, Promise<LandingOutcome>>()
  const timeoutMs = deps.config.UPSTREAM_TIMEOUT_MS
  const deadlineMs = 2 * timeoutMs
  // A claim's holder must have finished (or died) by the end of its lease.
  const leaseMs = deadlineMs + Math.max(2_000, deadlineMs / 2)
  const now = () => nowMs(deps)
  const iso = (ms: number) => new Date(ms).toISOString()
  const fail = (reason: LandingFailure, partner: Partner | null = null): LandingOutcome => ({ kind: 'failure', reason, partner })

  async function land(request: LandingRequest): Promise<LandingOutcome> {
    if (!isPartner(request.partner)) return fail('not-found')
    // Ids are short; anything longer is not one of ours and costs no query.
    if (request.orgId.length > 64 || (request.partnerId?.length ?? 0) > 200) return fail('not-found', request.partner)
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

    // Only a hash of the token is ever used as a key.
    const tokenHash = await sha256Hex(`${partner}\n${org.id}\n${token}`)
    const known = await entitlementsDb.findLandingToken(deps.db, tokenHash, nowIso(deps))
    if (known) {
      return { kind: 'redirect', location: fulfillmentLocation(org.fulfillment_url, known), entitlementId: known.id, replay: true }
    }

    // One process answers duplicates from memory; other processes meet at the claim row.
    let pending = inflight.get(tokenHash)
    if (!pending) {
      const work: Work = { org, partner, provider, integration, token, tokenHash, log: request.log.child({ orgId: org.id, partner }) }
      pending = claimOrWait(work, true).finally(() => inflight.delete(tokenHash))
      inflight.set(tokenHash, pending)
    }
    return pending
  }

  async function claimOrWait(work: Work, retryOnRelease: boolean): Promise<LandingOutcome> {
    const started = now()
    const mine = await claimsDb.claimLanding(
      deps.db,
      {
        token_hash: work.tokenHash,
        org_id: work.org.id,
        partner: work.partner,
        partner_id: work.integration.partnerId,
        sealed_token: await deps.secrets.seal(work.token, `landing:${work.tokenHash}`),
        lease_until: iso(started + leaseMs),
        created_at: iso(started),
      },
      iso(started),
    )
    if (mine) return fulfil(work)

    // Someone else is working this token: wait for their redirect, at most one lease.
    while (now() - started < leaseMs) {
      await sleep(WAIT_POLL_MS)
      const known = await entitlementsDb.findLandingToken(deps.db, work.tokenHash, nowIso(deps))
      if (known) {
        return { kind: 'redirect', location: fulfillmentLocation(work.org.fulfillment_url, known), entitlementId: known.id, replay: true }
      }
      if (!(await claimsDb.findClaim(deps.db, work.tokenHash))) {
        // The owner finished without a redirect (its buyer got the error page); try once ourselves.
        return retryOnRelease ? claimOrWait(work, false) : fail('activation-pending', work.partner)
      }
    }
    return fail('activation-pending', work.partner)
  }

  /** Resolve -> store -> Activate -> remember the token -> release the claim. The caller holds the claim. */
  async function fulfil(work: Work): Promise<LandingOutcome> {
    const ctx: ProviderContext = { log: work.log, deadline: now() + deadlineMs }
    const release = () => claimsDb.releaseClaim(deps.db, work.tokenHash)
    let purchase: NormalizedPurchase
    try {
      purchase = await work.provider.resolve(work.integration, work.token, ctx)
    } catch (error) {
      await release()
      return resolveFailure(work, error)
    }

    // The landing's last write remembers the token, counts the landing (for the console's
    // Overview; while the claim is held, so before its release) and releases the claim; with an
    // activation, it is the activation's own write (the new status, its event, the end of the pending row).
    const settle = (entitlement: EntitlementRow) => {
      const at = now()
      return [
        entitlementsDb.landingTokenStatement(deps.db, {
          token_hash: work.tokenHash,
          org_id: work.org.id,
          partner: work.partner,
          entitlement_id: entitlement.id,
          expires_at: iso(at + LANDING_TOKEN_TTL_MS),
          created_at: iso(at),
        }),
        entitlementsDb.landingCountStatement(deps.db, { org_id: work.org.id, partner: work.partner, day: iso(at).slice(0, 10), token_hash: work.tokenHash }),
        claimsDb.releaseStatement(deps.db, work.tokenHash),
      ]
    }
    const stored = await storePurchase(work, purchase)
    let entitlement = stored.row
    if (purchase.needsActivation) {
      const { result, row } = await activate(work, entitlement, purchase, ctx, 'landing', stored.held, settle)
      entitlement = row
      if (result !== 'settled') {
        await release()
        return fail(result === 'refused' ? 'upstream' : result === 'configuration' ? 'configuration' : 'activation-pending', work.partner)
      }
    } else {
      await atomically(deps.db, settle(entitlement))
    }
    return { kind: 'redirect', location: fulfillmentLocation(work.org.fulfillment_url, entitlement), entitlementId: entitlement.id, replay: false }
  }

  function resolveFailure(work: Work, error: unknown): LandingOutcome {
    if (error instanceof InvalidTokenError) {
      work.log.info('marketplace token refused', { reason: error.message })
      return fail('invalid-token', work.partner)
    }
    if (error instanceof ConfigurationError) {
      // For the ISV (operator log), not the buyer: the buyer only sees "try later".
      work.log.error('integration misconfigured: the marketplace refused our credentials', { error: error.message, ...error.detail })
      return fail('configuration', work.partner)
    }
    if (error instanceof UpstreamError || error instanceof PurchaseRefusedError) {
      work.log.error('marketplace unavailable', { error: error.message, status: error instanceof UpstreamError ? error.status : null })
      return fail('upstream', work.partner)
    }
    throw error
  }

  /**
   * Stores the resolved purchase; a new one that needs activation is stored with its activation
   * lease held by this caller (`held`), in the same write.
   */
  async function storePurchase(work: Work, purchase: NormalizedPurchase): Promise<{ row: EntitlementRow; held?: PendingActivationRow }> {
    const owner = { orgId: work.org.id, partner: work.partner, partnerId: work.integration.partnerId }
    const started = now()
    let held: PendingActivationRow | undefined
    const { row, created } = await storeResolvedPurchase(deps, owner, purchase, 'signup', {}, (fresh) => {
      if (!purchase.needsActivation) return []
      const lease = { entitlement_id: fresh.id, org_id: fresh.org_id, partner: fresh.partner, lease_until: iso(started + leaseMs), created_at: iso(started) }
      held = { ...lease, attempts: 0, next_attempt_at: lease.created_at, last_error: null }
      return [claimsDb.holdNewActivation(deps.db, lease)]
    })
    if (created) {
      // A notification that overtook its buyer (e.g. an unsubscribe before the landing) is applied now.
      // AWS's SNS messages name the product and customer, not the LicenseArn the entitlement may be keyed by.
      const customerId = purchase.buyer.customerId
      // Google's wait under `account/<id>` until they know whether the landing stored the entitlement or only the account.
      const accountId = purchase.buyer.accountId
      const subjects = [
        row.external_id,
        ...(work.partner === 'aws' && purchase.productId && customerId ? [`${purchase.productId}:${customerId}`] : []),
        // AWS's License events and agreements looked up by license wait under the license's `l-…` id (its ARN is printed two ways).
        ...(work.partner === 'aws' && licenseSubject(purchase.externalId) ? [licenseSubject(purchase.externalId)!] : []),
        ...(work.partner === 'gcp' && accountId ? [`account/${accountId}`] : []),
      ]
      const woken = await wakeNotifications(deps, work.org.id, work.partner, [...new Set(subjects)])
      if (woken) work.log.info('notifications that waited for this purchase are due', { entitlementId: row.id, notifications: woken })
    }
    // `held` belongs to the row this call inserted, if it did.
    return { row, held: created && held?.entitlement_id === row.id ? held : undefined }
  }

  /**
   * Activates a stored purchase if this caller can take the activation lease. `job` asks the
   * marketplace for the current state first (the landing has just resolved it).
   */
  async function activate(
    work: Pick<Work, 'org' | 'partner' | 'provider' | 'integration' | 'log'>,
    entitlement: EntitlementRow,
    purchase: NormalizedPurchase,
    ctx: ProviderContext,
    mode: 'landing' | 'job',
    /** The pending activation, when the caller holds it already (the job's claim, a landing's new purchase). */
    leased?: PendingActivationRow,
    /** Writes made with the activation's outcome when it is settled (the landing's token and claim). */
    settled: (row: EntitlementRow) => Statement[] = () => [],
  ): Promise<{ result: ActivationResult; row: EntitlementRow }> {
    const started = now()
    const held =
      leased ??
      (await claimsDb.holdActivation(
        deps.db,
        { entitlement_id: entitlement.id, org_id: work.org.id, partner: work.partner, lease_until: iso(started + leaseMs), created_at: iso(started) },
        iso(started),
        { due: mode === 'job' },
      ))
    if (!held) return { result: 'busy', row: entitlement }
    try {
      let current = mode === 'job' ? await work.provider.refresh(work.integration, purchase, ctx) : purchase
      if (current.needsActivation) current = await work.provider.activate(work.integration, current, ctx)
      // The new status, its event and the end of the pending activation in one write.
      const row = await applyActivation(entitlement, current, mode === 'job' ? 'marketplace' : 'signup', settled(entitlement))
      return { result: 'settled', row }
    } catch (error) {
      if (error instanceof PurchaseRefusedError || error instanceof InvalidTokenError) {
        // The refusal's event and the end of the pending activation together: neither is lost or written twice.
        await changeEntitlement(
          deps,
          entitlement,
          mode === 'job' ? 'marketplace' : 'signup',
          () => ({ set: {}, events: [{ type: 'UPDATE', data: { activation: 'refused', reason: error.message } }] }),
          [claimsDb.settleActivation(deps.db, entitlement.id)],
        )
        work.log.error('the marketplace refused to activate the purchase', { entitlementId: entitlement.id, error: error.message })
        return { result: 'refused', row: entitlement }
      }
      const attempts = held.attempts
      const next = nextAttempt(ACTIVATION_RETRY, attempts + 1, now())
      await claimsDb.activationFailed(deps.db, entitlement.id, { nextAttemptAt: iso(next.at), error: describe(error), now: nowIso(deps) })
      if (error instanceof ConfigurationError) {
        work.log.error('integration misconfigured: activation refused our credentials', { entitlementId: entitlement.id, error: error.message, ...error.detail })
      } else {
        work.log.error('activation failed; the purchase is stored and waits for activation', { entitlementId: entitlement.id, error: describe(error), attempts: attempts + 1 })
      }
      return { result: error instanceof ConfigurationError ? 'configuration' : 'pending', row: entitlement }
    }
  }

  async function applyActivation(entitlement: EntitlementRow, activated: NormalizedPurchase, source: 'signup' | 'marketplace', also: Statement[]): Promise<EntitlementRow> {
    const set = purchaseColumns(activated)
    const { row } = await changeEntitlement(
      deps,
      entitlement,
      source,
      (current) => {
        const type = statusEvent(current.status as EntitlementStatus, set.status)
        return { set, events: type ? [{ type, data: { status: set.status, planId: set.plan_id, quantity: set.quantity } }] : [] }
      },
      [claimsDb.settleActivation(deps.db, entitlement.id), ...also],
    )
    return row
  }

  // ---- the background job ----------------------------------------------------------------

  /** Landings whose worker died (lease expired): finish them with the sealed token. */
  async function recoverClaims(log: Logger): Promise<number> {
    const started = now()
    const claims = await claimsDb.takeStaleClaims(deps.db, iso(started), iso(started + leaseMs), JOB_BATCH)
    for (const claim of claims) {
      const claimLog = log.child({ orgId: claim.org_id, partner: claim.partner, job: 'recover-landing' })
      try {
        const org = await orgsDb.findOrg(deps.db, claim.org_id)
        const integration = org && isPartner(claim.partner) ? await loadProviderIntegration(deps, org.id, claim.partner) : undefined
        if (!org || !integration || !isPartner(claim.partner) || claim.attempts > MAX_CLAIM_ATTEMPTS) {
          claimLog.warn('dropping an unfinished landing', { attempts: claim.attempts })
          await claimsDb.releaseClaim(deps.db, claim.token_hash)
          continue
        }
        const token = await deps.secrets.open(claim.sealed_token, `landing:${claim.token_hash}`)
        const outcome = await fulfil({ org, partner: claim.partner, provider: deps.providers[claim.partner], integration, token, tokenHash: claim.token_hash, log: claimLog })
        claimLog.info('finished an interrupted landing', { outcome: outcome.kind === 'redirect' ? 'redirect' : outcome.reason })
      } catch (error) {
        // The lease runs out again and a later run retries (up to MAX_CLAIM_ATTEMPTS).
        claimLog.error('could not finish an interrupted landing', { error: describe(error) })
      }
    }
    return claims.length
  }

  /** Pending activations whose backoff is over: ask the marketplace, activate if still needed. */
  async function retryActivations(log: Logger): Promise<number> {
    // One at a time, each leased just before it is worked (a lease covers one activation's calls).
    let worked = 0
    for (; worked < JOB_BATCH; worked++) {
      const pending = await claimsDb.claimDueActivation(deps.db, nowIso(deps), iso(now() + leaseMs))
      if (!pending) break
      const jobLog = log.child({ orgId: pending.org_id, partner: pending.partner, job: 'activation', entitlementId: pending.entitlement_id })
      try {
        const entitlement = await entitlementsDb.findEntitlement(deps.db, pending.org_id, pending.entitlement_id)
        const org = await orgsDb.findOrg(deps.db, pending.org_id)
        const integration = org && isPartner(pending.partner) ? await loadProviderIntegration(deps, org.id, pending.partner) : undefined
        if (!entitlement || !org || !integration || !isPartner(pending.partner)) {
          await claimsDb.activationSettled(deps.db, pending.entitlement_id)
          continue
        }
        const work = { org, partner: pending.partner, provider: deps.providers[pending.partner], integration, log: jobLog }
        const { result } = await activate(work, entitlement, purchaseOf(entitlement), { log: jobLog, deadline: now() + deadlineMs }, 'job', pending)
        if (result === 'settled') jobLog.info('pending activation completed')
      } catch (error) {
        jobLog.error('activation job failed', { error: describe(error) })
      }
    }
    return worked
  }

  return { land, recoverClaims, retryActivations, leaseMs }
}

export type LandingService = ReturnType<typeof createLandingService>

/** Forgets token -> entitlement mappings past their lifetime (the entitlements themselves stay). */
export async function pruneLandingTokens(deps: Pick<AppDeps, 'db' | 'now'>): Promise<void> {
  await entitlementsDb.deleteExpiredLandingTokens(deps.db, nowIso(deps))
}
