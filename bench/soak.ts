// The Node 24 soak: many landings over several restarts of the real server on one SQLite file.
// better-sqlite3 ≤ 12 aborted Node 24 (`Assertion failed: (env) != nullptr` in a statement's
// finalizer) at start after a restart and under load; this run shows that no longer happens and
// that memory stays flat. Part of `npm run bench`; alone: `npm run bench:soak`.
// Knobs: BENCH_SOAK_LANDINGS (20000 in all), BENCH_SOAK_RESTARTS (5: every start is on the existing database).
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import SQLite from 'better-sqlite3'
import { brokerEnv, cleanup, createBenchOrg, landingJob, load, memoryOf, nextPort, round, start, startEmulator, work } from './harness'

export interface SoakRound {
  round: number
  landings: number
  redirected: number
  failed: number
  rps: number
  rssAfterStartMb: number
  rssAfterLandingsMb: number
  peakRssMb: number
  exit: string
}

export interface SoakResult {
  node: string
  rounds: SoakRound[]
  entitlementsStored: number
  nativeAborts: number
  /** Largest RSS after landings over the smallest, minus one, in percent. */
  rssSpreadPercent: number
  met: boolean
}

export async function runSoak(total = Number(process.env.BENCH_SOAK_LANDINGS ?? 20_000), restarts = Number(process.env.BENCH_SOAK_RESTARTS ?? 5)): Promise<SoakResult> {
  const emulator = await startEmulator(0)
  const file = join(work, 'soak.db')
  const databaseUrl = `sqlite:${file}`
  const { deps, org } = await createBenchOrg(databaseUrl, emulator)
  await deps.db.destroy()

  const rounds: SoakRound[] = []
  let nativeAborts = 0
  const perRound = Math.ceil(total / restarts)
  for (let round = 1; round <= restarts; round++) {
    const port = nextPort()
    const broker = await start('src/node.ts', [], { env: { ...brokerEnv(databaseUrl, emulator), PORT: String(port) }, ready: /listening on/ })
    const rssAfterStart = memoryOf(broker.child.pid!).rssMb
    const landings = Math.min(perRound, total - perRound * (round - 1))
    const result = await load(await landingJob(`http://127.0.0.1:${port}`, org.id, emulator, landings, 10))
    await new Promise((r) => setTimeout(r, 1_000))
    const memory = memoryOf(broker.child.pid!)
    broker.child.kill('SIGTERM')
    const { code, signal } = await broker.exited
    const aborted = signal === 'SIGABRT' || code === 134 || /Assertion failed|Aborted|FATAL ERROR/.test(broker.errors())
    if (aborted) nativeAborts++
    rounds.push({
      round,
      landings,
      redirected: result.statuses['3xx'] ?? 0,
      failed: result.total - (result.statuses['3xx'] ?? 0),
      rps: result.rps,
      rssAfterStartMb: round1(rssAfterStart),
      rssAfterLandingsMb: round1(memory.rssMb),
      peakRssMb: round1(memory.peakMb),
      exit: signal ? `signal ${signal}` : `code ${code}`,
    })
    console.log(`soak round ${round}/${restarts}: ${landings} landings at ${result.rps}/s, RSS ${round1(rssAfterStart)} -> ${round1(memory.rssMb)} MB, exit ${rounds.at(-1)!.exit}${aborted ? ' (NATIVE ABORT)' : ''}`)
  }

  const sqlite = new SQLite(file, { readonly: true })
  const { n } = sqlite.prepare('SELECT count(*) AS n FROM entitlements').get() as { n: number }
  sqlite.close()
  const rss = rounds.map((r) => r.rssAfterLandingsMb)
  const rssSpreadPercent = round1((Math.max(...rss) / Math.min(...rss) - 1) * 100)
  const clean = rounds.every((r) => r.exit === 'code 0' && r.failed === 0)
  return { node: process.version, rounds, entitlementsStored: n, nativeAborts, rssSpreadPercent, met: nativeAborts === 0 && clean && n === total && rssSpreadPercent <= 10 }
}

const round1 = (value: number) => round(value, 1)

export function printSoak(soak: SoakResult) {
  console.log(`\nsoak on Node ${soak.node}: ${soak.rounds.length} starts on one database, ${soak.rounds.reduce((n, r) => n + r.landings, 0)} landings`)
  console.log('| start | landings | 303s | other | landings/s | RSS after start MB | RSS after landings MB | peak RSS MB | exit |')
  console.log('|---|---|---|---|---|---|---|---|---|')
  for (const r of soak.rounds) console.log(`| ${r.round} | ${r.landings} | ${r.redirected} | ${r.failed} | ${r.rps} | ${r.rssAfterStartMb} | ${r.rssAfterLandingsMb} | ${r.peakRssMb} | ${r.exit} |`)
  console.log(`  entitlements stored: ${soak.entitlementsStored}; native aborts: ${soak.nativeAborts}; RSS after landings, largest vs smallest: +${soak.rssSpreadPercent} % (target ≤ 10 %): ${soak.met ? 'met' : 'NOT MET'}`)
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) {
  try {
    const soak = await runSoak()
    printSoak(soak)
    if (!soak.met) process.exitCode = 1
  } finally {
    cleanup()
  }
}
