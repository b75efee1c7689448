// The dispatchers' properties run identity experts: each row times its prob, or the row as it
// is where the combine applies the probs (DispatchInput.probsAt "combine"), so that dispatch then
// combine gives every token back times the sum of its probs either way.
import { mul } from "../../src/tensor/ops/Elementwise.js"
import { reshape } from "../../src/tensor/ops/Shape.js"
import type * as Tensor from "../../src/tensor/Tensor.js"

export const identityExperts = (rows: Tensor.Tensor, probs: Tensor.Tensor | undefined): Tensor.Tensor =>
  probs === undefined ? rows : mul(rows, reshape(probs, [probs.shape[0] as number, 1]))
