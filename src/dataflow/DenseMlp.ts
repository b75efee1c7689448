/**
 * DenseMlp: the SwiGLU MLP of dense layers, tensor-parallel over the attention TP group.
 *
 * Weights per member: wGate, wUp [H, F/tp] (column-parallel), wDown [F/tp, H] (row-parallel).
 *   x (replicated, or SP rows) -> gather once (SP) or enter the TP region -> silu(x Wg) * (x Wu)
 *   -> row-parallel Wd -> replicated output (SP off) or SP rows (SP on)
 * One gather serves both fc1 halves.
 */
import * as Effect from "effect/Effect"
import * as Diff from "../comm/Differentiable.js"
import { swiglu } from "../tensor/ops/Activation.js"
import { matmul } from "../tensor/ops/Matmul.js"
import type * as Tensor from "../tensor/Tensor.js"
import * as ParallelLinear from "./ParallelLinear.js"

/**
 * This member's MLP weight shards.
 * @category models
 */
export interface MlpWeights {
  readonly wGate: Tensor.Tensor
  readonly wUp: Tensor.Tensor
  readonly wDown: Tensor.Tensor
}

/**
 * The MLP's forward (backward through autograd).
 * @category combinators
 */
export const forward = (x: Tensor.Tensor, w: MlpWeights, options: ParallelLinear.ParallelOptions) =>
  Effect.gen(function* () {
    const full = options.sequenceParallel ? yield* Diff.allGather(options.tp, x) : yield* Diff.copyToGroup(options.tp, x)
    const hidden = swiglu(matmul(full, w.wGate), matmul(full, w.wUp))
    return yield* ParallelLinear.rowParallel(hidden, w.wDown, options)
  })
