import { z } from 'zod'

/**
 * Every setting of contract §1, parsed once at the edge (the Node entry from `process.env`,
 * the Workers entry from its bindings) and passed down as a typed object. Nothing deeper
 * reads the environment, so tests and both runtimes can build as many apps as they like.
 */

const absoluteHttpUrl = z
  .string()
  .trim()
  .refine((value) => {
    try {
      const url = new URL(value)
      return url.protocol === 'https:' || url.protocol === 'http:'
    } catch {
      return false
    }
  }, 'must be an absolute http(s) URL')

// One canonical form for the base URLs: no trailing slash, so `${base}/api/...` never doubles it.
const httpUrl = absoluteHttpUrl.transform((value) => value.replace(/\/+$/, ''))

const optionalUrl = z.preprocess((value) => (value === '' ? undefined : value), httpUrl.optional())

// A trust boundary, not a base: kept exactly as given (its slash too) and compared as a parsed URL
// (providers/shared/trusted-url.ts). Userinfo, a query or a fragment would have no meaning there.
const trustedPrefix = z.preprocess(
  (value) => (value === '' ? undefined : value),
  absoluteHttpUrl
    .refine((value) => {
      const url = new URL(value)
      return !url.username && !url.password && !url.search && !url.hash && !value.includes('#')
    }, 'must be a URL prefix without credentials, query or fragment')
    .optional(),
)

const base64Key = z
  .string()
  .trim()
  .refine((value) => {
    try {
      return atob(value).length === 32
    } catch {
      return false
    }
  }, 'must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)')

const port = z.coerce.number().int().min(0).max(65535)

/** `postgres://…` or `postgresql://…`: the rest (sslmode and all) is pg's to read, as libpq reads it. */
export const isPostgresUrl = (url: string) => /^postgres(ql)?:\/\//i.test(url)

// The message never repeats the value: a PostgreSQL URL carries the database password.
const databaseUrl = z
  .string()
  .trim()
  .refine((value) => {
    if (/^sqlite:.+/.test(value)) return true
    if (!isPostgresUrl(value)) return false
    try {
      return Boolean(new URL(value))
    } catch {
      return false
    }
  }, 'must be sqlite:<path>, sqlite::memory: or postgres://user:password@host:port/database')

export const configSchema = z.object({
  PORT: port.default(8787),
  HOST: z.string().trim().min(1).default('0.0.0.0'),
  DATABASE_URL: databaseUrl.default('sqlite:./data/marketbridge.db'),
  /** Connections one instance keeps open at most (PostgreSQL). */
  DATABASE_POOL_MAX: z.coerce.number({ error: 'must be a positive integer' }).int('must be a positive integer').min(1, 'must be a positive integer').default(10),
  PUBLIC_URL: optionalUrl,
  ADMIN_TOKEN: z.string().trim().min(16, 'must be at least 16 characters'),
  ENCRYPTION_KEY: base64Key,
  AZURE_MARKETPLACE_API_URL: httpUrl.default('https://marketplaceapi.microsoft.com'),
  AZURE_LOGIN_URL: httpUrl.default('https://login.microsoftonline.com'),
  AWS_MARKETPLACE_METERING_URL: optionalUrl,
  AWS_MARKETPLACE_ENTITLEMENT_URL: optionalUrl,
  AWS_MARKETPLACE_AGREEMENT_URL: optionalUrl,
  AWS_STS_URL: optionalUrl,
  // Tests and private mirrors: SNS certificates and SubscribeURLs must lie under this instead of https://sns.<region>.amazonaws.com/.
  AWS_SNS_TRUSTED_CERT_PREFIX: trustedPrefix,
  GCP_MARKETPLACE_CERTS_URL: httpUrl.default(
    'https://www.googleapis.com/robot/v1/metadata/x509/cloud-commerce-partner@system.gserviceaccount.com',
  ),
  GCP_PROCUREMENT_API_URL: httpUrl.default('https://cloudcommerceprocurement.googleapis.com'),
  GCP_OAUTH_TOKEN_URL: httpUrl.default('https://oauth2.googleapis.com/token'),
  GCP_OIDC_CERTS_URL: httpUrl.default('https://www.googleapis.com/oauth2/v3/certs'),
  GCP_SERVICE_CONTROL_URL: httpUrl.default('https://servicecontrol.googleapis.com'),
  /** `smtp://user:pass@host:port` or `smtps://…`; unset: confirmation emails are not sent (SKIPPED). */
  SMTP_URL: z
    .string()
    .trim()
    .refine((value) => {
      try {
        const url = new URL(value)
        return (url.protocol === 'smtp:' || url.protocol === 'smtps:') && url.hostname !== ''
      } catch {
        return false
      }
    }, 'must be smtp://[user:pass@]host[:port] or smtps://…')
    .optional(),
  EMAIL_FROM: z.string().trim().min(3).max(320).default('marketbridge <no-reply@localhost>'),
  /** Per-attempt timeout of every marketplace call; the whole landing gets twice this for all its calls and retries. */
  UPSTREAM_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
  /** How often the background job (stale claims, pending activations, pruning) runs on Node. */
  JOB_INTERVAL_MS: z.coerce.number().int().min(100).max(3_600_000).default(5_000),
  /** How long audit-log entries are kept (contract §13); the background job deletes older ones. */
  AUDIT_RETENTION_DAYS: z.coerce.number({ error: 'must be a whole number of days' }).int('must be a whole number of days').min(1, 'must be at least 1').max(36_500, 'must be at most 36500').default(400),
  /** Requests per minute an API key may make unless the key has its own limit (contract §13); 0: no such limit. */
  RATE_LIMIT_PER_MINUTE: z.coerce
    .number({ error: 'must be a whole number from 0 to 1000000000' })
    .int('must be a whole number from 0 to 1000000000')
    .min(0, 'must be a whole number from 0 to 1000000000')
    .max(1_000_000_000, 'must be a whole number from 0 to 1000000000')
    .default(1200),
  /** `GET /metrics` (contract §16) asks for `Authorization: Bearer <METRICS_TOKEN>` when set; unset, it answers loopback peers only. */
  METRICS_TOKEN: z.string().trim().min(16, 'must be at least 16 characters').optional(),
  /** OTLP/HTTP collector base URL (spans go to <base>/v1/traces); set, Node exports traces (contract §16). */
  OTEL_EXPORTER_OTLP_ENDPOINT: optionalUrl,
  /** The traces' service.name. */
  OTEL_SERVICE_NAME: z.string().trim().min(1).max(200).default('marketbridge'),
})

export type Config = Omit<z.output<typeof configSchema>, 'PUBLIC_URL'> & { PUBLIC_URL: string }

export class ConfigError extends Error {
  override name = 'ConfigError'
}

/** Parses an environment-like record with `schema`; empty strings count as unset. */
function parseEnv<S extends z.ZodObject>(schema: S, env: Record<string, unknown>): z.output<S> {
  const cleaned: Record<string, unknown> = {}
  for (const key of Object.keys(schema.shape)) {
    const value = env[key]
    if (value !== undefined && value !== '') cleaned[key] = value
  }
  const result = schema.safeParse(cleaned)
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`)
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`)
  }
  return result.data
}

/** Parses an environment-like record; empty strings count as unset. */
export function parseConfig(env: Record<string, unknown>): Config {
  const config = parseEnv(configSchema, env)
  return { ...config, PUBLIC_URL: config.PUBLIC_URL ?? `http://localhost:${config.PORT}` }
}

const databaseSchema = configSchema.pick({ DATABASE_URL: true, DATABASE_POOL_MAX: true })
export type DatabaseConfig = z.output<typeof databaseSchema>

/** Only what opening the database needs (`npm run migrate` needs no keys). */
export function parseDatabaseConfig(env: Record<string, unknown>): DatabaseConfig {
  return parseEnv(databaseSchema, env)
}
