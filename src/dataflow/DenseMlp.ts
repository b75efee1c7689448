/**
 * DenseMlp: the SwiGLU MLP of dense layers (or another gated activation: GatedActivation),
 * tensor-parallel over the attention TP group.
 *
 * Weights per member: wGate, wUp [H, F/tp] (column-parallel), wDown [F/tp, H] (row-parallel);
 * with biases (Megatron's add_bias_linear) bGate, bUp [F/tp] on fc1's columns and bDown [H]
 * (replicated) added once fc2's products are summed.
 *   x (replicated, or SP rows) -> gather once (SP) or enter the TP region -> silu(x Wg) * (x Wu)
 *   -> row-parallel Wd -> replicated output (SP off) or SP rows (SP on)
 * One gather serves both fc1 halves. `forwardLaid` is the same MLP on laid rows, through the
 * typed collectives (its output layout is what the collectives made of the input layout). With
 * `recompute` the whole MLP, its collectives included, runs again in the backward instead of
 * keeping its activations (selective recompute's mlp and shared_experts modules).
 */
import * as Effect from "effect/Effect"
import * as Diff from "../comm/Differentiable.js"
import * as GatedActivation from "../tensor/ops/GatedActivation.js"
import * as Recompute from "../tensor/Recompute.js"
import { matmul } from "../tensor/ops/Matmul.js"
import type * as Tensor from "../tensor/Tensor.js"
import * as LaidCollective from "./LaidCollective.js"
import * as ParallelLinear from "./ParallelLinear.js"
import * as TensorLayout from "./TensorLayout.js"

/**
 * This member's MLP weight shards.
 * @category models
 */
export interface MlpWeights {
  readonly wGate: Tensor.Tensor
  readonly wUp: Tensor.Tensor
  readonly wDown: Tensor.Tensor
  /** fc1's biases (this member's columns) and fc2's (replicated); none: no biases. */
  readonly bias?: MlpBiases | undefined
}

/**
 * A gated MLP's biases.
 * @category models
 */
export interface MlpBiases {
  readonly gate: Tensor.Tensor
  readonly up: Tensor.Tensor
  readonly down: Tensor.Tensor
}

/** The activation of fc1's two halves (their biases added). */
const activated = (full: Tensor.Tensor, w: MlpWeights, glu: GatedActivation.Glu | undefined) =>
  GatedActivation.gated(ParallelLinear.biased(matmul(full, w.wGate), w.bias?.gate), ParallelLinear.biased(matmul(full, w.wUp), w.bias?.up), glu)

/**
 * The MLP's parallel options and its gated activation (GatedActivation; SwiGLU when absent).
 * @category models
 */
export interface MlpOptions extends ParallelLinear.ParallelOptions {
  readonly glu?: GatedActivation.Glu | undefined
  /** Recompute the MLP in the backward (Recompute.recomputeEffect) instead of keeping its activations. */
  readonly recompute?: boolean | undefined
}

/**
 * The MLP's forward (backward through autograd).
 * @category combinators
 */
export const forward = (x: Tensor.Tensor, w: MlpWeights, options: MlpOptions) =>
  options.recompute === true ? Recompute.recomputeEffect("mlp", [x], (inputs) => forwardKept(inputs[0] as Tensor.Tensor, w, options)) : forwardKept(x, w, options)

/** The MLP's forward, its activations kept for the backward. */
const forwardKept = (x: Tensor.Tensor, w: MlpWeights, options: MlpOptions) =>
  Effect.gen(function* () {
    const full = options.sequenceParallel ? yield* Diff.allGather(options.tp, x) : yield* Diff.copyToGroup(options.tp, x)
    return yield* ParallelLinear.rowParallel(activated(full, w, options.glu), w.wDown, options, w.bias?.down)
  })

/**
 * The MLP's forward on laid rows: [tokens, hidden] in, the same layout out (SP rows or whole).
 * @category combinators
 */
export const forwardLaid = (
  x: TensorLayout.WithLayout,
  w: MlpWeights,
  options: MlpOptions,
): Effect.Effect<TensorLayout.WithLayout, Effect.Error<ReturnType<typeof forwardLaidKept>>, Effect.Services<ReturnType<typeof forwardLaidKept>>> => {
  if (options.recompute !== true) return forwardLaidKept(x, w, options)
  // The layout the collectives made of the input's: the same in the replay.
  let layout = x.layout
  const run = (input: Tensor.Tensor) =>
    Effect.map(forwardLaidKept(TensorLayout.attach(input, x.layout), w, options), (out) => {
      layout = out.layout
      return out.tensor
    })
  return Effect.map(
    Recompute.recomputeEffect("mlp", [x.tensor], (inputs) => run(inputs[0] as Tensor.Tensor)),
    (tensor) => TensorLayout.attach(tensor, layout),
  )
}

/** The MLP's forward on laid rows, its activations kept for the backward. */
const forwardLaidKept = (x: TensorLayout.WithLayout, w: MlpWeights, options: MlpOptions) =>
  Effect.gen(function* () {
    const full = options.sequenceParallel ? yield* LaidCollective.allGather("tp", options.tp, x) : yield* LaidCollective.copyToGroup("tp", options.tp, x)
    const n = options.tp.ranks.length
    const ffn = TensorLayout.dim("ffn", (w.wGate.shape[1] as number) * n, [{ axis: "tp", size: n }])
    const hidden = TensorLayout.attach(activated(full.tensor, w, options.glu), TensorLayout.withLastDim(full.layout, ffn))
    return yield* ParallelLinear.rowParallelLaid(hidden, w.wDown, options, "hidden", w.bias?.down)
  })
