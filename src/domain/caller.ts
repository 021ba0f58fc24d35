/** What a key may do (contract §13): `full` everything its org may; `read` GET (and HEAD) routes only. */
export type KeyScope = 'full' | 'read'

/**
 * Who made an API request: the operator (ADMIN_TOKEN) or one org, by one of its API keys. The
 * key's id, name, scope and own limit ride along so the scope check, the rate limiter and the
 * audit log's actor need no second look-up. See authenticate() in orgs.ts.
 */
export type Caller =
  | { kind: 'admin' }
  | { kind: 'org'; orgId: string; keyId: string; keyName: string; scope: KeyScope; rateLimitPerMinute: number | null }
