import { expect, test } from 'vitest'
import { BoundedMap } from '../src/bounded-map'

test('a BoundedMap forgets its oldest entry when a new key arrives at the bound, not when a key is replaced', () => {
  const map = new BoundedMap<string, number>(2)
  map.set('a', 1).set('b', 2)
  map.set('a', 10)
  expect([...map]).toEqual([['a', 10], ['b', 2]])
  map.set('c', 3)
  expect([...map]).toEqual([['b', 2], ['c', 3]])
  expect(map.size).toBe(2)
})
