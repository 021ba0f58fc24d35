import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'

/**
 * Checks answers of the Suger-compatible API against Suger's own schemas (the fixture
 * test/fixtures/suger-openapi-subset.json, taken from sugerio/suger-sdk-go api/openapi.yaml) the
 * way Suger's generated clients read them, only stricter: every field must be one Suger's schema
 * has (so nothing is misspelt), of its type; `integer` fields integers; enums exactly as listed;
 * no `null` anywhere (the clients' fields are not nullable: an absent value is omitted); every
 * `date-time`, and every other string that is a date-time, RFC 3339 in UTC ending in `Z`.
 */
interface SchemaObject {
  $ref?: string
  type?: string
  format?: string
  enum?: unknown[]
  items?: SchemaObject
  properties?: Record<string, SchemaObject>
  additionalProperties?: SchemaObject | boolean
  allOf?: SchemaObject[]
  required?: string[]
}

export interface SugerDocument {
  paths: Record<string, Record<string, { operationId: string; parameters?: Array<{ name: string; in: string; required?: boolean; schema?: SchemaObject }>; responses: Record<string, unknown> }>>
  schemas: Record<string, SchemaObject>
  securitySchemes: Record<string, unknown>
}

export const sugerDocument = JSON.parse(readFileSync(resolve(import.meta.dirname, 'fixtures/suger-openapi-subset.json'), 'utf8')) as SugerDocument

const UTC_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/
const LOOKS_LIKE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/

/** The problems of `value` as an instance of Suger's schema `name` (empty: none). */
export function sugerProblems(name: string, value: unknown): string[] {
  const problems: string[] = []
  check({ $ref: `#/components/schemas/${name}` }, value, name, problems)
  return problems
}

function resolveRef(schema: SchemaObject): SchemaObject {
  let current = schema
  while (current.$ref) {
    const target = sugerDocument.schemas[current.$ref.split('/').pop()!]
    if (!target) throw new Error(`the fixture has no schema ${current.$ref}`)
    current = target
  }
  // `allOf: [{$ref}]` with a description beside it is how the generator writes a documented reference.
  if (current.allOf?.length === 1 && !current.properties) return { ...resolveRef(current.allOf[0]!), ...(current.type && current.type !== 'object' ? { type: current.type } : {}) }
  return current
}

function check(raw: SchemaObject, value: unknown, path: string, problems: string[]): void {
  const schema = resolveRef(raw)
  if (value === null) return void problems.push(`${path}: null (absent values must be omitted)`)
  if (schema.enum && !schema.enum.includes(value)) problems.push(`${path}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`)
  switch (schema.type) {
    case 'string':
      if (typeof value !== 'string') return void problems.push(`${path}: ${JSON.stringify(value)} is not a string`)
      if (schema.format === 'date-time' && !UTC_TIME.test(value)) problems.push(`${path}: ${value} is not an RFC 3339 UTC time ending in Z`)
      else if (LOOKS_LIKE_TIME.test(value) && !UTC_TIME.test(value)) problems.push(`${path}: the time ${value} does not end in Z`)
      return
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value)) problems.push(`${path}: ${JSON.stringify(value)} is not an integer`)
      return
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) problems.push(`${path}: ${JSON.stringify(value)} is not a number`)
      return
    case 'boolean':
      if (typeof value !== 'boolean') problems.push(`${path}: ${JSON.stringify(value)} is not a boolean`)
      return
    case 'array':
      if (!Array.isArray(value)) return void problems.push(`${path}: not an array`)
      value.forEach((item, index) => check(schema.items ?? {}, item, `${path}[${index}]`, problems))
      return
    default:
      if (schema.type !== 'object' && !schema.properties && schema.additionalProperties === undefined) return
      if (typeof value !== 'object' || Array.isArray(value)) return void problems.push(`${path}: not an object`)
      for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
        const property = schema.properties?.[key]
        if (property) check(property, item, `${path}.${key}`, problems)
        else if (schema.additionalProperties && typeof schema.additionalProperties === 'object') check(schema.additionalProperties, item, `${path}.${key}`, problems)
        else if (schema.additionalProperties !== true) problems.push(`${path}.${key}: not a field of Suger's schema`)
      }
  }
}
