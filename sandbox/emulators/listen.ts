import { serve } from '@hono/node-server'
import type { AddressInfo } from 'node:net'

/** Serves an emulator's fetch handler on a free loopback port (of 127.0.0.1 unless another 127/8 address is given); `close` stops it. */
export function listenOnLoopback(
  fetch: (request: Request) => Response | Promise<Response>,
  address = '127.0.0.1',
): Promise<{ url: string; close: () => Promise<void> }> {
  return new Promise((resolve) => {
    const server = serve({ fetch, hostname: address, port: 0 }, (info: AddressInfo) => {
      resolve({ url: `http://${address}:${info.port}`, close: () => new Promise<void>((done) => server.close(() => done())) })
    })
  })
}
