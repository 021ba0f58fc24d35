import type { IncomingMessage } from 'node:http'
import { isIP } from 'node:net'
import type { Context } from 'hono'
import type { AppEnv } from '../env'

/** Whether `address` is a loopback one: 127.0.0.0/8, ::1, or 127.x written as IPv4-mapped IPv6. */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false
  const v4 = address.startsWith('::ffff:') ? address.slice('::ffff:'.length) : address
  if (isIP(v4) === 4) return v4.split('.')[0] === '127'
  return isIP(address) === 6 && /^(0{0,4}:){7}0{0,3}1$|^::1$/i.test(address)
}

/** Whether the request's TCP peer (not a header a client could write) is on loopback. */
export function fromLoopback(c: Context<AppEnv>): boolean {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming
  return isLoopbackAddress(incoming?.socket?.remoteAddress)
}
