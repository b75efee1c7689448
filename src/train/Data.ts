/**
 * Data: the sequences a run trains on, in a deterministic order: a token file's windows
 * (TokenFile, `--data`) or, by default, a synthetic language whose learning is measurable.
 *
 * Sequence i of the stream is an arithmetic progression modulo the vocabulary:
 * x_t = (a_i + t * b_i) mod V, with a_i in [0, V) and a step b_i in {1, 2, 3} drawn from the
 * seed and i. The model sees x_0..x_{S-1} and predicts x_1..x_S: after two tokens the step is
 * known, so the loss can fall from ln(V) towards 0; a falling loss is real learning.
 *
 * Order: step k uses sequences k*G .. k*G+G-1 (G the global batch). Data-parallel rank d gets
 * the d-th block of G/dp sequences, split into micro-batches of `microBatch` sequences; so
 * micro-batch j of dp rank d holds sequences k*G + d*M*mb + j*mb + (0..mb-1). A single-rank
 * run with M*dp micro-batches walks the same sequences in the same groups. With a token file,
 * sequence i is the window WindowOrder.windowOf(seed, i, W) of its W windows (every window once
 * an epoch, shuffled by the seed and the epoch); with a blend of files, the file and its window
 * Blend's order gives; the order above is the same.
 */
import * as ModelContext from "../model/ModelContext.js"
import * as MultiTokenPrediction from "../model/MultiTokenPrediction.js"
import * as Blend from "./Blend.js"
import * as Documents from "./Documents.js"
import { mix } from "./Mix.js"
import * as TokenFile from "./TokenFile.js"
import * as WindowOrder from "./WindowOrder.js"

/**
 * The tokens and targets of one micro-batch: [microBatch * seq], sequence-major; with end-of-
 * document settings, the targets after an EOD left out (--eod-mask-loss) and the documents'
 * marks (Documents).
 * @category models
 */
export interface MicroBatch {
  readonly tokens: Int32Array
  readonly targets: Int32Array
  /** The data stream's index of its first sequence (the next ones follow it). */
  readonly firstSequence?: number | undefined
  readonly documents?: Documents.Marks | undefined
  /**
   * With --calculate-per-token-loss: the kept targets of the whole step (its G sequences), of the
   * language model (k = 0) and of multi-token prediction's depth k (its targets shifted by k).
   */
  readonly stepLabels?: ((k: number) => number) | undefined
}

/** Synthetic sequence i (seq + 1 tokens: inputs and the next-token targets). */
const synthetic = (seed: number, i: number, seq: number, vocab: number): Int32Array => {
  const h = mix(seed, i)
  const start = h % vocab
  const step = 1 + (Math.floor(h / vocab) % 3)
  return Int32Array.from({ length: seq + 1 }, (_, t) => (start + t * step) % vocab)
}

/** Sample j of token file `file` under `seed`: its window j in that file's shuffled order. */
const windowRead = (file: TokenFile.TokenFile, seed: number, j: number, seq: number, vocab: number): Int32Array =>
  TokenFile.read(file, seq, WindowOrder.windowOf(seed, j, TokenFile.windows(file, seq)), vocab)

/** Sequence i of the stream: the token file's window for i, a blend's (Blend), or the synthetic sequence i. */
const sequence = (o: { readonly seed: number; readonly seq: number; readonly vocab: number; readonly file?: Blend.Corpus | undefined }, i: number): Int32Array => {
  if (o.file === undefined) return synthetic(o.seed, i, o.seq, o.vocab)
  if (!Blend.isBlend(o.file)) return windowRead(o.file, o.seed, i, o.seq, o.vocab)
  const [d, j] = Blend.placeOf(o.file, i)
  return windowRead(o.file.files[d] as TokenFile.TokenFile, d === 0 ? o.seed : mix(o.seed, d), j, o.seq, o.vocab)
}

/**
 * Where a step's sequences come from, and what is left out of their targets.
 * @category models
 */
export interface Source {
  readonly seed: number
  readonly step: number
  readonly globalBatch: number
  readonly seq: number
  readonly vocab: number
  /** The token file or blend to read (the synthetic language when absent). */
  readonly file?: Blend.Corpus | undefined
  /** What end-of-document tokens do (nothing when absent). */
  readonly documents?: Documents.Settings | undefined
}

/** The step last counted (every rank of a process asks for the same few), and its counts by depth. */
let counted: { readonly key: string; readonly labels: Map<number, number> } | undefined

/** The kept targets of depth k over the step's G sequences (Documents' rule, shifted as MultiTokenPrediction's). */
const stepLabels = (o: Source, k: number): number => {
  const key = JSON.stringify([Blend.keyOf(o.file), o.seed, o.step, o.globalBatch, o.seq, o.vocab, o.documents ?? null])
  if (counted?.key !== key) counted = { key, labels: new Map() }
  const known = counted.labels.get(k)
  if (known !== undefined) return known
  let labels = 0
  for (let i = o.step * o.globalBatch; i < (o.step + 1) * o.globalBatch; i++) {
    const s = sequence(o, i)
    const ids = s.subarray(0, o.seq)
    const targets = o.documents === undefined ? s.subarray(1) : Documents.maskedTargets(o.documents, ids, s.subarray(1))
    labels += k === 0 ? ModelContext.keptTargets(targets) : (MultiTokenPrediction.shifted({ ids, targets }, o.seq, k).labels ?? 0)
  }
  counted.labels.set(k, labels)
  return labels
}

/**
 * Micro-batch j of data-parallel rank d at step k.
 * @category constructors
 */
export const microBatch = (
  o: Source & {
    readonly dpRank: number
    readonly index: number
    readonly microBatch: number
    readonly microBatches: number
    /** Losses over the step's tokens (--calculate-per-token-loss), not means of micro-batch means. */
    readonly perTokenLoss?: boolean | undefined
  },
): MicroBatch => {
  const first = o.step * o.globalBatch + o.dpRank * o.microBatches * o.microBatch + o.index * o.microBatch
  const tokens = new Int32Array(o.microBatch * o.seq)
  const targets = new Int32Array(o.microBatch * o.seq)
  for (let b = 0; b < o.microBatch; b++) {
    const s = sequence(o, first + b)
    tokens.set(s.subarray(0, o.seq), b * o.seq)
    targets.set(s.subarray(1), b * o.seq)
  }
  const counts = o.perTokenLoss === true ? { stepLabels: (k: number) => stepLabels(o, k) } : {}
  if (o.documents === undefined) return { tokens, targets, firstSequence: first, ...counts }
  return {
    tokens,
    targets: Documents.maskedTargets(o.documents, tokens, targets),
    firstSequence: first,
    documents: Documents.marksOf(o.documents, tokens, o.seq),
    ...counts,
  }
}
