import type { IncomingMessage } from 'node:http'
import type { Context, MiddlewareHandler } from 'hono'
import type { AppEnv } from '../env'

/**
 * JSON request bodies read straight from Node's IncomingMessage (which @hono/node-server hands
 * the app as `c.env.incoming`) into Hono's body cache, so `c.req.json()` and the validators find
 * them there. Without it, the first read of a body makes the adapter build a full WHATWG Request
 * around a web stream: about 0.1 ms a request, most of a small POST's cost. Only JSON: forms and
 * text keep the standard path (their readers need the Request's content type). The body limit is
 * applied here, while reading; requests it has read skip the generic limit (`bodyRead`).
 */
export function nodeJsonBodies(limit: number, tooLarge: (c: Context<AppEnv>) => Response | Promise<Response>): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming
    const method = c.req.method
    // Not a Node request, no body, or one somebody has read already (its 'end' would never come again).
    if (!incoming || typeof incoming.on !== 'function' || method === 'GET' || method === 'HEAD' || incoming.readableEnded || 'rawBody' in incoming) return next()
    if (!/^application\/([\w.+-]+\+)?json\s*(;|$)/i.test(c.req.header('content-type') ?? '')) return next()
    const declared = Number(c.req.header('content-length') ?? 0)
    if (declared > limit) {
      incoming.resume()
      return tooLarge(c)
    }
    const text = await new Promise<string | null>((resolve, reject) => {
      const chunks: Buffer[] = []
      let size = 0
      const onData = (chunk: Buffer) => {
        size += chunk.length
        if (size > limit) {
          incoming.off('data', onData)
          incoming.resume()
          resolve(null)
          return
        }
        chunks.push(chunk)
      }
      incoming.on('data', onData)
      incoming.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
      incoming.once('error', reject)
    })
    if (text === null) return tooLarge(c)
    // c.req.json() parses the cached text (a malformed body rejects there, as the validators expect: 400).
    ;(c.req.bodyCache as Record<string, Promise<unknown>>).text = Promise.resolve(text)
    c.set('bodyRead', true)
    return next()
  }
}
