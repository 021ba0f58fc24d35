import { ApiError } from '../errors'
import { base64UrlDecode, base64UrlEncode } from './crypto'

/** Opaque to clients: base64url of the last row's (createdAt, id). */
export function encodeCursor(row: { created_at: string; id: string }): string {
  return base64UrlEncode(new TextEncoder().encode(JSON.stringify([row.created_at, row.id])))
}

export function decodeCursor(cursor: string): { createdAt: string; id: string } {
  try {
    const value = JSON.parse(new TextDecoder().decode(base64UrlDecode(cursor))) as unknown
    // Ours never hold U+0000, which PostgreSQL's text cannot even be compared with (a 500 there).
    if (Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && typeof value[1] === 'string' && !`${value[0]}${value[1]}`.includes('\u0000')) {
      return { createdAt: value[0], id: value[1] }
    }
  } catch {
    // fall through
  }
  throw new ApiError('INVALID_CURSOR', 'cursor is not one this API returned.')
}

