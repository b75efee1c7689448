/**
 * LatentProjection: a LatentMoE layer's projections around its routed experts (Megatron's
 * moe_latent_size: fc1_latent_proj and fc2_latent_proj; Nemotron 3's LatentMoE).
 *
 * Shape legend: T tokens of this rank, H hidden, L latent.
 *   into   [T, H] x latentIn [H, L] (+ bias [L]) -> [T, L]   after the router, before dispatch
 *   out    [T, L] x latentOut [L, H] (+ bias [H]) -> [T, H]  after the combine, before the
 *          shared experts' output is added
 * Both weights are whole on every rank (Megatron's "duplicated" linears): each rank projects its
 * own rows, so their gradients sum over tp-dp-cp as the router's do. The router and the shared
 * experts read the hidden rows; the dispatcher moves, and the experts take and give, L-wide rows.
 */
import * as TensorLayout from "../dataflow/TensorLayout.js"
import { biased } from "../dataflow/ParallelLinear.js"
import { matmul } from "../tensor/ops/Matmul.js"
import type * as Tensor from "../tensor/Tensor.js"

/**
 * This rank's copy of a layer's latent projections.
 * @category models
 */
export interface LatentWeights {
  /** [H, L] */
  readonly into: Tensor.Tensor
  /** [L, H] */
  readonly out: Tensor.Tensor
  /** [L], [H]: --add-bias-linear's biases; none: no biases. */
  readonly bias?: { readonly into: Tensor.Tensor; readonly out: Tensor.Tensor } | undefined
}

/**
 * The hidden rows projected to the latent width, their last dim renamed `latent`.
 * @category combinators
 */
export const into = (rows: TensorLayout.WithLayout, w: LatentWeights): TensorLayout.WithLayout =>
  TensorLayout.attach(biased(matmul(rows.tensor, w.into), w.bias?.into), TensorLayout.withLastDim(rows.layout, TensorLayout.dim("latent", w.into.shape[1] as number)))

/**
 * The combined latent rows projected back to hidden, their last dim `hidden` (the layer's
 * input's).
 * @category combinators
 */
export const out = (rows: TensorLayout.WithLayout, w: LatentWeights, hidden: TensorLayout.Dim): TensorLayout.WithLayout =>
  TensorLayout.attach(biased(matmul(rows.tensor, w.out), w.bias?.out), TensorLayout.withLastDim(rows.layout, hidden))
