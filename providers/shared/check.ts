import { ProviderError } from '../errors'
import type { CredentialCheck } from '../types'

export const passed = (name: string, message: string): CredentialCheck => ({ name, ok: true, message })

/**
 * A failed step of a credentials check. A provider's own errors say why without a secret (they
 * are written to); anything else is named by its class only, since its text is not ours.
 */
export function failed(name: string, error: unknown): CredentialCheck {
  if (error instanceof ProviderError) return { name, ok: false, message: error.message }
  return { name, ok: false, message: `unexpected failure (${error instanceof Error ? error.name : 'unknown error'})` }
}
