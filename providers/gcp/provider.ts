import { cloudcommerceprocurement, type cloudcommerceprocurement_v1 } from '@googleapis/cloudcommerceprocurement'
import { ConfigurationError, UpstreamError } from '../errors'
import { type AttemptOutcome, type RetryPolicy, defaultRetryPolicy, isRetryableStatus, withRetry } from '../shared/http'
import type { UpstreamObserver } from '../shared/telemetry'
import { failed as failedCheck, passed } from '../shared/check'
import { withoutActivation } from '../shared/no-activation'
import { pickOfferType } from '../shared/offer-type'
import { formToken, isPlausibleToken } from '../shared/token'
import type { LocatedNotification, MarketplaceProvider, NormalizedPurchase, NotificationEffect, NotificationHandler, ProviderContext, ProviderIntegration } from '../types'
import { createPushVerifier, parsePushMessage } from './pubsub'
import { createServiceAccountTokens } from './auth'
import { type MarketplaceClaims, createMarketplaceJwtVerifier } from './jwt'
import { type GcpEntitlement, entitlementId, isPrivateOffer, toGcpPurchase } from './mapper'
import { createGcpMetering } from './metering'
import type { GcpSecrets, GcpSettings } from './settings'

export interface GcpProviderOptions {
  /** `GCP_MARKETPLACE_CERTS_URL` */
  certsUrl: string
  /** `GCP_PROCUREMENT_API_URL` (`/v1/...` is appended) */
  procurementUrl: string
  /** `GCP_OAUTH_TOKEN_URL` */
  tokenUrl: string
  /** `GCP_OIDC_CERTS_URL`: the JWKS of the OIDC tokens Pub/Sub push sends. */
  oidcCertsUrl?: string
  /** `GCP_SERVICE_CONTROL_URL` (`/v1/...` is appended). */
  serviceControlUrl?: string
  retryPolicy?: RetryPolicy
  /** Told how each marketplace call ended (metrics). */
  observe?: UpstreamObserver
}

type GcpIntegration = ProviderIntegration<GcpSettings, GcpSecrets>
type GcpAccount = cloudcommerceprocurement_v1.Schema$Account
/** What `locate` learnt about an account message, for `apply` (`approved` once one apply gave the approval). */
interface AccountDetail {
  account: GcpAccount | null
  entitlements: GcpEntitlement[]
  approved: boolean
}

/** The form field Google posts to the sign-up URL. */
const TOKEN_FIELD = 'x-gcp-marketplace-token'
const MAX_PAGES = 10

type Outcome<T> = { ok: true; data: T; status: number } | { ok: false; status: number | null; reason: string | null }

interface GaxiosLikeError {
  status?: number
  response?: { status?: number; headers?: Record<string, string> | Headers; data?: { error?: { status?: string; message?: string } } }
}

/**
 * Google Cloud Marketplace (integrated SaaS): verify the buyer's JWT, approve the
 * procurement account ("signup"), and find the entitlement. The Procurement API calls go
 * through Google's generated client (@googleapis/cloudcommerceprocurement) with its own
 * retries off: our policy retries 429/5xx/network errors, so attempts do not multiply.
 */
export function createGcpProvider(options: GcpProviderOptions) {
  const policy = options.retryPolicy ?? defaultRetryPolicy
  const verifier = createMarketplaceJwtVerifier({ certsUrl: options.certsUrl, retryPolicy: policy, observe: options.observe })
  const tokens = createServiceAccountTokens({ tokenUrl: options.tokenUrl, retryPolicy: policy, observe: options.observe })
  // The generated client builds each URL from Google's root and then swaps in the global
  // `rootUrl` by origin alone, dropping its path (`…/gcp` became `…/v1/…`). Given per call as
  // well, the root is in the URL from the start and the swap keeps it: `…/gcp/v1/…`.
  const rootUrl = `${options.procurementUrl.replace(/\/+$/, '')}/`
  const api = cloudcommerceprocurement({ version: 'v1', rootUrl })

  async function call<T>(
    integration: GcpIntegration,
    ctx: ProviderContext,
    label: string,
    run: (requestOptions: Record<string, unknown>) => Promise<{ data: T; status: number }>,
  ): Promise<Outcome<T>> {
    const bearer = await tokens.getToken(integration.secrets.serviceAccountKey, `${integration.orgId}:${integration.version}`, ctx.log)
    return callWith(bearer, ctx, label, run)
  }

  /** One Procurement API call with `bearer`, under our retry policy and the context's deadline. */
  function callWith<T>(bearer: string, ctx: ProviderContext, label: string, run: (requestOptions: Record<string, unknown>) => Promise<{ data: T; status: number }>) {
    return withRetry<Outcome<T>>(
      async (signal): Promise<AttemptOutcome<Outcome<T>>> => {
        try {
          const response = await run({ rootUrl, headers: { authorization: `Bearer ${bearer}` }, retry: false, timeout: policy.timeoutMs, signal })
          return { done: true, value: { ok: true, data: response.data, status: response.status }, status: response.status }
        } catch (error) {
          const failure = error as GaxiosLikeError
          const status = failure.response?.status ?? failure.status ?? null
          const outcome: Outcome<T> = { ok: false, status, reason: failure.response?.data?.error?.status ?? null }
          if (status !== null && !isRetryableStatus(status)) return { done: true, value: outcome, status }
          return { done: false, status, error, value: outcome }
        }
      },
      { policy, log: ctx.log, label, deadline: ctx.deadline, observe: options.observe },
    )
  }

  function refused(label: string, outcome: { status: number | null; reason: string | null }, integration: GcpIntegration): never {
    if (outcome.status === 401 || outcome.status === 403 || outcome.status === 404) {
      // Wrong service account, one without the Procurement role, or a providerId the
      // account does not belong to: the ISV's to fix.
      throw new ConfigurationError(`Google Procurement API answered ${outcome.status} to ${label} (provider ${integration.settings.providerId})`, {
        call: label,
        status: outcome.status,
        googleStatus: outcome.reason,
      })
    }
    throw new UpstreamError(`Google Procurement API answered ${outcome.status ?? 'nothing'} to ${label}`, outcome.status)
  }

  async function approveAccount(integration: GcpIntegration, accountId: string, ctx: ProviderContext) {
    const name = `providers/${integration.settings.providerId}/accounts/${encodeURIComponent(accountId)}`
    const approved = await call(integration, ctx, 'gcp.accounts.approve', (o) =>
      api.providers.accounts.approve({ name, requestBody: { approvalName: 'signup' } }, o),
    )
    if (approved.ok) return
    if (approved.status === 400 || approved.status === 409) {
      // Approving twice is refused ("not pending"); an account already approved is fine.
      const account = await call(integration, ctx, 'gcp.accounts.get', (o) => api.providers.accounts.get({ name }, o))
      if (!account.ok && (account.status === 404 || account.status === 405 || account.status === 501)) {
        // The account exists (approve found it); only its state cannot be read back here.
        ctx.log.warn('approve refused and the account could not be read back; taking it as already approved', {
          approveStatus: approved.status,
          getStatus: account.status,
        })
        return
      }
      if (!account.ok) refused('gcp.accounts.get', account, integration)
      const signup = account.data.approvals?.find((approval) => approval.name === 'signup')
      if (signup?.state === 'APPROVED') return
      // Account approval is a per-product setting: an account with no signup approval has nothing to approve.
      if (!signup) {
        ctx.log.info('the google account has no signup approval to give', { approveStatus: approved.status })
        return
      }
      throw new UpstreamError(`Google refused to approve the account (signup approval is ${signup?.state ?? 'missing'})`, approved.status)
    }
    refused('gcp.accounts.approve', approved, integration)
  }

  /** `google.orders` names the purchase when the provider takes several orders; else the account's newest entitlement. */
  async function findEntitlement(integration: GcpIntegration, claims: MarketplaceClaims, ctx: ProviderContext): Promise<GcpEntitlement | null> {
    const parent = `providers/${integration.settings.providerId}`
    const found: GcpEntitlement[] = []
    let pageToken: string | undefined
    for (let page = 0; page < MAX_PAGES; page++) {
      const listed = await call(integration, ctx, 'gcp.entitlements.list', (o) =>
        api.providers.entitlements.list({ parent, filter: `account=${claims.sub}`, ...(pageToken ? { pageToken } : {}) }, o),
      )
      if (!listed.ok) refused('gcp.entitlements.list', listed, integration)
      found.push(...((listed.data.entitlements ?? []) as GcpEntitlement[]))
      pageToken = listed.data.nextPageToken ?? undefined
      if (!pageToken) break
    }
    const orders = Array.isArray(claims['google.orders']) ? claims['google.orders'] : []
    for (const order of orders) {
      const match = found.find((e) => e.orderId === order || entitlementId(e) === order)
      if (match) return match
    }
    const newest = (e: GcpEntitlement) => e.createTime ?? e.updateTime ?? ''
    return found.sort((a, b) => (newest(a) < newest(b) ? 1 : newest(a) > newest(b) ? -1 : 0))[0] ?? null
  }

  const verifyPush = createPushVerifier({ certsUrl: options.oidcCertsUrl ?? 'https://www.googleapis.com/oauth2/v3/certs' })
  const entitlementName = (integration: GcpIntegration, id: string) => `providers/${integration.settings.providerId}/entitlements/${encodeURIComponent(id)}`

  /** The entitlement as Google has it now; null when Google does not know it (404). */
  async function getEntitlement(integration: GcpIntegration, id: string, ctx: ProviderContext): Promise<GcpEntitlement | null> {
    const got = await call(integration, ctx, 'gcp.entitlements.get', (o) => api.providers.entitlements.get({ name: entitlementName(integration, id) }, o))
    if (got.ok) return got.data as GcpEntitlement
    if (got.status === 404) return null
    return refused('gcp.entitlements.get', got, integration)
  }

  async function entitlementsOfAccount(integration: GcpIntegration, accountId: string, ctx: ProviderContext): Promise<GcpEntitlement[]> {
    const found: GcpEntitlement[] = []
    let pageToken: string | undefined
    for (let page = 0; page < MAX_PAGES; page++) {
      const listed = await call(integration, ctx, 'gcp.entitlements.list', (o) =>
        api.providers.entitlements.list({ parent: `providers/${integration.settings.providerId}`, filter: `account=${accountId}`, ...(pageToken ? { pageToken } : {}) }, o),
      )
      if (!listed.ok) refused('gcp.entitlements.list', listed, integration)
      found.push(...((listed.data.entitlements ?? []) as GcpEntitlement[]))
      pageToken = listed.data.nextPageToken ?? undefined
      if (!pageToken) break
    }
    return found
  }

  /** A stored purchase brought to the entitlement Google reports (status, plan, term, its real id). */
  function fromEntitlement(current: NormalizedPurchase, entitlement: GcpEntitlement): NormalizedPurchase {
    const purchase = toGcpPurchase({ sub: current.buyer.accountId ?? '', 'google.user_identity': current.buyer.customerId ?? undefined } as never, entitlement, current.offerType, {
      status: current.status,
      termStart: current.term.start,
    })
    return { ...purchase, buyer: current.buyer, info: { ...current.info, entitlement } }
  }

  /** The account as Google has it now; null when Google does not know it (404). */
  async function getAccount(integration: GcpIntegration, accountId: string, ctx: ProviderContext) {
    const name = `providers/${integration.settings.providerId}/accounts/${encodeURIComponent(accountId)}`
    const got = await call(integration, ctx, 'gcp.accounts.get', (o) => api.providers.accounts.get({ name }, o))
    if (got.ok) return got.data
    if (got.status === 404) return null
    return refused('gcp.accounts.get', got, integration)
  }

  /**
   * An account message: re-read, and what the account now implies applied. Its signup approval
   * pending while the buyer has landed (the approval was reset, or account approval turned on for
   * the product since) is given now: the landing is what it waits for. A buyer not landed yet is
   * approved by the landing, not here. The entitlement is brought to Google's state, re-read after
   * an approval (an offer approved automatically starts once its account is).
   */
  async function applyAccount(
    integration: GcpIntegration,
    accountId: string,
    current: NormalizedPurchase | null,
    detail: AccountDetail | null,
    ctx: ProviderContext,
  ): Promise<NotificationEffect> {
    if (!current || !detail) return { outcome: 'apply', purchase: null }
    if (!detail.account) {
      ctx.log.info('google does not know the account of this message', { accountId })
      return { outcome: 'apply', purchase: null }
    }
    const signup = detail.account.approvals?.find((approval) => approval.name === 'signup')
    if (signup?.state === 'PENDING' && !detail.approved) {
      await approveAccount(integration, accountId, ctx)
      detail.approved = true
      ctx.log.info('google account approved (its buyer has landed)', { accountId })
    }
    if (current.externalId.startsWith('account/')) return { outcome: 'apply', purchase: null }
    const listed = detail.entitlements.find((e) => entitlementId(e) === current.externalId)
    const entitlement = detail.approved ? await getEntitlement(integration, current.externalId, ctx) : listed
    return { outcome: 'apply', purchase: entitlement ? fromEntitlement(current, entitlement) : null }
  }

  const accountOf = (entitlement: GcpEntitlement) => entitlement.account?.split('/').pop() ?? null
  /** The entitlement a message is about (from the message itself: a waiting one may be re-keyed by its account). */
  const entitlementOf = (notification: { payload: Record<string, unknown> }) => {
    const id = (notification.payload.entitlement as { id?: unknown } | undefined)?.id
    return typeof id === 'string' && id !== '' ? id : null
  }

  const notifications: NotificationHandler<GcpSettings, GcpSecrets> = {
    async authenticate(integration, request, ctx) {
      const email = integration.settings.pushServiceAccount
      if (!email) {
        // Contract: Google's notifications are accepted only once the push service account is configured.
        ctx.log.warn('pub/sub push refused', { reason: 'the gcp integration has no pushServiceAccount' })
        return null
      }
      if (!(await verifyPush(request, { audience: integration.settings.pushAudience ?? request.notificationUrl, email }, ctx.log))) return null
      return parsePushMessage(request.body)
    },

    async locate(integration, notification, ctx): Promise<LocatedNotification> {
      const entitlementRef = entitlementOf(notification)
      if (!entitlementRef) {
        const accountId = notification.subject.slice('account/'.length)
        if (notification.action !== 'ACCOUNT_DELETED') {
          // Any other account message (Google's documented ones carry no eventType): the account as
          // Google has it now, and its entitlements, whichever of them the buyer's landing stored.
          const account = await getAccount(integration, accountId, ctx)
          const entitlements = account ? await entitlementsOfAccount(integration, accountId, ctx) : []
          const detail: AccountDetail = { account, entitlements, approved: false }
          return { externalIds: [...entitlements.map((e) => entitlementId(e)!).filter(Boolean), notification.subject], all: true, detail }
        }
        const entitlements = await entitlementsOfAccount(integration, accountId, ctx).catch(() => [] as GcpEntitlement[])
        return { externalIds: [...entitlements.map((e) => entitlementId(e)!).filter(Boolean), notification.subject], all: true }
      }
      // Never trust the message: the entitlement as Google has it, which also names its account.
      const entitlement = await getEntitlement(integration, entitlementRef, ctx)
      const accountId = entitlement ? accountOf(entitlement) : null
      return { externalIds: [entitlementRef, ...(accountId ? [`account/${accountId}`] : [])], detail: entitlement }
    },

    async apply(integration, notification, current, ctx, located) {
      if (notification.payload.providerId !== undefined && notification.payload.providerId !== integration.settings.providerId) {
        return { outcome: 'unknown', reason: 'the message is for another provider id' }
      }
      const action = notification.action
      const entitlementRef = entitlementOf(notification)
      if (!entitlementRef) {
        if (action === 'ACCOUNT_DELETED') return { outcome: 'apply', purchase: current ? { ...current, status: 'CANCELLED' } : null }
        return applyAccount(integration, notification.subject.slice('account/'.length), current, (located?.detail ?? null) as AccountDetail | null, ctx)
      }
      const entitlement = (located?.detail ?? null) as GcpEntitlement | null
      if (!entitlement) {
        if (action === 'ENTITLEMENT_DELETED' && current) return { outcome: 'apply', purchase: { ...current, status: 'CANCELLED' } }
        return { outcome: 'unknown', reason: 'Google does not know this entitlement' }
      }
      // Not landed yet (or the buyer has not approved the account by landing): kept until the landing.
      if (!current) return { outcome: 'waiting' }
      const now = fromEntitlement(current, entitlement)
      switch (action) {
        case 'ENTITLEMENT_CREATION_REQUESTED': {
          // An approved entitlement whose offer has not started yet is ACTIVATION_REQUESTED too, with
          // `newOfferStartTime` (Google fills it only once approved, e.g. automatically): nothing to approve.
          if (entitlement.state === 'ENTITLEMENT_ACTIVATION_REQUESTED' && !entitlement.newOfferStartTime) {
            const approved = await call(integration, ctx, 'gcp.entitlements.approve', (o) =>
              api.providers.entitlements.approve({ name: entitlementName(integration, entitlementRef), requestBody: {} }, o),
            )
            // 400: no longer awaiting approval (approved already, or changed since): settled, not an error.
            if (!approved.ok && approved.status !== 400) refused('gcp.entitlements.approve', approved, integration)
            ctx.log.info('google entitlement approved', { entitlementId: entitlementRef, status: approved.ok ? 200 : approved.status })
          }
          // The status follows ENTITLEMENT_ACTIVE; this message keeps it where it is.
          return { outcome: 'apply', purchase: { ...now, status: current.status } }
        }
        case 'ENTITLEMENT_PLAN_CHANGE_REQUESTED': {
          const pending = typeof entitlement.newPendingPlan === 'string' ? entitlement.newPendingPlan : null
          if (integration.settings.autoApprovePlanChanges !== false && pending && entitlement.state === 'ENTITLEMENT_PENDING_PLAN_CHANGE_APPROVAL') {
            const approved = await call(integration, ctx, 'gcp.entitlements.approvePlanChange', (o) =>
              api.providers.entitlements.approvePlanChange({ name: entitlementName(integration, entitlementRef), requestBody: { pendingPlanName: pending } }, o),
            )
            if (!approved.ok && approved.status !== 400) refused('gcp.entitlements.approvePlanChange', approved, integration)
          }
          // The plan changes with ENTITLEMENT_PLAN_CHANGED.
          return { outcome: 'apply', purchase: { ...now, planId: current.planId, status: current.status } }
        }
        case 'ENTITLEMENT_PLAN_CHANGE_CANCELLED':
          // The plan change that was asked for is off: the entitlement stays as it was.
          return { outcome: 'apply', purchase: null }
        default:
          // ACTIVE, OFFER_ACCEPTED (automatic offer approval: nothing to approve; PENDING_START until the
          // offer starts), RENEWED, OFFER_ENDED, CANCELLING, CANCELLATION_REVERTED, PLAN_CHANGED,
          // PENDING_CANCELLATION, CANCELLED, …: as Google has it now.
          return { outcome: 'apply', purchase: now }
      }
    },
  }

  const metering = createGcpMetering({
    serviceControlUrl: options.serviceControlUrl ?? 'https://servicecontrol.googleapis.com',
    call: call as never,
    getEntitlement: (integration, id, ctx) => getEntitlement(integration as GcpIntegration, id, ctx),
  })

  return {
    partner: 'gcp',
    notifications,
    metering,

    tokenFrom(input) {
      return formToken(input.form?.get(TOKEN_FIELD))
    },

    isPlausibleToken,

    async resolve(integration, token, ctx) {
      // Nothing is approved unless every check on the JWT passed.
      const claims = await verifier.verify(token, integration.settings.audience, ctx.log)
      await approveAccount(integration, claims.sub, ctx)
      const entitlement = await findEntitlement(integration, claims, ctx)
      const offerType = await pickOfferType(integration.settings.offerTypes, entitlement?.plan ?? null, () =>
        isPrivateOffer(entitlement) ? 'PRIVATE' : 'DEFAULT',
      )
      return toGcpPurchase(claims, entitlement, offerType)
    },

    activate: withoutActivation.activate,

    /** Reconciliation: the entitlement as Google has it now (an account-only purchase has nothing to re-read yet). */
    async refresh(integration, purchase, ctx) {
      if (purchase.externalId.startsWith('account/')) return purchase
      const entitlement = await getEntitlement(integration, purchase.externalId, ctx)
      return entitlement ? fromEntitlement(purchase, entitlement) : purchase
    },

    // Contract §13: the key exchanged for a new token (a cached one would hide a key deleted
    // since), then one entitlement listed with it, a read that shows whether the service
    // account may act for the provider at all.
    async checkCredentials(integration, ctx) {
      const { providerId, serviceAccountEmail } = integration.settings
      const LIST = 'procurement:entitlements.list'
      let bearer: string
      try {
        bearer = await tokens.fresh(integration.secrets.serviceAccountKey, ctx)
      } catch (error) {
        return [failedCheck('oauth2:token', error), { name: LIST, ok: false, message: 'not tried: Google issued no access token' }]
      }
      const checks = [passed('oauth2:token', `Google issued ${serviceAccountEmail} an access token`)]
      try {
        const listed = await callWith(bearer, ctx, 'gcp.check.entitlements.list', (o) =>
          api.providers.entitlements.list({ parent: `providers/${providerId}`, pageSize: 1 }, o),
        )
        checks.push(
          listed.ok
            ? passed(LIST, `listed the entitlements of provider ${providerId} (${listed.data.entitlements?.length ? 'it has some' : 'none yet'})`)
            : { name: LIST, ok: false, message: procurementRefusal(listed, providerId, serviceAccountEmail) },
        )
      } catch (error) {
        checks.push(failedCheck(LIST, error))
      }
      return checks
    },
  } satisfies MarketplaceProvider<GcpSettings, GcpSecrets>
}

/** Why the Procurement API refused a credentials check, from its status and Google's status code (never its message). */
function procurementRefusal(outcome: { status: number | null; reason: string | null }, providerId: string, account: string): string {
  const code = outcome.reason && /^[A-Z_]{1,64}$/.test(outcome.reason) ? ` ${outcome.reason}` : ''
  switch (outcome.status) {
    case null:
      return 'no answer from the Procurement API in time'
    case 401:
      return `Google did not accept the access token of ${account} (401${code})`
    case 403:
      return `${account} may not act for provider ${providerId} (403${code}): it is not one of the provider's service accounts, or providerId is wrong`
    case 404:
      return `Google does not know provider ${providerId} (404${code})`
    default:
      return `the Procurement API answered ${outcome.status}${code}`
  }
}
