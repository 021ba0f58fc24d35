// The bench's entitlement rows: one builder for every seeding, this code's (seedEntitlements in
// bench/harness.ts) and an older revision's (seedWithRevision imports this file from the
// checkout), so the databases compared hold the same rows. Pure: it imports only the id helper.
import { newId } from '../src/domain/ids'

export const partners = ['azure', 'aws', 'gcp'] as const
export const statuses = ['ACTIVE', 'PENDING_START', 'SUSPENDED', 'CANCELLED'] as const

const BASE = Date.parse('2026-01-01T00:00:00Z')

/** The `i`th bench entitlement of `orgId` (every partner and status in turn, a second apart), its stored columns without the JSON. */
export function benchEntitlementRow(orgId: string, i: number) {
  const at = new Date(BASE + i * 1000).toISOString()
  const partner = partners[i % 3]!
  return {
    id: newId('ent', BASE + i * 1000), org_id: orgId, partner, partner_id: `${partner}_bench`, external_id: `ext-${i}`, status: statuses[i % 4]!, offer_type: 'DEFAULT',
    product_id: 'offer', plan_id: 'bench', quantity: 1,
    buyer: JSON.stringify({ accountId: `acct-${i}`, customerId: `cust-${i}`, email: `buyer${i}@example.com`, tenantId: `tenant-${i}`, name: null }),
    term: JSON.stringify({ start: at, end: null, unit: 'P1M', autoRenew: true }), is_free_trial: 0, is_test: 0,
    info: JSON.stringify({ subscription: { id: `ext-${i}`, offerId: 'offer', planId: 'bench', saasSubscriptionStatus: 'Subscribed' } }),
    created_at: at, updated_at: at,
  }
}
