import { ENCRYPTION_KEY, cleanup, createBenchOrg, seedEntitlements } from './harness'
import { writeFileSync } from 'node:fs'
const [databaseUrl, emulatorUrl, count, idsFile] = process.argv.slice(2) as [string, string, string, string]
const { deps, org, apiKey } = await createBenchOrg(databaseUrl, emulatorUrl)
writeFileSync(idsFile, JSON.stringify(await seedEntitlements(deps.db, org.id, Number(count))))
await deps.db.destroy()
console.log(JSON.stringify({ orgId: org.id, apiKey, encryptionKey: ENCRYPTION_KEY }))
cleanup()