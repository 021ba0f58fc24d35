import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { sleep } from './helpers'
import { type WorkerProcess, httpBroker, startWorker } from './worker-process'

/**
 * The audit log on workerd + D1 (`npm run dev:worker`): there the change and its entry are one D1
 * batch, not a transaction, and a retry's entry is conditioned inside its statement on the lease
 * the batch took (a batch cannot look at the answers before it).
 */
let worker: WorkerProcess
let persistTo: string

beforeAll(async () => {
  persistTo = mkdtempSync(join(tmpdir(), 'marketbridge-audit-'))
  worker = await startWorker(persistTo, {})
}, 120_000)

afterAll(async () => {
  await worker?.stop()
  rmSync(persistTo, { recursive: true, force: true })
})

interface Entry {
  action: string
  actor: { type: string }
  targetType: string
  targetId: string
  requestId: string
  changes: Record<string, { from: unknown; to: unknown }>
}

test('workerd + D1: a change writes its entry in the same batch; a retry its own', async () => {
  const broker = httpBroker(worker.url)
  const { org, apiKey } = await broker.createOrg({ name: 'Acme' })
  const patched = await broker.request(`/api/v1/orgs/${org.id}`, { method: 'PATCH', token: apiKey, json: { name: 'Acme Corp', webhookUrl: 'http://127.0.0.1:9/hook' } })
  expect(patched.status).toBe(200)
  const secret = ((await patched.json()) as { webhookSecret: string }).webhookSecret
  const ping = (await (await broker.request(`/api/v1/orgs/${org.id}/webhooks/test`, { method: 'POST', token: apiKey })).json()) as { id: string }
  // Waits for the ping's own attempt (a retry meanwhile would make none).
  for (let i = 0; ; i++) {
    const { items } = (await (await broker.request(`/api/v1/orgs/${org.id}/webhook-deliveries`, { token: apiKey })).json()) as { items: Array<{ id: string; attempts: number }> }
    if (items.find((d) => d.id === ping.id && d.attempts > 0)) break
    if (i > 400) throw new Error('the ping was never attempted')
    await sleep(50)
  }
  const retried = await broker.request(`/api/v1/orgs/${org.id}/webhook-deliveries/${ping.id}/retry`, { method: 'POST', token: apiKey })
  expect(retried.status).toBe(200)

  const list = await broker.request(`/api/v1/orgs/${org.id}/audit-log`, { token: apiKey })
  expect(list.status).toBe(200)
  const text = await list.text()
  expect(text).not.toContain(secret)
  const { items } = JSON.parse(text) as { items: Entry[] }
  expect(items.map((e) => e.action)).toEqual(['webhook_delivery.retried', 'webhook.test_sent', 'org.updated', 'org.created'])
  expect(items[2]).toMatchObject({
    actor: { type: 'api_key' },
    targetType: 'org',
    targetId: org.id,
    requestId: patched.headers.get('x-request-id'),
    changes: { name: { from: 'Acme', to: 'Acme Corp' }, webhookUrl: { from: null, to: 'http://127.0.0.1:9/hook' }, webhookSecret: { from: null, to: '[redacted]' } },
  })
  expect(items[0]).toMatchObject({ targetId: ping.id, requestId: retried.headers.get('x-request-id') })
  expect((await broker.request(`/api/v1/orgs/${org.id}/audit-log?limit=0`, { token: apiKey })).status).toBe(400)
}, 60_000)
