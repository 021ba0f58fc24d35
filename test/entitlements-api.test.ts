import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import type { NormalizedPurchase } from '../providers/types'
import { upsertEntitlement } from '../src/db/entitlements'
import { entitlementJson, purchaseColumns, recordEvent } from '../src/domain/entitlements'
import { newId } from '../src/domain/ids'
import { type TestBroker, createTestBroker } from './helpers'

let broker: TestBroker
let orgId: string
let apiKey: string
const seeded: Array<{ id: string; partner: string; status: string; createdAt: string }> = []

const partners = ['azure', 'aws', 'gcp'] as const
const statuses = ['PENDING_START', 'ACTIVE', 'SUSPENDED', 'CANCELLED'] as const

function purchase(i: number): NormalizedPurchase {
  return {
    externalId: `ext-${i}`,
    status: statuses[i % statuses.length]!,
    offerType: 'DEFAULT',
    productId: 'offer1',
    planId: 'silver',
    quantity: i,
    buyer: { accountId: `acct-${i}`, customerId: null, email: null, tenantId: null, name: null },
    term: { start: null, end: null, unit: null, autoRenew: null },
    isFreeTrial: false,
    isTest: false,
    info: { i },
    needsActivation: false,
  }
}

beforeAll(async () => {
  broker = await createTestBroker()
  ;({ org: { id: orgId }, apiKey } = await broker.createOrg())
  // 250 entitlements; several share a createdAt so the (createdAt, id) tie-break matters.
  const base = Date.parse('2026-01-01T00:00:00.000Z')
  for (let i = 0; i < 250; i++) {
    const createdAt = new Date(base + Math.floor(i / 3) * 1000).toISOString()
    const partner = partners[i % partners.length]!
    const p = purchase(i)
    const { row } = await upsertEntitlement(broker.deps.db, {
      id: newId('ent'),
      org_id: orgId,
      partner,
      partner_id: `${partner}_test`,
      external_id: p.externalId,
      ...purchaseColumns(p),
      created_at: createdAt,
      updated_at: createdAt,
    }, entitlementJson)
    seeded.push({ id: row.id, partner, status: row.status, createdAt })
  }
  const other = await broker.createOrg({ name: 'Other' })
  const p = purchase(9999)
  await upsertEntitlement(broker.deps.db, {
    id: newId('ent'), org_id: other.org.id, partner: 'azure', partner_id: 'azure_other', external_id: 'other', ...purchaseColumns(p),
    created_at: '2027-01-01T00:00:00.000Z', updated_at: '2027-01-01T00:00:00.000Z',
  }, entitlementJson)
})
afterAll(async () => {
  await broker.close()
})

const newestFirst = (a: { createdAt: string; id: string }, b: { createdAt: string; id: string }) =>
  a.createdAt === b.createdAt ? (a.id < b.id ? 1 : -1) : a.createdAt < b.createdAt ? 1 : -1

async function page(query: string) {
  const response = await broker.request(`/api/v1/orgs/${orgId}/entitlements${query}`, { token: apiKey })
  expect(response.status).toBe(200)
  return (await response.json()) as { items: Array<{ id: string; partner: string; status: string; createdAt: string }>; nextCursor: string | null }
}

async function walk(query: string, limit: number) {
  const ids: string[] = []
  let cursor: string | null = null
  let pages = 0
  do {
    const sep = query ? '&' : '?'
    const result = await page(`${query}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`)
    expect(result.items.length).toBeLessThanOrEqual(limit)
    ids.push(...result.items.map((item) => item.id))
    cursor = result.nextCursor
    pages++
  } while (cursor && pages < 1000)
  return { ids, pages }
}

describe('GET entitlements (keyset pagination)', () => {
  test('default page is the 100 newest, newest first, with a cursor', async () => {
    const result = await page('')
    expect(result.items).toHaveLength(100)
    const expected = [...seeded].sort(newestFirst).slice(0, 100).map((item) => item.id)
    expect(result.items.map((item) => item.id)).toEqual(expected)
    expect(result.nextCursor).toEqual(expect.any(String))
  })

  test('walking every page returns each entitlement exactly once, in order, then a null cursor', async () => {
    const { ids, pages } = await walk('', 7)
    expect(ids).toEqual([...seeded].sort(newestFirst).map((item) => item.id))
    expect(pages).toBe(Math.ceil(250 / 7))
  })

  test('an exact multiple of the limit ends with a null cursor, not an empty page', async () => {
    const { ids, pages } = await walk('', 50)
    expect(ids).toHaveLength(250)
    expect(pages).toBe(5)
  })

  test('partner and status filters combine with pagination', async () => {
    const { ids } = await walk('?partner=aws&status=ACTIVE', 4)
    const expected = seeded.filter((item) => item.partner === 'aws' && item.status === 'ACTIVE').sort(newestFirst).map((item) => item.id)
    expect(expected.length).toBeGreaterThan(10)
    expect(ids).toEqual(expected)
    const gcp = await page('?partner=gcp&limit=1000')
    expect(gcp.items.every((item) => item.partner === 'gcp')).toBe(true)
    expect(gcp.items).toHaveLength(seeded.filter((item) => item.partner === 'gcp').length)
    expect(gcp.nextCursor).toBeNull()
  })

  test("another org's entitlements never appear", async () => {
    const { ids } = await walk('', 1000)
    expect(ids).toHaveLength(250)
  })

  test.each(['?limit=0', '?limit=1001', '?limit=abc', '?limit=1.5', '?partner=ebay', '?status=active', '?cursor=not-a-cursor', '?cursor=' + btoa('{"a":1}')])(
    '%s is a 400',
    async (query) => {
      const response = await broker.request(`/api/v1/orgs/${orgId}/entitlements${query}`, { token: apiKey })
      expect(response.status).toBe(400)
      const { error } = (await response.json()) as { error: { code: string } }
      expect(['VALIDATION_ERROR', 'INVALID_CURSOR']).toContain(error.code)
    },
  )
})

describe('GET one entitlement and its events', () => {
  test('an entitlement of the org is returned; unknown ids are 404', async () => {
    const target = seeded[42]!
    const response = await broker.request(`/api/v1/orgs/${orgId}/entitlements/${target.id}`, { token: apiKey })
    expect(response.status).toBe(200)
    expect(await response.json()).toMatchObject({ id: target.id, orgId, partner: target.partner, externalId: 'ext-42', quantity: 42, info: { i: 42 } })
    const missing = await broker.request(`/api/v1/orgs/${orgId}/entitlements/ent_missing`, { token: apiKey })
    expect(missing.status).toBe(404)
  })

  test('events come oldest first, even when written within one millisecond', async () => {
    const target = seeded[7]!
    const at = '2026-02-01T00:00:00.000Z'
    const types = ['CREATE', 'ACTIVATE', 'SUSPEND', 'REINSTATE', 'PENDING_CANCEL', 'CANCEL'] as const
    for (const type of types) await recordEvent(broker.deps, { id: target.id, org_id: orgId }, type, 'marketplace', { type }, at)
    const response = await broker.request(`/api/v1/orgs/${orgId}/entitlements/${target.id}/events`, { token: apiKey })
    const { items } = (await response.json()) as { items: Array<{ type: string; entitlementId: string; data: { type: string } }> }
    expect(items.map((item) => item.type)).toEqual(types)
    expect(items.every((item) => item.entitlementId === target.id && item.data.type === item.type)).toBe(true)
    const missing = await broker.request(`/api/v1/orgs/${orgId}/entitlements/ent_missing/events`, { token: apiKey })
    expect(missing.status).toBe(404)
  })
})

describe('serialization', () => {
  test('rows without their stored JSON are served from their columns: the same entitlement and the same pages', async () => {
    const { sql } = await import('kysely')
    // Every page's body, as text, following the cursors.
    const bodies = async (query: string, limit: number) => {
      const texts: string[] = []
      let cursor: string | null = null
      do {
        const sep = query ? '&' : '?'
        const response = await broker.request(`/api/v1/orgs/${orgId}/entitlements${query}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { token: apiKey })
        texts.push(await response.text())
        cursor = (JSON.parse(texts.at(-1)!) as { nextCursor: string | null }).nextCursor
      } while (cursor && texts.length < 500)
      return texts
    }
    const before = await bodies('', 7)
    const one = seeded[5]!.id
    const got = await (await broker.request(`/api/v1/orgs/${orgId}/entitlements/${one}`, { token: apiKey })).text()
    const filtered = await bodies('?partner=aws&status=ACTIVE', 3)
    // Every fifth row loses its JSON (none is written without it; the read path copes if one were).
    const rows = await broker.deps.db.selectFrom('entitlements').select(['id', 'json']).where('org_id', '=', orgId).orderBy('id').execute()
    const dropped = rows.filter((row, i) => i % 5 === 0 || row.id === one)
    await broker.deps.db.updateTable('entitlements').set({ json: null }).where('id', 'in', dropped.map((row) => row.id)).execute()
    try {
      expect(dropped.length).toBeGreaterThan(40)
      expect(await (await broker.request(`/api/v1/orgs/${orgId}/entitlements/${one}`, { token: apiKey })).text()).toBe(got)
      expect(await bodies('', 7)).toEqual(before)
      expect(await bodies('?partner=aws&status=ACTIVE', 3)).toEqual(filtered)
    } finally {
      for (const row of dropped) await broker.deps.db.updateTable('entitlements').set({ json: row.json }).where('id', '=', row.id).execute()
    }
    expect((await sql<{ n: number }>`select count(*) as n from entitlements where json is null`.execute(broker.deps.db)).rows[0]!.n).toBe(0)
  })

  test('the spliced JSON of an entitlement is exactly the parsed-and-serialized one, for every stored row', async () => {
    const { entitlementJson, toEntitlement } = await import('../src/domain/entitlements')
    const rows = await broker.deps.db.selectFrom('entitlements').selectAll().execute()
    expect(rows.length).toBeGreaterThan(200)
    for (const row of rows) {
      const spliced = entitlementJson(row)
      expect(JSON.parse(spliced)).toEqual(toEntitlement(row))
      expect(Object.keys(JSON.parse(spliced))).toEqual(Object.keys(toEntitlement(row)))
    }
  })
})
