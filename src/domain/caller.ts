/**
 * Who made an API request: the operator (ADMIN_TOKEN) or one org (by its API key). See authenticate() in orgs.ts.
 * `keyId`/`keyName` name the key when authenticate knows them (the audit log's actor; null until then).
 */
export type Caller = { kind: 'admin' } | { kind: 'org'; orgId: string; keyId?: string; keyName?: string }
