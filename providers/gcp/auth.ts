import { type CryptoKey, SignJWT, importPKCS8 } from 'jose'
import { ConfigurationError, UpstreamError } from '../errors'
import { type FetchLike, type RetryPolicy, fetchWithRetry } from '../shared/http'
import type { UpstreamObserver } from '../shared/telemetry'
import type { ProviderContext, ProviderLogger } from '../types'

/** Documented: the assertion's audience is always Google's token URL, whichever URL it is posted to. */
const ASSERTION_AUDIENCE = 'https://oauth2.googleapis.com/token'
const SCOPE = 'https://www.googleapis.com/auth/cloud-platform'
const MARGIN_MS = 5 * 60 * 1000
const MAX_ENTRIES = 1000

export interface ServiceAccountKey {
  client_email: string
  private_key: string
  private_key_id?: string
}

/**
 * OAuth 2.0 for service accounts: a JWT assertion signed with the account's key (jose, so it
 * runs on Workers too) exchanged at `GCP_OAUTH_TOKEN_URL` for an access token, cached until
 * five minutes before it expires. We do the exchange ourselves because google-auth-library
 * posts to Google's token URL whatever the configuration says.
 */
export function createServiceAccountTokens(options: { tokenUrl: string; fetch?: FetchLike; retryPolicy?: RetryPolicy; observe?: UpstreamObserver }) {
  const fetchFn = options.fetch ?? ((input, init) => fetch(input, init))
  const cache = new Map<string, { token: string; expiresAt: number; pending?: undefined } | { pending: Promise<string> }>()
  const keys = new Map<string, CryptoKey>()

  /** The key imported for signing; kept by `cacheKey` unless it is null (the credentials check). */
  async function signingKey(key: ServiceAccountKey, cacheKey: string | null) {
    let imported = cacheKey === null ? undefined : keys.get(cacheKey)
    if (!imported) {
      try {
        imported = (await importPKCS8(key.private_key, 'RS256')) as CryptoKey
      } catch {
        throw new ConfigurationError('the GCP service account key does not hold a usable RSA private key', { call: 'gcp.token' })
      }
      if (cacheKey === null) return imported
      if (keys.size >= MAX_ENTRIES) keys.delete(keys.keys().next().value!)
      keys.set(cacheKey, imported)
    }
    return imported
  }

  type Exchanged = { token: string; expiresAt: number }
  async function exchange(key: ServiceAccountKey, cacheKey: string | null, log: ProviderLogger, deadline?: number): Promise<Exchanged> {
    try {
      return await exchangeFor(ASSERTION_AUDIENCE, key, cacheKey, log, deadline)
    } catch (error) {
      // Google's endpoint wants its documented audience. Another endpoint (a proxy, a test
      // double) may want its own URL, as google-auth's Python client sends (aud = token_uri):
      // one more try with that before calling the configuration wrong.
      if (error instanceof ConfigurationError && options.tokenUrl !== ASSERTION_AUDIENCE && error.detail.googleError === 'invalid_grant') {
        return exchangeFor(options.tokenUrl, key, cacheKey, log, deadline)
      }
      throw error
    }
  }

  async function exchangeFor(audience: string, key: ServiceAccountKey, cacheKey: string | null, log: ProviderLogger, deadline?: number): Promise<Exchanged> {
    const now = Math.floor(Date.now() / 1000)
    const assertion = await new SignJWT({ scope: SCOPE })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', ...(key.private_key_id ? { kid: key.private_key_id } : {}) })
      .setIssuer(key.client_email)
      .setAudience(audience)
      .setIssuedAt(now)
      .setExpirationTime(now + 3600)
      .sign(await signingKey(key, cacheKey))
    const response = await fetchWithRetry(
      fetchFn,
      options.tokenUrl,
      {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }).toString(),
      },
      { log, label: 'gcp.token', policy: options.retryPolicy, deadline, observe: options.observe },
    )
    const text = await response.text()
    let body: { access_token?: string; expires_in?: number; error?: string } = {}
    try {
      body = JSON.parse(text)
    } catch {
      // handled below
    }
    if (response.ok && body.access_token) return { token: body.access_token, expiresAt: Date.now() + Number(body.expires_in ?? 3600) * 1000 }
    if (response.status >= 400 && response.status < 500 && response.status !== 429) {
      throw new ConfigurationError(`Google refused the service account (${body.error ?? response.status}): check serviceAccountKey`, {
        call: 'gcp.token',
        status: response.status,
        googleError: body.error ?? null,
      })
    }
    throw new UpstreamError(`Google token endpoint answered ${response.status}`, response.status)
  }

  return {
    async getToken(key: ServiceAccountKey, cacheKey: string, log: ProviderLogger): Promise<string> {
      const entry = cache.get(cacheKey)
      if (entry?.pending) return entry.pending
      if (entry && entry.expiresAt - Date.now() > MARGIN_MS) return entry.token
      // Concurrent landings share one exchange.
      const pending = exchange(key, cacheKey, log).then(
        (exchanged) => {
          cache.set(cacheKey, exchanged)
          return exchanged.token
        },
        (error) => {
          cache.delete(cacheKey)
          throw error
        },
      )
      if (cache.size >= MAX_ENTRIES) cache.delete(cache.keys().next().value!)
      cache.set(cacheKey, { pending })
      return pending
    },

    /** A new token, past every cache and kept nowhere (the credentials check), within `ctx.deadline`. */
    async fresh(key: ServiceAccountKey, ctx: ProviderContext): Promise<string> {
      return (await exchange(key, null, ctx.log, ctx.deadline)).token
    },
  }
}
