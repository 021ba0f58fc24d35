import type { z } from '@hono/zod-openapi'
import { type MeteringRules, type Partner, isPartner } from '../../providers/types'
import type { UsageRecordRow } from '../db/schema'
import * as usageDb from '../db/usage'
import type { AppDeps } from '../deps'
import { ApiError, type ErrorCode, errorStatus, notFound } from '../errors'
import { BulkUsageRecordSchema, type UsageRecordSchema } from '../schemas'
import { decodeCursor, encodeCursor } from './cursor'
import { newId } from './ids'
import { formatIssues } from '../errors'

/**
 * Recording usage (contract §9): one record per idempotency key in the org, checked against the
 * marketplace's rules when it is recorded, so what is accepted can be reported. Reporting is the
 * job's (usage-reporter.ts).
 */

export type UsageRecord = z.infer<typeof UsageRecordSchema>

export interface UsageInput {
  entitlementId: string
  dimension: string
  quantity: number
  timestamp?: string
  idempotencyKey: string
}

export type UsageResult =
  | { status: 200 | 202; record: UsageRecord }
  | { status: 400 | 404 | 409; code: ErrorCode; message: string }

/** The most records one bulk request may carry. */
export const MAX_BULK_RECORDS = 1000
/** A record's time may run this far ahead of ours (clock skew), no further. */
const FUTURE_SKEW_MS = 5_000
const HOUR_MS = 3600_000
/** Usage is accepted while the entitlement is in one of these. */
const METERABLE = new Set(['ACTIVE', 'PENDING_CANCEL'])

export const hourOf = (ms: number) => new Date(Math.floor(ms / HOUR_MS) * HOUR_MS).toISOString()

export function toUsageRecord(row: UsageRecordRow): UsageRecord {
  return {
    id: row.id,
    entitlementId: row.entitlement_id,
    dimension: row.dimension,
    quantity: row.quantity,
    timestamp: row.timestamp,
    idempotencyKey: row.idempotency_key,
    status: row.status,
    marketplaceStatus: row.marketplace_status,
    error: row.error,
    reportedAt: row.reported_at,
    createdAt: row.created_at,
  }
}

/** "The same body": a replay without timestamp matches a record that was given none. */
function sameBody(row: UsageRecordRow, input: UsageInput): boolean {
  if (row.entitlement_id !== input.entitlementId || row.dimension !== input.dimension || row.quantity !== input.quantity) return false
  if (input.timestamp === undefined) return row.timestamp_given === 0
  return row.timestamp_given === 1 && Date.parse(input.timestamp) === Date.parse(row.timestamp)
}

function replay(row: UsageRecordRow, input: UsageInput): UsageResult {
  if (sameBody(row, input)) return { status: 200, record: toUsageRecord(row) }
  return { status: 409, code: 'CONFLICT', message: `idempotencyKey "${input.idempotencyKey}" was already used for another usage record (${row.id}) with a different body.` }
}

const invalid = (message: string): UsageResult => ({ status: 400, code: 'VALIDATION_ERROR', message })

const windowText = (ms: number) => (ms === HOUR_MS ? '1 hour' : `${ms / HOUR_MS} hours`)

/** What the marketplace would refuse, found now rather than at reporting: null when the record may be stored. */
function refusal(rules: MeteringRules, partner: string, input: UsageInput, at: number, now: number): string | null {
  if (at > now + FUTURE_SKEW_MS) return `timestamp ${new Date(at).toISOString()} is in the future.`
  const from = rules.windowFrom === 'hour' ? Math.floor(at / HOUR_MS) * HOUR_MS : at
  if (from < now - rules.windowMs + rules.recordingMarginMs) {
    const measured = rules.windowFrom === 'hour' ? ', measured from the start of its UTC hour, which is what is reported' : ''
    const margin = rules.recordingMarginMs ? `, less ${rules.recordingMarginMs / 60_000} minutes for the report to reach it` : ''
    return `timestamp ${new Date(at).toISOString()} is too old: ${partner} accepts usage up to ${windowText(rules.windowMs)} back${measured}${margin}.`
  }
  if (rules.wholeUnits && !Number.isInteger(input.quantity)) return `quantity must be a whole number for ${partner} entitlements (${partner} meters whole units).`
  if (input.quantity > rules.maxQuantity) return `quantity must be at most ${rules.maxQuantity} for ${partner} entitlements.`
  return null
}

/**
 * The final reporting windows of the CANCELLED entitlements among `rows` whose marketplace has
 * one: from their latest CANCEL event (updated_at moves with any later change; the event stays).
 */
async function finalWindows(deps: AppDeps, rows: usageDb.UsageEntitlement[]): Promise<Map<string, { at: number; until: number }>> {
  const windows = new Map<string, { at: number; until: number }>()
  const cancelled = rows.filter((row) => row.status === 'CANCELLED' && isPartner(row.partner) && deps.providers[row.partner].metering.rules.finalWindowMs)
  if (!cancelled.length) return windows
  const times = await usageDb.cancelledAt(deps.db, cancelled.map((row) => row.id))
  for (const row of cancelled) {
    const at = Date.parse(times.get(row.id) ?? '')
    if (!Number.isNaN(at)) windows.set(row.id, { at, until: at + deps.providers[row.partner as Partner].metering.rules.finalWindowMs! })
  }
  return windows
}

/** Usage of the hour in which the entitlement ended, recorded before its final window closed. */
function inFinalWindow(final: { at: number; until: number } | undefined, input: UsageInput, now: number): boolean {
  if (!final || now >= final.until) return false
  const at = input.timestamp === undefined ? now : Date.parse(input.timestamp)
  return hourOf(at) === hourOf(final.at)
}

/** What recording `inputs` would do: the rows of the acceptable ones, the refusal of each other one. */
export interface UsagePlan {
  /** By input index: the refusal of a refused input (it may still be the replay of a stored record). */
  results: Array<UsageResult | undefined>
  /** The rows to store, by input index. */
  pending: Array<{ index: number; row: UsageRecordRow }>
  /** Indexes of the refused inputs. */
  refused: number[]
}

/**
 * Judges usage inputs against their entitlements and the marketplaces' rules and builds the rows
 * of the acceptable ones, storing nothing: `recordUsage` stores them; the Suger-compatible usage
 * groups (suger.ts) store a group's rows with the group, all or none.
 */
export async function planUsage(deps: AppDeps, orgId: string, inputs: UsageInput[]): Promise<UsagePlan> {
  const nowMs = deps.now().getTime()
  const now = new Date(nowMs).toISOString()
  const results: Array<UsageResult | undefined> = new Array(inputs.length)
  const entitlements = await usageDb.findUsageEntitlements(deps.db, orgId, inputs.map((input) => input.entitlementId))
  const ended = await finalWindows(deps, [...entitlements.values()])
  const pending: Array<{ index: number; row: UsageRecordRow }> = []
  const refused: number[] = []

  inputs.forEach((input, index) => {
    const entitlement = entitlements.get(input.entitlementId)
    let problem: UsageResult | null = null
    if (!entitlement || !isPartner(entitlement.partner)) {
      problem = { status: 404, code: 'NOT_FOUND', message: `Entitlement ${input.entitlementId} was not found.` }
    } else if (!METERABLE.has(entitlement.status) && !inFinalWindow(ended.get(entitlement.id), input, nowMs)) {
      const final = ended.get(entitlement.id)
      const after = final ? ` (usage for the hour it ended, ${hourOf(final.at)}, was taken until ${new Date(final.until).toISOString()})` : ''
      problem = invalid(`Usage can be recorded only for ACTIVE or PENDING_CANCEL entitlements; ${input.entitlementId} is ${entitlement.status}${after}.`)
    } else {
      const at = input.timestamp === undefined ? nowMs : Date.parse(input.timestamp)
      const reason = refusal(deps.providers[entitlement.partner].metering.rules, entitlement.partner, input, at, nowMs)
      if (reason) {
        problem = invalid(reason)
      } else {
        const timestamp = new Date(at).toISOString()
        pending.push({
          index,
          row: {
            id: newId('use', nowMs),
            org_id: orgId,
            entitlement_id: input.entitlementId,
            partner: entitlement.partner,
            dimension: input.dimension,
            quantity: input.quantity,
            timestamp,
            timestamp_given: input.timestamp === undefined ? 0 : 1,
            hour: hourOf(at),
            idempotency_key: input.idempotencyKey,
            status: 'PENDING',
            marketplace_status: null,
            error: null,
            reported_at: null,
            report_id: null,
            created_at: now,
          },
        })
      }
    }
    if (problem) {
      results[index] = problem
      refused.push(index)
    }
  })
  return { results, pending, refused }
}

/**
 * Records usage: each input is a new record (202), the replay of one (200), or refused
 * (400/404/409); nothing is stored for a refused one. All new records are written in one
 * transaction. Inputs must already have passed the schema.
 */
export async function recordUsage(deps: AppDeps, orgId: string, inputs: UsageInput[]): Promise<UsageResult[]> {
  const { results, pending, refused } = await planUsage(deps, orgId, inputs)

  // A refused input may still be the replay of a record stored when it was acceptable (the
  // entitlement has since been suspended, or the timestamp has left the window): a replay is 200.
  const inserted = await usageDb.insertRecords(deps.db, pending.map((p) => p.row))
  const lookup = [...refused.map((i) => inputs[i]!.idempotencyKey), ...pending.filter((p) => !inserted.has(p.row.id)).map((p) => p.row.idempotency_key)]
  const existing = lookup.length ? await usageDb.findRecordsByKey(deps.db, orgId, lookup) : new Map<string, UsageRecordRow>()
  for (const index of refused) {
    const row = existing.get(inputs[index]!.idempotencyKey)
    if (row) results[index] = replay(row, inputs[index]!)
  }
  for (const { index, row } of pending) {
    if (inserted.has(row.id)) {
      results[index] = { status: 202, record: toUsageRecord(row) }
      continue
    }
    const stored = existing.get(row.idempotency_key)
    results[index] = stored ? replay(stored, inputs[index]!) : { status: 409, code: 'CONFLICT', message: 'The record could not be stored; try again.' }
  }
  return results as UsageResult[]
}

/** `POST …/entitlements/{id}/usage`: one record, 202 new or 200 replayed; refusals are thrown as the API's errors. */
export async function recordOne(deps: AppDeps, orgId: string, input: UsageInput): Promise<{ status: 200 | 202; record: UsageRecord }> {
  const [result] = await recordUsage(deps, orgId, [input])
  if (result!.status === 200 || result!.status === 202) return result as { status: 200 | 202; record: UsageRecord }
  const { code, message } = result as { code: ErrorCode; message: string }
  throw new ApiError(code, message)
}

export interface BulkResult {
  idempotencyKey: string | null
  status: number
  usageRecord?: UsageRecord
  error?: { code: ErrorCode; message: string }
}

/**
 * `POST …/usage` (207): each record on its own. A record that does not pass the schema, or whose
 * idempotencyKey came earlier in the same body, is a 400 of its own; the others are recorded.
 */
export async function recordBulk(deps: AppDeps, orgId: string, records: unknown[]): Promise<BulkResult[]> {
  if (records.length > MAX_BULK_RECORDS) throw new ApiError('VALIDATION_ERROR', `records: at most ${MAX_BULK_RECORDS} per request (got ${records.length}).`)
  const results: BulkResult[] = new Array(records.length)
  const valid: Array<{ index: number; input: UsageInput }> = []
  const firstIndex = new Map<string, number>()
  records.forEach((raw, index) => {
    const key = raw && typeof raw === 'object' && typeof (raw as { idempotencyKey?: unknown }).idempotencyKey === 'string' ? ((raw as { idempotencyKey: string }).idempotencyKey.slice(0, 255)) : null
    const parsed = BulkUsageRecordSchema.safeParse(raw)
    if (!parsed.success) {
      results[index] = { idempotencyKey: key, status: 400, error: { code: 'VALIDATION_ERROR', message: `records[${index}]: ${formatIssues(parsed.error)}.` } }
      return
    }
    const earlier = firstIndex.get(parsed.data.idempotencyKey)
    if (earlier !== undefined) {
      results[index] = { idempotencyKey: key, status: 400, error: { code: 'VALIDATION_ERROR', message: `records[${index}]: idempotencyKey is used more than once in this request (first at records[${earlier}]).` } }
      return
    }
    firstIndex.set(parsed.data.idempotencyKey, index)
    valid.push({ index, input: parsed.data })
  })
  const recorded = await recordUsage(deps, orgId, valid.map((v) => v.input))
  valid.forEach(({ index, input }, i) => {
    const result = recorded[i]!
    results[index] =
      'record' in result
        ? { idempotencyKey: input.idempotencyKey, status: result.status, usageRecord: result.record }
        : { idempotencyKey: input.idempotencyKey, status: errorStatus[result.code], error: { code: result.code, message: result.message } }
  })
  return results
}

/** `GET …/entitlements/{id}/usage`: newest first. */
export async function listUsage(deps: AppDeps, orgId: string, entitlementId: string, query: { limit: number; cursor?: string }) {
  const entitlements = await usageDb.findUsageEntitlements(deps.db, orgId, [entitlementId])
  if (!entitlements.has(entitlementId)) throw notFound('Entitlement')
  const { rows, hasMore } = await usageDb.listRecords(deps.db, { entitlementId, limit: query.limit, before: query.cursor ? decodeCursor(query.cursor) : undefined })
  return { items: rows.map(toUsageRecord), nextCursor: hasMore && rows.length ? encodeCursor(rows.at(-1)!) : null }
}
