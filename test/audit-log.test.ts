import fc from 'fast-check'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { parseConfig } from '../src/config'
import { runJobs } from '../src/domain/jobs'
import { createLandingService } from '../src/domain/landing'
import { type TestBroker, createTestBroker, sleep, testEnv } from './helpers'

/**
 * The audit log (contract §13) through the real app: one entry per change made through the API,
 * written in the same atomic write as the change (both fail together), listed newest first,
 * pruned by the background job. Runs on SQLite and (the `postgres` project) PostgreSQL.
 */
interface Entry {
  id: string
  orgId: string
  action: string
  actor: { type: string; id: string | null; name: string | null }
  targetType: string
  targetId: string | null
  requestId: string | null
  changes: Record<string, { from: unknown; to: unknown }>
  createdAt: string
}

const azureBody = { tenantId: '72f988bf-86f1-41af-91ab-2d7cd011db47', clientId: 'd3f1a1c2-0000-4000-8000-000000000001', clientSecret: 'Azure~Secret.Value_123' }
const awsBody = { region: 'us-east-1', credentials: { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' } }

let broker: TestBroker
beforeAll(async () => {
  broker = await createTestBroker()
})
afterAll(() => broker?.close())

async function log(orgId: string, query = '', token?: string): Promise<{ items: Entry[]; nextCursor: string | null }> {
  const response = await broker.request(`/api/v1/orgs/${orgId}/audit-log${query}`, { token })
  expect(response.status).toBe(200)
  return (await response.json()) as { items: Entry[]; nextCursor: string | null }
}

/** Every entry of the org, walking the pages. */
async function all(orgId: string, action?: string): Promise<Entry[]> {
  const items: Entry[] = []
  let cursor: string | null = null
  do {
    const page = await log(orgId, `?limit=1000${action ? `&action=${action}` : ''}${cursor ? `&cursor=${cursor}` : ''}`)
    items.push(...page.items)
    cursor = page.nextCursor
  } while (cursor)
  return items
}

async function until<T>(find: () => Promise<T | undefined>, what: string): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const found = await find()
    if (found) return found
    await sleep(25)
  }
  throw new Error(`timed out waiting for ${what}`)
}

/** A request that must succeed; answers its body and the X-Request-Id the app sent with it. */
async function change(path: string, init: Parameters<TestBroker['request']>[1], status = 200) {
  const response = await broker.request(path, init)
  const text = await response.text()
  expect(response.status, text).toBe(status)
  const requestId = response.headers.get('x-request-id')
  expect(requestId).toBeTruthy()
  return { body: JSON.parse(text) as Record<string, unknown>, requestId: requestId! }
}

describe('one entry per change', () => {
  test('org create and update: actor, requestId, target and changes; a PATCH that changes nothing writes none', async () => {
    const created = await change('/api/v1/orgs', { method: 'POST', json: { name: 'Acme', fulfillmentUrl: 'https://app.acme.example/signup' } }, 201)
    const orgId = (created.body.org as { id: string }).id
    const apiKey = created.body.apiKey as string
    const [first] = await log(orgId).then((page) => page.items)
    expect(first).toMatchObject({
      orgId,
      action: 'org.created',
      actor: { type: 'admin', id: null, name: null },
      targetType: 'org',
      targetId: orgId,
      requestId: created.requestId,
      changes: { name: { from: null, to: 'Acme' }, fulfillmentUrl: { from: null, to: 'https://app.acme.example/signup' } },
    })
    expect(first!.id).toMatch(/^aud_/)
    expect(Date.parse(first!.createdAt)).not.toBeNaN()

    const patched = await change(`/api/v1/orgs/${orgId}`, { method: 'PATCH', token: apiKey, json: { name: 'Acme Corp', fulfillmentUrl: 'https://app.acme.example/signup' } })
    const entries = await all(orgId)
    expect(entries.map((e) => e.action)).toEqual(['org.updated', 'org.created'])
    expect(entries[0]).toMatchObject({ actor: { type: 'api_key' }, requestId: patched.requestId, targetType: 'org', targetId: orgId })
    // Only the field that differs; the fulfillmentUrl sent again is no change.
    expect(entries[0]!.changes).toEqual({ name: { from: 'Acme', to: 'Acme Corp' } })

    await change(`/api/v1/orgs/${orgId}`, { method: 'PATCH', token: apiKey, json: { name: 'Acme Corp' } })
    expect(await all(orgId)).toHaveLength(2)
  })

  test('webhook URL, secret rotation, ping and retry; integrations and the signup form; no secret in the list', async () => {
    const { org, apiKey } = await broker.createOrg()
    const secrets: string[] = [apiKey, azureBody.clientSecret, awsBody.credentials.secretAccessKey]

    const hooked = await change(`/api/v1/orgs/${org.id}`, { method: 'PATCH', token: apiKey, json: { webhookUrl: 'http://127.0.0.1:9/hook' } })
    secrets.push(hooked.body.webhookSecret as string)
    const rotated = await change(`/api/v1/orgs/${org.id}/webhook-secret`, { method: 'POST', token: apiKey })
    secrets.push(rotated.body.webhookSecret as string)
    const ping = await change(`/api/v1/orgs/${org.id}/webhooks/test`, { method: 'POST', token: apiKey }, 202)
    const deliveryId = ping.body.id as string
    // The ping is sent at once in the background; a retry while that attempt holds the delivery makes none (and writes no entry).
    await until(async () => {
      const { items } = (await (await broker.request(`/api/v1/orgs/${org.id}/webhook-deliveries`, { token: apiKey })).json()) as { items: Array<{ id: string; attempts: number }> }
      return items.find((d) => d.id === deliveryId && d.attempts > 0)
    }, 'the ping attempted')
    const retried = await change(`/api/v1/orgs/${org.id}/webhook-deliveries/${deliveryId}/retry`, { method: 'POST', token: apiKey })

    const azure = await change(`/api/v1/orgs/${org.id}/integrations/azure`, { method: 'PUT', token: apiKey, json: azureBody })
    await change(`/api/v1/orgs/${org.id}/integrations/azure`, { method: 'PUT', token: apiKey, json: { clientSecret: azureBody.clientSecret, clientId: azureBody.clientId, tenantId: azureBody.tenantId } })
    const newSecret = 'Azure~Other.Secret_456'
    secrets.push(newSecret)
    const azure2 = await change(`/api/v1/orgs/${org.id}/integrations/azure`, { method: 'PUT', token: apiKey, json: { ...azureBody, clientSecret: newSecret, offerTypes: { gold: 'PRIVATE' } } })
    const aws = await change(`/api/v1/orgs/${org.id}/integrations/aws`, { method: 'PUT', token: apiKey, json: awsBody })
    secrets.push((aws.body.integration as { notificationSecret: string }).notificationSecret)
    const notification = await change(`/api/v1/orgs/${org.id}/integrations/aws/notification-secret`, { method: 'POST', token: apiKey })
    secrets.push(notification.body.notificationSecret as string)

    const form = await change(`/api/v1/orgs/${org.id}/signup-form`, { method: 'PUT', token: apiKey, json: { companyName: 'Acme' } })
    await change(`/api/v1/orgs/${org.id}/signup-form`, { method: 'PUT', token: apiKey, json: { companyName: 'Acme' } })
    const form2 = await change(`/api/v1/orgs/${org.id}/signup-form`, { method: 'PUT', token: apiKey, json: { companyName: 'Acme Inc', ccEmails: ['sales@acme.example'] } })
    const signupId = (form.body.signupForm as { signupId: string }).signupId

    const entries = await all(org.id)
    const byRequest = (requestId: string) => entries.filter((e) => e.requestId === requestId)
    // Newest first; the org's creation last; the two PUTs that changed nothing wrote none.
    expect(entries.map((e) => e.action)).toEqual([
      'signup_form.updated',
      'signup_form.created',
      'notification_secret.rotated',
      'integration.created',
      'integration.updated',
      'integration.created',
      'webhook_delivery.retried',
      'webhook.test_sent',
      'webhook_secret.rotated',
      'org.updated',
      'org.created',
    ])
    expect(byRequest(hooked.requestId)).toEqual([
      expect.objectContaining({ action: 'org.updated', changes: { webhookUrl: { from: null, to: 'http://127.0.0.1:9/hook' }, webhookSecret: { from: null, to: '[redacted]' } } }),
    ])
    expect(byRequest(rotated.requestId)).toEqual([expect.objectContaining({ action: 'webhook_secret.rotated', targetType: 'org', targetId: org.id, changes: { webhookSecret: { from: '[redacted]', to: '[redacted]' } } })])
    expect(byRequest(ping.requestId)).toEqual([expect.objectContaining({ action: 'webhook.test_sent', targetType: 'webhook_delivery', targetId: deliveryId })])
    expect(byRequest(retried.requestId)).toEqual([expect.objectContaining({ action: 'webhook_delivery.retried', targetType: 'webhook_delivery', targetId: deliveryId, actor: expect.objectContaining({ type: 'api_key' }) })])
    expect(byRequest(azure.requestId)).toEqual([
      expect.objectContaining({
        action: 'integration.created',
        targetType: 'integration',
        targetId: 'azure',
        changes: { tenantId: { from: null, to: azureBody.tenantId }, clientId: { from: null, to: azureBody.clientId }, clientSecret: { from: null, to: '[redacted]' } },
      }),
    ])
    const [update] = byRequest(azure2.requestId)
    expect(update).toMatchObject({ action: 'integration.updated', targetId: 'azure' })
    expect(update!.changes.clientSecret).toEqual({ from: '[redacted]', to: '[redacted]' })
    expect(update!.changes.offerTypes).toMatchObject({ to: { gold: 'PRIVATE' } })
    expect(Object.keys(update!.changes).sort()).toEqual(['clientSecret', 'offerTypes'])
    expect(byRequest(aws.requestId)[0]!.changes).toMatchObject({ accessKeyId: { from: null, to: awsBody.credentials.accessKeyId }, secretAccessKey: { from: null, to: '[redacted]' } })
    expect(byRequest(notification.requestId)).toEqual([expect.objectContaining({ action: 'notification_secret.rotated', targetId: 'aws', changes: { notificationSecret: { from: '[redacted]', to: '[redacted]' } } })])
    expect(byRequest(form.requestId)).toEqual([expect.objectContaining({ action: 'signup_form.created', targetType: 'signup_form', targetId: signupId })])
    expect(byRequest(form2.requestId)[0]!.changes).toEqual({ companyName: { from: 'Acme', to: 'Acme Inc' }, ccEmails: { from: [], to: ['sales@acme.example'] } })

    // Whatever was set, nothing secret is in the log: neither the key nor any secret, in any page.
    const text = await (await broker.request(`/api/v1/orgs/${org.id}/audit-log?limit=1000`, { token: apiKey })).text()
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(8)
      expect(text).not.toContain(secret)
    }
  })
})

test('a retry that finds its delivery held by an attempt under way makes none and writes no entry', async () => {
  const { org, apiKey } = await broker.createOrg({ webhookUrl: 'http://127.0.0.1:9/hook' })
  const ping = await change(`/api/v1/orgs/${org.id}/webhooks/test`, { method: 'POST', token: apiKey }, 202)
  const id = ping.body.id as string
  await until(async () => (await broker.deps.db.selectFrom('webhook_deliveries').select('attempts').where('id', '=', id).where('lease_until', 'is', null).where('attempts', '>', 0).executeTakeFirst()), 'the ping attempted')
  const held = new Date(Date.now() + 3600_000).toISOString()
  await broker.deps.db.updateTable('webhook_deliveries').set({ lease_until: held }).where('id', '=', id).execute()
  await change(`/api/v1/orgs/${org.id}/webhook-deliveries/${id}/retry`, { method: 'POST', token: apiKey })
  expect((await all(org.id)).map((e) => e.action)).toEqual(['webhook.test_sent', 'org.created'])
  await broker.deps.db.updateTable('webhook_deliveries').set({ lease_until: null }).where('id', '=', id).execute()
  await change(`/api/v1/orgs/${org.id}/webhook-deliveries/${id}/retry`, { method: 'POST', token: apiKey })
  expect((await all(org.id)).map((e) => e.action)).toEqual(['webhook_delivery.retried', 'webhook.test_sent', 'org.created'])
})

describe('the list', () => {
  let orgId: string
  let apiKey: string
  beforeAll(async () => {
    ;({ org: { id: orgId }, apiKey } = await broker.createOrg())
    for (let i = 0; i < 7; i++) await change(`/api/v1/orgs/${orgId}`, { method: 'PATCH', token: apiKey, json: { name: `Name ${i}` } })
  })

  test('filters by action', async () => {
    expect((await all(orgId, 'org.updated')).map((e) => e.changes.name!.to)).toEqual([6, 5, 4, 3, 2, 1, 0].map((i) => `Name ${i}`))
    expect((await all(orgId, 'org.created')).map((e) => e.action)).toEqual(['org.created'])
    expect(await all(orgId, 'integration.updated')).toEqual([])
  })

  test('pages with the cursor, newest first, each entry once', async () => {
    const everything = await all(orgId)
    expect(everything).toHaveLength(8)
    const seen: Entry[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      const page = await log(orgId, `?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, apiKey)
      expect(page.items.length).toBeLessThanOrEqual(3)
      seen.push(...page.items)
      cursor = page.nextCursor
      pages++
    } while (cursor)
    expect(pages).toBe(3)
    expect(seen.map((e) => e.id)).toEqual(everything.map((e) => e.id))
    const order = seen.map((e) => `${e.createdAt} ${e.id}`)
    expect(order).toEqual([...order].sort().reverse())
  })

  test('a bad limit or cursor is a 400; another org’s log is a 404', async () => {
    for (const query of ['?limit=0', '?limit=1001', '?limit=abc', '?limit=1.5', '?cursor=nonsense', '?cursor=', `?action=${'x'.repeat(101)}`]) {
      const response = await broker.request(`/api/v1/orgs/${orgId}/audit-log${query}`, { token: apiKey })
      expect(response.status, query).toBe(400)
      expect(((await response.json()) as { error: { code: string } }).error.code).toMatch(/^[A-Z_]+$/)
    }
    const other = await broker.createOrg()
    expect((await broker.request(`/api/v1/orgs/${orgId}/audit-log`, { token: other.apiKey })).status).toBe(404)
    expect((await broker.request(`/api/v1/orgs/${orgId}/audit-log`, { token: null })).status).toBe(401)
  })

  test('property: any query parameters answer 200 or 400, never a 5xx, and change nothing', async () => {
    const before = await all(orgId)
    const text = fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('org.updated', '0', '-1', '1000', '1e3', ' 5', 'null', '%00', 'eyJ4IjoxfQ', 'WyIyMDI2IiwiYXVkXyJd'))
    await fc.assert(
      fc.asyncProperty(fc.record({ action: fc.option(text), limit: fc.option(text), cursor: fc.option(text) }, { requiredKeys: [] }), async (params) => {
        const query = new URLSearchParams(Object.entries(params).filter((e): e is [string, string] => typeof e[1] === 'string'))
        const response = await broker.request(`/api/v1/orgs/${orgId}/audit-log?${query}`, { token: apiKey })
        expect([200, 400]).toContain(response.status)
        if (response.status === 400) expect(((await response.json()) as { error: { requestId: string } }).error.requestId).toBeTruthy()
      }),
      { numRuns: 150 },
    )
    expect(await all(orgId)).toEqual(before)
  })

  test('the route is in the OpenAPI document', async () => {
    const doc = (await (await broker.request('/api/openapi.json', { token: null })).json()) as { paths: Record<string, { get?: { parameters?: Array<{ name: string }> } }> }
    const route = doc.paths['/api/v1/orgs/{orgId}/audit-log']
    expect(route?.get?.parameters?.map((p) => p.name).sort()).toEqual(['action', 'cursor', 'limit', 'orgId'])
  })
})

describe('retention', () => {
  test('the job deletes entries older than AUDIT_RETENTION_DAYS, keeps the rest', async () => {
    const { org, apiKey } = await broker.createOrg()
    await change(`/api/v1/orgs/${org.id}`, { method: 'PATCH', token: apiKey, json: { name: 'Old' } })
    const real = broker.deps.now
    const job = () => runJobs(broker.deps, createLandingService(broker.deps), broker.deps.logger)
    try {
      // A change 10 days later: the clock every write and the job read.
      broker.deps.now = () => new Date(real().getTime() + 10 * 86_400_000)
      await change(`/api/v1/orgs/${org.id}`, { method: 'PATCH', token: apiKey, json: { name: 'Newer' } })
      broker.deps.now = () => new Date(real().getTime() + 399 * 86_400_000)
      await job()
      expect((await all(org.id)).map((e) => e.action)).toEqual(['org.updated', 'org.updated', 'org.created'])
      // 401 days on: the first two (written at day 0) are past the default 400 days; day 10's is not.
      broker.deps.now = () => new Date(real().getTime() + 401 * 86_400_000)
      await job()
      expect((await all(org.id)).map((e) => e.changes.name?.to)).toEqual(['Newer'])
    } finally {
      broker.deps.now = real
    }
  })

  test('AUDIT_RETENTION_DAYS is validated', () => {
    expect(parseConfig(testEnv()).AUDIT_RETENTION_DAYS).toBe(400)
    expect(parseConfig(testEnv({ AUDIT_RETENTION_DAYS: '30' })).AUDIT_RETENTION_DAYS).toBe(30)
    for (const bad of ['0', '-1', '1.5', 'forever', '36501']) expect(() => parseConfig(testEnv({ AUDIT_RETENTION_DAYS: bad })), bad).toThrow(/AUDIT_RETENTION_DAYS/)
  })
})

describe('atomicity: the change and its entry are one write', () => {
  /** Makes every write to `table` fail until undone: a trigger on SQLite, a constraint no new row meets on PostgreSQL. */
  async function refuseWrites(table: 'audit_log' | 'orgs') {
    const db = broker.deps.db
    if (db.dialect.name === 'postgres') {
      await sql`alter table ${sql.table(table)} add constraint refuse_writes check (false) not valid`.execute(db)
      return () => sql`alter table ${sql.table(table)} drop constraint refuse_writes`.execute(db)
    }
    const event = table === 'orgs' ? 'update' : 'insert'
    await sql.raw(`create trigger refuse_writes before ${event} on ${table} begin select raise(abort, 'refused by the test'); end`).execute(db)
    return () => sql`drop trigger refuse_writes`.execute(db)
  }

  test('an entry that cannot be written leaves the change unmade', async () => {
    const { org, apiKey } = await broker.createOrg({ name: 'Before' })
    const undo = await refuseWrites('audit_log')
    try {
      const response = await broker.request(`/api/v1/orgs/${org.id}`, { method: 'PATCH', token: apiKey, json: { name: 'After' } })
      expect(response.status).toBe(500)
      const integration = await broker.request(`/api/v1/orgs/${org.id}/integrations/azure`, { method: 'PUT', token: apiKey, json: azureBody })
      expect(integration.status).toBe(500)
      const created = await broker.request('/api/v1/orgs', { method: 'POST', json: { name: 'Never', fulfillmentUrl: 'https://never.example/' } })
      expect(created.status).toBe(500)
    } finally {
      await undo()
    }
    const read = (await (await broker.request(`/api/v1/orgs/${org.id}`, { token: apiKey })).json()) as { name: string }
    expect(read.name).toBe('Before')
    expect(((await (await broker.request(`/api/v1/orgs/${org.id}/integrations`, { token: apiKey })).json()) as { items: unknown[] }).items).toEqual([])
    const orgs = await broker.deps.db.selectFrom('orgs').select('id').where('name', '=', 'Never').execute()
    expect(orgs).toEqual([])
    expect((await all(org.id)).map((e) => e.action)).toEqual(['org.created'])
  })

  test('a change that cannot be written leaves no entry', async () => {
    const { org, apiKey } = await broker.createOrg({ name: 'Before' })
    const undo = await refuseWrites('orgs')
    try {
      const response = await broker.request(`/api/v1/orgs/${org.id}`, { method: 'PATCH', token: apiKey, json: { name: 'After' } })
      expect(response.status).toBe(500)
    } finally {
      await undo()
    }
    expect((await all(org.id)).map((e) => e.action)).toEqual(['org.created'])
    // And with the write possible again, the same request is made and recorded.
    await change(`/api/v1/orgs/${org.id}`, { method: 'PATCH', token: apiKey, json: { name: 'After' } })
    expect((await all(org.id)).map((e) => e.action)).toEqual(['org.updated', 'org.created'])
  })
})

describe('API-key changes', () => {
  test('create, rotate and revoke each write one entry with the calling key as actor; a second revoke writes none; no key secret anywhere', async () => {
    const { org, apiKey } = await broker.createOrg()
    const callerId = ((await (await broker.request(`/api/v1/orgs/${org.id}/api-keys`, { token: apiKey })).json()) as { items: Array<{ id: string }> }).items[0]!.id
    const created = await broker.request(`/api/v1/orgs/${org.id}/api-keys`, { method: 'POST', token: apiKey, json: { name: 'billing', scope: 'read', rateLimitPerMinute: 60 } })
    expect(created.status).toBe(201)
    const made = (await created.json()) as { apiKey: { id: string }; key: string }
    const rotated = await broker.request(`/api/v1/orgs/${org.id}/api-keys/${made.apiKey.id}/rotate`, { method: 'POST', token: apiKey, json: { gracePeriodSeconds: 60 } })
    expect(rotated.status).toBe(201)
    const next = (await rotated.json()) as { apiKey: { id: string }; key: string }
    for (let i = 0; i < 2; i++) expect((await broker.request(`/api/v1/orgs/${org.id}/api-keys/${next.apiKey.id}`, { method: 'DELETE', token: apiKey })).status).toBe(200)

    const entries = (await all(org.id)).filter((e) => e.action.startsWith('api_key.'))
    expect(entries.map((e) => [e.action, e.targetId])).toEqual([
      ['api_key.revoked', next.apiKey.id],
      ['api_key.rotated', made.apiKey.id],
      ['api_key.created', made.apiKey.id],
    ])
    for (const entry of entries) expect(entry.actor).toEqual({ type: 'api_key', id: callerId, name: 'default' })
    expect(entries[2]!.changes).toEqual({ name: { from: null, to: 'billing' }, scope: { from: null, to: 'read' }, rateLimitPerMinute: { from: null, to: 60 }, expiresAt: { from: null, to: null } })
    expect(entries[1]!.changes.replacedBy).toEqual({ from: null, to: next.apiKey.id })
    expect(entries[1]!.changes.expiresAt!.from).toBeNull()
    const text = JSON.stringify(await all(org.id))
    for (const secret of [apiKey, made.key, next.key]) expect(text).not.toContain(secret.slice(8))
  })
})
