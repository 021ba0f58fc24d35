import { afterAll, beforeAll, expect, test } from 'vitest'
import { InvalidTokenError } from '../providers/errors'
import { createMarketplaceJwtVerifier } from '../providers/gcp/jwt'
import { createLogger } from '../src/logger'
import { type GcpEmulator, createGcpEmulator } from '../sandbox/emulators/gcp'

let gcp: GcpEmulator
let close: () => Promise<void>
beforeAll(async () => {
  gcp = await createGcpEmulator()
  ;({ close } = await gcp.listen())
})
afterAll(async () => {
  await close()
})

const log = createLogger({ silent: true })

test('a kid unknown to the cache is refetched only once a minute has passed since the last fetch', async () => {
  let clock = Date.now()
  const verifier = createMarketplaceJwtVerifier({ certsUrl: gcp.certsUrl, now: () => clock })
  const fetches = () => gcp.callsTo('certs').length
  const start = fetches()
  await expect(verifier.verify(await gcp.mintToken({ aud: 'a.example', sub: 'acct-1' }), 'a.example', log)).resolves.toMatchObject({ sub: 'acct-1' })
  expect(fetches() - start).toBe(1)

  await gcp.rotateKey()
  const rotated = await gcp.mintToken({ aud: 'a.example', sub: 'acct-2' })
  clock += 30_000
  await expect(verifier.verify(rotated, 'a.example', log)).rejects.toBeInstanceOf(InvalidTokenError)
  expect(fetches() - start).toBe(1)

  clock += 31_000
  await expect(verifier.verify(rotated, 'a.example', log)).resolves.toMatchObject({ sub: 'acct-2' })
  expect(fetches() - start).toBe(2)
})

test('exp and iat get 60 seconds of clock skew, not more', async () => {
  const now = Math.floor(Date.now() / 1000)
  const verifier = createMarketplaceJwtVerifier({ certsUrl: gcp.certsUrl })
  const token = (claims: Record<string, number>) => gcp.mintToken({ aud: 'a.example', sub: 'acct', ...claims })
  await expect(verifier.verify(await token({ iat: now - 300, exp: now - 30 }), 'a.example', log)).resolves.toBeTruthy()
  await expect(verifier.verify(await token({ iat: now - 400, exp: now - 90 }), 'a.example', log)).rejects.toThrow(/expired/)
  await expect(verifier.verify(await token({ iat: now + 30, exp: now + 330 }), 'a.example', log)).resolves.toBeTruthy()
  await expect(verifier.verify(await token({ iat: now + 120, exp: now + 420 }), 'a.example', log)).rejects.toThrow(/iat/)
})
