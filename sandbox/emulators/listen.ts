import { serve } from '@hono/node-server'
import type { AddressInfo } from 'node:net'

/** Serves an emulator's fetch handler on a free loopback port; `close` stops it. */
export function listenOnLoopback(fetch: (request: Request) => Response | Promise<Response>): Promise<{ url: string; close: () => Promise<void> }> {
  return new Promise((resolve) => {
    const server = serve({ fetch, hostname: '127.0.0.1', port: 0 }, (info: AddressInfo) => {
      resolve({ url: `http://127.0.0.1:${info.port}`, close: () => new Promise<void>((done) => server.close(() => done())) })
    })
  })
}
