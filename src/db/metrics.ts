import type { DB } from './schema'

/** The outboxes `/metrics` reports, each table with the column its age is read from. */
const OUTBOXES = [
  { queue: 'webhooks', table: 'webhook_deliveries', since: 'created_at' },
  { queue: 'notifications', table: 'notifications', since: 'created_at' },
  { queue: 'emails', table: 'emails', since: 'created_at' },
  // A usage record's reporting window (6 h on AWS, 24 h on Azure and Google) runs from its usage time.
  { queue: 'usage', table: 'usage_records', since: 'timestamp' },
] as const

export type OutboxQueue = (typeof OUTBOXES)[number]['queue']

/**
 * How many rows of each outbox are PENDING and the oldest one's time (ISO), one indexed query per
 * table (each has an index leading with status). A notification WAITING for its buyer's landing
 * is not pending work: it waits for something only the buyer does.
 */
export async function outboxBacklog(db: DB): Promise<Array<{ queue: OutboxQueue; pending: number; oldest: string | null }>> {
  return Promise.all(
    OUTBOXES.map(async ({ queue, table, since }) => {
      const row = await db
        .selectFrom(table)
        .select((eb) => [eb.fn.countAll<number | string>().as('pending'), eb.fn.min<string | null>(since).as('oldest')])
        .where('status', '=', 'PENDING')
        .executeTakeFirst()
      return { queue, pending: Number(row?.pending ?? 0), oldest: row?.oldest ?? null }
    }),
  )
}
