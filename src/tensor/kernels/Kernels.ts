/**
 * Kernels: the raw compute routines behind the hot tensor ops, on flat typed arrays.
 *
 * Two implementations share this interface: `Reference` (TypeScript, any dtype, the oracle and
 * the float64 verification path) and the native CPU addon for float32 (registered by
 * kernels/Native.ts when the addon loads). Ops ask `forDType` and never branch on which one
 * they got, so a CUDA set can be added the same way.
 */
import type * as Cpu from "../../native/Cpu.js"
import type * as DType from "../DType.js"
import { nativeKernels } from "./Native.js"

/**
 * A batched matrix product: out[b] = op(A[b]) x op(B[b]) (+ out[b] when `accumulate`).
 * op(A) is m x k (A stored k x m when transA), op(B) is k x n (B stored n x k when transB).
 * `strideA` / `strideB` are elements between batch entries; 0 repeats one matrix for every batch.
 * @category models
 */
export interface MatmulArgs extends Omit<Cpu.MatmulArgs, "a" | "b" | "out"> {
  readonly a: DType.Storage
  readonly b: DType.Storage
  readonly out: DType.Storage
}

/**
 * The kernel set.
 * @category models
 */
export interface Kernels {
  readonly name: string
  readonly matmul: (args: MatmulArgs) => void
  /**
   * The grouped expert product over G groups of consecutive rows (rows[g] each, sum N):
   * out[group g] = a[group g] x op(b[g]) with a [N, k], b [G, k, n] ([G, n, k] with transB),
   * out [N, n]; each group's product is `matmul`'s, the same bits (GroupedLoop.ts).
   */
  readonly groupedRows: (a: DType.Storage, b: DType.Storage, out: DType.Storage, rows: Int32Array, k: number, n: number, transB: boolean) => void
  /**
   * out[g] = a[group g]^T x c[group g] (+= with accumulate) with a [N, m], c [N, n], out
   * [G, m, n]; an empty group's out[g] is zeros (unchanged when accumulating).
   */
  readonly groupedWeights: (a: DType.Storage, c: DType.Storage, out: DType.Storage, rows: Int32Array, m: number, n: number, accumulate: boolean) => void
  /** out[i, :] = src[index[i], :] for rows of `cols` elements. */
  readonly gatherRows: (src: DType.Storage, index: Int32Array, out: DType.Storage, cols: number) => void
  /** out[index[i], :] += src[i, :], in increasing i (deterministic). */
  readonly scatterAddRows: (src: DType.Storage, index: Int32Array, out: DType.Storage, cols: number) => void
  /**
   * out[r, :] = softmax(x[r, :]) for `rows` rows of `cols` elements, max-subtracted so that large
   * logits do not overflow. `out` may not alias `x`.
   */
  readonly softmaxRows: (x: DType.Storage, out: DType.Storage, rows: number, cols: number) => void
  /**
   * RMSNorm of `rows` rows of `cols` elements: rstd[r] = 1 / sqrt(mean(x[r, :]^2) + eps) and
   * out[r, j] = x[r, j] * rstd[r] * weight[j]. `rstdOut` (one entry per row, kept for the
   * backward pass) is a Float64Array or storage of x's dtype; a kernel must accept both (the
   * rmsNorm op passes a Float64Array). A row of 0 columns has mean 0.
   */
  readonly rmsnormRows: (x: DType.Storage, weight: DType.Storage, out: DType.Storage, rstdOut: DType.Storage, rows: number, cols: number, eps: number) => void
  /** out[i] = silu(gate[i]) * up[i] = gate[i] * sigmoid(gate[i]) * up[i], elementwise. */
  readonly swiglu: (gate: DType.Storage, up: DType.Storage, out: DType.Storage) => void
  /**
   * rmsnormRows' gradients from the forward's float64 `rstd` and the output gradient `grad`:
   * dx[r, j] = rstd[r] * (grad[r, j] * w[j] - x[r, j] * c[r]) with
   * c[r] = rstd[r]^2 * sum_j(grad[r, j] * w[j] * x[r, j]) / cols, and dw[j] (float64) = the sum over
   * rows of grad[r, j] * x[r, j] * rstd[r]; either may be undefined (not wanted).
   */
  readonly rmsnormBackward: (
    x: DType.Storage,
    weight: DType.Storage,
    grad: DType.Storage,
    rstd: Float64Array,
    rows: number,
    cols: number,
    dx: DType.Storage | undefined,
    dw: Float64Array | undefined,
  ) => void
  /**
   * swiglu's gradients for the output gradient `grad`, with s = sigmoid(gate):
   * dGate = grad * up * s * (1 + gate * (1 - s)), dUp = grad * gate * s; either may be undefined
   * (not wanted).
   */
  readonly swigluBackward: (gate: DType.Storage, up: DType.Storage, grad: DType.Storage, dGate: DType.Storage | undefined, dUp: DType.Storage | undefined) => void
}

// The native float32 kernels are used whenever the addon loaded (Native.ts says why not when it
// did not); PLEAT_KERNELS=reference forces the TypeScript kernels everywhere, for debugging.
const registered: Kernels | undefined = process.env.PLEAT_KERNELS === "reference" ? undefined : nativeKernels

const nativeKernel = (): Kernels | undefined => registered

/**
 * The kernels for a dtype: native for float32 when registered, the reference otherwise.
 * @category mapping
 */
export const forDType = (dtype: DType.DType, reference: Kernels): Kernels => (dtype === "float32" && registered !== undefined ? registered : reference)

/**
 * The registered native float32 kernels, if any (ops with native paths outside this interface,
 * such as attention, use it to decide).
 * @category mapping
 */
export const native = (): Kernels | undefined => nativeKernel()
