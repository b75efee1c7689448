/**
 * Blend: several token files read as one stream of sequences, each file's share of them set by
 * its weight (--data-blend; Megatron-LM's --train-data-path W PREFIX W PREFIX ...).
 *
 * The order is Megatron-Core's blending order (its build_blending_indices): the weights are
 * normalized to sum to 1, and sample i of the stream goes to the dataset d whose count so far
 * lags most behind its share, the largest w_d * max(i, 1) - count_d (the lowest d on a tie); it
 * is that dataset's sample count_d, and count_d grows by one. After n samples no dataset is a
 * whole sample ahead of its share w_d n (it is picked only while it lags), and none is K - 1 or
 * more behind for K datasets (what the others are ahead by; about 1.4 at most in practice). Within a dataset, sample j reads window WindowOrder.windowOf(seed_d,
 * j, W_d) of its W_d windows (every window once an epoch of that dataset, shuffled): seed_0 is the
 * run's seed and seed_d = mix(seed, d) for the others, so a blend of one file reads the stream
 * --data reads.
 *
 * A sample's place is computed, never stored whole: the counts are kept every `every` samples, and
 * a sample is placed by walking on from the snapshot before it (a step's lookups cost a few
 * thousand additions a sequence, however long the run).
 */
import type * as TokenFile from "./TokenFile.js"

/**
 * A blend of token files (weights normalized, one a file).
 * @category models
 */
export interface Blend {
  readonly files: ReadonlyArray<TokenFile.TokenFile>
  readonly weights: ReadonlyArray<number>
}

/**
 * The training data: a token file, or a blend of them.
 * @category models
 */
export type Corpus = TokenFile.TokenFile | Blend

/**
 * Whether a corpus is a blend.
 * @category guards
 */
export const isBlend = (c: Corpus): c is Blend => Object.hasOwn(c, "files")

/**
 * The blend of `files` with `weights` (positive), normalized as Megatron-Core normalizes them.
 * @category constructors
 */
export const make = (files: ReadonlyArray<TokenFile.TokenFile>, weights: ReadonlyArray<number>): Blend => {
  const total = weights.reduce((a, w) => a + w, 0)
  return { files, weights: weights.map((w) => w / total) }
}

/**
 * A blend as written, `W NAME W NAME ...` (Megatron-LM's list): its names and their weights, or
 * undefined unless it is pairs of a positive weight and a name.
 * @category constructors
 */
export const pairsOf = (words: ReadonlyArray<string>): { readonly names: ReadonlyArray<string>; readonly weights: ReadonlyArray<number> } | undefined => {
  const weights = words.filter((_, k) => k % 2 === 0).map(Number)
  if (words.length === 0 || words.length % 2 !== 0 || weights.some((w) => !(Number.isFinite(w) && w > 0))) return undefined
  return { names: words.filter((_, k) => k % 2 === 1), weights }
}

/** Samples between two snapshots of the counts. */
const every = 1024

/** The counts before samples 0, every, 2 every, ... of a weighting (by its weights' text). */
const snapshots = new Map<string, Array<Float64Array>>()

/** One step of the order: the dataset sample i goes to, given the counts so far (which it advances). */
const assign = (weights: ReadonlyArray<number>, counts: Float64Array, i: number): number => {
  const at = Math.max(i, 1)
  let best = 0
  let bestError = (weights[0] as number) * at - (counts[0] as number)
  for (let d = 1; d < weights.length; d++) {
    const error = (weights[d] as number) * at - (counts[d] as number)
    if (error > bestError) {
      bestError = error
      best = d
    }
  }
  counts[best] = (counts[best] as number) + 1
  return best
}

/**
 * Where sample i of the stream comes from: its dataset and its sample number there.
 * @category mapping
 */
export const placeOf = (blend: Pick<Blend, "weights">, i: number): readonly [dataset: number, sample: number] => {
  const weights = blend.weights
  const key = weights.join(",")
  let kept = snapshots.get(key)
  if (kept === undefined) {
    kept = [new Float64Array(weights.length)]
    snapshots.set(key, kept)
  }
  const snapshot = Math.floor(i / every)
  while (kept.length <= snapshot) {
    const counts = Float64Array.from(kept[kept.length - 1] as Float64Array)
    const from = (kept.length - 1) * every
    for (let s = from; s < from + every; s++) assign(weights, counts, s)
    kept.push(counts)
  }
  const counts = Float64Array.from(kept[snapshot] as Float64Array)
  for (let s = snapshot * every; s < i; s++) assign(weights, counts, s)
  const d = assign(weights, counts, i)
  return [d, (counts[d] as number) - 1]
}

/**
 * A corpus's identity in a cache key: its file's path, or its files' and weights.
 * @category mapping
 */
export const keyOf = (c: Corpus | undefined): string => (c === undefined ? "synthetic" : isBlend(c) ? JSON.stringify(c.files.map((f, d) => [f.path, c.weights[d]])) : c.path)
