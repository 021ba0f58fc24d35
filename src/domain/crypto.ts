/**
 * Web Crypto helpers shared by both runtimes (no `node:crypto`): random ids and secrets,
 * SHA-256 digests for API keys and marketplace tokens, and AES-GCM for integration secrets.
 */

import { BoundedMap } from '../bounded-map'

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export function base64UrlEncode(bytes: Uint8Array): string {
  return base64Encode(bytes).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

export function base64UrlDecode(text: string): Uint8Array<ArrayBuffer> {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/')
  const binary = atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4))
  return Uint8Array.from(binary, (char) => char.charCodeAt(0))
}

function base64Encode(bytes: Uint8Array): string {
  let binary = ''
  for (const byte of bytes) binary += String.fromCharCode(byte)
  return btoa(binary)
}

function base64Decode(text: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(text), (char) => char.charCodeAt(0))
}

export function randomBytes(length: number): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(length))
}

/** A random secret of `bytes` bytes as base64url, e.g. for API keys and admin tokens. */
export function randomSecret(bytes = 32): string {
  return base64UrlEncode(randomBytes(bytes))
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(text)))
  let hex = ''
  for (const byte of digest) hex += byte.toString(16).padStart(2, '0')
  return hex
}

/**
 * sha256Hex for strings that recur (API keys on every request): WebCrypto's digest is costly
 * per call, while the same key's hash never changes. Bounded; oldest entries go first.
 */
export function createHashCache(size = 1000) {
  const cache = new BoundedMap<string, string>(size)
  const hash = async (text: string): Promise<string> => {
    const hit = cache.get(text)
    if (hit !== undefined) return hit
    const digest = await sha256Hex(text)
    cache.set(text, digest)
    return digest
  }
  /** The hash when it is remembered, without waiting for anything (undefined: ask `hash`). */
  const known = (text: string): string | undefined => cache.get(text)
  return Object.assign(hash, { known })
}

/** Compares two strings without an early exit, so the time taken does not leak a prefix. */
export function timingSafeEqual(a: string, b: string): boolean {
  // Code units, not encoded bytes: this runs on every API request, and encoding both strings
  // first cost two allocations each time. Past the end, charCodeAt is NaN, and NaN | 0 is 0.
  let diff = a.length ^ b.length
  const length = Math.max(a.length, b.length)
  for (let i = 0; i < length; i++) diff |= (a.charCodeAt(i) | 0) ^ (b.charCodeAt(i) | 0)
  return diff === 0
}

/**
 * Encrypts and decrypts integration secrets with AES-256-GCM under `ENCRYPTION_KEY`.
 * Stored form: `v1.<iv b64>.<ciphertext+tag b64>`. The additional data binds a ciphertext
 * to the row it belongs to (org + partner), so a secret copied to another row fails to open.
 */
export interface SecretBox {
  seal(plaintext: string, additionalData: string): Promise<string>
  open(sealed: string, additionalData: string): Promise<string>
}

export async function createSecretBox(base64Key: string): Promise<SecretBox> {
  const raw = base64Decode(base64Key)
  if (raw.length !== 32) throw new Error('ENCRYPTION_KEY must be 32 bytes')
  const key = await crypto.subtle.importKey('raw', raw, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt'])
  return {
    async seal(plaintext, additionalData) {
      const iv = randomBytes(12)
      const ciphertext = await crypto.subtle.encrypt(
        { name: 'AES-GCM', iv, additionalData: encoder.encode(additionalData) },
        key,
        encoder.encode(plaintext),
      )
      return `v1.${base64Encode(iv)}.${base64Encode(new Uint8Array(ciphertext))}`
    },
    async open(sealed, additionalData) {
      const [version, iv, ciphertext] = sealed.split('.')
      if (version !== 'v1' || !iv || !ciphertext) throw new Error('unknown secret format')
      const plaintext = await crypto.subtle.decrypt(
        { name: 'AES-GCM', iv: base64Decode(iv), additionalData: encoder.encode(additionalData) },
        key,
        base64Decode(ciphertext),
      )
      return decoder.decode(plaintext)
    },
  }
}
