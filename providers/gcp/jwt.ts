import { type CryptoKey, type JWTPayload, decodeProtectedHeader, errors, importX509, jwtVerify } from 'jose'
import { InvalidTokenError, UpstreamError } from '../errors'
import { type FetchLike, type RetryPolicy, fetchWithRetry } from '../shared/http'
import type { UpstreamObserver } from '../shared/telemetry'
import type { ProviderLogger } from '../types'

/** The `iss` of every marketplace JWT; it stays this whatever GCP_MARKETPLACE_CERTS_URL points at. */
export const GOOGLE_MARKETPLACE_ISSUER =
  'https://www.googleapis.com/robot/v1/metadata/x509/cloud-commerce-partner@system.gserviceaccount.com'

/** Google's clocks and ours may disagree a little; a minute is the documented habit. */
const CLOCK_SKEW_SECONDS = 60
/** An unknown kid triggers a refetch, but never more often than this (a flood of bad kids can't hammer Google). */
const MIN_REFRESH_MS = 60_000
/** Known keys are refreshed now and then anyway, so a revoked one does not live forever. */
const MAX_AGE_MS = 3600_000

export interface MarketplaceClaims extends JWTPayload {
  sub: string
  'google.user_identity'?: string
  'google.orders'?: string[]
  'google.roles'?: string[]
}

/**
 * Verifies the `x-gcp-marketplace-token` JWT: RS256 only, its `kid` among the certificates
 * served at the certs URL (cached; refetched on an unknown kid at most once a minute), iss =
 * Google's x509 URL, aud = the integration's audience, exp/iat within a minute of skew, and a
 * non-empty sub. Anything else is an InvalidTokenError whose message says which check failed
 * (never the token).
 */
export function createMarketplaceJwtVerifier(options: { certsUrl: string; fetch?: FetchLike; retryPolicy?: RetryPolicy; observe?: UpstreamObserver; now?: () => number }) {
  const fetchFn = options.fetch ?? ((input, init) => fetch(input, init))
  const now = options.now ?? (() => Date.now())
  let keys = new Map<string, CryptoKey>()
  let fetchedAt = 0
  let refreshing: Promise<void> | undefined

  async function refresh(log: ProviderLogger) {
    refreshing ??= (async () => {
      try {
        const response = await fetchWithRetry(fetchFn, options.certsUrl, { headers: { accept: 'application/json' } }, {
          log,
          label: 'gcp.certificates',
          policy: options.retryPolicy,
          observe: options.observe,
        })
        if (!response.ok) {
          await response.body?.cancel()
          throw new UpstreamError(`Google certificates answered ${response.status}`, response.status)
        }
        const pems = (await response.json()) as Record<string, string>
        const next = new Map<string, CryptoKey>()
        for (const [kid, pem] of Object.entries(pems)) {
          try {
            next.set(kid, (await importX509(pem, 'RS256')) as CryptoKey)
          } catch {
            log.warn('ignoring a certificate Google served that does not parse', { kid })
          }
        }
        keys = next
        fetchedAt = now()
      } finally {
        refreshing = undefined
      }
    })()
    return refreshing
  }

  async function keyFor(kid: string, log: ProviderLogger): Promise<CryptoKey | undefined> {
    const stale = now() - fetchedAt > MAX_AGE_MS
    if (fetchedAt === 0 || stale || (!keys.has(kid) && now() - fetchedAt >= MIN_REFRESH_MS)) await refresh(log)
    return keys.get(kid)
  }

  return {
    async verify(token: string, audience: string, log: ProviderLogger): Promise<MarketplaceClaims> {
      let header: ReturnType<typeof decodeProtectedHeader>
      try {
        header = decodeProtectedHeader(token)
      } catch {
        throw new InvalidTokenError('GCP token is not a JWT')
      }
      // Checked before any key lookup: "none", HS256 keyed with the public certificate, ES256...
      if (header.alg !== 'RS256') throw new InvalidTokenError(`GCP token alg ${String(header.alg)} is not RS256`)
      if (typeof header.kid !== 'string' || header.kid === '') throw new InvalidTokenError('GCP token has no kid')
      const key = await keyFor(header.kid, log)
      if (!key) throw new InvalidTokenError('GCP token kid is not among Google’s certificates')
      let payload: JWTPayload
      try {
        ;({ payload } = await jwtVerify(token, key, {
          algorithms: ['RS256'],
          issuer: GOOGLE_MARKETPLACE_ISSUER,
          audience,
          clockTolerance: CLOCK_SKEW_SECONDS,
          requiredClaims: ['iss', 'aud', 'sub', 'exp', 'iat'],
          currentDate: new Date(now()),
        }))
      } catch (error) {
        const reason =
          error instanceof errors.JWTExpired
            ? 'expired'
            : error instanceof errors.JWTClaimValidationFailed
              ? `claim ${error.claim} ${error.reason}`
              : error instanceof errors.JWSSignatureVerificationFailed
                ? 'bad signature'
                : error instanceof Error
                  ? error.name
                  : 'invalid'
        throw new InvalidTokenError(`GCP token refused: ${reason}`)
      }
      if (typeof payload.iat !== 'number' || payload.iat > now() / 1000 + CLOCK_SKEW_SECONDS) {
        throw new InvalidTokenError('GCP token refused: iat is in the future')
      }
      if (typeof payload.sub !== 'string' || payload.sub.trim() === '') throw new InvalidTokenError('GCP token refused: empty sub')
      return payload as MarketplaceClaims
    },
  }
}

export type MarketplaceJwtVerifier = ReturnType<typeof createMarketplaceJwtVerifier>
