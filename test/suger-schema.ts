import type { z } from '@hono/zod-openapi'
import { IdentityBuyerSchema, ListUsageRecordGroupsResponseSchema, MeteringUsageRecordGroupSchema, WorkloadEntitlementSchema } from '../src/suger-schemas'

/**
 * Checks answers of the Suger-compatible API (contract §15) the way Suger's generated clients read
 * them, only stricter, with no Suger file: the broker's own strict zod schemas of Suger's shapes
 * (src/suger-schemas.ts: every key one the shape has, so nothing is misspelt; enums exact;
 * integers integers; times `…Z`), and the wire rules of §15 over the whole answer whatever its
 * shape: `Content-Type: application/json`; no `null` anywhere (the clients' fields are not
 * nullable: an absent value is omitted); every string that is a date-time RFC 3339 in UTC, ending
 * in `Z`.
 */
export const SUGER_SHAPES = {
  WorkloadEntitlement: WorkloadEntitlementSchema,
  MeteringUsageRecordGroup: MeteringUsageRecordGroupSchema,
  IdentityBuyer: IdentityBuyerSchema,
  ListUsageRecordGroupsResponse: ListUsageRecordGroupsResponseSchema,
} satisfies Record<string, z.ZodType>

/** One of the shapes, or `X[]`: a bare array of X. */
export type SugerShape = keyof typeof SUGER_SHAPES | `${keyof typeof SUGER_SHAPES}[]`

export interface Answer {
  contentType: string | null
  body: unknown
}

const UTC_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/
const LOOKS_LIKE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}/

/** A real instant in RFC 3339 UTC form (`2026-02-30T…Z` is not). */
function isUtcTime(value: string): boolean {
  if (!UTC_TIME.test(value)) return false
  const ms = Date.parse(value)
  return !Number.isNaN(ms) && new Date(ms).toISOString().slice(0, 19) === value.slice(0, 19)
}

/** The answer's breaches of §15's wire rules, whatever its shape (empty: none). */
export function wireProblems(answer: Answer): string[] {
  const problems: string[] = []
  if (!/^application\/json(;|$)/i.test(answer.contentType ?? '')) problems.push(`Content-Type ${JSON.stringify(answer.contentType)} is not application/json`)
  walk(answer.body, '$', problems)
  return problems
}

function walk(value: unknown, path: string, problems: string[]): void {
  if (value === null) return void problems.push(`${path}: null (absent values must be omitted)`)
  if (typeof value === 'string') {
    if (LOOKS_LIKE_TIME.test(value) && !isUtcTime(value)) problems.push(`${path}: the time ${JSON.stringify(value)} is not RFC 3339 UTC ending in Z`)
  } else if (typeof value === 'number') {
    if (!Number.isFinite(value)) problems.push(`${path}: ${value} is not a JSON number`)
  } else if (Array.isArray(value)) {
    value.forEach((item, index) => walk(item, `${path}[${index}]`, problems))
  } else if (typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) walk(item, `${path}.${key}`, problems)
  } else if (typeof value !== 'boolean') {
    problems.push(`${path}: ${typeof value} is not JSON`)
  }
}

/** The problems of an answer as Suger's shape `shape` (empty: none): the wire rules, then the strict schema's issues. */
export function sugerProblems(shape: SugerShape, answer: Answer): string[] {
  const problems = wireProblems(answer)
  const many = shape.endsWith('[]')
  const schema = SUGER_SHAPES[shape.replace(/\[\]$/, '') as keyof typeof SUGER_SHAPES]
  if (many && !Array.isArray(answer.body)) return [...problems, `$: not an array (${shape})`]
  const items = many ? (answer.body as unknown[]) : [answer.body]
  items.forEach((item, index) => {
    const at = many ? `$[${index}]` : '$'
    for (const issue of schema.safeParse(item).error?.issues ?? []) {
      const where = [at, ...issue.path.map((key) => (typeof key === 'number' ? `[${key}]` : `.${String(key)}`))].join('')
      problems.push(`${where}: ${issue.message}`)
    }
  })
  return problems
}
