/**
 * Transport-neutral failures a provider reports. The landing maps them to buyer pages:
 * invalid token -> 400, configuration -> "try later" (and an operator log line naming the
 * org), upstream -> 502/503. Messages never contain a token or a secret.
 */
export class ProviderError extends Error {
  override name = 'ProviderError'
}

/** The buyer's token is missing, malformed, invalid or expired: only the marketplace can mint a new one. */
export class InvalidTokenError extends ProviderError {
  override name = 'InvalidTokenError'
}

/** The ISV's integration is wrong (bad secret, offer registered to another app, ...). */
export class ConfigurationError extends ProviderError {
  override name = 'ConfigurationError'
  constructor(
    message: string,
    readonly detail: Record<string, unknown> = {},
  ) {
    super(message)
  }
}

/** The marketplace could not be reached or kept failing after retries. */
export class UpstreamError extends ProviderError {
  override name = 'UpstreamError'
  constructor(
    message: string,
    readonly status: number | null = null,
  ) {
    super(message)
  }
}

/** The marketplace refused the purchase for good (e.g. Activate with a plan it does not match): retrying cannot help. */
export class PurchaseRefusedError extends ProviderError {
  override name = 'PurchaseRefusedError'
}

/** An authenticated notification whose body is not one the marketplace sends (400, nothing stored). */
export class NotificationFormatError extends ProviderError {
  override name = 'NotificationFormatError'
}
