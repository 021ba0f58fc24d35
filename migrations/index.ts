import type { Migration } from 'kysely'
import * as m0001 from './0001_initial'
import * as m0002 from './0002_claims_and_activations'
import * as m0003 from './0003_entitlement_filters_index'
import * as m0004 from './0004_entitlement_json'
import * as m0005 from './0005_notifications'
import * as m0006 from './0006_webhooks'
import * as m0007 from './0007_usage'
import * as m0008 from './0008_signups'

/**
 * The migration list, imported statically (no file-system scan) so the same migrations run
 * on SQLite under Node and on D1 under Workers. Append only; names sort in order.
 */
export const migrations: Record<string, Migration> = {
  '0001_initial': m0001,
  '0002_claims_and_activations': m0002,
  '0003_entitlement_filters_index': m0003,
  '0004_entitlement_json': m0004,
  '0005_notifications': m0005,
  '0006_webhooks': m0006,
  '0007_usage': m0007,
  '0008_signups': m0008,
}
