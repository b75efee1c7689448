/**
 * GroupedMatmul: one product per group of consecutive rows, each group with its own weight:
 * the grouped GEMM of MoE experts (every local expert's tokens in one op, not one op per expert).
 *
 * Shapes: x [N, K] in G consecutive segments of `segments[g]` rows (sum = N), w [G, K, M]
 * -> out [N, M] with out[segment g] = x[segment g] @ w[g]. Segments may be empty.
 * Backward: dx[seg g] = dout[seg g] @ w[g]^T, dw[g] = x[seg g]^T @ dout[seg g] (zeros for an
 * empty segment: an expert without tokens still gets a gradient, of zeros); a w with a gradient
 * accumulator (GradAccumulator) has each dw[g] added into it by its product.
 * On a bf16 tape the forward and its backward products take bf16 operands and run on the bf16
 * GEMM where the CPU has AVX512-BF16 (kernels/Bf16Matmul.ts).
 */
import type * as CpuBf16 from "../../native/CpuBf16.js"
import * as Autograd from "../Autograd.js"
import * as Place from "../device/Place.js"
import * as GradAccumulator from "../GradAccumulator.js"
import * as Bf16Matmul from "../kernels/Bf16Matmul.js"
import * as GroupedLoop from "../kernels/GroupedLoop.js"
import type * as Kernels from "../kernels/Kernels.js"
import type * as Tensor from "../Tensor.js"
import * as TensorError from "../TensorError.js"

/**
 * The grouped products (forward rows, backward rows, weight gradients) on the dtype's kernels,
 * or on a bf16 product's kernel (float32 storage) when given: one bf16 GEMM per group, as
 * GroupedLoop runs them.
 */
const groupedOn = (
  kernels: Kernels.Kernels<Place.Buffer, Place.Buffer>,
  bf16: CpuBf16.Bf16MatmulKernel | undefined,
): Pick<Kernels.Kernels<Place.Buffer, Place.Buffer>, "groupedRows" | "groupedWeights"> =>
  bf16 === undefined
    ? kernels
    : ({
        groupedRows: GroupedLoop.groupedRows((p) => bf16.sync(p as Parameters<CpuBf16.Bf16MatmulKernel["sync"]>[0])),
        groupedWeights: GroupedLoop.groupedWeights((p) => bf16.sync(p as Parameters<CpuBf16.Bf16MatmulKernel["sync"]>[0])),
      } as unknown as Pick<Kernels.Kernels<Place.Buffer, Place.Buffer>, "groupedRows" | "groupedWeights">)

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
  // A bf16 product is the host's (its GEMM is); on a device its operands are downloaded.
  const place = bf16Product ? Place.host : Place.of("groupedMatmul", x, w)
  const kernels = groupedOn(place.kernels(x.dtype), Bf16Matmul.forForward(x, w))
  // The segments cover every row and each product writes its rows whole (an empty sum as 0).
  const out = place.allocate(x.dtype, n * m)
  kernels.groupedRows(place.operand(x), place.operand(w), out, rows, k, m, false)
  return Autograd.result("groupedMatmul", [x, w], out, [n, m], (dout) => {
    // A bf16 product's backward products take Bf16Matmul's operands (the gradient in bf16).
    const low = bf16Product && dout.dtype === "float32" ? Bf16Matmul.backwardOperands(dout.data as Float32Array) : undefined
    const grad = low?.gradient ?? place.operand(dout)
    const backward = groupedOn(place.kernels(x.dtype), low?.kernel)
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
      const product = (out: Place.Buffer, accumulate: boolean) => backward.groupedWeights(place.operand(x), grad, out, rows, k, m, accumulate)
      if (into !== undefined) GradAccumulator.productInto(place.runtime, into, product)
      else {
        const data = place.allocate(w.dtype, g * k * m)
        product(data, false)
        dw = Place.tensor(data, w.shape, w.device)
      }
    }
    return [dx, dw]
  })
}
