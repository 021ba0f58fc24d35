/** Who made an API request: the operator (ADMIN_TOKEN) or one org (by its API key). See authenticate() in orgs.ts. */
export type Caller =
  | { kind: 'admin' }
  | {
      kind: 'org'
      orgId: string
      /** The API key's id (`api_keys.id`): what its rate limit is counted by, and the audit log's actor. */
      keyId?: string
      /** The key's name, for the audit log's actor (absent until authenticate knows it). */
      keyName?: string
      /** The key's own requests per minute; null or absent: RATE_LIMIT_PER_MINUTE. */
      rateLimitPerMinute?: number | null
    }
