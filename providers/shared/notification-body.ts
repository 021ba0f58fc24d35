import { NotificationFormatError } from '../errors'

/** A notification body that must be a JSON object; anything else is a format error (400), never a crash. */
export function parseJsonObject(body: string): Record<string, unknown> {
  let parsed: unknown
  try {
    parsed = JSON.parse(body)
  } catch {
    throw new NotificationFormatError('the body is not JSON')
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new NotificationFormatError('the body is not a JSON object')
  return parsed as Record<string, unknown>
}

/** A non-empty string, trimmed; undefined for anything else. */
export const nonEmpty = (value: unknown) => (typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined)

/** `value[key]` when `value` is an object. */
export const field = (value: unknown, key: string) => (typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined)
