/**
 * CudaArrays: device arrays of pleat_cuda.node (cuda/src/device_array_binding.cc) and the kernels
 * that take them in place of host arrays: blocks of the process GPU's caching allocator owned by
 * JS values (freed when collected; V8 is told their size), explicit copies to and from host
 * typed arrays, and the CUDA kernels and cuBLAS products with the CPU kernels' signatures
 * (Cpu.matmul's; Kernels' groupedRows, groupedWeights, gatherRows, scatterAddRows, rmsnormRows, swiglu and their
 * backwards; the gated activation and its backward; AttentionSinks' fold and gradient; Cpu.attention's and its backward's; CpuElementwise's binary, scale and sums; transposes; CpuCrossEntropy's rows;
 * AdamW and the sum of squares of the optimizer), run on the
 * arrays where they are: no copy in or out. Work is queued on the device's stream 0 in call
 * order; a copy out waits for it. The products need cuBLAS loaded (Cuda.loadCublas).
 */
import * as Addon from "./Addon.js"
import type { Dims } from "./CpuAddon.js"

/**
 * A device array's handle (an opaque JS value the addon made).
 * @category models
 */
export type DeviceHandle = { readonly __deviceArray: unique symbol }

/** An argument the CUDA kernels take: a host array or a device array. */
type F32 = Float32Array | DeviceHandle
type F64 = Float64Array | DeviceHandle

/**
 * The raw functions, as the binding exports them.
 * @category models
 */
export interface CudaArraysAddon {
  /** The process's GPU (cuda/src/device_memory_binding.cc), before its first allocation. */
  deviceSelect(index: number): number
  deviceArrayNew(length: number, dtype: "float32" | "float64"): DeviceHandle | null
  deviceArrayZero(array: DeviceHandle): void
  deviceArrayCopyIn(array: DeviceHandle, src: Float32Array | Float64Array): void
  deviceArrayCopyOut(array: DeviceHandle, dst: Float32Array | Float64Array): void
  /** The copy queued on stream 0 now; `dst` holds it when the promise resolves (the JS thread never waits). */
  deviceArrayCopyOutAsync(array: DeviceHandle, dst: Float32Array | Float64Array): Promise<void>
  deviceArrayCopy(dst: DeviceHandle, src: DeviceHandle): void
  deviceArrayCopyRange(dst: DeviceHandle, dstOffset: number, src: DeviceHandle, srcOffset: number, length: number): void
  deviceArrayAdd(a: DeviceHandle, b: DeviceHandle, out: DeviceHandle): void
  elementwiseBinary(op: number, kind: number, a: F32, b: F32, out: F32, width: number): void
  elementwiseScale(a: F32, s: number, out: F32): void
  sumRows(g: F32, out: F32, width: number): void
  sumSuffix(g: F32, out: F32, width: number): void
  narrowToFloat32(src: F64, out: F32): void
  sumSquares(x: F32, out: F64, at: number): void
  swapDims(src: F32, out: F32, a: number, n0: number, b: number, n1: number, c: number): void
  /** out = src rounded to bfloat16 (Bf16Round's rule), kept in float32; out may be src. */
  roundBf16(src: F32, out: F32): void
  adamw(w: F32, g: F32, m: F32, v: F32, beta1: number, beta2: number, c1: number, c2: number, eps: number, lr: number, clip: number, decay: number): void
  crossEntropyRowMax(x: F32, rows: number, cols: number, max: F64): void
  crossEntropyRowSumExp(x: F32, rows: number, cols: number, max: F64, sum: F64): void
  crossEntropyGrad(x: F32, rows: number, cols: number, logSum: F64, targets: Int32Array, ignore: number, start: number, scale: number, d: F32): void
  /** `bf16`: the operands rounded to bfloat16 and multiplied by bf16 GEMMs, fp32 accumulation (a bf16 run's products). */
  matmul(
    a: F32,
    b: F32,
    out: F32,
    batch: number,
    m: number,
    n: number,
    k: number,
    transA: boolean,
    transB: boolean,
    strideA: number,
    strideB: number,
    accumulate: boolean,
    bf16?: boolean,
  ): void
  groupedRows(a: F32, b: F32, out: F32, rows: Int32Array, k: number, n: number, transB: boolean, bf16?: boolean): void
  groupedWeights(a: F32, c: F32, out: F32, rows: Int32Array, m: number, n: number, accumulate: boolean, bf16?: boolean): void
  gatherRows(src: F32, index: Int32Array, out: F32, cols: number): void
  softmaxRows(x: F32, out: F32, rows: number, cols: number): void
  scatterAddRows(src: F32, index: Int32Array, out: F32, cols: number): void
  rmsnormRows(x: F32, weight: F32, out: F32, rstd: F64 | null, rows: number, cols: number, eps: number): void
  swiglu(gate: F32, up: F32, out: F32): void
  swigluBackward(gate: F32, up: F32, grad: F32, dGate: F32 | null, dUp: F32 | null): void
  rmsnormBackward(x: F32, w: F32, g: F32, rstd: F64, rows: number, cols: number, dx: F32 | null, dw: F64 | null): void
  /** The gated MLP activation with Megatron-Core's options (limit null: no clamp; cuda/src/kernels/gated_sinks_cuda.h). */
  gatedActivation(gate: F32, up: F32, out: F32, alpha: number, offset: number, limit: number | null): void
  gatedActivationBackward(gate: F32, up: F32, grad: F32, dGate: F32 | null, dUp: F32 | null, alpha: number, offset: number, limit: number | null): void
  /** AttentionSinks.fold: out [b, sq, hq, dv] and lse [b, hq, sq] folded in place with the sinks [hq]. */
  attentionSinksFold(out: F32, lse: F64, sinks: F32, b: number, sq: number, hq: number, dv: number): void
  /** AttentionSinks.gradient into dz [hq] (float32), from g and the folded out and lse. */
  attentionSinksGradient(g: F32, out: F32, lse: F64, sinks: F32, b: number, sq: number, hq: number, dv: number, dz: F32): void
  permuteRows(src: F32, cols: number, index: Int32Array, out: F32, outCols: number, probs: F32 | null, experts: Int32Array | null, numExperts: number, probsOut: F32 | null): void
  combineRows(rows: F32, rowCols: number, index: Int32Array, weights: F32 | null, tokens: number, cols: number, out: F32): void
  combineBackward(g: F32, index: Int32Array, cols: number, weights: F32, rows: F32, gradRows: F32 | null, gradWeights: F32 | null): void
  ropeRotate(x: F32, cos: F64, sin: F64, out: F32, b: number, s: number, heads: number, d: number, tableRows: number, sign: number): void
  attention(q: F32, k: F32, v: F32, out: F32, lse: F64 | null, ...dims: Dims): void
  attentionBackward(q: F32, k: F32, v: F32, out: F32, gradOut: F32, lse: F64, gradQ: F32, gradK: F32, gradV: F32, ...dims: Dims): void
}

const functions = [
  "deviceSelect",
  "deviceArrayNew",
  "deviceArrayZero",
  "deviceArrayCopyIn",
  "deviceArrayCopyOut",
  "deviceArrayCopyOutAsync",
  "deviceArrayCopy",
  "deviceArrayCopyRange",
  "deviceArrayAdd",
  "elementwiseBinary",
  "elementwiseScale",
  "sumRows",
  "sumSuffix",
  "narrowToFloat32",
  "sumSquares",
  "swapDims",
  "roundBf16",
  "adamw",
  "crossEntropyRowMax",
  "crossEntropyRowSumExp",
  "crossEntropyGrad",
  "matmul",
  "groupedRows",
  "groupedWeights",
  "gatherRows",
  "softmaxRows",
  "scatterAddRows",
  "rmsnormRows",
  "swiglu",
  "swigluBackward",
  "rmsnormBackward",
  "gatedActivation",
  "gatedActivationBackward",
  "attentionSinksFold",
  "attentionSinksGradient",
  "permuteRows",
  "combineRows",
  "combineBackward",
  "ropeRotate",
  "attention",
  "attentionBackward",
] as const

let cached: { readonly addon: CudaArraysAddon } | { readonly why: string } | undefined

/**
 * The device-array functions, or why they cannot be had (the CUDA addon not built, or built
 * before them).
 * @category constructors
 */
export const cudaArrays = (): { readonly addon: CudaArraysAddon } | { readonly why: string } => {
  if (cached === undefined) {
    try {
      cached = { addon: Addon.load<CudaArraysAddon>("pleat_cuda", functions) }
    } catch (error) {
      if (!(error instanceof Addon.AddonLoadError)) throw error
      cached = { why: error.message }
    }
  }
  return cached
}
