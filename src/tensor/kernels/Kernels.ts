/**
 * Kernels: the raw compute routines behind the hot tensor ops, on flat typed arrays.
 *
 * Two implementations share this interface: `Reference` (TypeScript, any dtype, the oracle and
 * the float64 verification path) and the native CPU addon for float32 (registered by
 * kernels/Native.ts when the addon loads). Ops ask `forDType` and never branch on which one
 * they got, so a CUDA set can be added the same way.
 */
import type * as DType from "../DType.js"

/**
 * A batched matrix product: out[b] = op(A[b]) x op(B[b]) (+ out[b] when `accumulate`).
 * op(A) is m x k (A stored k x m when transA), op(B) is k x n (B stored n x k when transB).
 * `strideA` / `strideB` are elements between batch entries; 0 repeats one matrix for every batch.
 * @category models
 */
export interface MatmulArgs {
  readonly a: DType.Storage
  readonly b: DType.Storage
  readonly out: DType.Storage
  readonly batch: number
  readonly m: number
  readonly n: number
  readonly k: number
  readonly transA: boolean
  readonly transB: boolean
  readonly strideA: number
  readonly strideB: number
  readonly accumulate: boolean
}

/**
 * The kernel set.
 * @category models
 */
export interface Kernels {
  readonly name: string
  readonly matmul: (args: MatmulArgs) => void
  /** out[i, :] = src[index[i], :] for rows of `cols` elements. */
  readonly gatherRows: (src: DType.Storage, index: Int32Array, out: DType.Storage, cols: number) => void
  /** out[index[i], :] += src[i, :], in increasing i (deterministic). */
  readonly scatterAddRows: (src: DType.Storage, index: Int32Array, out: DType.Storage, cols: number) => void
}

let native: Kernels | undefined

/**
 * Registers the native float32 kernels (called once the addon has loaded).
 * @category configuration
 */
export const registerNative = (kernels: Kernels | undefined): void => {
  native = kernels
}

/**
 * The kernels for a dtype: native for float32 when registered, the reference otherwise.
 * @category mapping
 */
export const forDType = (dtype: DType.DType, reference: Kernels): Kernels =>
  dtype === "float32" && native !== undefined ? native : reference
