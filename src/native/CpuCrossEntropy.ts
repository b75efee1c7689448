/**
 * CpuCrossEntropy: the cross-entropy kernels of the CPU addon (cuda/src/kernels/cross_entropy.h)
 * over rows of float32 logits: each row's max, the sum of exp(x - max), and the gradient. They
 * compute in float64 in the TypeScript loops' order (std::exp for Math.exp: at most a double's
 * last bit apart), split over the kernel threads. Undefined where the build lacks them (the
 * callers' loops run then).
 */
import { addonIfBuilt } from "./CpuAddon.js"

/**
 * The kernels (x is rows x cols, row-major).
 * @category models
 */
export interface CrossEntropyKernels {
  /** max[r] = the largest x[r, j] (NaN if any is NaN). */
  readonly rowMax: (x: Float32Array, rows: number, cols: number, max: Float64Array) => void
  /** sum[r] = the sum over j ascending of exp(x[r, j] - max[r]). */
  readonly rowSumExp: (x: Float32Array, rows: number, cols: number, max: Float64Array, sum: Float64Array) => void
  /**
   * d[r, j] = scale * (exp(x[r, j] - logSum[r]) - (start + j === targets[r] ? 1 : 0)); rows whose
   * target is `ignore` get zeros.
   */
  readonly grad: (x: Float32Array, rows: number, cols: number, logSum: Float64Array, targets: Int32Array, ignore: number, start: number, scale: number, d: Float32Array) => void
}

interface CrossEntropyAddon {
  crossEntropyRowMax?(x: Float32Array, rows: number, cols: number, max: Float64Array): void
  crossEntropyRowSumExp?(x: Float32Array, rows: number, cols: number, max: Float64Array, sum: Float64Array): void
  crossEntropyGrad?(x: Float32Array, rows: number, cols: number, logSum: Float64Array, targets: Int32Array, ignore: number, start: number, scale: number, d: Float32Array): void
}

let cached: CrossEntropyKernels | null | undefined

/**
 * The kernels when the addon has them (looked up once); undefined otherwise.
 * @category kernels
 */
export const crossEntropyKernels = (): CrossEntropyKernels | undefined => {
  if (cached === undefined) {
    const loaded = addonIfBuilt() as CrossEntropyAddon | undefined
    const { crossEntropyRowMax: rowMax, crossEntropyRowSumExp: rowSumExp, crossEntropyGrad: grad } = loaded ?? {}
    cached =
      loaded === undefined || rowMax === undefined || rowSumExp === undefined || grad === undefined
        ? null
        : {
            rowMax: (...args) => rowMax.apply(loaded, args),
            rowSumExp: (...args) => rowSumExp.apply(loaded, args),
            grad: (...args) => grad.apply(loaded, args),
          }
  }
  return cached ?? undefined
}
