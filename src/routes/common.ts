import { z } from '@hono/zod-openapi'
import { ErrorSchema } from '../schemas'

export const errorResponses = (...statuses: number[]) =>
  Object.fromEntries(
    statuses.map((status) => [
      status,
      { description: errorDescriptions[status] ?? 'Error', content: { 'application/json': { schema: ErrorSchema } } },
    ]),
  )

const errorDescriptions: Record<number, string> = {
  400: 'Invalid input',
  401: 'Missing or invalid API key',
  404: 'Not found (also for another org’s objects)',
  403: 'The key’s scope does not allow this',
  409: 'Conflict',
  413: 'Body too large',
}

export const OrgIdParam = z.string().min(1).max(64).openapi({ param: { name: 'orgId', in: 'path' }, example: 'org_01jd0000000000000000000000' })

export const jsonBody = <T extends z.ZodType>(schema: T) => ({
  required: true,
  content: { 'application/json': { schema } },
})

export const jsonResponse = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { 'application/json': { schema } },
})

/**
 * Where a URL holds U+0000 (`%00`), if anywhere: its path or its query. PostgreSQL's text cannot
 * hold it, so the API and the console refuse it alike on every database (in the path nothing can
 * match it: 404; in the query it is a bad parameter: 400).
 */
export function nulInUrl(url: string): 'path' | 'query' | null {
  if (!url.includes('%')) return null
  const queryAt = url.indexOf('?')
  if (/%00/i.test(queryAt < 0 ? url : url.slice(0, queryAt))) return 'path'
  return queryAt >= 0 && /%00/i.test(url.slice(queryAt)) ? 'query' : null
}
