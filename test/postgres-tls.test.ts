import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createPostgresDb } from '../src/node/postgres'
import { type Cluster, postgresAvailable, startCluster } from './postgres'

/**
 * `sslmode` in DATABASE_URL as libpq reads it (contract §12: `require` encrypts, `verify-full`
 * also checks the certificate), against a cluster of the test's own serving TLS with a
 * self-signed certificate for the name `db.example` (not the 127.0.0.1 connected to).
 */
describe.runIf(await postgresAvailable())('PostgreSQL over TLS: sslmode', () => {
  let cluster: Cluster
  let certDir: string
  let rootCert: string

  beforeAll(async () => {
    certDir = mkdtempSync(join(tmpdir(), 'mb-tls-'))
    rootCert = join(certDir, 'server.crt')
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(certDir, 'server.key'), '-out', rootCert,
      '-days', '2', '-subj', '/CN=db.example', '-addext', 'subjectAltName=DNS:db.example'], { stdio: 'ignore' })
    cluster = await startCluster({ tls: { cert: readFileSync(rootCert, 'utf8'), key: readFileSync(join(certDir, 'server.key'), 'utf8') } })
  })
  afterAll(async () => {
    await cluster?.destroy()
    if (certDir) rmSync(certDir, { recursive: true, force: true })
  })

  /** Whether the connection made with these URL parameters is encrypted, or why it failed. */
  async function connect(query: string): Promise<boolean | string> {
    const db = createPostgresDb(`${cluster.url}${query}`, { poolMax: 1 })
    try {
      const { rows } = await sql<{ ssl: boolean }>`select ssl from pg_stat_ssl where pid = pg_backend_pid()`.execute(db)
      return rows[0]!.ssl
    } catch (error) {
      return (error as Error).message
    } finally {
      await db.destroy()
    }
  }

  test('disable and no sslmode: plain; require: encrypted without checking the self-signed certificate', async () => {
    expect(await connect('')).toBe(false)
    expect(await connect('?sslmode=disable')).toBe(false)
    expect(await connect('?sslmode=require')).toBe(true)
  })

  test('verify-full checks the chain and the host name; verify-ca the chain only; require with a root certificate checks the chain', async () => {
    expect(await connect('?sslmode=verify-full')).toMatch(/self.signed/i)
    // The certificate names db.example; the URL's host is 127.0.0.1.
    expect(await connect(`?sslmode=verify-full&sslrootcert=${encodeURIComponent(rootCert)}`)).toMatch(/altnames|host|IP/i)
    expect(await connect(`?sslmode=verify-ca&sslrootcert=${encodeURIComponent(rootCert)}`)).toBe(true)
    expect(await connect(`?sslmode=require&sslrootcert=${encodeURIComponent(rootCert)}`)).toBe(true)
    const other = join(certDir, 'other.crt')
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(certDir, 'other.key'), '-out', other, '-days', '2', '-subj', '/CN=other'], { stdio: 'ignore' })
    expect(await connect(`?sslmode=verify-ca&sslrootcert=${encodeURIComponent(other)}`)).toMatch(/self.signed|unable to verify|certificate/i)
  })

  test('a server without TLS refuses require; an unknown sslmode or a missing root certificate stops at once, without the URL', async () => {
    const plain = await startCluster()
    try {
      const db = createPostgresDb(`${plain.url}?sslmode=require`, { poolMax: 1 })
      await expect(sql`select 1`.execute(db)).rejects.toThrow(/does not support SSL/)
      await db.destroy()
    } finally {
      await plain.destroy()
    }
    expect(() => createPostgresDb('postgres://u:hunter2@127.0.0.1:1/x?sslmode=bogus', { poolMax: 1 })).toThrow(/^DATABASE_URL: sslmode must be/)
    expect(() => createPostgresDb('postgres://u:hunter2@127.0.0.1:1/x?sslmode=verify-ca', { poolMax: 1 })).toThrow(/needs sslrootcert/)
    expect(() => createPostgresDb('postgres://u:hunter2@127.0.0.1:1/x?sslmode=require&sslrootcert=/nonexistent', { poolMax: 1 })).toThrow(/cannot read/)
  })
})
