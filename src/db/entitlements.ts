import { type Insertable, type RawBuilder, type SqlBool, sql } from 'kysely'
import { type Statement, atomicallyReturning, inTransaction, insertWhere } from './batch'
import { compiledQuery, placeholders, runCompiled } from './compiled'
import { jsonText, sameAs } from './functions'
import { pageOf } from './outbox'
import { type NewDelivery, deliveryIfHooked } from './webhooks'
import type {
  DB,
  EntitlementEventRow,
  EntitlementEventsTable,
  EntitlementRow,
  EntitlementsTable,
  LandingTokensTable,
  NewEntitlementRow,
} from './schema'

/** Every column but `json` (which only the read paths want). */
export const ENTITLEMENT_COLUMNS = [
  'id', 'org_id', 'partner', 'partner_id', 'external_id', 'status', 'offer_type', 'product_id', 'plan_id', 'quantity',
  'buyer', 'term', 'is_free_trial', 'is_test', 'info', 'created_at', 'updated_at',
] as const
const QUALIFIED_COLUMNS = ENTITLEMENT_COLUMNS.map((column) => `entitlements.${column}` as const)
/** Columns a later sighting of the same purchase refreshes (id and created_at stay). */
const REFRESHED_COLUMNS = ENTITLEMENT_COLUMNS.filter((column) => column !== 'id' && column !== 'org_id' && column !== 'partner' && column !== 'external_id' && column !== 'created_at')

/**
 * Inserts the entitlement, or updates the one the org already has for this marketplace purchase
 * (unique org + partner + external id; its id and created_at stay), so racing callers still
 * leave exactly one row. `created` tells which happened. `json` builds the row's stored API JSON
 * (entitlementJson) from the row as it is stored. Not a change path (it writes no event): the
 * broker changes entitlements with `writeEntitlementChange`, on which this is built; it seeds
 * rows (tests, benchmarks).
 */
export async function upsertEntitlement(db: DB, row: NewEntitlementRow, json: (row: EntitlementRow) => string): Promise<{ row: EntitlementRow; created: boolean }> {
  const fresh = { ...row, is_free_trial: row.is_free_trial ?? 0, is_test: row.is_test ?? 0 } as EntitlementRow
  for (let attempt = 0; attempt < 5; attempt++) {
    const inserted = await writeEntitlementChange(db, { insert: { ...fresh, json: json(fresh) } }, [])
    if (inserted) return { row: inserted, created: true }
    const stored = await findByExactExternalId(db, row.org_id, row.partner, row.external_id)
    if (!stored) continue
    const next = { ...fresh, id: stored.id, created_at: stored.created_at }
    const { id: _id, org_id: _org, partner: _partner, created_at: _created, ...set } = next
    const updated = await writeEntitlementChange(db, { expected: stored, set: { ...set, json: json(next) } }, [])
    if (updated) return { row: updated, created: false }
  }
  throw new Error(`entitlement ${row.external_id} kept changing under this upsert`)
}

/**
 * Another print of a purchase's key that names the same purchase (an AWS license ARN with or
 * without `arn:`): stored keys ending in `endsWith` are candidates, `is` decides exactly. The
 * domain knows the marketplaces' key rules; this layer only runs the queries.
 */
/** `value` as a LIKE pattern that matches it literally (with `escape '!'`): `_` and `%` are wildcards otherwise. */
function likeLiteral(value: string) {
  return value.replace(/[!%_]/g, (c) => `!${c}`)
}

export interface KeyAlias {
  endsWith: string
  is: (storedExternalId: string) => boolean
}

/**
 * The org's entitlement of one marketplace purchase: the exact key first (the index), then,
 * given an alias, the stored keys ending in its suffix, checked exactly by it (the LIKE only
 * narrows: SQLite's ignores case, PostgreSQL's does not).
 */
export async function findEntitlementByExternalId(db: DB, orgId: string, partner: string, externalId: string, alias?: KeyAlias) {
  const exact = await findByExactExternalId(db, orgId, partner, externalId)
  if (exact || !alias) return exact
  const candidates = await runCompiled(
    db,
    'findEntitlementsByKeySuffix',
    (p) =>
      db
        .selectFrom('entitlements')
        .select(ENTITLEMENT_COLUMNS)
        .where('org_id', '=', p('orgId'))
        .where('partner', '=', p('partner'))
        .where(sql<boolean>`external_id like ${p('pattern')} escape '!'`)
        .orderBy('created_at')
        .limit(20),
    { orgId, partner, pattern: `%${likeLiteral(alias.endsWith)}` },
  )
  return candidates.rows.find((row) => alias.is(row.external_id))
}

async function findByExactExternalId(db: DB, orgId: string, partner: string, externalId: string) {
  const result = await runCompiled(
    db,
    'findEntitlementByExternalId',
    (p) =>
      db
        .selectFrom('entitlements')
        .select(ENTITLEMENT_COLUMNS)
        .where('org_id', '=', p('orgId'))
        .where('partner', '=', p('partner'))
        .where('external_id', '=', p('externalId')),
    { orgId, partner, externalId },
  )
  return result.rows[0]
}

/**
 * An org's entitlements of one marketplace for a buyer (its `buyer.customerId` or
 * `buyer.accountId`), optionally of one product, newest first: how a message that names the
 * buyer rather than the purchase finds it.
 */
export function findEntitlementsByBuyer(
  db: DB,
  query: { orgId: string; partner: string; productId?: string; customerId?: string; accountId?: string; agreementId?: string; licenseId?: string },
): Promise<EntitlementRow[]> {
  let select = db.selectFrom('entitlements').select(ENTITLEMENT_COLUMNS).where('org_id', '=', query.orgId).where('partner', '=', query.partner)
  if (query.productId !== undefined) select = select.where('product_id', '=', query.productId)
  if (query.customerId !== undefined) select = select.where(jsonText(db, 'buyer', 'customerId'), '=', query.customerId)
  if (query.accountId !== undefined) select = select.where(jsonText(db, 'buyer', 'accountId'), '=', query.accountId)
  if (query.agreementId !== undefined) select = select.where(jsonText(db, 'info', 'agreementId'), '=', query.agreementId)
  // An AWS LicenseArn, however AWS printed it, ends with `:l-…` or `/l-…`.
  // (LIKE rather than a negative substr, which PostgreSQL reads differently.)
  const license = query.licenseId
  if (license !== undefined) select = select.where((eb) => eb.or([sql<boolean>`external_id like ${`%:${likeLiteral(license)}`} escape '!'`, sql<boolean>`external_id like ${`%/${likeLiteral(license)}`} escape '!'`]))
  return select.orderBy('created_at', 'desc').limit(20).execute() as Promise<EntitlementRow[]>
}

export async function findEntitlement(db: DB, orgId: string, id: string): Promise<EntitlementRow | undefined> {
  const result = await runCompiled(
    db,
    'findEntitlement',
    (p) => db.selectFrom('entitlements').select(ENTITLEMENT_COLUMNS).where('org_id', '=', p('orgId')).where('id', '=', p('id')),
    { orgId, id },
  )
  return result.rows[0]
}

/**
 * The API's hottest query: one entitlement's stored JSON. Undefined when the org has no such
 * entitlement; null if its row has no JSON (see EntitlementsTable.json).
 */
export async function findEntitlementJson(db: DB, orgId: string, id: string): Promise<string | null | undefined> {
  const result = await runCompiled(db, 'findEntitlementJson', (p) => db.selectFrom('entitlements').select('json').where('org_id', '=', p('orgId')).where('id', '=', p('id')), {
    orgId,
    id,
  })
  return result.rows[0] ? result.rows[0].json : undefined
}

export interface EntitlementPageQuery {
  orgId: string
  partner?: string
  status?: string
  /**
   * Only entitlements whose id is this, or whose external id or buyer email contains it
   * (ignoring case, as the database's lower() folds it; `%` and `_` are literal).
   */
  search?: string
  limit: number
  /** Keyset: only rows strictly older than this (created_at, id) pair. */
  before?: { createdAt: string; id: string }
}

/** Newest first, keyset-paginated on (created_at, id); asks for one extra row to know whether a next page exists. */
export async function listEntitlements(db: DB, query: EntitlementPageQuery): Promise<{ rows: EntitlementRow[]; hasMore: boolean }> {
  const result = await runPage(db, query, 'listEntitlements', ENTITLEMENT_COLUMNS)
  return pageOf(result.rows, query.limit)
}

/**
 * The same page as `listEntitlements`, as each entitlement's stored JSON only (its keyset is in
 * it: a third of the page's cost was turning two more columns per row into strings).
 */
export async function listEntitlementJson(db: DB, query: EntitlementPageQuery): Promise<{ rows: Array<{ json: string | null }>; hasMore: boolean }> {
  const result = await runPage(db, query, 'listEntitlementJson', ['json'] as const)
  return pageOf(result.rows, query.limit)
}

/** A page query, compiled once per combination of filters (sixteen at most). */
function runPage<C extends keyof EntitlementsTable>(db: DB, query: EntitlementPageQuery, name: string, columns: readonly C[]) {
  const { partner, status, search, before } = query
  const key = `${name}:${partner ? 'p' : ''}${status ? 's' : ''}${search ? 'q' : ''}${before ? 'b' : ''}`
  return runCompiled(
    db,
    key,
    (p) => {
      let select = db.selectFrom('entitlements').select(columns).where('org_id', '=', p('orgId'))
      if (partner) select = select.where('partner', '=', p('partner'))
      if (status) select = select.where('status', '=', p('status'))
      if (search) {
        const contains = (value: RawBuilder<unknown>) => sql<SqlBool>`lower(${value}) like lower(${p('searchPattern')}) escape '!'`
        select = select.where((eb) => eb.or([eb('id', '=', p('search')), contains(sql.ref('external_id')), contains(jsonText(db, 'buyer', 'email'))]))
      }
      if (before) {
        select = select.where((eb) =>
          eb.or([eb('created_at', '<', p('beforeCreatedAt')), eb.and([eb('created_at', '=', p('beforeCreatedAt')), eb('id', '<', p('beforeId'))])]),
        )
      }
      return select.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(p('limit'))
    },
    {
      orgId: query.orgId,
      partner,
      status,
      search,
      searchPattern: search ? `%${likeLiteral(search)}%` : undefined,
      beforeCreatedAt: before?.createdAt,
      beforeId: before?.id,
      limit: query.limit + 1,
    },
  )
}

/** An event alone, without its change or delivery: seeds histories (tests). */
export async function insertEvent(db: DB, event: Insertable<EntitlementEventsTable>): Promise<void> {
  await db.executeQuery(insertEventStatement(db, event))
}

export function listEvents(db: DB, entitlementId: string): Promise<EntitlementEventRow[]> {
  return db.selectFrom('entitlement_events').selectAll().where('entitlement_id', '=', entitlementId).orderBy('id').execute()
}

export async function findLandingToken(db: DB, tokenHash: string, now: string): Promise<EntitlementRow | undefined> {
  const result = await runCompiled(
    db,
    'findLandingToken',
    (p) =>
      db
        .selectFrom('landing_tokens')
        .innerJoin('entitlements', 'entitlements.id', 'landing_tokens.entitlement_id')
        .select(QUALIFIED_COLUMNS)
        .where('landing_tokens.token_hash', '=', p('tokenHash'))
        .where('landing_tokens.expires_at', '>', p('now')),
    { tokenHash, now },
  )
  return result.rows[0] as EntitlementRow | undefined
}

export async function saveLandingToken(db: DB, row: Insertable<LandingTokensTable>): Promise<void> {
  await db.executeQuery(landingTokenStatement(db, row))
}

/** `saveLandingToken` as a statement, to be written with the landing's last write (db/batch.ts). */
export function landingTokenStatement(db: DB, row: Insertable<LandingTokensTable>) {
  const columns = ['token_hash', 'org_id', 'partner', 'entitlement_id', 'expires_at', 'created_at'] as const
  return compiledQuery(
    db,
    'saveLandingToken',
    (p) =>
      db
        .insertInto('landing_tokens')
        .values(placeholders(p, columns) as never)
        .onConflict((oc) =>
          oc.column('token_hash').doUpdateSet((eb) => ({
            entitlement_id: eb.ref('excluded.entitlement_id'),
            expires_at: eb.ref('excluded.expires_at'),
          })),
        ),
    row,
  )
}

/**
 * One more successful landing on the org's counter of that UTC day and marketplace
 * (migration 0014), for the landing's last write: counted only while the landing's claim
 * (`token_hash`) is still held, so it must come before the claim's release in that write. A
 * write that is made again (a D1 batch whose compare-and-set lost runs it with the claim
 * released already; a second holder after a lease ran out, once the first has written) counts
 * nothing: one landing, one count.
 */
export function landingCountStatement(db: DB, landing: { org_id: string; partner: string; day: string; token_hash: string }) {
  return compiledQuery(
    db,
    'countLanding',
    (p) =>
      db
        .insertInto('landing_counts')
        .columns(['org_id', 'day', 'partner', 'landings'])
        .expression(
          db
            .selectNoFrom([sql<string>`${p('org_id')}`.as('org_id'), sql<string>`${p('day')}`.as('day'), sql<string>`${p('partner')}`.as('partner'), sql<number>`1`.as('landings')])
            .where(sql<SqlBool>`exists (select 1 from landing_claims where token_hash = ${p('token_hash')})`),
        )
        .onConflict((oc) => oc.columns(['org_id', 'day', 'partner']).doUpdateSet({ landings: sql<number>`landing_counts.landings + 1` })),
    landing,
  )
}

export async function deleteExpiredLandingTokens(db: DB, now: string): Promise<void> {
  await db.deleteFrom('landing_tokens').where('expires_at', '<=', now).execute()
}

export async function ping(db: DB): Promise<void> {
  await db.selectFrom('orgs').select('id').limit(1).execute()
}

/** The fields an entitlement's events are derived from, as a writer read them (see `writeEntitlementChange`). */
export type EntitlementVersion = Pick<EntitlementRow, 'id' | (typeof VERSION_COLUMNS)[number]>
const VERSION_COLUMNS = ['external_id', 'status', 'plan_id', 'quantity', 'term'] as const
/** What an update sets: every column but the key and created_at (callers start from the row they read), and the row's JSON. */
const CHANGED_COLUMNS = [...REFRESHED_COLUMNS, 'external_id', 'json'] as const
export type EntitlementColumns = Pick<EntitlementRow, Exclude<(typeof CHANGED_COLUMNS)[number], 'json'>>
const EVENT_COLUMNS = ['id', 'entitlement_id', 'org_id', 'type', 'source', 'data', 'created_at'] as const

export type EntitlementWrite =
  /** The org's first row for a purchase: written only if it has none yet (unique org + partner + external id). */
  | { insert: NewEntitlementRow & { json: string } }
  /** A stored row, only if it is still as `expected` (compare-and-set). */
  | { expected: EntitlementVersion; set: EntitlementColumns & { json: string } }

/** An event of a change, with the webhook delivery that announces it (written only if the org has a webhookUrl). */
export interface EventWrite {
  event: Insertable<EntitlementEventsTable>
  delivery: NewDelivery
}

/**
 * The one way the broker writes a change of an entitlement: the row with its API JSON, its events,
 * each one's webhook delivery (when the org has a webhookUrl), and any writes that belong to the
 * change (`also`: settling its activation, remembering a landing's token) in one atomic unit, so no
 * crash leaves a change without its event, an event without its delivery, or either without
 * the change.
 *
 * An update is made only while the row still shows what the writer decided on, and the rest only
 * when the row was written: two writers racing on one transition never both write its event.
 * Answers the row as written, or undefined when nothing was (the row is not as expected, or the
 * purchase already has one): the caller reads it again and decides again.
 */
export async function writeEntitlementChange(
  db: DB,
  write: EntitlementWrite,
  events: EventWrite[],
  also: Statement[] = [],
): Promise<EntitlementRow | undefined> {
  const head = changeStatement(db, write)
  if (db.dialect.atomicity === 'transaction') {
    return inTransaction(db, async (run) => {
      const [row] = await run<EntitlementRow>(head)
      if (!row) return undefined
      for (const { event, delivery } of events) {
        await run(insertEventStatement(db, event))
        await run(deliveryIfHooked(db, delivery))
      }
      for (const statement of also) await run(statement)
      return row
    })
  }
  // One batch, without a look at the head's answer: SQLite's changes() counts the rows the
  // statement just before wrote, so the first event is written only if the head wrote the row,
  // and everything after it only if that event was written.
  const first = events[0]?.event.id
  const written = (p: <T>(name: string) => T) => sql<SqlBool>`exists (select 1 from entitlement_events where id = ${p('firstEventId')})`
  const statements: Statement[] = [head]
  for (const [i, { event, delivery }] of events.entries()) {
    statements.push(
      i === 0
        ? compiledQuery(db, 'insertEventIfWritten', (p) => insertEventWhere(db, p, sql<SqlBool>`changes() = 1`), event)
        : compiledQuery(db, 'insertEventAfterFirst', (p) => insertEventWhere(db, p, written(p)), { ...event, firstEventId: first }),
    )
    statements.push(deliveryIfHooked(db, delivery, { key: 'afterFirstEvent', where: written, values: { firstEventId: first } }))
  }
  const [rows] = await atomicallyReturning(db, [...statements, ...also])
  return rows?.[0] as EntitlementRow | undefined
}

/** The head of a change: the insert of a new row or the compare-and-set update of a stored one, answering the row written. */
function changeStatement(db: DB, write: EntitlementWrite) {
  if ('insert' in write) {
    return compiledQuery(
      db,
      'insertEntitlementOnce',
      (p) =>
        db
          .insertInto('entitlements')
          .values(placeholders(p, [...ENTITLEMENT_COLUMNS, 'json']) as NewEntitlementRow)
          .onConflict((oc) => oc.columns(['org_id', 'partner', 'external_id']).doNothing())
          .returning(ENTITLEMENT_COLUMNS),
      { ...write.insert, is_free_trial: write.insert.is_free_trial ?? 0, is_test: write.insert.is_test ?? 0 },
    )
  }
  return compiledQuery(
    db,
    'updateEntitlementIfUnchanged',
    (p) =>
      db
        .updateTable('entitlements')
        .set(placeholders(p, CHANGED_COLUMNS))
        .where('id', '=', p('id'))
        .where(sql<SqlBool>`${sql.join(VERSION_COLUMNS.map((column) => sameAs(db, sql.ref(column), p(`expected_${column}`))), sql` and `)}`)
        .returning(ENTITLEMENT_COLUMNS),
    {
      ...write.set,
      id: write.expected.id,
      ...Object.fromEntries(VERSION_COLUMNS.map((column) => [`expected_${column}`, write.expected[column]])),
    },
  )
}

function insertEventStatement(db: DB, event: Insertable<EntitlementEventsTable>) {
  return compiledQuery(db, 'insertEvent', (p) => db.insertInto('entitlement_events').values(placeholders(p, EVENT_COLUMNS) as never), event)
}

/** `insert into entitlement_events … select <the event's values> where <condition>`. */
const insertEventWhere = (db: DB, p: <T>(name: string) => T, condition: RawBuilder<SqlBool>) =>
  insertWhere(db, 'entitlement_events', EVENT_COLUMNS, p, condition)

/** Whether an entitlement has any event yet. */
export async function hasEvents(db: DB, entitlementId: string): Promise<boolean> {
  const found = await db.selectFrom('entitlement_events').select('id').where('entitlement_id', '=', entitlementId).limit(1).executeTakeFirst()
  return found !== undefined
}
