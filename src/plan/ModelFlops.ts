/**
 * ModelFlops: the model FLOPs of one training step by Megatron-LM's formula
 * (`num_floating_point_operations`, the form since 2025-03-06; shared/reference/paper.md 5), so a
 * predicted MFU means what the paper's and Megatron's logs mean:
 *
 *   12 B s l h^2 [ (1 + g/n + s/(2h)) q + 3/2 (f_dense L_dense + (f_moe k + f_shared) L_moe) / (l h) + V / (2 l h) ]
 *
 * B global batch (sequences), s sequence, l layers, h hidden, n heads, g KV heads, q the query
 * projection's width over h (1 with heads of width h/n; n x headDim / h with --head-dim, as
 * Megatron's kv_channels), SwiGLU (3/2), V vocabulary. With multi-latent attention the
 * attention term is Megatron's MLA count (latentTerm) over 2 h^2. Multi-token prediction layers
 * count as layers and add their norms and projections, D (3h + 2h^2) / (2 h^2), and D more
 * output layers (Megatron's MTP terms). A LatentMoE's experts count at its latent width L
 * (f_moe k L / h) with its two projections (2 L / 3; routedTerm). Only the activated experts count; the router, the
 * norms and recomputation do not (Megatron counts neither).
 */
import type * as LatentAttention from "../attention/LatentAttention.js"
import * as ModelContext from "../model/ModelContext.js"
import type * as ModelConfig from "../train/ModelConfig.js"

/**
 * The number of MoE layers (ModelContext.isMoe, the rule the model runs by).
 * @category mapping
 */
export const moeLayers = (m: ModelConfig.ModelConfig): number => {
  let n = 0
  for (let l = 0; l < m.layers; l++) if (ModelContext.isMoe(m, l)) n++
  return n
}

/** Grouped-query attention's term: (1 + g/n + s/(2h)) q. */
const groupedQueryTerm = (m: ModelConfig.ModelConfig, seq: number): number => {
  const q = (m.heads * ModelContext.headDim(m)) / m.hidden
  return (1 + m.kvHeads / m.heads + seq / (2 * m.hidden)) * q
}

/**
 * Multi-latent attention's multiply-adds per token of a layer, as Megatron counts them (its
 * `multi_latent_attention` branch: the latent norms count one per latent width, the core half
 * the keys of the sequence).
 */
const latentTerm = (m: ModelConfig.ModelConfig, s: LatentAttention.LatentSizes, seq: number): number => {
  const h = m.hidden
  const n = m.heads
  const qk = s.qkHeadDim + s.qkPosEmbHeadDim
  const query = s.qLoraRank > 0 ? s.qLoraRank * (h + n * qk + 1) : h * n * qk
  const keysValues = s.kvLoraRank * (h + n * (s.qkHeadDim + s.vHeadDim) + 1) + h * s.qkPosEmbHeadDim
  const out = n * s.vHeadDim * h
  const core = (seq * n * qk) / 2 + (seq * n * s.vHeadDim) / 2
  return query + keysValues + out + core
}

/**
 * The routed experts' term of Megatron's formula, in widths of a hidden-wide SwiGLU MLP: moeFfn
 * x topk, and for a LatentMoE the experts at the latent width (x L / H) and its two projections
 * (2 L / 3: 12 H L FLOPs a token where a width f counts 18 H f), as Megatron-LM's
 * num_floating_point_operations counts them.
 */
const routedTerm = (m: ModelConfig.ModelConfig): number => {
  const l = m.moeLatentSize
  return l === undefined ? m.moeFfn * m.topk : (m.moeFfn * m.topk * l) / m.hidden + (2 * l) / 3
}

/**
 * Model FLOPs of one step of `globalBatch` sequences of length `seq`.
 * @category mapping
 */
export const perStep = (m: ModelConfig.ModelConfig, seq: number, globalBatch: number): number => {
  const h = m.hidden
  // Multi-token prediction layers count as layers (MoE as the last one is), and add their
  // norms and [2h -> h] projections and one output layer each (Megatron's MTP terms).
  const mtp = ModelContext.mtpLayersOf(m)
  const mtpMoe = mtp > 0 && ModelContext.isMoe(m, m.layers) ? mtp : 0
  const l = m.layers + mtp
  const lMoe = moeLayers(m) + mtpMoe
  const lDense = l - lMoe
  const attention = m.mla === undefined ? groupedQueryTerm(m, seq) : latentTerm(m, m.mla, seq) / (2 * h * h)
  const mlp = (1.5 * (m.ffn * lDense + (routedTerm(m) + (m.sharedExpertFfn ?? 0)) * lMoe)) / (l * h)
  const logits = (m.vocab * (mtp + 1)) / (2 * l * h)
  const mtpNormsAndProjections = (mtp * (3 * h + 2 * h * h)) / (2 * l * h * h)
  return 12 * globalBatch * seq * l * h * h * (attention + mlp + logits + mtpNormsAndProjections)
}
