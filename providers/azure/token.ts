import { ConfidentialClientApplication, type INetworkModule, type NetworkRequestOptions, type NetworkResponse } from '@azure/msal-node'
import { ConfigurationError, UpstreamError } from '../errors'
import { type RetryOptions, type RetryPolicy, fetchWithRetry } from '../shared/http'
import type { UpstreamObserver } from '../shared/telemetry'
import type { ProviderContext } from '../types'
import { AZURE_MARKETPLACE_RESOURCE } from './api'

export interface EntraCredentials {
  tenantId: string
  clientId: string
  clientSecret: string
}

export interface EntraTokenSource {
  /** A bearer token for the marketplace API; cached by MSAL until close to its expiry. */
  getToken(credentials: EntraCredentials, cacheKey: string): Promise<string>
  /**
   * Asks Entra for a new token with these credentials, past every cache (the credentials check):
   * resolves with the token's expiry, or throws ConfigurationError / UpstreamError as getToken does.
   */
  verify(credentials: EntraCredentials, ctx: ProviderContext): Promise<{ expiresOn: Date | null }>
}

const SCOPE = `${AZURE_MARKETPLACE_RESOURCE}/.default`
const MAX_CLIENTS = 1000

/**
 * Entra client-credentials tokens through MSAL, one ConfidentialClientApplication (and so
 * one in-memory token cache) per integration version, so a landing reuses the token the last
 * one got and a changed secret starts afresh.
 *
 * MSAL insists on an https authority and would fetch instance and OpenID metadata from it.
 * We give it the metadata ourselves (`authorityMetadata`, `knownAuthorities`), so the only
 * call it makes is the token POST to `$AZURE_LOGIN_URL/<tenant>/oauth2/v2.0/token`, which
 * may be plain http (an emulator on 127.0.0.1). MSAL rewrites the path segment after the
 * authority's base path with the tenant, so the authority keeps the login URL's base path.
 */
export function createEntraTokenSource(options: { loginUrl: string; retryPolicy?: RetryPolicy; observe?: UpstreamObserver }): EntraTokenSource {
  const login = new URL(options.loginUrl)
  const networkClient = createMsalNetworkClient(options.retryPolicy, { observe: options.observe })
  const basePath = login.pathname.replace(/\/+$/, '')
  const clients = new Map<string, ConfidentialClientApplication>()

  function buildClient(credentials: EntraCredentials, network: INetworkModule) {
    const tenantBase = `${options.loginUrl}/${encodeURIComponent(credentials.tenantId)}`
    return new ConfidentialClientApplication({
      auth: {
        clientId: credentials.clientId,
        clientSecret: credentials.clientSecret,
        authority: `https://${login.host}${basePath}/${encodeURIComponent(credentials.tenantId)}`,
        knownAuthorities: [login.host],
        authorityMetadata: JSON.stringify({
          token_endpoint: `${tenantBase}/oauth2/v2.0/token`,
          authorization_endpoint: `${tenantBase}/oauth2/v2.0/authorize`,
          end_session_endpoint: `${tenantBase}/oauth2/v2.0/logout`,
          issuer: `${tenantBase}/v2.0`,
          jwks_uri: `${tenantBase}/discovery/v2.0/keys`,
        }),
      },
      system: { networkClient: network },
    })
  }

  function clientFor(credentials: EntraCredentials, cacheKey: string) {
    let client = clients.get(cacheKey)
    if (client) return client
    client = buildClient(credentials, networkClient)
    if (clients.size >= MAX_CLIENTS) clients.delete(clients.keys().next().value!)
    clients.set(cacheKey, client)
    return client
  }

  // MSAL caches a token once it has one, but landings that arrive together before the first
  // answer would each ask Entra: concurrent requests for one integration share one request.
  const pending = new Map<string, Promise<string>>()
  // And MSAL's own cache lookup rebuilds its authority on every call (a visible share of a
  // landing's CPU): a token with more than five minutes left is answered from here.
  const tokens = new Map<string, { token: string; refreshAt: number }>()

  async function acquire(credentials: EntraCredentials, cacheKey: string): Promise<string> {
    try {
      const result = await clientFor(credentials, cacheKey).acquireTokenByClientCredential({ scopes: [SCOPE] })
      if (!result?.accessToken) throw new UpstreamError('Entra ID returned no access token')
      const now = Date.now()
      const expiresAt = result.expiresOn?.getTime() ?? now
      // Renew five minutes early, or halfway through a token that lives less than ten.
      const margin = Math.min(5 * 60 * 1000, (expiresAt - now) / 2)
      if (tokens.size >= MAX_CLIENTS) tokens.delete(tokens.keys().next().value!)
      tokens.set(cacheKey, { token: result.accessToken, refreshAt: expiresAt - margin })
      return result.accessToken
    } catch (error) {
      throw classifyMsalError(error)
    }
  }

  return {
    async verify(credentials, ctx) {
      // A client of its own (an empty token cache, kept nowhere) whose calls share the check's deadline and log.
      // MSAL reports a failed fetch as a bare network_error; the reason (a timeout) is kept here.
      const failures: unknown[] = []
      const client = buildClient(credentials, createMsalNetworkClient(options.retryPolicy, { log: ctx.log, deadline: ctx.deadline, observe: options.observe, failures }))
      try {
        const result = await client.acquireTokenByClientCredential({ scopes: [SCOPE], skipCache: true })
        if (!result?.accessToken) throw new UpstreamError('Entra ID returned no access token')
        return { expiresOn: result.expiresOn ?? null }
      } catch (error) {
        const cause = failures.at(-1)
        throw cause instanceof UpstreamError && (error as { errorCode?: string }).errorCode === 'network_error' ? cause : classifyMsalError(error)
      }
    },

    getToken(credentials, cacheKey) {
      const cached = tokens.get(cacheKey)
      if (cached && cached.refreshAt > Date.now()) return Promise.resolve(cached.token)
      let inflight = pending.get(cacheKey)
      if (!inflight) {
        inflight = acquire(credentials, cacheKey).finally(() => pending.delete(cacheKey))
        pending.set(cacheKey, inflight)
      }
      return inflight
    },
  }
}

/**
 * What the commonest AADSTS codes mean for an ISV's app registration ("Microsoft Entra
 * authentication and authorization error codes"), for messages that say what to fix.
 */
const AADSTS_HINTS: Record<string, string> = {
  AADSTS7000215: 'the client secret is wrong (give the secret Value, not its ID)',
  AADSTS7000222: 'the client secret has expired',
  AADSTS700016: 'no app with this clientId in the tenant (wrong clientId or tenantId)',
  AADSTS90002: 'the tenant does not exist',
  AADSTS900023: 'the tenantId is neither a tenant GUID nor a domain name',
  AADSTS7000112: 'the application is disabled',
  AADSTS70011: 'the marketplace scope is not valid for this app',
}

/** 4xx from Entra means the ISV's app registration or secret is wrong; the rest is an outage. */
function classifyMsalError(error: unknown): Error {
  if (error instanceof UpstreamError || error instanceof ConfigurationError) return error
  const msal = error as { errorCode?: string; status?: number; message?: string }
  const status = typeof msal.status === 'number' ? msal.status : null
  if (status !== null && status >= 400 && status < 500 && status !== 429) {
    // errorMessage carries AADSTS codes (e.g. AADSTS7000215 invalid secret): useful to the ISV, never secret.
    const aadsts = /AADSTS\d+/.exec(msal.message ?? '')?.[0] ?? null
    const hint = (aadsts && AADSTS_HINTS[aadsts]) ?? 'check tenantId, clientId and clientSecret'
    return new ConfigurationError(
      `Entra ID refused the client credentials (${msal.errorCode ?? 'error'}${aadsts ? `, ${aadsts}` : ''}): ${hint}`,
      { entraError: msal.errorCode ?? null, aadsts, status },
    )
  }
  return new UpstreamError(`Entra ID token request failed (${msal.errorCode ?? 'network error'})`, status)
}

/**
 * MSAL's HTTP goes through our fetch with the broker's budget: a per-attempt timeout and the
 * same retries (network errors, 429, 5xx; 3 attempts) as every other marketplace call, instead
 * of MSAL's own fetch with no timeout. Entra's 4xx answers pass through for MSAL to read.
 */
function createMsalNetworkClient(policy?: RetryPolicy, extra: Pick<RetryOptions, 'log' | 'deadline' | 'observe'> & { failures?: unknown[] } = {}): INetworkModule {
  async function send<T>(method: 'GET' | 'POST', url: string, options?: NetworkRequestOptions): Promise<NetworkResponse<T>> {
    const response = await fetchWithRetry((input, init) => fetch(input, init), url, { method, headers: options?.headers, body: options?.body }, {
      label: 'azure.entraToken',
      policy,
      log: extra.log,
      deadline: extra.deadline,
      observe: extra.observe,
    }).catch((error: unknown) => {
      extra.failures?.push(error)
      throw error
    })
    const text = await response.text()
    let body: unknown = {}
    try {
      body = text ? JSON.parse(text) : {}
    } catch {
      throw new UpstreamError(`Entra ID answered ${response.status} with a body that is not JSON`, response.status)
    }
    return { headers: Object.fromEntries(response.headers), body: body as T, status: response.status }
  }
  return {
    sendGetRequestAsync: (url, options) => send('GET', url, options),
    sendPostRequestAsync: (url, options) => send('POST', url, options),
  }
}
