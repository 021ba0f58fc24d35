/**
 * A Map that holds at most `max` entries: adding a new key to a full one first forgets the
 * oldest. The broker's in-process caches (API-key hashes, key -> org, opened integration
 * secrets, prepared statements) are all this.
 */
export class BoundedMap<K, V> extends Map<K, V> {
  readonly #max: number

  constructor(max: number) {
    super()
    this.#max = max
  }

  override set(key: K, value: V): this {
    if (!this.has(key) && this.size >= this.#max) this.delete(this.keys().next().value as K)
    return super.set(key, value)
  }
}
