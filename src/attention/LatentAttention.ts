/**
 * LatentAttention: multi-latent attention (MLA, DeepSeek-V2 and V3): queries and keys/values
 * come up from low-rank latents, and every head's key carries a rotary part shared by all
 * heads, so that what a token leaves behind for later tokens is one latent row.
 *
 * Sizes (LatentSizes, Megatron's names): query latent qLora = qLoraRank (0: the queries come
 * straight from the hidden rows), key/value latent kvLora = kvLoraRank, and per head
 * dn = qkHeadDim (no rotary), dr = qkPosEmbHeadDim (rotary) and dv = vHeadDim.
 * On rows x [T, H] (this rank's tokens):
 *   q latent   cq = RMSNorm(x WqA)                        [T, qLora]       (WqA replicated)
 *   kv latent  [ckv, kr] = x WkvA, ckv' = RMSNorm(ckv)     [T, kvLora], [T, dr]
 *   q          = cq WqB (or x Wq)   -> [T, heads, dn + dr] = [q_nope, q_rope]   (column-parallel)
 *   k, v       = ckv' WkvB          -> [T, heads, dn + dv] = [k_nope, v]        (column-parallel)
 *   RoPE on q_rope and on kr (one head), kr repeated over the heads:
 *   q = [q_nope, rope(q_rope)], k = [k_nope, rope(kr)]   (width dn + dr), v (width dv)
 *   causal attention with scale 1/sqrt(dn + dr) (times m(s, mscaleAllDim)^2 under YaRN, as
 *   DeepSeek-V3's: configOf), then out = attn Wo (row-parallel) -> [T, H]
 *
 * Tensor parallelism (Megatron's): the heads split over tp (WqB, WkvB by columns, Wo by rows);
 * the down projections and the latent norms are replicated and run on this rank's rows before
 * the tp region (under sequence parallelism its 1/tp of the tokens, so their gradients sum over
 * tp as every replicated parameter's do). The latents [cq, ckv', kr] enter the region together:
 * one allgather under SP (one copy otherwise) for the whole layer. Context parallelism: keys and
 * values of the whole sequence come over the cp group as for grouped-query attention
 * (SelfAttention.attendOverContext), at the tokens' real positions.
 *
 * Decision: RoPE is the rotate-half convention of the rest of pleat (pairs i, i + dr/2);
 * DeepSeek-V3's checkpoints rotate interleaved pairs (2i, 2i+1), which is the same model with
 * the rotary columns of WqB and WkvA permuted: import and export permute them (HfLayout).
 */
import * as Effect from "effect/Effect"
import * as ParallelLinear from "../dataflow/ParallelLinear.js"
import * as TensorLayout from "../dataflow/TensorLayout.js"
import * as ConfigError from "../errors/ConfigError.js"
import { matmul } from "../tensor/ops/Matmul.js"
import { rmsNorm } from "../tensor/ops/Norm.js"
import * as Rope from "../tensor/ops/Rope.js"
import * as RopeScaling from "../tensor/ops/RopeScaling.js"
import * as Shape from "../tensor/ops/Shape.js"
import * as Recompute from "../tensor/Recompute.js"
import type * as Tensor from "../tensor/Tensor.js"
import * as ContextParallel from "./ContextParallel.js"
import { type AttentionConfig, attendOverContext, ropeOptions } from "./SelfAttention.js"

/**
 * The widths of multi-latent attention, named as Megatron's flags (DeepSeek-V3: 1536, 512, 128,
 * 64, 128).
 * @category models
 */
export interface LatentSizes {
  /** The query latent's width; 0: no query latent (queries straight from the hidden rows, DeepSeek-V2-Lite). */
  readonly qLoraRank: number
  /** The key/value latent's width. */
  readonly kvLoraRank: number
  /** Each head's query/key width without rotary embedding. */
  readonly qkHeadDim: number
  /** The rotary part's width (one key head shared by every head; even). */
  readonly qkPosEmbHeadDim: number
  /** Each head's value width. */
  readonly vHeadDim: number
}

/**
 * This rank's shards: wqA [H, qLora] and qANorm [qLora] (with a query latent) and wqB
 * [qLora, heads/tp * (dn + dr)], or wq [H, heads/tp * (dn + dr)]; wkvA [H, kvLora + dr],
 * kvANorm [kvLora], wkvB [kvLora, heads/tp * (dn + dv)], wo [heads/tp * dv, H].
 * @category models
 */
export interface LatentWeights {
  readonly query: { readonly wqA: Tensor.Tensor; readonly qANorm: Tensor.Tensor; readonly wqB: Tensor.Tensor } | { readonly wq: Tensor.Tensor }
  readonly wkvA: Tensor.Tensor
  readonly kvANorm: Tensor.Tensor
  readonly wkvB: Tensor.Tensor
  readonly wo: Tensor.Tensor
  /** The latent norms' epsilon. */
  readonly eps: number
}

/**
 * The layer's setting: that of grouped-query attention (its kvHeads and headDim unused) and the
 * latent widths.
 * @category models
 */
export interface LatentConfig extends AttentionConfig {
  readonly latent: LatentSizes
  /**
   * Recompute the up projections, RoPE and the core from the latents in the backward (selective
   * recompute's mla_up_proj): q, k and v, every head's, are not kept.
   */
  readonly recomputeUpProjections?: boolean | undefined
}

/**
 * The setting of a layer from grouped-query attention's and the widths: the softmax scale
 * 1/sqrt(dn + dr), times m(s, mscaleAllDim)^2 under YaRN (DeepSeek-V3's, RopeScaling).
 * @category constructors
 */
export const configOf = (c: AttentionConfig, latent: LatentSizes, recomputeUpProjections = false): LatentConfig => {
  const scale = 1 / Math.sqrt(latent.qkHeadDim + latent.qkPosEmbHeadDim)
  const softmaxScale = scale * RopeScaling.softmaxFactorOf(c.ropeScaling)
  const { batch, seq, heads, kvHeads, headDim, tp, cp, sequenceParallel, cpExchange, recomputeCore, ropeTheta, ropeScaling, documents, slidingWindow, sinks } = c
  return {
    batch,
    seq,
    heads,
    kvHeads,
    headDim,
    tp,
    cp,
    sequenceParallel,
    cpExchange,
    recomputeCore,
    ropeTheta,
    ropeScaling,
    documents,
    slidingWindow,
    sinks,
    latent,
    softmaxScale,
    recomputeUpProjections,
  }
}

/**
 * The first width that is not one (field, value, why, fix), or undefined: the widths positive
 * whole numbers (qLoraRank 0 for none) and the rotary width even.
 * @category guards
 */
export const problemOf = (s: LatentSizes): { readonly field: keyof LatentSizes; readonly value: number; readonly reason: string; readonly fix: string } | undefined => {
  const flag = (name: keyof LatentSizes) => `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`
  const positive: ReadonlyArray<keyof LatentSizes> = ["kvLoraRank", "qkHeadDim", "qkPosEmbHeadDim", "vHeadDim"]
  for (const field of positive)
    if (!Number.isSafeInteger(s[field]) || s[field] < 1) return { field, value: s[field], reason: "is not a positive integer", fix: `pass ${flag(field)} N with N = 1, 2, 3, ...` }
  if (!Number.isSafeInteger(s.qLoraRank) || s.qLoraRank < 0)
    return {
      field: "qLoraRank",
      value: s.qLoraRank,
      reason: "is not a non-negative integer",
      fix: "pass --q-lora-rank N with N = 1, 2, 3, ..., or leave it out for no query latent",
    }
  if (s.qkPosEmbHeadDim % 2 !== 0)
    return {
      field: "qkPosEmbHeadDim",
      value: s.qkPosEmbHeadDim,
      reason: "is odd (RoPE turns pairs of the rotary part's dimensions)",
      fix: "pass --qk-pos-emb-head-dim N with N = 2, 4, 6, ...",
    }
  return undefined
}

/**
 * Checks the heads against tp and the sequence against cp (and tp under SP) before any work.
 * @category guards
 */
export const check = (c: LatentConfig): void => {
  const tp = c.tp.ranks.length
  if (c.heads % tp !== 0) throw ConfigError.make("heads", c.heads, `is not divisible by tp = ${tp}`, `use a multiple of ${tp} heads or a smaller tp`)
  const problem = problemOf(c.latent)
  if (problem !== undefined) throw ConfigError.make(problem.field, problem.value, problem.reason, problem.fix)
  ContextParallel.checkSequence(c.seq, c.cp.ranks.length, tp, c.sequenceParallel, c.batch)
}

/**
 * The layer's forward on laid rows; the output in the layout the row-parallel product gave it.
 * Backward flows through autograd (collectives included).
 * @category combinators
 */
export const forwardLaid = (x: TensorLayout.WithLayout, w: LatentWeights, c: LatentConfig, cpRank: number) => Effect.gen(() => forwardLaidSteps(x, w, c, cpRank))

/** forwardLaid's steps, defined once, not per call (as SelfAttention's). */
function* forwardLaidSteps(x: TensorLayout.WithLayout, w: LatentWeights, c: LatentConfig, cpRank: number) {
  const tp = c.tp.ranks.length
  const local = c.seq / c.cp.ranks.length
  const heads = c.heads / tp
  const { kvLoraRank: kvLora, qkPosEmbHeadDim: dr, vHeadDim: dv } = c.latent
  const b = c.batch
  const par = { tp: c.tp, sequenceParallel: c.sequenceParallel }
  // On this rank's rows: the latents (and, without a query latent, the rows themselves).
  const queryIn = "wq" in w.query ? x.tensor : rmsNorm(matmul(x.tensor, w.query.wqA), w.query.qANorm, w.eps)
  const queryWidth = queryIn.shape[1] as number
  const [ckv, kr] = Shape.split(matmul(x.tensor, w.wkvA), [kvLora, dr], 1) as [Tensor.Tensor, Tensor.Tensor]
  const latents = Shape.concat([queryIn, rmsNorm(ckv, w.kvANorm, w.eps), kr], 1)
  const region = yield* ParallelLinear.enterRegionLaid(
    TensorLayout.attach(latents, TensorLayout.withLastDim(x.layout, TensorLayout.dim("latents", latents.shape[1] as number))),
    par,
  )
  // The queries' layout (the up projections' columns over tp), as the up projections made it.
  const made = { queries: region.layout }
  const up = (whole: Tensor.Tensor) => Effect.gen(() => upProjectedSteps(TensorLayout.attach(whole, region.layout), queryWidth, w, c, cpRank, made))
  const attended =
    c.recomputeUpProjections === true
      ? yield* Recompute.recomputeEffect("mla up projections", [region.tensor], (inputs) => up(inputs[0] as Tensor.Tensor))
      : yield* up(region.tensor)
  const rows = TensorLayout.attach(
    Shape.reshape(attended, [b * local, heads * dv]),
    TensorLayout.withLastDim(made.queries, TensorLayout.dim("value heads", c.heads * dv, [{ axis: "tp", size: tp }])),
  )
  return yield* ParallelLinear.rowParallelLaid(rows, w.wo, par, "hidden")
}

/**
 * From the latents in the tp region [cq, ckv', kr] to the core's output [b, local, heads, dv]:
 * the up projections, RoPE, the heads' keys, the core over the context; the queries' layout into
 * `made` (one function, so that mla_up_proj recomputes all of it from the latents alone).
 */
function* upProjectedSteps(region: TensorLayout.WithLayout, queryWidth: number, w: LatentWeights, c: LatentConfig, cpRank: number, made: { queries: TensorLayout.TensorLayout }) {
  const local = c.seq / c.cp.ranks.length
  const heads = c.heads / c.tp.ranks.length
  const { kvLoraRank: kvLora, qkHeadDim: dn, qkPosEmbHeadDim: dr, vHeadDim: dv } = c.latent
  const b = c.batch
  const par = { tp: c.tp, sequenceParallel: c.sequenceParallel }
  const [cq, ckvWhole, krWhole] = Shape.split(region.tensor, [queryWidth, kvLora, dr], 1) as [Tensor.Tensor, Tensor.Tensor, Tensor.Tensor]
  const inRegion = (t: Tensor.Tensor, name: string) => TensorLayout.attach(t, TensorLayout.withLastDim(region.layout, TensorLayout.dim(name, t.shape[1] as number)))
  const queries = ParallelLinear.columnProductOf(inRegion(cq, "query latent"), { w: "wq" in w.query ? w.query.wq : w.query.wqB, columns: "query heads" }, par)
  const keysValues = ParallelLinear.columnProductOf(inRegion(ckvWhole, "kv latent"), { w: w.wkvB, columns: "kv heads" }, par)
  made.queries = queries.layout
  const rope = ropeOptions(c, ContextParallel.positions(c.seq, c.cp.ranks.length, cpRank))
  const [qNope, qRope] = Shape.split(Shape.reshape(queries.tensor, [b, local, heads, dn + dr]), [dn, dr], 3) as [Tensor.Tensor, Tensor.Tensor]
  const [kNope, v] = Shape.split(Shape.reshape(keysValues.tensor, [b, local, heads, dn + dv]), [dn, dv], 3) as [Tensor.Tensor, Tensor.Tensor]
  const keyRope = Rope.rope(Shape.reshape(krWhole, [b, local, 1, dr]), rope)
  const q = Shape.concat([qNope, Rope.rope(qRope, rope)], 3)
  const k = Shape.concat([kNope, Shape.concat(new Array<Tensor.Tensor>(heads).fill(keyRope), 2)], 3)
  return yield* attendOverContext(q, k, v, keysValues.layout, c, cpRank)
}
