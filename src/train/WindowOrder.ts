/**
 * WindowOrder: the order in which a token file's windows are read, a fresh shuffle every epoch.
 *
 * A file of n tokens holds W = floor((n - 1) / seq) windows of seq + 1 tokens (window w starts at
 * token w * seq; consecutive windows share one token, the target of the last input). Sequence i of
 * the stream is window `windowOf(seed, i, W)`: epoch e = floor(i / W) reads every window once, in
 * an order drawn from the seed and e. The order is a permutation computed per index, never stored
 * (a file of billions of tokens has millions of windows, and every rank needs only its own): a
 * four-round Feistel network on the smallest even number of bits that covers W, walked along its
 * cycle until it lands below W (a bijection of [0, 2^b) restricted to [0, W) by cycle walking stays
 * a bijection of [0, W); 2^b < 4W, so a walk takes under 4 rounds on average).
 */

import { mix } from "./Mix.js"

const rounds = 4

/** The most windows ordered: halves of up to 24 bits keep the round's masks in 32-bit integers. */
const maxWindows = 2 ** 48

/** Bits of each Feistel half: the smallest h with 2^(2h) >= windows (at least 1). */
const halfBits = (windows: number): number => {
  let h = 1
  while (2 ** (2 * h) < windows) h++
  return h
}

/** One pass of the network over [0, 2^(2h)): a bijection, keyed by the epoch's round keys. */
const feistel = (x: number, h: number, keys: ReadonlyArray<number>): number => {
  const size = 2 ** h
  let left = Math.floor(x / size)
  let right = x % size
  for (const key of keys) {
    const next = left ^ (mix(key, right) & (size - 1))
    left = right
    right = next
  }
  return left * size + right
}

/** The round keys of epoch `epoch` under `seed`. */
const roundKeys = (seed: number, epoch: number): Array<number> => Array.from({ length: rounds }, (_, r) => mix(mix(seed, epoch), r))

/**
 * The window sequence `index` of the stream reads, of `windows` (1 or more; index 0 or more).
 * @category mapping
 */
export const windowOf = (seed: number, index: number, windows: number): number => {
  if (!Number.isInteger(windows) || windows < 1 || windows > maxWindows) throw new RangeError(`windows must be an integer in 1..2^48, got ${windows}`)
  if (!Number.isInteger(index) || index < 0) throw new RangeError(`index must be a whole number, got ${index}`)
  if (windows === 1) return 0
  const epoch = Math.floor(index / windows)
  const keys = roundKeys(seed, epoch)
  const h = halfBits(windows)
  let x = index % windows
  do x = feistel(x, h, keys)
  while (x >= windows)
  return x
}
