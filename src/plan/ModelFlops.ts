/**
 * ModelFlops: the model FLOPs of one training step by Megatron-LM's formula
 * (`num_floating_point_operations`, the form since 2025-03-06; shared/reference/paper.md 5), so a
 * predicted MFU means what the paper's and Megatron's logs mean:
 *
 *   12 B s l h^2 [ (1 + g/n + s/(2h)) q + 3/2 (f_dense L_dense + (f_moe k + f_shared) L_moe) / (l h) + V / (2 l h) ]
 *
 * B global batch (sequences), s sequence, l layers, h hidden, n heads, g KV heads, q the query
 * projection's width over h (1 with heads of width h/n; n x headDim / h with --head-dim, as
 * Megatron's kv_channels), SwiGLU (3/2), V vocabulary. Only the activated experts count; the router, the
 * norms and recomputation do not (Megatron counts neither).
 */
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

/**
 * Model FLOPs of one step of `globalBatch` sequences of length `seq`.
 * @category mapping
 */
export const perStep = (m: ModelConfig.ModelConfig, seq: number, globalBatch: number): number => {
  const l = m.layers
  const h = m.hidden
  const lMoe = moeLayers(m)
  const lDense = l - lMoe
  const q = (m.heads * ModelContext.headDim(m)) / h
  const attention = (1 + m.kvHeads / m.heads + seq / (2 * h)) * q
  const mlp = (1.5 * (m.ffn * lDense + (m.moeFfn * m.topk + (m.sharedExpertFfn ?? 0)) * lMoe)) / (l * h)
  const logits = m.vocab / (2 * l * h)
  return 12 * globalBatch * seq * l * h * h * (attention + mlp + logits)
}
