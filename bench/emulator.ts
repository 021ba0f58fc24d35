// The Azure emulator of the tests, in its own process for the benchmarks.
// Usage: node --import tsx bench/emulator.ts <latencyMs>; prints {"url"} when listening.
import { createAzureEmulator } from '../test/emulators/azure'

const emulator = createAzureEmulator({ latencyMs: Number(process.argv[2] ?? 0), record: false })
const { url } = await emulator.listen()
console.log(JSON.stringify({ url }))
