import { integrationSpecs } from '../../providers/index'
import type { CredentialCheck, Partner, ProviderIntegration, ProviderLogger } from '../../providers/types'
import { BoundedMap } from '../bounded-map'
import * as integrationsDb from '../db/integrations'
import type { IntegrationRow } from '../db/schema'
import { type AppDeps, nowIso } from '../deps'
import { ApiError, formatIssues, notFound } from '../errors'
import type { Integration, IntegrationCheck } from '../schemas'
import { type AuditContext, REDACTED, auditStatement, diffFields } from './audit'
import { randomSecret, sha256Hex } from './crypto'
import { newId } from './ids'
import { getOrg } from './orgs'

/** Binds a sealed secret to its row: moved to another org or partner, it no longer opens. */
const secretContext = (orgId: string, partner: string) => `integration:${orgId}:${partner}`

/** `$PUBLIC_URL/public/{kind}/{partner}/orgId/{orgId}?partnerId={partnerId}`: the URLs an ISV pastes into a marketplace. */
function publicUrl(deps: AppDeps, kind: 'signup' | 'notifications', row: Pick<IntegrationRow, 'org_id' | 'partner' | 'partner_id'>): string {
  return `${deps.config.PUBLIC_URL}/public/${kind}/${row.partner}/orgId/${encodeURIComponent(row.org_id)}?partnerId=${encodeURIComponent(row.partner_id)}`
}

export const signupUrl = (deps: AppDeps, row: Pick<IntegrationRow, 'org_id' | 'partner' | 'partner_id'>) => publicUrl(deps, 'signup', row)
export const notificationUrl = (deps: AppDeps, row: Pick<IntegrationRow, 'org_id' | 'partner' | 'partner_id'>) => publicUrl(deps, 'notifications', row)

export function toIntegration(deps: AppDeps, row: IntegrationRow): Integration {
  return {
    ...(JSON.parse(row.settings) as Record<string, unknown>),
    partner: row.partner as Partner,
    partnerId: row.partner_id,
    signupUrl: signupUrl(deps, row),
    notificationUrl: notificationUrl(deps, row),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  }
}

/**
 * `PUT …/integrations/{partner}`: creates or replaces the integration. `keepOmittedSecrets` (the
 * console's edit form, whose secret fields are never pre-filled): a secret the body leaves out is
 * the stored one, not removed; without it, as the API's PUT, the body is the whole integration.
 */
export async function configureIntegration(
  deps: AppDeps,
  orgId: string,
  partner: Partner,
  body: unknown,
  audit: AuditContext,
  options: { keepOmittedSecrets?: boolean } = {},
): Promise<Integration> {
  await getOrg(deps, orgId)
  const before = await integrationsDb.findIntegration(deps.db, orgId, partner)
  const keep = options.keepOmittedSecrets && before && isPlainObject(body)
  const kept = keep ? await openSecrets(deps, before, orgId, partner) : null
  const parsed = integrationSpecs[partner].schema.safeParse(kept ? integrationSpecs[partner].keepSecrets(body as Record<string, unknown>, kept) : body)
  if (!parsed.success) throw new ApiError('VALIDATION_ERROR', `Invalid ${partner} integration: ${formatIssues(parsed.error)}.`)
  const { settings, secrets } = integrationSpecs[partner].split(parsed.data)
  const secretsBefore = kept ?? (before ? await openSecrets(deps, before, orgId, partner) : null)
  // The audit entry's changes: settings as they are, secrets compared opened but shown redacted.
  const changes = diffFields(
    before ? (JSON.parse(before.settings) as Record<string, unknown>) : null,
    settings as Record<string, unknown>,
    secrets as Record<string, unknown>,
    secretsBefore,
  )
  // The same integration PUT again: nothing is written, and no audit entry (see domain/audit.ts).
  if (before && Object.keys(changes).length === 0) return toIntegration(deps, before)
  const now = nowIso(deps)
  // AWS EventBridge API destinations authenticate with a secret the broker issues when the
  // integration is first created; a later PUT keeps it (the upsert leaves the hash alone).
  const notificationSecret = partner === 'aws' ? newNotificationSecret() : null
  const notificationSecretHash = notificationSecret ? await sha256Hex(notificationSecret) : null
  const row = await integrationsDb.upsertIntegration(deps.db, {
    org_id: orgId,
    partner,
    partner_id: newId(partner),
    settings: JSON.stringify(settings),
    secrets: await deps.secrets.seal(JSON.stringify(secrets), secretContext(orgId, partner)),
    notification_secret_hash: notificationSecretHash,
    created_at: now,
    updated_at: now,
  }, [
    auditStatement(deps, audit, {
      orgId,
      action: before ? 'integration.updated' : 'integration.created',
      targetType: 'integration',
      // As the API addresses it (…/integrations/{partner}): one per org and partner.
      targetId: partner,
      changes,
    }),
  ])
  const integration = toIntegration(deps, row)
  // Shown once: in the answer that created it.
  if (notificationSecret && row.notification_secret_hash === notificationSecretHash) integration.notificationSecret = notificationSecret
  return integration
}

const isPlainObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

const newNotificationSecret = () => `mbn_${randomSecret(32)}`

/** `POST …/integrations/aws/notification-secret`: a new EventBridge secret; the old one is refused from now on. */
export async function rotateNotificationSecret(deps: AppDeps, orgId: string, audit: AuditContext): Promise<string> {
  await getOrg(deps, orgId)
  const integration = await integrationsDb.findIntegration(deps.db, orgId, 'aws')
  if (!integration) throw notFound('AWS integration')
  const secret = newNotificationSecret()
  await integrationsDb.setNotificationSecretHash(deps.db, orgId, 'aws', await sha256Hex(secret), nowIso(deps), [
    auditStatement(deps, audit, {
      orgId,
      action: 'notification_secret.rotated',
      targetType: 'integration',
      targetId: 'aws',
      changes: { notificationSecret: { from: integration.notification_secret_hash ? REDACTED : null, to: REDACTED } },
    }),
  ])
  return secret
}

export async function listIntegrations(deps: AppDeps, orgId: string): Promise<Integration[]> {
  await getOrg(deps, orgId)
  const rows = await integrationsDb.listIntegrations(deps.db, orgId)
  return rows.map((row) => toIntegration(deps, row))
}

/**
 * `POST …/integrations/{partner}/check` (contract §13): the provider's credentials check with the
 * stored integration. It writes nothing. The marketplace's calls share one deadline (twice
 * UPSTREAM_TIMEOUT_MS, a landing's budget), and a hard bound just after it answers even if a
 * call ignores its deadline, so a marketplace that hangs cannot hold the request.
 */
export async function checkIntegration(deps: AppDeps, orgId: string, partner: Partner, log: ProviderLogger): Promise<IntegrationCheck> {
  await getOrg(deps, orgId)
  const integration = await loadProviderIntegration(deps, orgId, partner)
  if (!integration) throw notFound(`The ${partner} integration`)
  const budgetMs = 2 * deps.config.UPSTREAM_TIMEOUT_MS
  // The providers time their calls on the wall clock (providers/shared/http.ts), so does their deadline.
  const deadline = Date.now() + budgetMs
  let timer: ReturnType<typeof setTimeout> | undefined
  const bound = new Promise<CredentialCheck[]>((resolve) => {
    timer = setTimeout(() => resolve([{ name: partner, ok: false, message: `no answer from the marketplace within ${budgetMs} ms` }]), budgetMs + CHECK_MARGIN_MS)
  })
  const checked = deps.providers[partner].checkCredentials(integration, { log, deadline }).catch((error: unknown) => {
    // The providers answer failures as checks; a throw is a defect, named but not repeated.
    log.error('credentials check failed unexpectedly', { partner, error: error instanceof Error ? error.name : 'unknown' })
    return [{ name: partner, ok: false, message: 'the check failed unexpectedly' }]
  })
  const checks = await Promise.race([checked, bound]).finally(() => clearTimeout(timer))
  const safe = checks.map((check) => ({ name: check.name, ok: check.ok, message: redact(check.message, integration.secrets) }))
  const ok = safe.length > 0 && safe.every((check) => check.ok)
  log.info('integration checked', { partner, ok, failed: safe.filter((check) => !check.ok).map((check) => check.name) })
  return { ok, checks: safe }
}

const CHECK_MARGIN_MS = 1_000

/** The sealed fields that are secrets; a service account key also seals its email and ids, which are not. */
const SECRET_FIELD = /secret|private|token|password/i

/**
 * Every secret of the integration (client secret, secret access key, session token, private key
 * and each line of its PEM) cut out of a message: the providers never put one there, and this
 * keeps a slip in one of them from reaching an answer.
 */
function redact(message: string, secrets: Record<string, unknown>): string {
  const found: string[] = []
  const walk = (value: unknown, secret: boolean) => {
    if (typeof value === 'string' && secret) {
      for (const piece of [value, ...value.split(/\r?\n/)]) if (piece.trim().length >= 8 && !piece.startsWith('-----')) found.push(piece.trim())
    } else if (value && typeof value === 'object') {
      for (const [key, inner] of Object.entries(value)) walk(inner, secret || SECRET_FIELD.test(key))
    }
  }
  walk(secrets, false)
  return found.sort((a, b) => b.length - a.length).reduce((text, secret) => text.split(secret).join('[redacted]'), message)
}

/**
 * Opened secrets by their sealed text, per key holder: unchanged secrets are not decrypted
 * again on every landing, and nothing opened under one ENCRYPTION_KEY is served to another.
 */
const openedByBox = new WeakMap<object, BoundedMap<string, Record<string, unknown>>>()
const OPENED_MAX = 1000

/** The integration with its secrets opened, for a provider call; undefined when not configured. */
export async function loadProviderIntegration(
  deps: AppDeps,
  orgId: string,
  partner: Partner,
): Promise<(ProviderIntegration & { row: IntegrationRow }) | undefined> {
  const row = await integrationsDb.findIntegration(deps.db, orgId, partner)
  if (!row) return undefined
  return {
    row,
    orgId,
    partnerId: row.partner_id,
    settings: JSON.parse(row.settings) as Record<string, unknown>,
    secrets: await openSecrets(deps, row, orgId, partner),
    // Each seal draws a fresh IV, so the sealed text changes with every update.
    version: `${row.updated_at}:${row.secrets.slice(0, 24)}`,
    notificationSecretHash: row.notification_secret_hash,
  }
}

async function openSecrets(deps: AppDeps, row: IntegrationRow, orgId: string, partner: Partner): Promise<Record<string, unknown>> {
  // The cache key binds the sealed text to its org and partner, as the AES-GCM context does.
  let opened = openedByBox.get(deps.secrets)
  if (!opened) {
    opened = new BoundedMap(OPENED_MAX)
    openedByBox.set(deps.secrets, opened)
  }
  const key = `${secretContext(orgId, partner)}\n${row.secrets}`
  const hit = opened.get(key)
  if (hit) return hit
  const secrets = JSON.parse(await deps.secrets.open(row.secrets, secretContext(orgId, partner))) as Record<string, unknown>
  opened.set(key, secrets)
  return secrets
}
