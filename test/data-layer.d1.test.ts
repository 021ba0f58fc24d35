import { join } from 'node:path'
import type { D1Database } from '@cloudflare/workers-types'
import { getPlatformProxy } from 'wrangler'
import { createD1Db } from '../src/db/d1'
import { D1 } from '../src/db/dialect'
import { dataLayerSuite } from './data-layer.suite'

// D1 as wrangler dev runs it: workerd's D1 behind the binding `DB` of wrangler.toml, in memory.
dataLayerSuite('D1 (workerd, via wrangler getPlatformProxy)', D1, async () => {
  const proxy = await getPlatformProxy<{ DB: D1Database }>({
    configPath: join(import.meta.dirname, '..', 'wrangler.toml'),
    persist: false,
    remoteBindings: false,
  })
  const db = createD1Db(proxy.env.DB)
  return { db, close: async () => {
    await db.destroy()
    await proxy.dispose()
  } }
})
