/**
 * SeedHash: 32-bit seeds for the deterministic streams (NormalStream) made from a few integers:
 * FNV-1a over the bytes of 32-bit words, each word's low byte first. A value that may pass 2^32
 * (a token's place in the data stream) goes in as its two words (`wordsOf`).
 */

/**
 * FNV-1a over the bytes of `words` (each taken as its 32 low bits).
 * @category mapping
 */
export const fnv1a = (words: ReadonlyArray<number>): number => {
  let h = 0x811c9dc5
  for (const w of words) {
    for (let s = 0; s < 32; s += 8) h = Math.imul(h ^ ((w >>> s) & 0xff), 0x01000193) >>> 0
  }
  return h
}

/**
 * A safe integer's two 32-bit words, low first.
 * @category mapping
 */
export const wordsOf = (n: number): readonly [number, number] => [n % 4294967296, Math.floor(n / 4294967296)]
