import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import * as m0009 from '../migrations/0009_domain_out_of_triggers'
import * as entitlementsDb from '../src/db/entitlements'
import * as claimsDb from '../src/db/claims'
import * as consoleDb from '../src/db/console'
import { atomically } from '../src/db/batch'
import * as integrationsDb from '../src/db/integrations'
import * as notificationsDb from '../src/db/notifications'
import { migrationsFor } from '../migrations/index'
import type { Dialect } from '../src/db/dialect'
import { migrateToLatest } from '../src/db/migrate'
import * as orgsDb from '../src/db/orgs'
import * as apiKeysDb from '../src/db/api-keys'
import * as usageDb from '../src/db/usage'
import * as webhooksDb from '../src/db/webhooks'
import type { DB, EntitlementEventsTable, EntitlementRow, NewEntitlementRow } from '../src/db/schema'
import { entitlementJson, toEntitlement } from '../src/domain/entitlements'
import { entitlementEventDelivery } from '../src/domain/envelopes'
import { newId } from '../src/domain/ids'
import { settleAnnounced } from '../src/domain/usage-reporter'
import type { Insertable } from 'kysely'

/**
 * The data layer's behaviour, the same on every dialect: run by data-layer.sqlite.test.ts
 * (better-sqlite3) and data-layer.d1.test.ts (D1 in workerd via wrangler's platform proxy).
 * No interactive transactions: every guarantee below comes from single statements and
 * unique keys, which is all D1 offers.
 */
export function dataLayerSuite(name: string, dialect: Dialect, open: () => Promise<{ db: DB; close: () => Promise<void> }>) {
  describe(`data layer on ${name}`, () => {
    let db: DB
    let close: () => Promise<void>
    const at = (n: number) => new Date(Date.UTC(2026, 0, 1) + n * 1000).toISOString()

    beforeAll(async () => {
      ;({ db, close } = await open())
      await migrateToLatest(db, dialect)
    })
    afterAll(async () => {
      await close()
    })

    async function org(name = 'Acme') {
      const id = newId('org')
      const keyHash = `hash-${id}`
      const row = await orgsDb.insertOrgWithKey(
        db,
        { id, name, fulfillment_url: 'https://a.example/s', webhook_url: null, created_at: at(0), updated_at: at(0) },
        { id: newId('key'), org_id: id, key_hash: keyHash, prefix: 'mbk_x', name: 'default', scope: 'full', created_at: at(0), revoked_at: null },
      )
      return { ...row, keyHash }
    }

    const entitlement = (orgId: string, externalId: string, overrides: Partial<NewEntitlementRow> = {}): NewEntitlementRow => ({
      id: newId('ent'),
      org_id: orgId,
      partner: 'azure',
      partner_id: 'azure_x',
      external_id: externalId,
      status: 'PENDING_START',
      offer_type: 'DEFAULT',
      product_id: 'offer',
      plan_id: 'plan',
      quantity: 1,
      buyer: '{}',
      term: '{}',
      is_free_trial: 0,
      is_test: 0,
      info: '{}',
      created_at: at(1),
      updated_at: at(1),
      ...overrides,
    })

    test('migrations run from scratch and a second run changes nothing', async () => {
      expect(await migrateToLatest(db, dialect)).toEqual([])
      const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db)
      expect(rows.map((row) => row.name)).toEqual(Object.keys(migrationsFor(dialect.name)))
      expect(rows.map((row) => row.name)).toContain(dialect.name === 'postgres' ? '0009_postgres_baseline' : '0009_domain_out_of_triggers')
      await expect(entitlementsDb.ping(db)).resolves.toBeUndefined()
    })

    test('orgs and API keys: found by hash, updated, a revoked key no longer matches', async () => {
      const created = await org()
      expect(await apiKeysDb.findKeyByHash(db, created.keyHash)).toMatchObject({ org_id: created.id })
      expect(await apiKeysDb.findKeyByHash(db, 'nope')).toBeUndefined()
      const updated = await orgsDb.updateOrg(db, created.id, { name: 'Acme 2', updated_at: at(5) })
      expect(updated).toMatchObject({ id: created.id, name: 'Acme 2', created_at: at(0) })
      expect(await orgsDb.updateOrg(db, 'org_missing', { name: 'x' })).toBeUndefined()
      await db.updateTable('api_keys').set({ revoked_at: at(9) }).where('org_id', '=', created.id).execute()
      expect(await apiKeysDb.findKeyByHash(db, created.keyHash)).toBeUndefined()
    })

    test('a failed API key insert leaves no org behind', async () => {
      const first = await org()
      const id = newId('org')
      await expect(
        orgsDb.insertOrgWithKey(
          db,
          { id, name: 'dup', fulfillment_url: 'https://a.example', webhook_url: null, created_at: at(0), updated_at: at(0) },
          { id: newId('key'), org_id: id, key_hash: first.keyHash, prefix: 'x', name: 'default', scope: 'full', created_at: at(0), revoked_at: null },
        ),
      ).rejects.toThrow()
      expect(await orgsDb.findOrg(db, id)).toBeUndefined()
    })

    test('integration upsert replaces settings but keeps partner_id and created_at', async () => {
      const { id } = await org()
      const first = await integrationsDb.upsertIntegration(db, { org_id: id, partner: 'azure', partner_id: 'azure_1', settings: '{"a":1}', secrets: 's1', created_at: at(1), updated_at: at(1) })
      const second = await integrationsDb.upsertIntegration(db, { org_id: id, partner: 'azure', partner_id: 'azure_2', settings: '{"a":2}', secrets: 's2', created_at: at(2), updated_at: at(2) })
      expect(second).toMatchObject({ partner_id: first.partner_id, created_at: at(1), updated_at: at(2), settings: '{"a":2}', secrets: 's2' })
      await integrationsDb.upsertIntegration(db, { org_id: id, partner: 'gcp', partner_id: 'gcp_1', settings: '{}', secrets: 's', created_at: at(3), updated_at: at(3) })
      expect((await integrationsDb.listIntegrations(db, id)).map((row) => row.partner)).toEqual(['azure', 'gcp'])
      expect(await integrationsDb.findIntegration(db, id, 'aws')).toBeUndefined()
    })

    test('entitlement upsert: one row per (org, partner, externalId), even when racing', async () => {
      const { id } = await org()
      const results = await Promise.all(Array.from({ length: 6 }, () => entitlementsDb.upsertEntitlement(db, entitlement(id, 'sub-race'), entitlementJson)))
      expect(new Set(results.map((r) => r.row.id)).size).toBe(1)
      expect(results.filter((r) => r.created)).toHaveLength(1)
      const again = await entitlementsDb.upsertEntitlement(db, entitlement(id, 'sub-race', { status: 'ACTIVE', quantity: 9, updated_at: at(7) }), entitlementJson)
      expect(again).toMatchObject({ created: false, row: { id: results[0]!.row.id, status: 'ACTIVE', quantity: 9, created_at: at(1), updated_at: at(7) } })
      // The same external id under another partner or org is another entitlement.
      expect((await entitlementsDb.upsertEntitlement(db, entitlement(id, 'sub-race', { partner: 'aws' }), entitlementJson)).created).toBe(true)
      expect((await entitlementsDb.upsertEntitlement(db, entitlement((await org()).id, 'sub-race'), entitlementJson)).created).toBe(true)
      expect(await entitlementsDb.findEntitlementByExternalId(db, id, 'azure', 'sub-race')).toMatchObject({ id: results[0]!.row.id })
    })

    /** The stored JSON, checked against the builder's output for the row as stored. */
    const stored = async (orgId: string, entitlementId: string) => {
      const row = (await entitlementsDb.findEntitlement(db, orgId, entitlementId))!
      const json = await entitlementsDb.findEntitlementJson(db, orgId, entitlementId)
      expect(json).toBe(entitlementJson(row))
      expect(JSON.parse(json!)).toEqual(toEntitlement(row))
      const page = await entitlementsDb.listEntitlementJson(db, { orgId, limit: 100 })
      expect(page.rows.map((r) => r.json)).toContain(json)
      return JSON.parse(json!) as Record<string, unknown>
    }
    /** An event and its delivery, built the way the domain builds them for the entitlement as the write leaves it. */
    const eventWrite = (event: Insertable<EntitlementEventsTable>, after: EntitlementRow) => ({ event, delivery: entitlementEventDelivery(event, after, entitlementJson(after)) })

    test('the stored JSON is what entitlementJson builds from the columns, after an insert, an upsert and an update', async () => {
      const { id } = await org()
      // Strings JSON must escape, and some it must not: quotes, backslashes, control characters, non-ASCII.
      const awkward = 'q"uote \\ back\nline\ttab \u0001 \u001f \u007f é 日本 😀 \u2028 </script>'
      const first = entitlement(id, `ext ${awkward}`, {
        product_id: awkward,
        plan_id: null,
        quantity: null,
        buyer: JSON.stringify({ email: 'a@b.example', name: awkward }),
        term: JSON.stringify({ start: null, end: null }),
        is_free_trial: 1,
        info: JSON.stringify({ nested: { list: [1, 2.5, true, null, awkward] } }),
      })
      const created = await entitlementsDb.upsertEntitlement(db, first, entitlementJson)
      expect(await stored(id, created.row.id)).toMatchObject({ externalId: `ext ${awkward}`, productId: awkward, planId: null, quantity: null, isFreeTrial: true })
      // The conflict path keeps id and createdAt and takes the rest from the new sighting, JSON included.
      const sighting = { ...first, id: newId('ent'), status: 'ACTIVE', plan_id: 'gold', quantity: 3, created_at: at(5), updated_at: at(6) }
      await entitlementsDb.upsertEntitlement(db, sighting, entitlementJson)
      expect(await stored(id, created.row.id)).toMatchObject({ id: created.row.id, status: 'ACTIVE', planId: 'gold', quantity: 3, createdAt: at(1), updatedAt: at(6) })
      const updated = { ...(await entitlementsDb.findEntitlement(db, id, created.row.id))! }
      const { id: _id, org_id: _org, partner: _partner, created_at: _created, ...columns } = updated
      const set = { ...columns, status: 'SUSPENDED', offer_type: 'PRIVATE_OFFER', product_id: 'p', plan_id: 'silver', quantity: 2, buyer: '{}', term: '{}', is_free_trial: 0, is_test: 1, info: '{"a":1}', updated_at: at(9) }
      await entitlementsDb.writeEntitlementChange(db, { expected: updated, set: { ...set, json: entitlementJson({ ...updated, ...set }) } }, [])
      expect(await stored(id, created.row.id)).toMatchObject({ status: 'SUSPENDED', offerType: 'PRIVATE_OFFER', planId: 'silver', quantity: 2, isFreeTrial: false, isTest: true, info: { a: 1 }, updatedAt: at(9) })
      expect(await entitlementsDb.findEntitlementJson(db, (await org()).id, created.row.id)).toBeUndefined()
    })

    test('migration 0009 leaves no trigger behind and can run again; the database no longer writes JSON or deliveries itself', async () => {
      const { id } = await org()
      await orgsDb.updateOrg(db, id, { webhook_url: 'https://hooks.example/no-trigger' })
      if (dialect.name !== 'postgres') {
        await m0009.up(db)
        const { rows } = await sql<{ name: string }>`select name from sqlite_master where type = 'trigger'`.execute(db)
        expect(rows).toEqual([])
      }
      // A row and an event written around the broker's writer: nothing is added to them.
      const row = entitlement(id, 'raw-insert')
      await db.insertInto('entitlements').values(row).execute()
      await db.insertInto('entitlement_events').values({ id: newId('evt'), entitlement_id: row.id, org_id: id, type: 'CREATE', source: 'api', data: '{}', created_at: at(2) }).execute()
      expect(await entitlementsDb.findEntitlementJson(db, id, row.id)).toBeNull()
      expect(await db.selectFrom('webhook_deliveries').select('id').where('org_id', '=', id).execute()).toEqual([])
    })

    test('keyset pagination is newest first with (created_at, id) ties broken by id, filters included', async () => {
      const { id } = await org()
      const ids: Array<{ id: string; created_at: string; partner: string }> = []
      for (let i = 0; i < 13; i++) {
        const row = entitlement(id, `k-${i}`, { created_at: at(Math.floor(i / 4)), partner: i % 2 ? 'aws' : 'azure', status: i % 3 ? 'ACTIVE' : 'CANCELLED' })
        await entitlementsDb.upsertEntitlement(db, row, entitlementJson)
        ids.push(row as { id: string; created_at: string; partner: string })
      }
      const expected = [...ids].sort((a, b) => (a.created_at === b.created_at ? (a.id < b.id ? 1 : -1) : a.created_at < b.created_at ? 1 : -1)).map((r) => r.id)
      const seen: string[] = []
      let before: { createdAt: string; id: string } | undefined
      for (;;) {
        const page = await entitlementsDb.listEntitlements(db, { orgId: id, limit: 5, before })
        seen.push(...page.rows.map((r) => r.id))
        if (!page.hasMore) break
        const last = page.rows.at(-1)!
        before = { createdAt: last.created_at, id: last.id }
      }
      expect(seen).toEqual(expected)
      const aws = await entitlementsDb.listEntitlements(db, { orgId: id, limit: 100, partner: 'aws', status: 'ACTIVE' })
      expect(aws.rows.every((r) => r.partner === 'aws' && r.status === 'ACTIVE')).toBe(true)
      expect(aws.rows.length).toBeGreaterThan(0)
      expect(aws.hasMore).toBe(false)
    })

    test('entitlements found by a buyer field or an info field of their stored JSON, newest first', async () => {
      const { id } = await org()
      const rows = [
        entitlement(id, 'by-buyer-1', { partner: 'aws', buyer: JSON.stringify({ customerId: 'cust-1', accountId: 'acct-1' }), info: JSON.stringify({ agreementId: 'agmt-1' }), created_at: at(1) }),
        entitlement(id, 'by-buyer-2', { partner: 'aws', product_id: 'other', buyer: JSON.stringify({ customerId: 'cust-1', accountId: 'acct-2' }), info: '{}', created_at: at(2) }),
        entitlement(id, 'by-buyer-3', { partner: 'aws', buyer: JSON.stringify({ customerId: 'cust-3' }), info: JSON.stringify({ agreementId: 'agmt-3' }), created_at: at(3) }),
      ]
      for (const row of rows) await entitlementsDb.upsertEntitlement(db, row, entitlementJson)
      const found = async (query: Omit<Parameters<typeof entitlementsDb.findEntitlementsByBuyer>[1], 'orgId' | 'partner'>) =>
        (await entitlementsDb.findEntitlementsByBuyer(db, { orgId: id, partner: 'aws', ...query })).map((row) => row.external_id)
      expect(await found({ customerId: 'cust-1' })).toEqual(['by-buyer-2', 'by-buyer-1'])
      expect(await found({ customerId: 'cust-1', productId: 'offer' })).toEqual(['by-buyer-1'])
      expect(await found({ accountId: 'acct-2' })).toEqual(['by-buyer-2'])
      expect(await found({ agreementId: 'agmt-3' })).toEqual(['by-buyer-3'])
      expect(await found({ customerId: 'nobody' })).toEqual([])
    })

    test('events list oldest first by their time-sorted ids', async () => {
      const { id } = await org()
      const { row } = await entitlementsDb.upsertEntitlement(db, entitlement(id, 'ev'), entitlementJson)
      for (const type of ['CREATE', 'ACTIVATE', 'SUSPEND', 'REINSTATE']) {
        await entitlementsDb.insertEvent(db, { id: newId('evt'), entitlement_id: row.id, org_id: id, type, source: 'signup', data: '{}', created_at: at(2) })
      }
      expect((await entitlementsDb.listEvents(db, row.id)).map((e) => e.type)).toEqual(['CREATE', 'ACTIVATE', 'SUSPEND', 'REINSTATE'])
    })

    test('landing tokens: saved, found with their entitlement until they expire, then pruned', async () => {
      const { id } = await org()
      const { row } = await entitlementsDb.upsertEntitlement(db, entitlement(id, 'tok', { offer_type: 'PRIVATE' }), entitlementJson)
      await entitlementsDb.saveLandingToken(db, { token_hash: 'h1', org_id: id, partner: 'azure', entitlement_id: row.id, expires_at: at(100), created_at: at(1) })
      await entitlementsDb.saveLandingToken(db, { token_hash: 'h1', org_id: id, partner: 'azure', entitlement_id: row.id, expires_at: at(200), created_at: at(1) })
      expect(await entitlementsDb.findLandingToken(db, 'h1', at(150))).toMatchObject({ id: row.id, offer_type: 'PRIVATE', org_id: id })
      expect(await entitlementsDb.findLandingToken(db, 'h1', at(250))).toBeUndefined()
      await entitlementsDb.deleteExpiredLandingTokens(db, at(250))
      expect(await db.selectFrom('landing_tokens').selectAll().where('token_hash', '=', 'h1').execute()).toHaveLength(0)
    })

    test('notification inbox: one row per message id, one lease at a time, settled rows never leased again, waiting rows woken by subject', async () => {
      const { id } = await org()
      const row = (messageId: string, subject = 'sub-1') => ({
        id: newId('ntf'), org_id: id, partner: 'azure', message_id: messageId, subject, action: 'Suspend', payload: '{}',
        status: 'PENDING' as const, next_attempt_at: at(1), created_at: at(1), updated_at: at(1),
      })
      const first = row('op-1')
      expect(await notificationsDb.insertNotification(db, first)).toBe(true)
      expect(await notificationsDb.insertNotification(db, row('op-1'))).toBe(false)
      expect((await notificationsDb.findNotificationByMessage(db, id, 'azure', 'op-1'))?.id).toBe(first.id)
      expect(await notificationsDb.leaseNotification(db, first.id, at(0), at(60))).toBeUndefined() // not due yet
      const leased = await notificationsDb.leaseNotification(db, first.id, at(2), at(60))
      expect(leased).toMatchObject({ id: first.id, attempts: 1 })
      expect(await notificationsDb.leaseNotification(db, first.id, at(3), at(60))).toBeUndefined() // held
      expect(await notificationsDb.dueNotifications(db, at(3), 10)).toEqual([])
      await notificationsDb.retryNotificationLater(db, first.id, at(30), 'UpstreamError: 503', at(3))
      expect((await notificationsDb.dueNotifications(db, at(31), 10)).map((r) => r.id)).toContain(first.id)
      await notificationsDb.settleNotification(db, first.id, 'APPLIED', at(32))
      expect(await notificationsDb.leaseNotification(db, first.id, at(40), at(90))).toBeUndefined()

      const waiting = row('op-2', 'sub-2')
      await notificationsDb.insertNotification(db, waiting)
      await notificationsDb.settleNotification(db, waiting.id, 'WAITING', at(2))
      expect(await notificationsDb.wakeWaiting(db, id, 'azure', 'sub-other', at(5))).toEqual([])
      expect(await notificationsDb.wakeWaiting(db, id, 'azure', 'sub-2', at(5))).toEqual([waiting.id])
      expect(await notificationsDb.leaseNotification(db, waiting.id, at(5), at(65))).toMatchObject({ status: 'PENDING' })

      // Settled rows past their keep are forgotten; pending and waiting ones never are.
      await notificationsDb.pruneSettled(db, at(100))
      expect(await notificationsDb.findNotificationByMessage(db, id, 'azure', 'op-1')).toBeUndefined()
      expect(await notificationsDb.findNotificationByMessage(db, id, 'azure', 'op-2')).toBeDefined()
    })

    test('background claims: every due row goes to one of the callers claiming at once; held and future rows to none', async () => {
      const { id } = await org()
      const delivery = (n: number, overrides: Record<string, unknown> = {}) => ({
        id: `msg_claim_${id}_${n}`, org_id: id, event_id: null, type: 'ping', payload: '{}', status: 'PENDING' as const, next_attempt_at: at(n), created_at: at(0), updated_at: at(0), ...overrides,
      })
      const due = Array.from({ length: 7 }, (_, n) => delivery(n))
      for (const row of [...due, delivery(50), delivery(8, { lease_until: at(99) }), delivery(9, { status: 'SUCCEEDED' })]) await webhooksDb.insertDelivery(db, row)
      const ours = (rows: Array<{ id: string }>) => rows.map((row) => row.id).filter((rowId) => rowId.startsWith(`msg_claim_${id}_`))
      const claimed = (await Promise.all(Array.from({ length: 5 }, () => webhooksDb.claimDueDeliveries(db, at(20), at(60), 3)))).flatMap(ours)
      expect(claimed.sort()).toEqual(due.map((row) => row.id).sort())
      expect(ours(await webhooksDb.claimDueDeliveries(db, at(21), at(60), 50))).toEqual([])
      // Once its lease has run out, a row is due again.
      expect(ours(await webhooksDb.claimDueDeliveries(db, at(61), at(120), 50)).sort()).toEqual([...due.map((row) => row.id), delivery(50).id].sort())

      // Landings whose holder died: each taken over once, its attempt counted.
      for (const n of [1, 2, 3]) {
        await claimsDb.claimLanding(db, { token_hash: `stale-${id}-${n}`, org_id: id, partner: 'azure', sealed_token: 's', lease_until: at(n), created_at: at(0) }, at(0))
      }
      const stale = (await Promise.all(Array.from({ length: 4 }, () => claimsDb.takeStaleClaims(db, at(10), at(60), 2)))).flat().filter((row) => row.org_id === id)
      expect(stale.map((row) => [row.token_hash, row.attempts]).sort()).toEqual([1, 2, 3].map((n) => [`stale-${id}-${n}`, 1]))

      // Pending activations: the job's claim respects the backoff and the lease.
      const { row } = await entitlementsDb.upsertEntitlement(db, entitlement(id, 'claimed-activation'), entitlementJson)
      await claimsDb.holdActivation(db, { entitlement_id: row.id, org_id: id, partner: 'azure', lease_until: at(5), created_at: at(0) }, at(0))
      await claimsDb.activationFailed(db, row.id, { nextAttemptAt: at(30), error: 'x', now: at(5) })
      const activation = (now: number) => claimsDb.claimDueActivation(db, at(now), at(now + 50)).then((held) => (held?.entitlement_id === row.id ? held : undefined))
      expect(await activation(20)).toBeUndefined()
      const taken = await Promise.all([activation(31), activation(31), activation(31)])
      expect(taken.filter(Boolean)).toHaveLength(1)
      expect(await activation(40)).toBeUndefined()
    })

    test('usage reports: each due report claimed by one run; a claimed report still takes late-closing records until its batch is leased', async () => {
      const { id: orgId } = await org()
      const { row } = await entitlementsDb.upsertEntitlement(db, entitlement(orgId, 'claimed-usage', { status: 'ACTIVE' }), entitlementJson)
      const hour = '2026-01-03T10:00:00.000Z'
      const record = (key: string, dimension: string, quantity: number) => ({
        id: newId('use'), org_id: orgId, entitlement_id: row.id, partner: 'azure', dimension, quantity, timestamp: '2026-01-03T10:20:00.000Z', timestamp_given: 1,
        hour, idempotency_key: key, status: 'PENDING' as const, marketplace_status: null, error: null, reported_at: null, report_id: null, created_at: at(1),
      })
      await usageDb.insertRecords(db, [record('c1', 'a', 1), record('c2', 'b', 2), record('c3', 'c', 3)])
      // Several instances closing the hour at once make one report per dimension.
      await Promise.all(['claim-run-1', 'claim-run-1b', 'claim-run-1c'].map((run) => usageDb.closeHour(db, hour, run, at(2))))
      expect((await db.selectFrom('usage_reports').select(['dimension', 'late']).where('entitlement_id', '=', row.id).orderBy('dimension').execute())).toEqual(
        ['a', 'b', 'c'].map((dimension) => ({ dimension, late: 0 })),
      )
      const mine = <R extends { entitlement_id: string }>(rows: R[]) => rows.filter((r) => r.entitlement_id === row.id)
      const claims = await Promise.all(['run-a', 'run-b', 'run-c'].map((owner) => usageDb.claimDueReports(db, at(3), at(100), owner, 50).then(mine)))
      const claimed = claims.flat()
      expect(claimed.map((r) => r.dimension).sort()).toEqual(['a', 'b', 'c'])
      expect(claimed.every((r) => r.attempts === 0)).toBe(true)
      expect(mine(await usageDb.claimDueReports(db, at(4), at(100), 'run-d', 50))).toEqual([])
      const report = claimed.find((r) => r.dimension === 'a')!
      await usageDb.insertRecords(db, [record('c4', 'a', 0.5)])
      await usageDb.closeHour(db, hour, 'claim-run-2', at(5))
      // Another run cannot lease it; the run that claimed it can, with the record that joined.
      expect(await usageDb.leaseReports(db, [report.id], at(6), at(100), '', 'other-batch')).toEqual([])
      expect(await usageDb.leaseReports(db, [report.id], at(6), at(100), '', 'other-batch', 'not-the-claimer')).toEqual([])
      const leased = await usageDb.leaseReports(db, [report.id], at(6), at(100), '', 'batch-1', report.lease_owner!)
      expect(leased.map((r) => [r.quantity, r.records, r.attempts, r.lease_owner])).toEqual([[1.5, 2, 1, 'batch-1']])
    })

    test('reconciliation: entitlements not cancelled are due a period after their creation or last re-read', async () => {
      const { id } = await org()
      const { row: old } = await entitlementsDb.upsertEntitlement(db, entitlement(id, 'rec-old', { created_at: at(0) }), entitlementJson)
      const { row: cancelled } = await entitlementsDb.upsertEntitlement(db, entitlement(id, 'rec-cancelled', { created_at: at(0), status: 'CANCELLED' }), entitlementJson)
      const { row: fresh } = await entitlementsDb.upsertEntitlement(db, entitlement(id, 'rec-fresh', { created_at: at(50) }), entitlementJson)
      const due = async (before: string) => (await notificationsDb.dueReconciliations(db, before, 1000)).map((r) => r.id)
      expect(await due(at(10))).toContain(old.id)
      expect(await due(at(10))).not.toContain(cancelled.id)
      expect(await due(at(10))).not.toContain(fresh.id)
      await notificationsDb.markReconciled(db, old.id, at(20))
      expect(await due(at(10))).not.toContain(old.id)
      await notificationsDb.markReconciled(db, old.id, at(5))
      expect(await due(at(10))).toContain(old.id)
    })

    test('reconciliation claims: of callers that read the same due row at once, one takes it, never re-read, or re-read before', async () => {
      const { id } = await org()
      const { row: never } = await entitlementsDb.upsertEntitlement(db, entitlement(id, 'claim-never', { created_at: at(0) }), entitlementJson)
      const { row: before } = await entitlementsDb.upsertEntitlement(db, entitlement(id, 'claim-before', { created_at: at(0) }), entitlementJson)
      await notificationsDb.markReconciled(db, before.id, at(3))
      const seen = new Map((await notificationsDb.dueReconciliations(db, at(10), 1000)).map((r) => [r.id, r.checked_at]))
      expect([seen.get(never.id), seen.get(before.id)]).toEqual([null, at(3)])
      for (const row of [never, before]) {
        const results = await Promise.all([1, 2, 3].map((n) => notificationsDb.claimReconciliation(db, row.id, seen.get(row.id)!, at(100 + n))))
        expect(results.filter(Boolean)).toHaveLength(1)
      }
      // Claimed: due again only at the claim's time.
      expect((await notificationsDb.dueReconciliations(db, at(10), 1000)).map((r) => r.id)).not.toContain(never.id)
      // A caller that read before another's claim no longer gets it.
      expect(await notificationsDb.claimReconciliation(db, before.id, at(3), at(200))).toBe(false)
    })

    test('an entitlement change, its events and their deliveries are written together or not at all, and only over the row the writer read', async () => {
      const { id } = await org()
      await orgsDb.updateOrg(db, id, { webhook_url: 'https://hooks.example/atomic' })
      const fresh = { ...entitlement(id, 'atomic'), is_free_trial: 0, is_test: 0 } as EntitlementRow
      const event = (eventId: string, type: string, entitlementId = fresh.id) => ({ id: eventId, entitlement_id: entitlementId, org_id: id, type, source: 'marketplace', data: '{"n":1}', created_at: at(3) })
      const json = entitlementJson(fresh)
      const row = (await entitlementsDb.writeEntitlementChange(db, { insert: { ...fresh, json } }, [eventWrite(event('evt_atomic_0', 'CREATE'), fresh)]))!
      expect(row.id).toBe(fresh.id)
      // A second first sighting of the purchase writes nothing, not even its events or deliveries.
      const other = { ...entitlement(id, 'atomic'), is_free_trial: 0, is_test: 0 } as EntitlementRow
      expect(await entitlementsDb.writeEntitlementChange(db, { insert: { ...other, json } }, [eventWrite(event('evt_atomic_x', 'CREATE', other.id), other), eventWrite(event('evt_atomic_y', 'ACTIVATE', other.id), other)])).toBeUndefined()
      const { id: _id, org_id: _org, partner: _partner, created_at: _created, ...columns } = row
      const activated = { ...row, status: 'ACTIVE', updated_at: at(4) }
      const activate = (eventIds: string[]) =>
        entitlementsDb.writeEntitlementChange(
          db,
          { expected: row, set: { ...columns, status: 'ACTIVE', updated_at: at(4), json: entitlementJson(activated) } },
          eventIds.map((e, i) => eventWrite(event(e, i ? 'UPDATE' : 'ACTIVATE'), activated)),
        )
      // The event cannot be written (its id is taken): the change is not made either.
      await expect(activate(['evt_atomic_0'])).rejects.toThrow()
      expect((await entitlementsDb.findEntitlement(db, id, row.id))?.status).toBe('PENDING_START')
      // A second event that cannot be written undoes the first, its delivery and the change.
      await expect(activate(['evt_atomic_1', 'evt_atomic_0'])).rejects.toThrow()
      expect((await entitlementsDb.findEntitlement(db, id, row.id))?.status).toBe('PENDING_START')
      expect(await db.selectFrom('entitlement_events').select('id').where('id', '=', 'evt_atomic_1').execute()).toEqual([])
      expect(await activate(['evt_atomic_1', 'evt_atomic_2'])).toMatchObject({ status: 'ACTIVE', updated_at: at(4) })
      // Over a row that is no longer as read (someone else activated it): nothing, events and deliveries included.
      expect(await activate(['evt_atomic_3'])).toBeUndefined()
      expect((await entitlementsDb.listEvents(db, row.id)).map((e) => e.id)).toEqual(['evt_atomic_0', 'evt_atomic_1', 'evt_atomic_2'])
      // Each event has its delivery, built with the entitlement as it is after the change: the stored JSON itself.
      const deliveries = await db.selectFrom('webhook_deliveries').select(['id', 'event_id', 'type', 'payload']).where('org_id', '=', id).orderBy('event_id').execute()
      const storedJson = (await entitlementsDb.findEntitlementJson(db, id, row.id))!
      expect(storedJson).toBe(entitlementJson((await entitlementsDb.findEntitlement(db, id, row.id))!))
      expect(deliveries.map((d) => [d.event_id, d.type, (JSON.parse(d.payload) as { entityStatus: string }).entityStatus])).toEqual([
        ['evt_atomic_0', 'entitlement.created', 'PENDING_START'],
        ['evt_atomic_1', 'entitlement.activated', 'ACTIVE'],
        ['evt_atomic_2', 'entitlement.updated', 'ACTIVE'],
      ])
      expect(deliveries.every((d) => /^msg_[0-9a-z]{26}$/.test(d.id))).toBe(true)
      expect(deliveries[2]!.payload).toBe(
        `{"id":"evt_atomic_2","type":"entitlement.updated","createdAt":"${at(3)}","orgId":"${id}","entityType":"ENTITLEMENT","entityId":"${row.id}","action":"UPDATE","entityStatus":"ACTIVE","partner":"azure",` +
          `"data":{"entitlement":${storedJson},"event":{"id":"evt_atomic_2","entitlementId":"${row.id}","type":"UPDATE","source":"marketplace","data":{"n":1},"createdAt":"${at(3)}"}}}`,
      )
    })

    test('an org without a webhookUrl gets its events written without deliveries', async () => {
      const { id } = await org()
      const fresh = { ...entitlement(id, 'no-hook'), is_free_trial: 0, is_test: 0 } as EntitlementRow
      const events = ['CREATE', 'ACTIVATE'].map((type) => eventWrite({ id: newId('evt'), entitlement_id: fresh.id, org_id: id, type, source: 'signup', data: '{}', created_at: at(3) }, fresh))
      expect(await entitlementsDb.writeEntitlementChange(db, { insert: { ...fresh, json: entitlementJson(fresh) } }, events)).toMatchObject({ id: fresh.id })
      expect((await entitlementsDb.listEvents(db, fresh.id)).map((e) => e.type)).toEqual(['CREATE', 'ACTIVATE'])
      expect(await db.selectFrom('webhook_deliveries').select('id').where('org_id', '=', id).execute()).toEqual([])
      await stored(id, fresh.id)
    })

    test('racing writers of one change: exactly one wins, with its events', async () => {
      const { id } = await org()
      await orgsDb.updateOrg(db, id, { webhook_url: 'https://hooks.example/race' })
      const fresh = { ...entitlement(id, 'cas-race'), is_free_trial: 0, is_test: 0 } as EntitlementRow
      const row = (await entitlementsDb.writeEntitlementChange(db, { insert: { ...fresh, json: entitlementJson(fresh) } }, []))!
      const { id: _id, org_id: _org, partner: _partner, created_at: _created, ...columns } = row
      const results = await Promise.all(
        Array.from({ length: 6 }, (_, i) => {
          const after = { ...row, status: 'ACTIVE', quantity: i, updated_at: at(5) }
          return entitlementsDb.writeEntitlementChange(db, { expected: row, set: { ...columns, status: 'ACTIVE', quantity: i, updated_at: at(5), json: entitlementJson(after) } }, [
            eventWrite({ id: newId('evt'), entitlement_id: row.id, org_id: id, type: 'ACTIVATE', source: 'signup', data: '{}', created_at: at(5) }, after),
          ])
        }),
      )
      expect(results.filter(Boolean)).toHaveLength(1)
      expect((await entitlementsDb.listEvents(db, row.id)).map((e) => e.type)).toEqual(['ACTIVATE'])
      expect(await db.selectFrom('webhook_deliveries').select('id').where('org_id', '=', id).execute()).toHaveLength(1)
      // The winner's JSON is the one stored.
      expect(await stored(id, row.id)).toMatchObject({ status: 'ACTIVE', quantity: results.find(Boolean)!.quantity })
    })

    test('usage: records keyed once per org; an hour closes into one summed report per dimension, later records into reports of their own; a settled report is settled once', async () => {
      const { id: orgId } = await org()
      await orgsDb.updateOrg(db, orgId, { webhook_url: 'https://hooks.example/x' })
      const { row } = await entitlementsDb.upsertEntitlement(db, entitlement(orgId, 'metered', { status: 'ACTIVE' }), entitlementJson)
      const hour = '2026-01-01T10:00:00.000Z'
      const record = (key: string, dimension: string, quantity: number) => ({
        id: newId('use'), org_id: orgId, entitlement_id: row.id, partner: 'azure', dimension, quantity, timestamp: '2026-01-01T10:20:00.000Z', timestamp_given: 1,
        hour, idempotency_key: key, status: 'PENDING' as const, marketplace_status: null, error: null, reported_at: null, report_id: null, created_at: at(1),
      })
      const first = [record('k1', 'calls', 1.5), record('k2', 'calls', 2), record('k3', 'gb', 7)]
      const inserted = await usageDb.insertRecords(db, [...first, record('k1', 'calls', 99)])
      expect([...inserted].sort()).toEqual(first.map((r) => r.id).sort())
      expect((await usageDb.findRecordsByKey(db, orgId, ['k1'])).get('k1')?.quantity).toBe(1.5)

      expect(await usageDb.closableHours(db, hour, 10)).toEqual([])
      expect(await usageDb.closableHours(db, '2026-01-01T11:00:00.000Z', 10)).toEqual([hour])
      await usageDb.closeHour(db, hour, 'run-1', at(2))
      const reports = await db.selectFrom('usage_reports').selectAll().where('entitlement_id', '=', row.id).orderBy('dimension').execute()
      expect(reports.map((r) => [r.dimension, r.quantity, r.records, r.late])).toEqual([['calls', 3.5, 2, 0], ['gb', 7, 1, 0]])
      await usageDb.closeHour(db, hour, 'run-2', at(2))
      expect(await db.selectFrom('usage_reports').select('id').where('entitlement_id', '=', row.id).execute()).toHaveLength(2)

      // A record after the close joins its hour's report while that was never tried.
      await usageDb.insertRecords(db, [record('k5', 'gb', 1)])
      await usageDb.closeHour(db, hour, 'run-3', at(2))
      const gb = await db.selectFrom('usage_reports').selectAll().where('id', '=', reports[1]!.id).executeTakeFirstOrThrow()
      expect([gb.quantity, gb.records]).toEqual([8, 2])

      // Once a report has been tried, a later record of its hour is a late report of its own.
      const leased = await usageDb.leaseReports(db, [reports[0]!.id], at(4), at(100), '2026-01-01T10:30:00.000Z', 'lease-1')
      expect(leased.map((r) => [r.attempts, r.send_timestamp])).toEqual([[1, '2026-01-01T10:30:00.000Z']])
      expect(await usageDb.leaseReports(db, [reports[0]!.id], at(5), at(100), '', 'lease-2')).toEqual([])
      const late = record('k4', 'calls', 4)
      await usageDb.insertRecords(db, [late])
      await usageDb.closeHour(db, hour, 'run-4', at(3))
      const lateReport = await db.selectFrom('usage_reports').selectAll().where('late', '=', 1).where('entitlement_id', '=', row.id).executeTakeFirstOrThrow()
      expect([lateReport.quantity, lateReport.timestamp, lateReport.id]).toEqual([4, late.timestamp, `rpt_${late.id.slice(4)}`])
      expect((await db.selectFrom('usage_reports').select('quantity').where('id', '=', reports[0]!.id).executeTakeFirstOrThrow()).quantity).toBe(3.5)

      const settled = { id: reports[0]!.id, status: 'REPORTED' as const, marketplaceStatus: 'Accepted', error: null, owner: 'lease-1' }
      // Not the lease's holder, nor settled without one while it is held: nothing changes.
      await settleAnnounced(db, [{ ...settled, owner: 'lease-2' }, { ...settled, owner: undefined }], at(5))
      expect((await db.selectFrom('usage_reports').select('status').where('id', '=', reports[0]!.id).executeTakeFirstOrThrow()).status).toBe('PENDING')
      await settleAnnounced(db, [settled, { id: lateReport.id, status: 'PENDING', error: 'later', nextAttemptAt: at(50) }], at(6))
      await settleAnnounced(db, [settled], at(7))
      const records = await db.selectFrom('usage_records').selectAll().where('entitlement_id', '=', row.id).orderBy('idempotency_key').execute()
      expect(records.map((r) => [r.idempotency_key, r.status, r.marketplace_status])).toEqual([
        ['k1', 'REPORTED', 'Accepted'], ['k2', 'REPORTED', 'Accepted'], ['k3', 'PENDING', null], ['k4', 'PENDING', null], ['k5', 'PENDING', null],
      ])
      const hooks = await db.selectFrom('webhook_deliveries').selectAll().where('type', '=', 'usage.reported').where('org_id', '=', orgId).execute()
      expect(hooks).toHaveLength(1)
      const payload = JSON.parse(hooks[0]!.payload)
      expect(payload).toMatchObject({ type: 'usage.reported', entityId: row.id, action: 'USAGE', entityStatus: 'ACTIVE', data: { dimension: 'calls', hour, quantity: 3.5, status: 'REPORTED', marketplaceStatus: 'Accepted', late: false, usageRecordCount: 2 } })
      expect(payload.data.usageRecordIds.sort()).toEqual([first[0]!.id, first[1]!.id].sort())
      expect((await usageDb.dueReports(db, at(60), 10)).map((r) => r.id)).toContain(lateReport.id)
    })

    test('console: a landing is counted on its org, UTC day and marketplace once, while its claim is held; a write made again counts nothing', async () => {
      const { id: orgId } = await org()
      const { id: otherOrg } = await org('Other')
      let n = 0
      // The landing's last write as the landing makes it: the count, then the claim's release, atomically.
      const land = async (owner: string, partner: string, day: string, times = 1) => {
        const tokenHash = `hash-${owner}-${n++}`
        await claimsDb.claimLanding(db, { token_hash: tokenHash, org_id: owner, partner, partner_id: null, sealed_token: 'sealed', lease_until: at(100), created_at: at(0) }, at(0))
        for (let i = 0; i < times; i++) {
          await atomically(db, [entitlementsDb.landingCountStatement(db, { org_id: owner, partner, day, token_hash: tokenHash }), claimsDb.releaseStatement(db, tokenHash)])
        }
      }
      await land(orgId, 'azure', '2026-03-01', 3)
      await land(orgId, 'azure', '2026-03-01')
      await land(orgId, 'aws', '2026-03-01')
      await land(orgId, 'azure', '2026-03-02')
      await land(otherOrg, 'azure', '2026-03-01')
      // Without a claim (never claimed, or released already): nothing.
      await atomically(db, [entitlementsDb.landingCountStatement(db, { org_id: orgId, partner: 'gcp', day: '2026-03-01', token_hash: 'never-claimed' })])
      const counts = await consoleDb.landingCounts(db, orgId, '2026-03-01', '2026-03-31')
      expect(counts.sort((a, b) => `${a.day}${a.partner}`.localeCompare(`${b.day}${b.partner}`))).toEqual([
        { day: '2026-03-01', partner: 'aws', landings: 1 },
        { day: '2026-03-01', partner: 'azure', landings: 2 },
        { day: '2026-03-02', partner: 'azure', landings: 1 },
      ])
      expect(await consoleDb.landingCounts(db, orgId, '2026-03-02', '2026-03-02')).toEqual([{ day: '2026-03-02', partner: 'azure', landings: 1 }])
      expect(await consoleDb.landingCounts(db, otherOrg, '2026-03-01', '2026-03-01')).toEqual([{ day: '2026-03-01', partner: 'azure', landings: 1 }])
    })

    test('console: entitlements searched by id, marketplace id or buyer email; counted by marketplace and status; open deliveries and usage counted', async () => {
      const { id: orgId } = await org()
      await orgsDb.updateOrg(db, orgId, { webhook_url: 'https://hooks.example/console' })
      const buyer = (email: string | null) => JSON.stringify({ accountId: null, customerId: null, email, tenantId: null, name: null })
      const seed = async (externalId: string, email: string | null, overrides: Partial<NewEntitlementRow> = {}) =>
        (await entitlementsDb.upsertEntitlement(db, entitlement(orgId, externalId, { buyer: buyer(email), ...overrides }), entitlementJson)).row
      const a = await seed('A1B2-c3d4', 'Ada@Contoso.example', { created_at: at(1) })
      const b = await seed('arn:aws:license-manager::1:license:l-50%_off', 'grace@contoso.example', { partner: 'aws', status: 'ACTIVE', created_at: at(2) })
      const c = await seed('plain', null, { status: 'ACTIVE', created_at: at(3) })
      const search = async (text: string, filters: { partner?: string; status?: string } = {}) =>
        (await entitlementsDb.listEntitlements(db, { orgId, search: text, limit: 10, ...filters })).rows.map((row) => row.id)
      expect(await search(a.id)).toEqual([a.id])
      expect(await search(a.id.toUpperCase())).toEqual([])
      expect(await search('c3D4')).toEqual([a.id])
      expect(await search('contoso.EXAMPLE')).toEqual([b.id, a.id])
      expect(await search('contoso', { partner: 'aws' })).toEqual([b.id])
      expect(await search('contoso', { status: 'PENDING_START' })).toEqual([a.id])
      expect(await search('50%_')).toEqual([b.id])
      expect(await search('5%')).toEqual([])
      expect(await search('_')).toEqual([b.id])
      expect(await search('plain')).toEqual([c.id])
      expect((await entitlementsDb.listEntitlementJson(db, { orgId, search: 'grace@', limit: 10 })).rows.map((row) => JSON.parse(row.json!).id)).toEqual([b.id])

      const counts = await consoleDb.entitlementCounts(db, orgId)
      expect(counts.sort((x, y) => `${x.partner}${x.status}`.localeCompare(`${y.partner}${y.status}`))).toEqual([
        { partner: 'aws', status: 'ACTIVE', count: 1 },
        { partner: 'azure', status: 'ACTIVE', count: 1 },
        { partner: 'azure', status: 'PENDING_START', count: 1 },
      ])

      // Deliveries of a's events, and one of c's; usage records of every status.
      const eventOf = (row: EntitlementRow, eventId: string) => ({ id: eventId, entitlement_id: row.id, org_id: orgId, type: 'UPDATE', source: 'api', data: '{}', created_at: at(5) })
      await entitlementsDb.writeEntitlementChange(db, { expected: a, set: { ...a, json: entitlementJson(a) } }, [eventWrite(eventOf(a, newId('evt')), a), eventWrite(eventOf(a, newId('evt')), a)])
      await entitlementsDb.writeEntitlementChange(db, { expected: c, set: { ...c, json: entitlementJson(c) } }, [eventWrite(eventOf(c, newId('evt')), c)])
      const ofA = await webhooksDb.listEventDeliveries(db, orgId, a.id, 10)
      expect(ofA).toHaveLength(2)
      const aEvents = (await entitlementsDb.listEvents(db, a.id)).map((event) => event.id)
      expect(ofA.every((delivery) => aEvents.includes(delivery.event_id!))).toBe(true)
      expect(await webhooksDb.listEventDeliveries(db, orgId, a.id, 1)).toHaveLength(1)
      expect(await webhooksDb.listEventDeliveries(db, 'org_other', a.id, 10)).toEqual([])
      await webhooksDb.recordAttempt(db, ofA[0]!.id, { status: 'FAILED', statusCode: 500, error: 'x', nextAttemptAt: null, now: at(6) })
      const [cDelivery] = await webhooksDb.listEventDeliveries(db, orgId, c.id, 10)
      await webhooksDb.recordAttempt(db, cDelivery!.id, { status: 'SUCCEEDED', statusCode: 200, error: null, nextAttemptAt: null, now: at(6) })
      expect((await consoleDb.openDeliveryCounts(db, orgId)).sort((x, y) => x.status.localeCompare(y.status))).toEqual([
        { status: 'FAILED', count: 1 },
        { status: 'PENDING', count: 1 },
      ])
      const record = (key: string, status: 'PENDING' | 'REPORTED' | 'REJECTED') => ({
        id: newId('use'), org_id: orgId, entitlement_id: b.id, partner: 'aws', dimension: 'd', quantity: 1, timestamp: at(1), timestamp_given: 1,
        hour: '2026-01-01T00:00:00.000Z', idempotency_key: key, status, marketplace_status: null, error: null, reported_at: null, report_id: null, created_at: at(1),
      })
      await usageDb.insertRecords(db, [record('u1', 'PENDING'), record('u2', 'PENDING'), record('u3', 'REJECTED'), record('u4', 'REPORTED')])
      expect((await consoleDb.openUsageCounts(db, orgId)).sort((x, y) => x.status.localeCompare(y.status))).toEqual([
        { status: 'PENDING', count: 2 },
        { status: 'REJECTED', count: 1 },
      ])
      expect(await consoleDb.openUsageCounts(db, 'org_other')).toEqual([])
    })
  })
}
