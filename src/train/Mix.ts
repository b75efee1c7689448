/**
 * Mix: the 32-bit hash of two words that seeds pleat's deterministic streams (the synthetic data's
 * sequences, the order of a token file's windows): a murmur-style finalizer over the pair, the same
 * bits on every rank, backend and machine.
 */

/**
 * A 32-bit hash of two 32-bit words (unsigned result).
 * @category mapping
 */
export const mix = (a: number, b: number): number => {
  let h = (Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 1, 0xc2b2ae35)) >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0
  return (h ^ (h >>> 16)) >>> 0
}
