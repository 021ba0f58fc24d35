import { type Kysely, sql } from 'kysely'

// Frozen. Webhooks to the ISV (contract §8): the org's signing secrets (sealed like integration
// secrets; the previous one keeps signing for 24 h after a rotation) and the outbox of deliveries.
//
// A delivery is written by the database itself, in the same statement as its event: a trigger on
// entitlement_events inserts it whenever the org has a webhookUrl, so no crash can fall between
// "event stored" and "webhook queued", on SQLite and on D1 alike. Its body is built right there,
// with the entitlement's stored API JSON (migration 0004) as it is after that event was written.

const EVENT_TYPES: Record<string, string> = {
  CREATE: 'entitlement.created',
  ACTIVATE: 'entitlement.activated',
  UPDATE: 'entitlement.updated',
  SUSPEND: 'entitlement.suspended',
  REINSTATE: 'entitlement.reinstated',
  PENDING_CANCEL: 'entitlement.pending_cancel',
  CANCEL: 'entitlement.cancelled',
}

const typeCase = `case NEW.type ${Object.entries(EVENT_TYPES)
  .map(([event, type]) => `when '${event}' then '${type}'`)
  .join(' ')} else 'entitlement.updated' end`

/** Neither SQLite nor D1 runs a migration in one transaction: every step here can run again after a crash. */
export async function up(db: Kysely<any>): Promise<void> {
  const hasColumn = await sql`select webhook_secret from orgs limit 0`.execute(db).then(
    () => true,
    () => false,
  )
  if (!hasColumn) {
    await db.schema.alterTable('orgs').addColumn('webhook_secret', 'text').execute()
    await db.schema.alterTable('orgs').addColumn('webhook_secret_previous', 'text').execute()
    await db.schema.alterTable('orgs').addColumn('webhook_secret_previous_until', 'text').execute()
  }

  await db.schema
    .createTable('webhook_deliveries')
    .ifNotExists()
    // msg_…: the Standard Webhooks `webhook-id`, the same on every attempt.
    .addColumn('id', 'text', (col) => col.primaryKey())
    .addColumn('org_id', 'text', (col) => col.notNull())
    .addColumn('event_id', 'text')
    .addColumn('type', 'text', (col) => col.notNull())
    // The exact JSON body sent on every attempt (signed as it is).
    .addColumn('payload', 'text', (col) => col.notNull())
    .addColumn('status', 'text', (col) => col.notNull())
    .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('last_status_code', 'integer')
    .addColumn('last_error', 'text')
    .addColumn('next_attempt_at', 'text')
    .addColumn('lease_until', 'text')
    .addColumn('created_at', 'text', (col) => col.notNull())
    .addColumn('updated_at', 'text', (col) => col.notNull())
    .execute()
  await db.schema.createIndex('webhook_deliveries_due').ifNotExists().on('webhook_deliveries').columns(['status', 'next_attempt_at']).execute()
  await db.schema.createIndex('webhook_deliveries_org').ifNotExists().on('webhook_deliveries').columns(['org_id', 'created_at', 'id']).execute()
  await db.schema.createIndex('webhook_deliveries_event').ifNotExists().on('webhook_deliveries').column('event_id').unique().execute()

  await sql
    .raw(
      `create trigger if not exists entitlement_events_webhook after insert on entitlement_events
       when (select webhook_url from orgs where id = NEW.org_id) is not null
       begin
         insert into webhook_deliveries (id, org_id, event_id, type, payload, status, attempts, next_attempt_at, created_at, updated_at)
         select 'msg_' || lower(hex(randomblob(13))), NEW.org_id, NEW.id, ${typeCase},
           json_object(
             'id', NEW.id,
             'type', ${typeCase},
             'createdAt', NEW.created_at,
             'orgId', NEW.org_id,
             'entityType', 'ENTITLEMENT',
             'entityId', NEW.entitlement_id,
             'action', NEW.type,
             'entityStatus', e.status,
             'partner', e.partner,
             'data', json_object(
               'entitlement', json(e.json),
               'event', json_object('id', NEW.id, 'entitlementId', NEW.entitlement_id, 'type', NEW.type, 'source', NEW.source, 'data', json(NEW.data), 'createdAt', NEW.created_at)
             )
           ),
           'PENDING', 0, NEW.created_at, NEW.created_at, NEW.created_at
         from entitlements e where e.id = NEW.entitlement_id;
       end`,
    )
    .execute(db)
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql.raw('drop trigger if exists entitlement_events_webhook').execute(db)
  await db.schema.dropTable('webhook_deliveries').ifExists().execute()
}
