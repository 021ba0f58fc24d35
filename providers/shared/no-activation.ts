import type { NormalizedPurchase } from '../types'

/**
 * For marketplaces that need no confirmation from the seller at signup (AWS; Google, where the
 * signup's part is approving the account during resolve): nothing to activate, and nothing
 * the activation job could learn by asking again.
 */
export const withoutActivation = {
  async activate(_integration: unknown, purchase: NormalizedPurchase): Promise<NormalizedPurchase> {
    return purchase
  },
  async refresh(_integration: unknown, purchase: NormalizedPurchase): Promise<NormalizedPurchase> {
    return purchase
  },
}
