/** Who made an API request: the operator (ADMIN_TOKEN) or one org (by its API key). See authenticate() in orgs.ts. */
export type Caller = { kind: 'admin' } | { kind: 'org'; orgId: string }
