/**
 * Data: a synthetic language whose learning is measurable, in a deterministic order.
 *
 * Sequence i of the stream is an arithmetic progression modulo the vocabulary:
 * x_t = (a_i + t * b_i) mod V, with a_i in [0, V) and a step b_i in {1, 2, 3} drawn from the
 * seed and i. The model sees x_0..x_{S-1} and predicts x_1..x_S: after two tokens the step is
 * known, so the loss can fall from ln(V) towards 0; a falling loss is real learning.
 *
 * Order: step k uses sequences k*G .. k*G+G-1 (G the global batch). Data-parallel rank d gets
 * the d-th block of G/dp sequences, split into micro-batches of `microBatch` sequences; so
 * micro-batch j of dp rank d holds sequences k*G + d*M*mb + j*mb + (0..mb-1). A single-rank
 * run with M*dp micro-batches walks the same sequences in the same groups.
 */

/**
 * The tokens and targets of one micro-batch: [microBatch * seq], sequence-major.
 * @category models
 */
export interface MicroBatch {
  readonly tokens: Int32Array
  readonly targets: Int32Array
}

const mix = (seed: number, i: number): number => {
  let h = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(i + 1, 0xc2b2ae35)) >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0
  return (h ^ (h >>> 16)) >>> 0
}

/**
 * Sequence i of the stream (seq + 1 tokens: inputs and the next-token targets).
 * @category constructors
 */
const sequence = (seed: number, i: number, seq: number, vocab: number): Int32Array => {
  const h = mix(seed, i)
  const start = h % vocab
  const step = 1 + (Math.floor(h / vocab) % 3)
  return Int32Array.from({ length: seq + 1 }, (_, t) => (start + t * step) % vocab)
}

/**
 * Micro-batch j of data-parallel rank d at step k.
 * @category constructors
 */
export const microBatch = (o: {
  readonly seed: number
  readonly step: number
  readonly dpRank: number
  readonly index: number
  readonly microBatch: number
  readonly microBatches: number
  readonly globalBatch: number
  readonly seq: number
  readonly vocab: number
}): MicroBatch => {
  const first = o.step * o.globalBatch + o.dpRank * o.microBatches * o.microBatch + o.index * o.microBatch
  const tokens = new Int32Array(o.microBatch * o.seq)
  const targets = new Int32Array(o.microBatch * o.seq)
  for (let b = 0; b < o.microBatch; b++) {
    const s = sequence(o.seed, first + b, o.seq, o.vocab)
    tokens.set(s.subarray(0, o.seq), b * o.seq)
    targets.set(s.subarray(1), b * o.seq)
  }
  return { tokens, targets }
}
