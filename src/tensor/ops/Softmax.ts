/**
 * Softmax and log-softmax over the last dim.
 *
 * Shapes: x [..., n] -> [..., n]; every leading dim is a row of n elements.
 *
 * Both subtract the row maximum before exponentiating, so logits of any size stay finite (the
 * router of an MoE layer and the LM head both feed large logits here). Softmax runs on the
 * dtype's `softmaxRows` kernel; sums are taken in float64 whatever the dtype.
 *
 * A row that holds NaN, +Infinity, or only -Infinity has no defined softmax: its output is NaN
 * (as in the usual frameworks); the tape's non-finite guard names the op when it is on.
 *
 * Backward, with y = softmax(x) and g = dy (per row):
 *   softmax:     dx = y * (g - sum(g * y))
 *   logSoftmax:  dx = g - softmax(x) * sum(g)
 */
import * as Autograd from "../Autograd.js"
import { maxAndLogSum } from "./RowStats.js"
import * as DType from "../DType.js"
import * as Kernels from "../kernels/Kernels.js"
import { reference } from "../kernels/Reference.js"
import * as Tensor from "../Tensor.js"
import * as TensorError from "../TensorError.js"

/** rows x cols view of a tensor around its last dim; rank 0 is a ShapeError. */
const rowsOf = (op: string, x: Tensor.Tensor): { readonly rows: number; readonly cols: number } => {
  if (x.rank === 0) throw TensorError.shape(op, `needs at least 1 dim (the softmax dim), got ${TensorError.formatShape(x.shape)}`)
  return { rows: Tensor.sizeOf(x.shape.slice(0, -1)), cols: x.shape[x.rank - 1] as number }
}

/** softmax(x) over the last dim, as raw storage of x's dtype. */
const softmaxData = (x: Tensor.Tensor, rows: number, cols: number): DType.Storage => {
  const out = DType.allocateUninitialized(x.dtype, x.size)
  Kernels.forDType(x.dtype, reference).softmaxRows(x.data, out, rows, cols)
  return out
}

/**
 * softmax over the last dim (rows sum to 1).
 * @category combinators
 */
export const softmax = (x: Tensor.Tensor): Tensor.Tensor => {
  const { rows, cols } = rowsOf("softmax", x)
  const out = softmaxData(x, rows, cols)
  return Autograd.result("softmax", [x], out, x.shape, (g) => {
    const dx = DType.allocateUninitialized(g.dtype, x.size)
    const gy = g.data
    for (let r = 0; r < rows; r++) {
      const base = r * cols
      let dot = 0
      for (let j = 0; j < cols; j++) dot += (gy[base + j] as number) * (out[base + j] as number)
      for (let j = 0; j < cols; j++) dx[base + j] = (out[base + j] as number) * ((gy[base + j] as number) - dot)
    }
    return [Tensor.fromStorage(dx, x.shape, { device: g.device })]
  })
}

/**
 * log(softmax(x)) over the last dim, computed as (x - max) - log(sum(exp(x - max))) so that it
 * stays accurate where softmax underflows to 0 and where the logits are large.
 * @category combinators
 */
export const logSoftmax = (x: Tensor.Tensor): Tensor.Tensor => {
  const { rows, cols } = rowsOf("logSoftmax", x)
  const out = DType.allocateUninitialized(x.dtype, x.size)
  const xs = x.data
  // Per row, in float64: the max and log(sum(exp(x - max))). Backward recomputes softmax from
  // them without a float32 rounding; x - max - logSum keeps the digits that x - logsumexp loses.
  const shift = new Float64Array(rows)
  const logSum = new Float64Array(rows)
  for (let r = 0; r < rows; r++) {
    const base = r * cols
    const [max, ls] = maxAndLogSum(xs, base, cols)
    shift[r] = max
    logSum[r] = ls
    for (let j = 0; j < cols; j++) out[base + j] = (xs[base + j] as number) - max - ls
  }
  return Autograd.result("logSoftmax", [x], out, x.shape, (g) => {
    const dx = DType.allocateUninitialized(g.dtype, x.size)
    const gy = g.data
    for (let r = 0; r < rows; r++) {
      const base = r * cols
      let total = 0
      for (let j = 0; j < cols; j++) total += gy[base + j] as number
      const max = shift[r] as number
      const ls = logSum[r] as number
      for (let j = 0; j < cols; j++) dx[base + j] = (gy[base + j] as number) - Math.exp((xs[base + j] as number) - max - ls) * total
    }
    return [Tensor.fromStorage(dx, x.shape, { device: g.device })]
  })
}
