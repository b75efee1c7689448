/**
 * CpuOptional: the CPU addon's kernels that older builds lack (the optimizer's AdamW and sum of
 * squares, the SwiGLU and RMSNorm backwards), each looked up at run time: undefined where the
 * addon is not built or predates the kernel, so the caller runs its TypeScript reference. The
 * kernels every build has are in Cpu.ts.
 */
import type { FloatArray } from "./Cpu.js"
import { addonIfBuilt } from "./CpuAddon.js"

/**
 * rmsnormRows' gradients (kernels/rmsnorm_backward.cc): the TypeScript loop's float64 arithmetic,
 * the same bits; undefined when the build predates the kernel (the caller runs the reference).
 * @category kernels
 */
export const rmsnormBackwardKernel = ():
  | ((x: Float32Array, w: Float32Array, g: Float32Array, rstd: Float64Array, rows: number, cols: number, dx: Float32Array | undefined, dw: Float64Array | undefined) => void)
  | undefined => {
  const loaded = addonIfBuilt()
  const kernel = loaded?.rmsnormBackward
  return kernel === undefined ? undefined : (x, w, g, rstd, rows, cols, dx, dw) => kernel.call(loaded, x, w, g, rstd, rows, cols, dx ?? null, dw ?? null)
}

/**
 * swiglu's gradients (kernels/swiglu_backward.cc): the reference's float64 arithmetic rounded
 * once (std::exp for Math.exp); undefined when the build predates the kernel (the caller runs the
 * reference then).
 * @category kernels
 */
export const swigluBackwardKernel = ():
  | ((gate: Float32Array, up: Float32Array, grad: Float32Array, dGate: Float32Array | undefined, dUp: Float32Array | undefined) => void)
  | undefined => {
  const loaded = addonIfBuilt()
  const kernel = loaded?.swigluBackward
  return kernel === undefined ? undefined : (gate, up, grad, dGate, dUp) => kernel.call(loaded, gate, up, grad, dGate ?? null, dUp ?? null)
}

/**
 * The gated MLP activation's options, as the kernels take them (tensor/ops/GatedActivation's Glu).
 * @category models
 */
export interface GluOptions {
  readonly alpha: number
  readonly offset: number
  readonly limit?: number | undefined
}

/**
 * The gated MLP activation and its gradients (kernels/gated_activation.h): the TypeScript op's
 * float64 arithmetic rounded once (std::exp or a float64 vector exponential for Math.exp: at most
 * one float32 ulp apart); undefined when the build predates them (the caller runs its loops).
 * @category kernels
 */
export const gatedActivationKernels = ():
  | {
      readonly forward: (gate: Float32Array, up: Float32Array, out: Float32Array, o: GluOptions) => void
      readonly backward: (gate: Float32Array, up: Float32Array, grad: Float32Array, dGate: Float32Array | undefined, dUp: Float32Array | undefined, o: GluOptions) => void
    }
  | undefined => {
  const loaded = addonIfBuilt()
  const forward = loaded?.gatedActivation
  const backward = loaded?.gatedActivationBackward
  if (forward === undefined || backward === undefined) return undefined
  return {
    forward: (gate, up, out, o) => forward.call(loaded, gate, up, out, o.alpha, o.offset, o.limit ?? null),
    backward: (gate, up, grad, dGate, dUp, o) => backward.call(loaded, gate, up, grad, dGate ?? null, dUp ?? null, o.alpha, o.offset, o.limit ?? null),
  }
}

/**
 * AdamW's update of one run of elements (cuda/src/kernels/adamw.h): the arithmetic of
 * Optimizer.updateRange's loop in float64, the same bits. w and g of one dtype (Float32Array or
 * Float64Array), m and v Float32Array, all of one length; c1 = 1 - beta1^t, c2 = 1 - beta2^t.
 * Undefined when the addon is not built or predates the kernel (the caller runs its loop).
 * @category kernels
 */
export const adamwKernel = ():
  | ((
      w: FloatArray,
      g: FloatArray,
      m: Float32Array,
      v: Float32Array,
      s: {
        readonly beta1: number
        readonly beta2: number
        readonly c1: number
        readonly c2: number
        readonly eps: number
        readonly lr: number
        readonly clip: number
        readonly decay: number
      },
    ) => void)
  | undefined => {
  const loaded = addonIfBuilt()
  if (loaded === undefined) return undefined
  const kernel = loaded.adamw
  return kernel === undefined ? undefined : (w, g, m, v, s) => kernel.call(loaded, w, g, m, v, s.beta1, s.beta2, s.c1, s.c2, s.eps, s.lr, s.clip, s.decay)
}

/**
 * The sum of x[i]^2 in float64 in the fixed order of cuda/src/kernels/sum_squares.h (eight
 * lanes by index mod 8, combined pairwise), the order of tensor/kernels/SumSquares.ts's loop;
 * undefined when the addon is not built or predates the kernel.
 * @category kernels
 */
export const sumSquaresKernel = (): ((x: FloatArray) => number) | undefined => {
  const loaded = addonIfBuilt()
  if (loaded === undefined) return undefined
  const kernel = loaded.sumSquares
  return kernel === undefined ? undefined : (x) => kernel.call(loaded, x)
}

/**
 * The sum of squares of each of some arrays, each in sumSquaresKernel's order (the same bits as
 * one call each), the arrays spread over the kernels' pool, the longest first; undefined when the
 * addon is not built or predates the kernel.
 * @category kernels
 */
export const sumSquaresEachKernel = (): ((xs: ReadonlyArray<FloatArray>) => Float64Array) | undefined => {
  const loaded = addonIfBuilt()
  if (loaded === undefined) return undefined
  const kernel = loaded.sumSquaresEach
  return kernel === undefined ? undefined : (xs) => kernel.call(loaded, xs)
}

/**
 * The grouped expert GEMM (kernels/grouped_matmul.h): every group's product in one call, each
 * the matmul it would be alone (the same bits as GroupedLoop's one matmul per group); undefined
 * when the addon is not built or predates the kernel.
 * @category kernels
 */
export const groupedMatmulKernels = ():
  | {
      readonly rows: (a: Float32Array, b: Float32Array, out: Float32Array, rows: Int32Array, k: number, n: number, transB: boolean) => void
      readonly weights: (a: Float32Array, c: Float32Array, out: Float32Array, rows: Int32Array, m: number, n: number, accumulate: boolean) => void
    }
  | undefined => {
  const loaded = addonIfBuilt()
  const rows = loaded?.groupedRows
  const weights = loaded?.groupedWeights
  if (rows === undefined || weights === undefined) return undefined
  return { rows: (...args) => rows.apply(loaded, args), weights: (...args) => weights.apply(loaded, args) }
}

/**
 * A parameter's initial values as float32 (kernels/normals.h): elements [first, first + count)
 * of the normal stream of `seed` times std into out[0, count); returns the offsets it left
 * undecided for the TypeScript reference to write (tensor/NormalStream.ts). marginLog2 44 in use.
 * Undefined when the addon is not built or predates the kernel.
 * @category kernels
 */
export const normalsKernel = (): ((seed: number, first: number, count: number, std: number, out: Float32Array, marginLog2: number) => ReadonlyArray<number>) | undefined => {
  const loaded = addonIfBuilt()
  const kernel = loaded?.normalsF32
  return kernel === undefined ? undefined : (seed, first, count, std, out, marginLog2) => kernel.call(loaded, seed, first, count, std, out, marginLog2)
}
