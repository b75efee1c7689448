/**
 * GroupedMatmul: one product per group of consecutive rows, each group with its own weight:
 * the grouped GEMM of MoE experts (every local expert's tokens in one op, not one op per expert).
 *
 * Shapes: x [N, K] in G consecutive segments of `segments[g]` rows (sum = N), w [G, K, M]
 * -> out [N, M] with out[segment g] = x[segment g] @ w[g]. Segments may be empty.
 * Backward: dx[seg g] = dout[seg g] @ w[g]^T, dw[g] = x[seg g]^T @ dout[seg g] (zeros for an
 * empty segment: an expert without tokens still gets a gradient, of zeros); a w with a gradient
 * accumulator (GradAccumulator) has each dw[g] added into it by its product.
 * On a bf16 tape the forward and its backward products take bf16 operands and run on a bf16
 * run's products (Place.bf16Products: on the host the bf16 GEMM where the CPU has AVX512-BF16,
 * kernels/Bf16Matmul.ts; on a device its own).
 */
import * as Autograd from "../Autograd.js"
import * as Place from "../device/Place.js"
import * as GradAccumulator from "../GradAccumulator.js"
import * as Bf16Matmul from "../kernels/Bf16Matmul.js"
import type * as Tensor from "../Tensor.js"
import * as TensorError from "../TensorError.js"

/**
 * The grouped product (see the file header).
 * @category combinators
 */
export const groupedMatmul = (x: Tensor.Tensor, w: Tensor.Tensor, segments: ReadonlyArray<number>): Tensor.Tensor => {
  Autograd.sameKind("groupedMatmul", x, w)
  if (x.rank !== 2 || w.rank !== 3)
    throw TensorError.shape("groupedMatmul", `needs x [N, K] and w [G, K, M], got ${TensorError.formatShape(x.shape)} and ${TensorError.formatShape(w.shape)}`)
  const [n, k] = x.shape as [number, number]
  const [g, wk, m] = w.shape as [number, number, number]
  if (wk !== k) throw TensorError.shape("groupedMatmul", `inner dims differ: x ${TensorError.formatShape(x.shape)} vs w ${TensorError.formatShape(w.shape)} (dim 1 of w)`)
  if (segments.length !== g) throw TensorError.shape("groupedMatmul", `${segments.length} segments for ${g} weights`)
  const total = segments.reduce((a, b) => a + b, 0)
  if (total !== n || segments.some((s) => !Number.isInteger(s) || s < 0))
    throw TensorError.shape("groupedMatmul", `segments [${segments.join(", ")}] do not cover the ${n} rows of x`)
  const rows = Int32Array.from(segments)
  const bf16Product = Bf16Matmul.roundsProduct(x, w)
  const place = Place.of("groupedMatmul", x, w)
  // A bf16 product runs on a bf16 run's products here (Place.bf16Products).
  const kernels = bf16Product ? Place.bf16Products(place) : place.kernels(x.dtype)
  // The segments cover every row and each product writes its rows whole (an empty sum as 0).
  const out = place.allocate(x.dtype, n * m)
  kernels.groupedRows(place.operand(x), place.operand(w), out, rows, k, m, false)
  return Autograd.result("groupedMatmul", [x, w], out, [n, m], (dout) => {
    // A bf16 product's backward products take the gradient in bf16 (Place.bf16Gradient).
    const low = bf16Product && dout.dtype === "float32"
    const grad = low ? Place.bf16Gradient(place, dout) : place.operand(dout)
    const backward = low ? Place.bf16Products(place) : place.kernels(x.dtype)
    let dx: Tensor.Tensor | undefined
    let dw: Tensor.Tensor | undefined
    if (x.requiresGrad) {
      const data = place.allocate(x.dtype, n * k)
      backward.groupedRows(grad, place.operand(w), data, rows, m, k, true)
      dx = Place.tensor(data, x.shape, x.device)
    }
    if (w.requiresGrad) {
      // With an accumulator, each expert's product adds into its slice there
      // (GradAccumulator.productInto); otherwise into a new gradient, where an expert without
      // rows has zeros.
      const into = GradAccumulator.of(w)
      const xs = place.operand(x)
      const product = (out: Place.Buffer, accumulate: boolean) => backward.groupedWeights(xs, grad, out, rows, k, m, accumulate)
      if (into !== undefined) GradAccumulator.productInto(place.runtime, into, product, [xs, grad])
      else {
        const data = place.allocate(w.dtype, g * k * m)
        product(data, false)
        dw = Place.tensor(data, w.shape, w.device)
      }
    }
    return [dx, dw]
  })
}
