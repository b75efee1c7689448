/**
 * SelfAttention: grouped-query self-attention with RoPE and a causal mask, heads split over the
 * attention TP group and the sequence split over the CP group (optionally with sequence
 * parallelism over TP).
 *
 * Shapes (per rank): x [B*Sl, H] rows (or [B*Sl/tp, H] under SP), Sl = S / cp local tokens in
 * the load-balanced chunk order of ContextParallel; heads Hq and Hkv split over tp (both must
 * divide); head dim D.
 *   q = x Wq  -> [B, Sl, Hq/tp, D], k, v = x Wk, x Wv -> [B, Sl, Hkv/tp, D]  (column-parallel)
 *   RoPE at the tokens' real positions
 *   K/V of the whole sequence from the cp group (allgather, or the ring), with their positions
 *   causal attention of the local queries against every key at or before them
 *   out = attn Wo (row-parallel) -> [B*Sl, H] (or [B*Sl/tp, H] under SP)
 *
 * `forwardLaid` runs on laid rows: the products' collectives and the K/V exchange over cp are
 * typed channels (the ring's result declared like the allgather's), so the output layout is
 * what they made of the input layout.
 */
import * as Effect from "effect/Effect"
import type { Group } from "../comm/Group.js"
import * as LaidCollective from "../dataflow/LaidCollective.js"
import * as TensorLayout from "../dataflow/TensorLayout.js"
import * as Attention from "../tensor/ops/Attention.js"
import * as Diff from "../comm/Differentiable.js"
import { add, mul } from "../tensor/ops/Elementwise.js"
import { inverseRms, rmsNorm } from "../tensor/ops/Norm.js"
import * as Reduce from "../tensor/ops/Reduce.js"
import * as Rope from "../tensor/ops/Rope.js"
import type * as RopeScaling from "../tensor/ops/RopeScaling.js"
import * as Shape from "../tensor/ops/Shape.js"
import * as Recompute from "../tensor/Recompute.js"
import type * as Tensor from "../tensor/Tensor.js"
import * as ConfigError from "../errors/ConfigError.js"
import * as ContextParallel from "./ContextParallel.js"
import * as ParallelLinear from "../dataflow/ParallelLinear.js"
import { ringAllGatherLaid } from "./RingExchange.js"

/**
 * This rank's shards of the attention weights: wq [H, Hq/tp*D], wk and wv [H, Hkv/tp*D],
 * wo [Hq/tp*D, H].
 * @category models
 */
export interface AttentionWeights {
  readonly wq: Tensor.Tensor
  readonly wk: Tensor.Tensor
  readonly wv: Tensor.Tensor
  readonly wo: Tensor.Tensor
  /** Biases of q, k and v (Qwen-style), this rank's heads' shards [heads/tp * D]; none: no bias. */
  readonly bias?: { readonly q: Tensor.Tensor; readonly k: Tensor.Tensor; readonly v: Tensor.Tensor } | undefined
  /**
   * RMSNorm weights [D] over each head of q and of k, after the biases, before RoPE (Qwen3-style);
   * with `overHeads`, weights of this rank's heads' columns [heads/tp * D] over each token's whole
   * q and whole k, every head at once (OLMoE-style: the squares summed over tp); none: no norm.
   */
  readonly norm?: { readonly q: Tensor.Tensor; readonly k: Tensor.Tensor; readonly eps: number; readonly overHeads?: boolean | undefined } | undefined
  /** The output projection's bias [H] (replicated; Megatron's add_bias_linear), added once wo's products are summed; none: no bias. */
  readonly bo?: Tensor.Tensor | undefined
}

/**
 * The documents packed into the micro-batch's sequences as this rank's rows see them, each array
 * one entry per local row ([B, S/cp], the rows' order): the first position of the row's document,
 * the lowest key position it attends to (--reset-attention-mask), and its place in its document,
 * RoPE's position for it (--reset-position-ids). Absent: attention and positions span the whole
 * sequence.
 * @category models
 */
export interface Documents {
  readonly firstKeys?: Int32Array | undefined
  readonly positions?: Int32Array | undefined
}

/**
 * The layer's sizes and parallel setting.
 * @category models
 */
export interface AttentionConfig {
  readonly batch: number
  readonly seq: number
  readonly heads: number
  readonly kvHeads: number
  readonly headDim: number
  readonly tp: Group
  readonly cp: Group
  readonly sequenceParallel: boolean
  /**
   * How K/V cross the cp group: the p2p ring (default) or one allgather. Both give identical
   * results; bench `attention` measured the ring at 0.64-0.99x the allgather's time on the
   * embedded backend (never slower), and on a real network the ring is the variant whose
   * transfers can overlap attention on blocks already received.
   */
  readonly cpExchange?: "allgather" | "ring" | undefined
  /** Recompute the attention core (softmax(q k^T) v) in the backward instead of keeping it. */
  readonly recomputeCore?: boolean | undefined
  readonly ropeTheta?: number | undefined
  /** The first dimensions of each head RoPE rotates (even; the rest pass unrotated); none: all of them. */
  readonly rotaryDim?: number | undefined
  /** YaRN's or Llama 3's frequencies (and YaRN's attention factor: RopeScaling); none: plain RoPE. */
  readonly ropeScaling?: RopeScaling.Scaling | undefined
  /** No RoPE at all (a NoPE layer: q and k unturned, positions only in the causal mask); default false. */
  readonly noRope?: boolean | undefined
  /** Multiplies q . k in the core (default 1/sqrt of the q/k head width). */
  readonly softmaxScale?: number | undefined
  /** The documents in the sequences (none: one document a sequence). */
  readonly documents?: Documents | undefined
  /** Sliding-window attention: the keys each query attends to, itself included (none: all before it). */
  readonly slidingWindow?: number | undefined
  /** Softmax sinks: one logit per local query head (a parameter, or zeros for off-by-one); none: vanilla. */
  readonly sinks?: Tensor.Tensor | undefined
}

/**
 * Checks heads against tp and the sequence against cp (and tp under SP) before any work.
 * @category guards
 */
export const check = (c: AttentionConfig): void => {
  const tp = c.tp.ranks.length
  if (c.heads % tp !== 0) throw ConfigError.make("heads", c.heads, `is not divisible by tp = ${tp}`, `use a multiple of ${tp} heads or a smaller tp`)
  if (c.kvHeads % tp !== 0) throw ConfigError.make("kvHeads", c.kvHeads, `is not divisible by tp = ${tp}`, `use a multiple of ${tp} kv heads or a smaller tp`)
  if (c.heads % c.kvHeads !== 0) throw ConfigError.make("kvHeads", c.kvHeads, `does not divide heads = ${c.heads}`, "use a kv head count that divides the head count")
  ContextParallel.checkSequence(c.seq, c.cp.ranks.length, tp, c.sequenceParallel, c.batch)
}

/** [B*S, h*D] rows -> [S, B*h*D] sequence-major rows, so a cp gather concatenates positions. */
const toSequenceMajor = (t: Tensor.Tensor, b: number, s: number, width: number) => Shape.reshape(Shape.transpose(Shape.reshape(t, [b, s, width]), 0, 1), [s, b * width])

/** [S, B*h*D] sequence-major -> [B, S, h, D]. */
const fromSequenceMajor = (t: Tensor.Tensor, b: number, s: number, h: number, d: number) => Shape.transpose(Shape.reshape(t, [s, b, h, d]), 0, 1)

/** The layout of the layer's input and output rows: [tokens B*S/cp(/tp), hidden H]. */
const rowsLayout = (c: AttentionConfig, hidden: number): TensorLayout.TensorLayout => {
  const tp = { axis: "tp" as const, size: c.tp.ranks.length }
  const tokens = TensorLayout.dim("tokens", c.batch * c.seq, [{ axis: "cp", size: c.cp.ranks.length }, ...(c.sequenceParallel ? [tp] : [])])
  return TensorLayout.make([tokens, TensorLayout.dim("hidden", hidden)])
}

/**
 * The layer's forward; backward flows through autograd (collectives included).
 * @category combinators
 */
export const forward = (x: Tensor.Tensor, w: AttentionWeights, c: AttentionConfig, cpRank: number) =>
  Effect.map(forwardLaid(TensorLayout.attach(x, rowsLayout(c, x.shape[1] as number)), w, c, cpRank), (out) => out.tensor)

/**
 * The layer's forward on laid rows; the output in the layout the row-parallel product gave it.
 * @category combinators
 */
export const forwardLaid = (x: TensorLayout.WithLayout, w: AttentionWeights, c: AttentionConfig, cpRank: number) => Effect.gen(() => forwardLaidSteps(x, w, c, cpRank))

/** forwardLaid's steps, defined once, not per call (bench/README.md, train suite, twenty-sixth session: Effect.gen). */
function* forwardLaidSteps(x: TensorLayout.WithLayout, w: AttentionWeights, c: AttentionConfig, cpRank: number) {
  const tp = c.tp.ranks.length
  const cp = c.cp.ranks.length
  const local = c.seq / cp
  const hq = c.heads / tp
  const hkv = c.kvHeads / tp
  const d = c.headDim
  const b = c.batch
  const par = { tp: c.tp, sequenceParallel: c.sequenceParallel }
  const positions = ContextParallel.positions(c.seq, cp, cpRank)
  const rope = ropeOptions(c, positions)
  const [queries, keys, values] = (yield* ParallelLinear.columnParallelEachLaid(
    x,
    [
      { w: w.wq, columns: "query heads" },
      { w: w.wk, columns: "kv heads" },
      { w: w.wv, columns: "kv heads" },
    ],
    par,
  )) as [TensorLayout.WithLayout, TensorLayout.WithLayout, TensorLayout.WithLayout]
  // The biases add to each row of this rank's heads, before RoPE (as transformers' Linear does).
  const biased = (t: Tensor.Tensor, bias: Tensor.Tensor | undefined) => (bias === undefined ? t : add(t, bias))
  const overHeads = w.norm?.overHeads === true
  const normed = (t: Tensor.Tensor, weight: Tensor.Tensor | undefined) => (weight === undefined || overHeads ? t : rmsNorm(t, weight, w.norm?.eps))
  const [qRows, kRows] = [biased(queries.tensor, w.bias?.q), biased(keys.tensor, w.bias?.k)]
  const norm = w.norm
  const [qAll, kAll] =
    norm === undefined || !overHeads
      ? [qRows, kRows]
      : [yield* normOverHeads(qRows, norm.q, norm.eps, c.heads * d, c.tp), yield* normOverHeads(kRows, norm.k, norm.eps, c.kvHeads * d, c.tp)]
  // Partial RoPE: the first rotaryDim dimensions of each head turn, the others pass.
  const r = c.rotaryDim ?? d
  const rotated = (t: Tensor.Tensor) => {
    if (c.noRope === true) return t
    if (r === d) return Rope.rope(t, rope)
    const [turned, passed] = Shape.split(t, [r, d - r], 3) as [Tensor.Tensor, Tensor.Tensor]
    return Shape.concat([Rope.rope(turned, rope), passed], 3)
  }
  const q = rotated(normed(Shape.reshape(qAll, [b, local, hq, d]), w.norm?.q))
  const k = rotated(normed(Shape.reshape(kAll, [b, local, hkv, d]), w.norm?.k))
  const v = Shape.reshape(biased(values.tensor, w.bias?.v), [b, local, hkv, d])
  const attended = yield* attendOverContext(q, k, v, keys.layout, c, cpRank)
  return yield* ParallelLinear.rowParallelLaid(TensorLayout.attach(Shape.reshape(attended, [b * local, hq * d]), queries.layout), w.wo, par, "hidden", w.bo)
}

/**
 * RMSNorm of rows t [tokens, this rank's heads' columns] over each token's `count` columns in all
 * (every head of the layer), scaled by this rank's columns' weights: the rows' sums of squares
 * summed over tp (an all-reduce, whose adjoint sums the gradients back) before each rank scales
 * its part.
 */
function* normOverHeads(t: Tensor.Tensor, weight: Tensor.Tensor, eps: number, count: number, tp: Group) {
  const squares = yield* Diff.allReduce(tp, Reduce.sum(mul(t, t), 1, true))
  return mul(mul(t, inverseRms(squares, count, eps)), weight)
}

/**
 * RoPE's options of a layer at this rank's token positions (their places in their documents
 * where the sequences' documents restart them): its base and YaRN scaling.
 * @category mapping
 */
export const ropeOptions = (c: AttentionConfig, positions: Int32Array): Rope.RopeOptions => ({
  positions: c.documents?.positions ?? positions,
  ...(c.ropeTheta === undefined ? {} : { theta: c.ropeTheta }),
  ...(c.ropeScaling === undefined ? {} : { scaling: c.ropeScaling }),
})

/**
 * The attention core of this rank's local queries q [B, Sl, hq, Dk] against the keys k
 * [B, Sl, hkv, Dk] and values v [B, Sl, hkv, Dv] of the whole sequence: under cp the K/V of
 * the other chunks come over the cp group (the ring or one allgather, as `c.cpExchange` says)
 * with their positions, then causal attention at the tokens' real positions (within each query's
 * document where `c.documents` gives them, and its window), its probabilities
 * recomputed in the backward under selective recompute. `rows` is the layout of the rows the
 * keys came from (tokens over cp, heads over tp). Returns [B, Sl, hq, Dv].
 * @category combinators
 */
export function* attendOverContext(q: Tensor.Tensor, k: Tensor.Tensor, v: Tensor.Tensor, rows: TensorLayout.TensorLayout, c: AttentionConfig, cpRank: number) {
  const cp = c.cp.ranks.length
  const local = c.seq / cp
  const b = c.batch
  const positions = ContextParallel.positions(c.seq, cp, cpRank)
  let keyPositions = positions
  let keys = k
  let values = v
  if (cp > 1) {
    // Sequence-major K/V rows: [positions S/cp, B x kv heads], the positions split over cp.
    const [tokens, heads] = rows.dims as [TensorLayout.Dim, TensorLayout.Dim]
    const gather = (t: Tensor.Tensor, tag: string) => {
      const [, , h, width] = t.shape as [number, number, number, number]
      const global = heads.over.reduce((n, s) => n * s.size, h * width)
      const layout = TensorLayout.make([TensorLayout.dim("positions", c.seq, tokens.over), TensorLayout.dim("batch x kv heads", b * global, heads.over)])
      const laid = TensorLayout.attach(toSequenceMajor(Shape.reshape(t, [b * local, h * width]), b, local, h * width), layout)
      return Effect.map((c.cpExchange ?? "ring") === "ring" ? ringAllGatherLaid(c.cp, laid, tag) : LaidCollective.allGather("cp", c.cp, laid), (whole) =>
        fromSequenceMajor(whole.tensor, b, c.seq, h, width),
      )
    }
    keys = yield* gather(k, "ring-k")
    values = yield* gather(v, "ring-v")
    const all = new Int32Array(c.seq)
    for (let m = 0; m < cp; m++) all.set(ContextParallel.positions(c.seq, cp, m), m * local)
    keyPositions = all
  }
  // The sinks, where given, are the core's fourth input (so a recompute passes their gradient back).
  const core = (inputs: ReadonlyArray<Tensor.Tensor>) =>
    Attention.attention(inputs[0] as Tensor.Tensor, inputs[1] as Tensor.Tensor, inputs[2] as Tensor.Tensor, {
      queryPositions: positions,
      keyPositions,
      queryFirstKeys: firstKeysOf(c, positions),
      scale: c.softmaxScale,
      sinks: inputs[3],
    })
  const inputs = c.sinks === undefined ? [q, keys, values] : [q, keys, values, c.sinks]
  // Selective recompute: the core's saved probabilities are recomputed in the backward.
  return c.recomputeCore === true ? Recompute.recompute("attention core", inputs, core) : core(inputs)
}

/**
 * The lowest key position each local query attends to: its document's first, or the first of its
 * sliding window (position - window + 1), whichever is later; none when neither applies.
 * `positions` are the local rows' positions in the sequence (S/cp, shared by the batch).
 */
const firstKeysOf = (c: AttentionConfig, positions: Int32Array): Int32Array | undefined => {
  const documents = c.documents?.firstKeys
  const window = c.slidingWindow
  if (window === undefined || window >= c.seq) return documents
  if (documents === undefined) return Int32Array.from(positions, (p) => p - window + 1)
  return Int32Array.from(documents, (first, i) => Math.max(first, (positions[i % positions.length] as number) - window + 1))
}
