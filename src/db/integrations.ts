import type { Insertable } from 'kysely'
import { type Statement, atomically, returningWith } from './batch'
import { runCompiled } from './compiled'
import type { DB, IntegrationRow, IntegrationsTable } from './schema'

/**
 * Creates or replaces an org's integration for one partner, with `also` (its audit entry) in the
 * same atomic write; the partnerId and createdAt of an existing one are kept.
 */
export async function upsertIntegration(db: DB, row: Insertable<IntegrationsTable>, also: Statement[] = []): Promise<IntegrationRow> {
  const upsert = db
    .insertInto('integrations')
    .values(row)
    .onConflict((oc) =>
      oc.columns(['org_id', 'partner']).doUpdateSet((eb) => ({
        settings: eb.ref('excluded.settings'),
        secrets: eb.ref('excluded.secrets'),
        updated_at: eb.ref('excluded.updated_at'),
      })),
    )
    .returningAll()
  return (await returningWith<IntegrationRow>(db, upsert, also))[0]!
}

export function listIntegrations(db: DB, orgId: string): Promise<IntegrationRow[]> {
  return db.selectFrom('integrations').selectAll().where('org_id', '=', orgId).orderBy('created_at').orderBy('partner').execute()
}

export async function findIntegration(db: DB, orgId: string, partner: string): Promise<IntegrationRow | undefined> {
  const result = await runCompiled(
    db,
    'findIntegration',
    (p) => db.selectFrom('integrations').selectAll().where('org_id', '=', p('orgId')).where('partner', '=', p('partner')),
    { orgId, partner },
  )
  return result.rows[0]
}

/** Replaces the notification secret's hash, with `also` (its audit entry) in the same atomic write. */
export async function setNotificationSecretHash(db: DB, orgId: string, partner: string, hash: string, now: string, also: Statement[] = []): Promise<void> {
  await atomically(db, [
    db.updateTable('integrations').set({ notification_secret_hash: hash, updated_at: now }).where('org_id', '=', orgId).where('partner', '=', partner),
    ...also,
  ])
}
