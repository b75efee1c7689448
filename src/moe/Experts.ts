/**
 * Experts: the local experts' SwiGLU MLPs as one grouped computation, ETP-sharded.
 *
 * Shape legend: N rows (expert-major), H hidden, F expert FFN width, L local experts,
 * X = ETP. This rank holds, for each local expert, fc1's gate and up columns of its ETP block
 * and fc2's rows of the same block:
 *   wGate, wUp [L, H, F/X]   wDown [L, F/X, H]
 * For a row x of expert e with prob p (semantics.md 2.5):
 *   a = silu(x Wg_e) * (x Wu_e);  a' = a * p  (probs before fc2);  y = a' Wd_e
 * (or the gated activation of GatedActivation's options in place of silu(.) * (.))
 * y is a partial sum over the ETP group (each member holds F/X of the hidden units); the
 * dispatcher's combine sums the partials. An expert with no rows gets zero gradients.
 */
import { mul } from "../tensor/ops/Elementwise.js"
import * as GatedActivation from "../tensor/ops/GatedActivation.js"
import { groupedMatmul } from "../tensor/ops/GroupedMatmul.js"
import { reshape } from "../tensor/ops/Shape.js"
import type * as Tensor from "../tensor/Tensor.js"

/**
 * This rank's expert weight shards.
 * @category models
 */
export interface ExpertWeights {
  readonly wGate: Tensor.Tensor
  readonly wUp: Tensor.Tensor
  readonly wDown: Tensor.Tensor
}

/**
 * The experts on expert-major rows: `rowsPerExpert[e]` consecutive rows for local expert e,
 * `probs` [N] applied before fc2, `glu` the activation (SwiGLU when absent). Returns [N, H],
 * partial over ETP.
 * @category combinators
 */
export const forward = (
  rows: Tensor.Tensor,
  probs: Tensor.Tensor | undefined,
  rowsPerExpert: ReadonlyArray<number>,
  w: ExpertWeights,
  glu?: GatedActivation.Glu,
): Tensor.Tensor => {
  const n = rows.shape[0] as number
  const a = GatedActivation.gated(groupedMatmul(rows, w.wGate, rowsPerExpert), groupedMatmul(rows, w.wUp, rowsPerExpert), glu)
  return groupedMatmul(probs === undefined ? a : mul(a, reshape(probs, [n, 1])), w.wDown, rowsPerExpert)
}
