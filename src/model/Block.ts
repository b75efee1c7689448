/**
 * Block: one transformer layer, RMSNorm -> attention -> residual -> RMSNorm -> FFN -> residual.
 *
 * The FFN is the dense MLP or the MoE layer (by layer frequency). The switch from the attention
 * layout to the MoE layout is only a view of this rank's local (sub)sequence as a batch of
 * tokens: rows stay where they are, no communication (paper section 3.2). Under sequence
 * parallelism the norms and residuals work on this rank's rows only.
 */
import * as Effect from "effect/Effect"
import * as SelfAttention from "../attention/SelfAttention.js"
import { add } from "../tensor/ops/Elementwise.js"
import { rmsNorm } from "../tensor/ops/Norm.js"
import type * as Tensor from "../tensor/Tensor.js"

/**
 * The norms and attention weights of a block; the FFN comes as a function.
 * @category models
 */
export interface BlockWeights {
  readonly attentionNorm: Tensor.Tensor
  readonly attention: SelfAttention.AttentionWeights
  readonly ffnNorm: Tensor.Tensor
}

/**
 * One block's forward: `ffn` maps the normed tokens [rows, H] to [rows, H].
 * @category combinators
 */
export const forward = <E, R>(
  x: Tensor.Tensor,
  w: BlockWeights,
  attention: SelfAttention.AttentionConfig,
  cpRank: number,
  ffn: (tokens: Tensor.Tensor) => Effect.Effect<Tensor.Tensor, E, R>,
  eps = 1e-6,
) =>
  Effect.gen(function* () {
    const attended = yield* SelfAttention.forward(rmsNorm(x, w.attentionNorm, eps), w.attention, attention, cpRank)
    const h = add(x, attended)
    return add(h, yield* ffn(rmsNorm(h, w.ffnNorm, eps)))
  })
