import type { OfferType } from '../types'

/**
 * Contract §5: an integration's `offerTypes` mapping wins over what the marketplace facts
 * imply. `derive` runs only when the mapping has no answer, so a provider can skip a
 * marketplace call (Azure's listAvailablePlans) that the mapping makes unnecessary.
 */
export async function pickOfferType(
  mapping: Partial<Record<string, OfferType>> | undefined,
  key: string | null,
  derive: () => OfferType | Promise<OfferType>,
): Promise<OfferType> {
  const mapped = key === null ? undefined : mapping?.[key]
  return mapped ?? derive()
}
