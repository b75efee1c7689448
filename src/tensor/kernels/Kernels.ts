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
export interface MatmulArgs<S = DType.Storage> extends Omit<Cpu.MatmulArgs, "a" | "b" | "out"> {
  readonly a: S
  readonly b: S
  readonly out: S
}

/**
 * The kernel set, over host storage (S typed arrays, R the float64 side outputs) or, for a
 * device's kernels (device/DeviceRuntime.ts), over its device arrays.
 * @category models
 */
export interface Kernels<S = DType.Storage, R = Float64Array> {
  readonly name: string
  readonly matmul: (args: MatmulArgs<S>) => void
  /**
   * The grouped expert product over G groups of consecutive rows (rows[g] each, sum N):
   * out[group g] = a[group g] x op(b[g]) with a [N, k], b [G, k, n] ([G, n, k] with transB),
   * out [N, n]; each group's product is `matmul`'s, the same bits (GroupedLoop.ts).
   */
  readonly groupedRows: (a: S, b: S, out: S, rows: Int32Array, k: number, n: number, transB: boolean) => void
  /**
   * out[g] = a[group g]^T x c[group g] (+= with accumulate) with a [N, m], c [N, n], out
   * [G, m, n]; an empty group's out[g] is zeros (unchanged when accumulating).
   */
  readonly groupedWeights: (a: S, c: S, out: S, rows: Int32Array, m: number, n: number, accumulate: boolean) => void
  /** out[i, :] = src[index[i], :] for rows of `cols` elements. */
  readonly gatherRows: (src: S, index: Int32Array, out: S, cols: number) => void
  /** out[index[i], :] += src[i, :], in increasing i (deterministic). */
  readonly scatterAddRows: (src: S, index: Int32Array, out: S, cols: number) => void
  /**
   * out[r, :] = softmax(x[r, :]) for `rows` rows of `cols` elements, max-subtracted so that large
   * logits do not overflow. `out` may not alias `x`.
   */
  readonly softmaxRows: (x: S, out: S, rows: number, cols: number) => void
  /**
   * RMSNorm of `rows` rows of `cols` elements: rstd[r] = 1 / sqrt(mean(x[r, :]^2) + eps) and
   * out[r, j] = x[r, j] * rstd[r] * weight[j]. `rstdOut` (one entry per row, kept for the
   * backward pass) is an R (float64) or storage of x's dtype; a kernel must accept both (the
   * rmsNorm op passes an R). A row of 0 columns has mean 0.
   */
  readonly rmsnormRows: (x: S, weight: S, out: S, rstdOut: S | R, rows: number, cols: number, eps: number) => void
  /** out[i] = silu(gate[i]) * up[i] = gate[i] * sigmoid(gate[i]) * up[i], elementwise. */
  readonly swiglu: (gate: S, up: S, out: S) => void
  /**
   * rmsnormRows' gradients from the forward's float64 `rstd` and the output gradient `grad`:
   * dx[r, j] = rstd[r] * (grad[r, j] * w[j] - x[r, j] * c[r]) with
   * c[r] = rstd[r]^2 * sum_j(grad[r, j] * w[j] * x[r, j]) / cols, and dw[j] (float64) = the sum over
   * rows of grad[r, j] * x[r, j] * rstd[r]; either may be undefined (not wanted).
   */
  readonly rmsnormBackward: (x: S, weight: S, grad: S, rstd: R, rows: number, cols: number, dx: S | undefined, dw: R | undefined) => void
  /**
   * swiglu's gradients for the output gradient `grad`, with s = sigmoid(gate):
   * dGate = grad * up * s * (1 + gate * (1 - s)), dUp = grad * gate * s; either may be undefined
   * (not wanted).
   */
  readonly swigluBackward: (gate: S, up: S, grad: S, dGate: S | undefined, dUp: S | undefined) => void
}

// The native float32 kernels are used whenever the addon loaded (Native.ts says why not when it
// did not); PLEAT_KERNELS=reference forces the TypeScript kernels everywhere, for debugging.
const registered: Kernels | undefined = process.env.PLEAT_KERNELS === "reference" ? undefined : nativeKernels

const nativeKernel = (): Kernels | undefined => registered

/**
 * The products of a kernel set (matmul and the grouped expert products): what a bf16 run
 * multiplies with (kernels/Bf16Matmul.ts, DeviceKernels.bf16Products).
 * @category models
 */
export type Products<S> = Pick<Kernels<S, S>, "matmul" | "groupedRows" | "groupedWeights">

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
