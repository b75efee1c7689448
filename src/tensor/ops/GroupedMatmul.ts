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
import * as DType from "../DType.js"
import * as GradAccumulator from "../GradAccumulator.js"
import * as Bf16Matmul from "../kernels/Bf16Matmul.js"
import * as Kernels from "../kernels/Kernels.js"
import { reference } from "../kernels/Reference.js"
import * as Tensor from "../Tensor.js"
import * as TensorError from "../TensorError.js"

interface Segment {
  readonly start: number
  readonly rows: number
}

const segmentsOf = (segments: ReadonlyArray<number>): Array<Segment> => {
  let start = 0
  return segments.map((rows) => {
    const s = { start, rows }
    start += rows
    return s
  })
}

/** One segment's product. */
interface Product {
  readonly a: DType.Storage
  readonly b: DType.Storage
  readonly out: DType.Storage
  readonly m: number
  readonly n: number
  readonly k: number
  readonly transA: boolean
  readonly transB: boolean
}

/**
 * out[seg] = op(a[seg-or-weight]) op(b[...]) for every segment (added into out with
 * `accumulate`) on a bf16 product's kernel (forward or backward; float32 storage). The float32
 * and float64 products go through the kernel set's grouped products instead (one call).
 */
const bf16Products = (parts: ReadonlyArray<Product>, bf16: CpuBf16.Bf16MatmulKernel, accumulate = false) => {
  for (const p of parts) {
    if (p.m === 0 || p.n === 0) continue
    bf16.sync({ a: p.a, b: p.b, out: p.out, m: p.m, n: p.n, k: p.k, transA: p.transA, transB: p.transB, batch: 1, strideA: 0, strideB: 0, accumulate } as Parameters<
      CpuBf16.Bf16MatmulKernel["sync"]
    >[0])
  }
}

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
  const segs = segmentsOf(segments)
  const rows = Int32Array.from(segments)
  const kernels = Kernels.forDType(x.dtype, reference)
  // The segments cover every row and each product writes its rows whole (an empty sum as 0).
  const out = DType.allocateUninitialized(x.dtype, n * m)
  const bf16Product = Bf16Matmul.roundsProduct(x, w)
  const bf16Forward = Bf16Matmul.forForward(x, w)
  if (bf16Forward === undefined) kernels.groupedRows(x.data, w.data, out, rows, k, m, false)
  else
    bf16Products(
      segs.map((s, e) => ({
        a: x.data.subarray(s.start * k, (s.start + s.rows) * k),
        b: w.data.subarray(e * k * m, (e + 1) * k * m),
        out: out.subarray(s.start * m, (s.start + s.rows) * m),
        m: s.rows,
        n: m,
        k,
        transA: false,
        transB: false,
      })),
      bf16Forward,
    )
  return Autograd.result("groupedMatmul", [x, w], out, [n, m], (dout) => {
    // A bf16 product's backward products take Bf16Matmul's operands (the gradient in bf16).
    const low = bf16Product && dout.data instanceof Float32Array ? Bf16Matmul.backwardOperands(dout.data) : undefined
    const grad = { data: low?.gradient ?? dout.data }
    const lowKernel = low?.kernel
    let dx: Tensor.Tensor | undefined
    let dw: Tensor.Tensor | undefined
    if (x.requiresGrad) {
      const data = DType.allocateUninitialized(x.dtype, n * k)
      if (lowKernel === undefined) kernels.groupedRows(grad.data, w.data, data, rows, m, k, true)
      else
        bf16Products(
          segs.map((s, e) => ({
            a: grad.data.subarray(s.start * m, (s.start + s.rows) * m),
            b: w.data.subarray(e * k * m, (e + 1) * k * m),
            out: data.subarray(s.start * k, (s.start + s.rows) * k),
            m: s.rows,
            n: k,
            k: m,
            transA: false,
            transB: true,
          })),
          lowKernel,
        )
      dx = Tensor.fromStorage(data, x.shape, { device: x.device })
    }
    if (w.requiresGrad) {
      // With an accumulator (GradAccumulator), each expert's product adds into its slice there;
      // otherwise into a new gradient, where an expert without rows has zeros.
      const into = GradAccumulator.of(w)
      const data = into ?? DType.allocateUninitialized(w.dtype, g * k * m)
      // A cleared accumulator is written whole here (GradAccumulator.takeCleared).
      const accumulate = into !== undefined && !GradAccumulator.takeCleared(into)
      if (lowKernel === undefined) kernels.groupedWeights(x.data, grad.data, data, rows, k, m, accumulate)
      else {
        if (!accumulate)
          segs.forEach((s, e) => {
            if (s.rows === 0) data.fill(0, e * k * m, (e + 1) * k * m)
          })
        const products: Array<Product> = []
        segs.forEach((s, e) => {
          if (s.rows > 0)
            products.push({
              a: x.data.subarray(s.start * k, (s.start + s.rows) * k),
              b: grad.data.subarray(s.start * m, (s.start + s.rows) * m),
              out: data.subarray(e * k * m, (e + 1) * k * m),
              m: k,
              n: m,
              k: s.rows,
              transA: true,
              transB: false,
            })
        })
        bf16Products(products, lowKernel, accumulate)
      }
      if (into === undefined) dw = Tensor.fromStorage(data, w.shape, { device: w.device })
    }
    return [dx, dw]
  })
}
