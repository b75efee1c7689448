/**
 * StepFlops: the training FLOPs of one step as pleat counts them for its own throughput
 * (`pleat train`'s flopsPerStep and flopsPerSec, the benches' MFU): 3x the forward's matmuls,
 * attention core, router and output layer (multi-token prediction layers as layers, with their
 * projections and output layers), 2 FLOPs a multiply-add, the causal core over ~seq/2
 * keys. (The planner reports Megatron's formula instead, plan/ModelFlops.)
 */
import * as ModelContext from "../model/ModelContext.js"
import type * as ModelConfig from "./ModelConfig.js"

/**
 * The attention's forward FLOPs per token of one layer: projections and the causal core.
 * @category mapping
 */
export const attentionPerToken = (m: ModelConfig.ModelConfig): number => {
  const h = m.hidden
  const s = m.mla
  if (s === undefined) {
    const d = ModelContext.headDim(m)
    return 2 * h * (m.heads * d + 2 * m.kvHeads * d) + 2 * m.heads * d * h + 2 * m.heads * d * m.seq
  }
  const q = m.heads * (s.qkHeadDim + s.qkPosEmbHeadDim)
  const query = s.qLoraRank > 0 ? h * s.qLoraRank + s.qLoraRank * q : h * q
  const keysValues = h * (s.kvLoraRank + s.qkPosEmbHeadDim) + s.kvLoraRank * m.heads * (s.qkHeadDim + s.vHeadDim)
  const out = m.heads * s.vHeadDim * h
  // The core: q.k at width dn + dr and p.v at width dv, over ~seq/2 keys each.
  const core = m.heads * (s.qkHeadDim + s.qkPosEmbHeadDim + s.vHeadDim) * m.seq
  return 2 * (query + keysValues + out) + core
}

/**
 * An MoE layer's forward FLOPs per token: the router, the top-k experts (at the latent width of
 * a LatentMoE, with its two projections), the shared experts.
 * @category mapping
 */
const moePerToken = (m: ModelConfig.ModelConfig): number => {
  const latent = m.moeLatentSize === undefined ? 0 : 2 * 2 * m.hidden * m.moeLatentSize
  return 2 * m.hidden * m.experts + m.topk * 6 * ModelContext.expertWidthOf(m) * m.moeFfn + latent + 6 * m.hidden * (m.sharedExpertFfn ?? 0)
}

/**
 * Training FLOPs of one step of `globalBatch` sequences.
 * @category mapping
 */
export const perStep = (m: ModelConfig.ModelConfig, globalBatch: number): number => {
  const mtp = ModelContext.mtpLayersOf(m)
  // The output layer, once more per multi-token prediction layer, and those layers' [2H -> H] projections.
  let perToken = 2 * m.hidden * m.vocab * (mtp + 1) + mtp * 2 * (2 * m.hidden) * m.hidden
  for (let l = 0; l < m.layers + mtp; l++) {
    perToken += attentionPerToken(m)
    perToken += ModelContext.isMoe(m, l) ? moePerToken(m) : 6 * m.hidden * m.ffn
  }
  return 3 * perToken * globalBatch * m.seq
}
