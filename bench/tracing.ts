// `npm run bench:tracing` (also part of `npm run bench`): what telemetry costs (contract §16).
// Three brokers, each on its own SQLite file seeded alike, measured interleaved on reading one
// entitlement and on the Azure landing against the zero-latency emulator:
//   before — the code before telemetry (git revision BENCH_TRACING_BASE, default 949eee0: main
//            just before issue 25), unpacked with `git archive` into the scratch folder;
//   off    — this code without OTEL_EXPORTER_OTLP_ENDPOINT (the OpenTelemetry API only, no-op);
//   on     — this code exporting every span (the SDK's default sampler: all of them) over
//            OTLP/HTTP to a local receiver (bench/otlp-sink.ts) in its own process.
// "off ÷ before" is the cost of telemetry when it is not configured (target: within the runs'
// noise), "on ÷ off" what exporting costs. Without git or the revision the before column says so.
// Knobs: BENCH_DURATION, BENCH_RUNS, BENCH_LANDING_RUN, BENCH_TRACING_ENTITLEMENTS (10000), BENCH_TRACING_BASE.
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import {
  RUNS,
  type LoadResult, brokerEnv, cleanup, createBenchOrg, interleave, landingJob, median, nextPort, round, seedEntitlements, seedWithRevision, start, startEmulator,
  unpackRevision, work,
} from './harness'

const DURATION = Number(process.env.BENCH_DURATION ?? 5)
const LANDING_RUN = Number(process.env.BENCH_LANDING_RUN ?? 3_000)
const ENTITLEMENTS = Number(process.env.BENCH_TRACING_ENTITLEMENTS ?? 10_000)
const BASE = process.env.BENCH_TRACING_BASE ?? '949eee0'

type Variant = 'before' | 'off' | 'on'
interface Seeded {
  orgId: string
  apiKey: string
  ids: string[]
  encryptionKey?: string
}

export interface TracingBench {
  base: string
  /** Why there is no before column, when there is none. */
  baseMissing: string | null
  read: Partial<Record<Variant, LoadResult[]>>
  landing: Partial<Record<Variant, LoadResult[]>>
  /** What the receiver got from the traced broker over the whole bench. */
  exported: { requests: number; spans: number; bytes: number }
}

export async function runTracingBench(options: { emulatorUrl?: string } = {}): Promise<TracingBench> {
  const emulatorUrl = options.emulatorUrl ?? (await startEmulator(0))
  const sinkPort = nextPort()
  const sinkUrl = JSON.parse((await start('bench/otlp-sink.ts', [String(sinkPort)])).first).url as string

  const brokers: Partial<Record<Variant, { url: string; seeded: Seeded }>> = {}
  const startBroker = async (variant: Variant, file: string, seeded: Seeded, databaseUrl: string, env: Record<string, string> = {}) => {
    const port = nextPort()
    await start(file, [], {
      env: { ...brokerEnv(databaseUrl, emulatorUrl), ...(seeded.encryptionKey ? { ENCRYPTION_KEY: seeded.encryptionKey } : {}), PORT: String(port), ...env },
      ready: /listening on/,
    })
    brokers[variant] = { url: `http://127.0.0.1:${port}`, seeded }
  }

  // The code before telemetry, with its own seeding (its schema, its keys).
  const base = unpackRevision(BASE)
  if ('dir' in base) {
    const databaseUrl = `sqlite:${join(work, 'tracing-before.db')}`
    await startBroker('before', join(base.dir, 'src/node.ts'), await seedWithRevision(base.dir, databaseUrl, emulatorUrl, ENTITLEMENTS), databaseUrl)
  }
  for (const variant of ['off', 'on'] as const) {
    const databaseUrl = `sqlite:${join(work, `tracing-${variant}.db`)}`
    const { deps, org, apiKey } = await createBenchOrg(databaseUrl, emulatorUrl)
    const ids = await seedEntitlements(deps.db, org.id, ENTITLEMENTS)
    await deps.db.destroy()
    await startBroker(variant, 'src/node.ts', { orgId: org.id, apiKey, ids }, databaseUrl, variant === 'on' ? { OTEL_EXPORTER_OTLP_ENDPOINT: sinkUrl } : {})
  }
  const variants = (Object.keys(brokers) as Variant[]).sort((a, b) => ['before', 'off', 'on'].indexOf(a) - ['before', 'off', 'on'].indexOf(b))

  const readJob = (variant: Variant) => {
    const { url, seeded } = brokers[variant]!
    const paths = Array.from({ length: 20_000 }, () => `/api/v1/orgs/${seeded.orgId}/entitlements/${seeded.ids[Math.floor(Math.random() * seeded.ids.length)]}`)
    return () => ({ url, connections: 10, duration: DURATION, paths, headers: { authorization: `Bearer ${seeded.apiKey}` } })
  }
  const landing = (variant: Variant) => () => landingJob(brokers[variant]!.url, brokers[variant]!.seeded.orgId, emulatorUrl, LANDING_RUN, 10)

  const reads = await interleave(...variants.map(readJob))
  const landings = await interleave(...variants.map(landing))
  // The batch processor exports at most every 5 s: wait for the last batch before counting.
  await new Promise((resolve) => setTimeout(resolve, 6_000))
  const exported = (await (await fetch(`${sinkUrl}/count`)).json()) as TracingBench['exported']
  return {
    base: BASE,
    baseMissing: 'missing' in base ? base.missing : null,
    read: Object.fromEntries(variants.map((v, i) => [v, reads[i]!])),
    landing: Object.fromEntries(variants.map((v, i) => [v, landings[i]!])),
    exported,
  }
}

export function printTracing(t: TracingBench) {
  const rps = (runs: LoadResult[] | undefined) => (runs ? median(runs.map((r) => r.rps)) : null)
  const cell = (runs: LoadResult[] | undefined) =>
    runs ? `${round(rps(runs)!)} (${round(Math.min(...runs.map((r) => r.rps)))}–${round(Math.max(...runs.map((r) => r.rps)))}), p99 ${median(runs.map((r) => r.p99))} ms` : 'n/a'
  const ratio = (a: LoadResult[] | undefined, b: LoadResult[] | undefined) => (a && b ? String(round(rps(a)! / rps(b)!, 2)) : 'n/a')
  /** Within noise: the median of one inside the spread of the other's runs, or 3 % of it. */
  const withinNoise = (a: LoadResult[] | undefined, b: LoadResult[] | undefined) => {
    if (!a || !b) return 'n/a'
    const low = Math.min(...b.map((r) => r.rps))
    return rps(a)! >= Math.min(low, rps(b)! * 0.97) ? 'yes' : 'NO'
  }
  console.log(`\ntracing cost (req/s, median and spread of ${RUNS} runs; before = ${t.base}${t.baseMissing ? `: ${t.baseMissing}` : ''}):`)
  console.log('| scenario | before telemetry | tracing off | tracing on (OTLP/HTTP, every span) | off ÷ before | within noise | on ÷ off |')
  console.log('|---|---|---|---|---|---|---|')
  for (const [name, runs] of [
    ['read one entitlement (API key), c=10', t.read],
    ['Azure landing, zero-latency marketplace, c=10', t.landing],
  ] as const) {
    console.log(`| ${name} | ${cell(runs.before)} | ${cell(runs.off)} | ${cell(runs.on)} | ${ratio(runs.off, runs.before)} | ${withinNoise(runs.off, runs.before)} | ${ratio(runs.on, runs.off)} |`)
  }
  console.log(`  exported to the receiver: ${t.exported.spans.toLocaleString('en')} spans in ${t.exported.requests} requests (${round(t.exported.bytes / 2 ** 20)} MiB)`)
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) {
  try {
    printTracing(await runTracingBench())
  } finally {
    cleanup()
  }
}
