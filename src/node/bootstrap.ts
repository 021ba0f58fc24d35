import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { ConfigError, isPostgresUrl } from '../config'

/** `sqlite:<path>` -> the file's absolute path; `sqlite::memory:` -> ':memory:'. */
export function sqlitePath(databaseUrl: string): string {
  const path = databaseUrl.replace(/^sqlite:/, '')
  return path === ':memory:' ? path : resolve(path)
}

/** The folder that keeps the database and the generated secrets: the database's own folder, or ./data. */
export function dataDirFor(databaseUrl: string): string {
  const path = sqlitePath(databaseUrl)
  return path === ':memory:' ? resolve('data') : dirname(path)
}

export interface GeneratedSecret {
  name: 'ADMIN_TOKEN' | 'ENCRYPTION_KEY'
  file: string
  value: string
  generated: boolean
}

const secretFiles = {
  ADMIN_TOKEN: { file: 'admin-token', make: () => `mba_${randomBytes(32).toString('base64url')}` },
  ENCRYPTION_KEY: { file: 'encryption-key', make: () => randomBytes(32).toString('base64') },
} as const

/**
 * A fresh clone starts with no configuration: ADMIN_TOKEN and ENCRYPTION_KEY not given in
 * the environment are read from, or generated into, the data folder (mode 0600). The key
 * must stay with the database: secrets sealed under one key can't be opened with another.
 *
 * Not with PostgreSQL: there several instances share the database, and each generating its
 * own key would seal integration secrets the others cannot open (and accept its own admin
 * token only). Both must be given, the same everywhere; a start without them stops.
 */
export function ensureLocalSecrets(env: NodeJS.ProcessEnv): { env: Record<string, string | undefined>; secrets: GeneratedSecret[] } {
  if (isPostgresUrl(env.DATABASE_URL?.trim() ?? '')) {
    const missing = (['ADMIN_TOKEN', 'ENCRYPTION_KEY'] as const).filter((name) => !env[name]?.trim())
    if (missing.length > 0) {
      throw new ConfigError(
        `${missing.join(' and ')} must be set with a PostgreSQL DATABASE_URL, the same value on every instance (they are generated per data folder only with SQLite; ENCRYPTION_KEY: openssl rand -base64 32)`,
      )
    }
    return { env: { ...env }, secrets: [] }
  }
  const dataDir = dataDirFor(env.DATABASE_URL || 'sqlite:./data/marketbridge.db')
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const result: Record<string, string | undefined> = { ...env }
  const secrets: GeneratedSecret[] = []
  for (const name of ['ADMIN_TOKEN', 'ENCRYPTION_KEY'] as const) {
    if (env[name]) continue
    const file = join(dataDir, secretFiles[name].file)
    let generated = false
    if (!existsSync(file)) {
      try {
        writeFileSync(file, `${secretFiles[name].make()}\n`, { mode: 0o600, flag: 'wx' })
        generated = true
      } catch (error) {
        // Another process created it first: use theirs.
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      }
    }
    chmodSync(file, 0o600)
    const value = readFileSync(file, 'utf8').trim()
    result[name] = value
    secrets.push({ name, file, value, generated })
  }
  return { env: result, secrets }
}

/**
 * `text` with the secrets of `env` masked: the password of DATABASE_URL (as written and decoded)
 * and the two keys. For messages that may quote what a driver was given (a start that fails).
 */
export function redactSecrets(text: string, env: NodeJS.ProcessEnv): string {
  const secrets = [env.ADMIN_TOKEN, env.ENCRYPTION_KEY, env.METRICS_TOKEN]
  const url = env.DATABASE_URL?.trim()
  if (url && isPostgresUrl(url)) {
    const password = /^[^:]+:\/\/[^:/?#@]*:([^@/?#]*)@/.exec(url)?.[1]
    if (password) {
      secrets.push(password)
      try {
        secrets.push(decodeURIComponent(password))
      } catch {}
    }
  }
  let result = text
  for (const secret of secrets) if (secret && secret.length >= 3) result = result.replaceAll(secret, '***')
  return result
}
