// The Azure emulator of the tests, in its own process for the benchmarks.
// Usage: node --import tsx bench/emulator.ts <latencyMs>; prints {"url"} when listening.
// Besides the emulator's own controls it answers POST /_emulator/suspensions {appId, tenantId,
// subscriptionIds}: a Suspend operation for each, with the webhook body Microsoft would send and
// a signed Entra token for it.
import { createAzureEmulator } from '../sandbox/emulators/azure'

const emulator = createAzureEmulator({ latencyMs: Number(process.argv[2] ?? 0), record: false })
emulator.app.post('/_emulator/suspensions', async (c) => {
  const { appId, tenantId, subscriptionIds } = (await c.req.json()) as { appId: string; tenantId: string; subscriptionIds: string[] }
  const webhooks: Array<{ body: string; token: string }> = []
  for (const id of subscriptionIds) {
    const { webhookBody } = emulator.startOperation(id, 'Suspend')
    webhooks.push({ body: JSON.stringify(webhookBody), token: await emulator.mintWebhookToken({ tenantId, clientId: appId }) })
  }
  return c.json({ webhooks })
})
const { url } = await emulator.listen()
console.log(JSON.stringify({ url }))
