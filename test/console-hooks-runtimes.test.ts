import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Webhook } from 'standardwebhooks'
import { afterAll, beforeAll, expect, test } from 'vitest'
import { consoleUser, textOf } from './console'
import { type AzureSetup, startAzure, startHookReceiver, waitFor } from './helpers'
import { type WorkerProcess, httpBroker, startWorker } from './worker-process'

/**
 * The console's Webhooks and Integrations pages on workerd + D1 (`npm run dev:worker`): the
 * same forms as on Node (test/console-webhooks.test.ts, test/console-integrations.test.ts) do
 * the same there — a secret shown once that then signs, a ping that arrives, an AWS
 * integration and an Azure one edited with their secrets left blank (kept: Azure's check passes).
 */
let worker: WorkerProcess
let persistTo: string
let hooks: Awaited<ReturnType<typeof startHookReceiver>>
let azure: AzureSetup
const keys = { accessKeyId: 'AKIARUNTIMECONSOLE01', secretAccessKey: 'runtime/console/secret/access/key/0123456789' }

beforeAll(async () => {
  hooks = await startHookReceiver()
  azure = await startAzure()
  persistTo = mkdtempSync(join(tmpdir(), 'marketbridge-console-hooks-'))
  worker = await startWorker(persistTo, { AZURE_LOGIN_URL: azure.url, AZURE_MARKETPLACE_API_URL: azure.url })
}, 120_000)

afterAll(async () => {
  await worker?.stop()
  await hooks?.close()
  await azure?.close()
  rmSync(persistTo, { recursive: true, force: true })
})

test('workerd + D1: webhook URL, rotate (shown once, then signing), test ping, and integrations edited with their secrets left blank', async () => {
  const broker = httpBroker(worker.url)
  const { org, apiKey } = await broker.createOrg({ name: 'Acme' })
  const user = consoleUser((url, init) => fetch(url, init), worker.url)
  await user.signIn(apiKey)
  const webhooks = `/console/orgs/${org.id}/webhooks`

  const saved = await user.submit(webhooks, `${webhooks}/url`, { webhookUrl: hooks.url })
  expect(saved.status).toBe(200)
  expect(saved.html).toMatch(/whsec_/)
  const rotated = await user.submit(webhooks, `${webhooks}/secret`)
  expect(rotated.status).toBe(200)
  expect(rotated.response.headers.get('cache-control')).toBe('no-store')
  const secret = /whsec_[A-Za-z0-9+/=]+/.exec(rotated.html)![0]
  expect((await user.get(webhooks)).html).not.toContain(secret)
  const ping = await user.submit(webhooks, `${webhooks}/test`)
  expect(ping.status).toBe(303)
  const arrived = await waitFor('the ping', () => hooks.received.find((hook) => JSON.parse(hook.body).orgId === org.id), { timeoutMs: 20_000 })
  expect(new Webhook(secret).verify(arrived.body, arrived.headers)).toMatchObject({ type: 'ping' })
  const { items } = (await (await broker.request(`/api/v1/orgs/${org.id}/webhook-deliveries`, { token: apiKey })).json()) as { items: Array<{ id: string; status: string }> }
  const page = textOf((await user.get(webhooks)).html)
  for (const delivery of items) expect(page).toContain(`ping ${delivery.id} ${delivery.status}`)

  const integrations = `/console/orgs/${org.id}/integrations`
  const created = await user.submit(`${integrations}/aws/edit`, `${integrations}/aws/edit`, keys)
  expect(created.status).toBe(200)
  expect(created.html).toMatch(/mbn_[A-Za-z0-9_-]{40,}/)
  expect(created.html).not.toContain(keys.secretAccessKey)
  // Left blank, the secret access key is the stored one (without it the body would be refused).
  const edited = await user.submit(`${integrations}/aws/edit`, `${integrations}/aws/edit`, { accessKeyId: keys.accessKeyId, offerTypes: 'prod-1 = CONTRACT' })
  expect(edited.status).toBe(303)
  // Its credentials check runs on Azure's emulator here: on workerd the AWS SDK's STS call fails
  // for the API as well (a ReferenceError parsing STS's answer), a defect outside the console.
  const azureSaved = await user.submit(`${integrations}/azure/edit`, `${integrations}/azure/edit`, { tenantId: azure.tenantId, clientId: azure.clientId, clientSecret: azure.clientSecret })
  expect(azureSaved.status).toBe(303)
  const azureEdited = await user.submit(`${integrations}/azure/edit`, `${integrations}/azure/edit`, { tenantId: azure.tenantId, clientId: azure.clientId, offerTypes: 'gold = SUBSCRIPTION' })
  expect(azureEdited.status).toBe(303)
  const checked = await user.submit(integrations, `${integrations}/azure/check`)
  expect(checked.status).toBe(200)
  expect(textOf(checked.html)).toContain('Credentials work')
  for (const secret of [keys.secretAccessKey, azure.clientSecret]) expect(checked.html).not.toContain(secret)
  const listed = ((await (await broker.request(`/api/v1/orgs/${org.id}/integrations`, { token: apiKey })).json()) as { items: Array<Record<string, unknown>> }).items
  expect(listed.find((item) => item.partner === 'aws')).toMatchObject({ accessKeyId: keys.accessKeyId, offerTypes: { 'prod-1': 'CONTRACT' } })
  expect(listed.find((item) => item.partner === 'azure')).toMatchObject({ clientId: azure.clientId, offerTypes: { gold: 'SUBSCRIPTION' } })
}, 90_000)
