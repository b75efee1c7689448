/**
 * DeviceRuntime: what a device other than the host offers the tensor layer: memory (arrays of
 * one dtype), explicit copies between host and device, and kernels over its arrays.
 *
 * A tensor on a device keeps its values in a `DeviceArray` of that device's runtime, a host copy,
 * or both (Tensor.ts: the copies are made when something needs them and counted here). Ops with
 * a device path run on the runtime's kernels (`Kernels` over device arrays, device/Place.ts), so
 * one op's code serves the host and every device; an op without one reads the host copy, which
 * is correct everywhere and shows as a download in `transfers`.
 *
 * Runtimes: `sim` (device/SimulatedRuntime.ts: separate host buffers and the CPU kernels, for
 * tests on any machine) and `cuda` (device/CudaRuntime.ts: GPU memory from the addon's caching
 * allocator, CUDA kernels and cuBLAS).
 */
import type * as Cpu from "../../native/Cpu.js"
import type * as Device from "../Device.js"
import * as DType from "../DType.js"
import type * as AdamwInto from "../kernels/AdamwInto.js"
import type { SinkDims } from "../kernels/AttentionSinks.js"
import type * as ElementwiseInto from "../kernels/ElementwiseInto.js"
import type { Kernels, Products } from "../kernels/Kernels.js"

/**
 * An array of `length` elements of `dtype` in a device's memory, freed when it is collected.
 * @category models
 */
export interface DeviceArray {
  readonly runtime: DeviceRuntime
  readonly dtype: DType.DType
  readonly length: number
}

/**
 * Copies between host and device so far (tests assert which ops stay on the device).
 * @category models
 */
export interface TransferCounts {
  uploads: number
  /** Every download, waited for or not. */
  downloads: number
  uploadedBytes: number
  downloadedBytes: number
  /** The downloads the JS thread blocked on until the device was done (`download`); `downloadAsync`'s are not. */
  waits: number
}

/**
 * A device's kernels: the host kernel set and the element-wise set (ElementwiseInto) over device
 * arrays, plus the sums, copies and fused MoE, RoPE, attention and loss kernels below.
 * @category models
 */
export interface DeviceKernels extends Kernels<DeviceArray, DeviceArray>, ElementwiseInto.ElementwiseKernels<DeviceArray> {
  /** out[i] = a[i] + b[i] (same lengths; out is a third array, or a itself: an accumulation; never b). */
  readonly add: (a: DeviceArray, b: DeviceArray, out: DeviceArray) => void
  /** CpuCrossEntropy's rowMax on float32 x (max: float64). */
  readonly crossEntropyRowMax: (x: DeviceArray, rows: number, cols: number, max: DeviceArray) => void
  /** CpuCrossEntropy's rowSumExp on float32 x (max, sum: float64). */
  readonly crossEntropyRowSumExp: (x: DeviceArray, rows: number, cols: number, max: DeviceArray, sum: DeviceArray) => void
  /** CpuCrossEntropy's grad on float32 x and d (logSum: float64; targets stay a host array). */
  readonly crossEntropyGrad: (
    x: DeviceArray,
    rows: number,
    cols: number,
    logSum: DeviceArray,
    targets: Int32Array,
    ignore: number,
    start: number,
    scale: number,
    d: DeviceArray,
  ) => void
  /** dst = src (same length), converted to dst's dtype as a typed array's `set` does (float64 to float32: to nearest even). */
  readonly copy: (src: DeviceArray, dst: DeviceArray) => void
  /** dst[dstOffset + i] = src[srcOffset + i] for i < length (one dtype; ranges inside their arrays, not overlapping when dst is src; a bucket's slices). */
  readonly copyRange: (src: DeviceArray, srcOffset: number, dst: DeviceArray, dstOffset: number, length: number) => void
  /** The MoE permute (CpuDispatch.permuteRows' contract; indices and experts stay host arrays). */
  readonly permuteRows: (
    src: DeviceArray,
    cols: number,
    index: Int32Array,
    out: DeviceArray,
    outCols: number,
    probs: DeviceArray | null,
    experts: Int32Array | null,
    numExperts: number,
    probsOut: DeviceArray | null,
  ) => void
  /** The MoE unpermute (CpuDispatch.combineRows' contract without its extra column). */
  readonly combineRows: (rows: DeviceArray, rowCols: number, index: Int32Array, weights: DeviceArray | null, tokens: number, cols: number, out: DeviceArray) => void
  /** The unpermute's backward (CpuDispatch.combineBackward's contract). */
  readonly combineBackward: (
    g: DeviceArray,
    index: Int32Array,
    cols: number,
    weights: DeviceArray,
    rows: DeviceArray,
    gradRows: DeviceArray | null,
    gradWeights: DeviceArray | null,
  ) => void
  /** RoPE's rotation (kernels/RopeRotate.ts's contract), float64 cos / sin tables on the device. */
  readonly rope: (src: DeviceArray, cos: DeviceArray, sin: DeviceArray, out: DeviceArray, dims: RopeDims, sign: 1 | -1) => void
  /** dst = the bf16 rounding of src (Bf16Round's rule, bit for bit; float32; dst may be src). */
  readonly roundBf16: (src: DeviceArray, dst: DeviceArray) => void
  /**
   * The products of a bf16 run (Bf16Matmul) on bf16 values in float32 arrays, fp32 accumulation:
   * sim, the host's (Bf16Matmul.hostProducts: the host's bits); cuda, cuBLAS's fp32 products (the
   * same exact products, summed in cuBLAS's order).
   */
  readonly bf16Products: Products<DeviceArray>
  /** AdamwInto.adamwInto's update in place (w, g, m, v float32 of one length): the optimizer on the device. */
  readonly adamw: (w: DeviceArray, g: DeviceArray, m: DeviceArray, v: DeviceArray, s: AdamwInto.AdamwScalars) => void
  /**
   * out[at] = the float64 sum of x[i]^2 (out: float64), left on the device (the gradient norm).
   * sim: SumSquares' order, the host's bits; cuda: its block order (sum_squares_cuda.h), within
   * a few ulps of it times the log of the length.
   */
  readonly sumSquares: (x: DeviceArray, out: DeviceArray, at: number) => void
  /** Cpu.attention's contract on float32 device arrays (lse: float64). */
  readonly attention: (p: DeviceAttentionArgs) => void
  /** Cpu.attentionBackward's contract on float32 device arrays (lse: float64). */
  readonly attentionBackward: (p: DeviceAttentionBackwardArgs) => void
  /** kernels/GatedInto's gatedInto (the gated MLP activation with Megatron-Core's options: GatedActivation.Glu). */
  readonly gatedActivation: (gate: DeviceArray, up: DeviceArray, out: DeviceArray, glu: GatedOptions) => void
  /** kernels/GatedInto's gatedBackwardInto (dGate or dUp undefined: not wanted). */
  readonly gatedActivationBackward: (gate: DeviceArray, up: DeviceArray, dy: DeviceArray, dGate: DeviceArray | undefined, dUp: DeviceArray | undefined, glu: GatedOptions) => void
  /** AttentionSinks.fold: the sinks [hq] folded into an attention's out and lse (float64) in place. */
  readonly sinksFold: (out: DeviceArray, lse: DeviceArray, sinks: DeviceArray, dims: SinkDims) => void
  /** AttentionSinks.gradient into dz ([hq], the sinks' dtype) from the output's gradient g and the folded out and lse. */
  readonly sinksGradient: (g: DeviceArray, out: DeviceArray, lse: DeviceArray, sinks: DeviceArray, dims: SinkDims, dz: DeviceArray) => void
}

/**
 * The gated activation's options as the device kernels take them (GatedActivation.Glu's fields).
 * @category models
 */
export interface GatedOptions {
  readonly alpha: number
  readonly offset: number
  readonly limit?: number | undefined
}

/**
 * Cpu.AttentionArgs over device arrays.
 * @category models
 */
export interface DeviceAttentionArgs extends Cpu.AttentionShape {
  readonly q: DeviceArray
  readonly k: DeviceArray
  readonly v: DeviceArray
  readonly out: DeviceArray
  readonly lse: DeviceArray
}

/**
 * Cpu.AttentionBackwardArgs over device arrays.
 * @category models
 */
export interface DeviceAttentionBackwardArgs extends DeviceAttentionArgs {
  readonly gradOut: DeviceArray
  readonly gradQ: DeviceArray
  readonly gradK: DeviceArray
  readonly gradV: DeviceArray
}

/**
 * What native code beside the kernels (the NCCL backend's calls) reads and writes in place for an
 * array: `host`, the buffer behind a simulated array; `cuda`, the addon's handle of a block of GPU
 * memory. No copy is made, and none is counted.
 * @category models
 */
export type InPlace = { readonly memory: "host"; readonly data: DType.Storage } | { readonly memory: "cuda"; readonly handle: unknown }

/**
 * A device's memory as its runtime holds it, in bytes: in arrays not yet collected, the most
 * that ever were, and what the runtime holds from the device (those arrays and its cache).
 * @category models
 */
export interface MemoryUse {
  readonly allocatedBytes: number
  readonly peakAllocatedBytes: number
  readonly reservedBytes: number
}

/**
 * A device's runtime.
 * @category models
 */
export interface DeviceRuntime {
  readonly device: Device.Device
  /** A new array, uninitialised. */
  readonly allocate: (dtype: DType.DType, length: number) => DeviceArray
  /** A new array of zeros. */
  readonly zeros: (dtype: DType.DType, length: number) => DeviceArray
  /** A new array holding a copy of `host`. */
  readonly upload: (host: DType.Storage) => DeviceArray
  /** Copies `array` into `into` (same dtype and length), when the device has finished writing it. */
  readonly download: (array: DeviceArray, into: DType.Storage) => void
  /**
   * Copies `array` as it is now (after every call queued before this one, before any queued
   * after) into `into`, which holds it when the promise resolves: the JS thread does not wait.
   */
  readonly downloadAsync: (array: DeviceArray, into: DType.Storage) => Promise<void>
  /**
   * A copy of `array`, an array of another device of this kind, made device to device (no trip
   * through the host); absent where the runtime has no peer (CUDA: one GPU a process).
   */
  readonly copyFromPeer?: (array: DeviceArray) => DeviceArray
  /** The array as native code outside the kernels takes it (InPlace). */
  readonly inPlace: (array: DeviceArray) => InPlace
  readonly kernels: DeviceKernels
  readonly transfers: TransferCounts
  /** The device's memory now (a runtime that cannot tell has none). */
  readonly memory?: () => MemoryUse
}

/**
 * Whether `x` is a device array rather than host storage.
 * @category guards
 */
export const isDeviceArray = (x: DType.Storage | DeviceArray): x is DeviceArray => !ArrayBuffer.isView(x)

/**
 * Fresh counters.
 * @category constructors
 */
export const noTransfers = (): TransferCounts => ({ uploads: 0, downloads: 0, uploadedBytes: 0, downloadedBytes: 0, waits: 0 })

/**
 * The shape of a RoPE rotation: x [b, s, heads, d], tables of `tableRows` rows (s or b * s).
 * @category models
 */
export interface RopeDims {
  readonly b: number
  readonly s: number
  readonly heads: number
  readonly d: number
  readonly tableRows: number
}

/**
 * A device copy of `host`: made as zeros on the device, with no upload, when every element of
 * `host` is +0 (its bytes all zero: a fresh run's AdamW moments), else uploaded.
 * @category constructors
 */
export const uploadedOrZeros = (runtime: DeviceRuntime, host: DType.Storage): DeviceArray => {
  const words = new Uint8Array(host.buffer, host.byteOffset, host.byteLength)
  return words.every((b) => b === 0) ? runtime.zeros(DType.of(host), host.length) : runtime.upload(host)
}

/**
 * A device array's values in new host storage (one download, counted by its runtime).
 * @category mapping
 */
export const downloaded = (array: DeviceArray): DType.Storage => {
  const host = DType.allocateUninitialized(array.dtype, array.length)
  array.runtime.download(array, host)
  return host
}

/**
 * `downloaded` without blocking the JS thread: the values as they are at the call.
 * @category mapping
 */
export const downloadedAsync = async (array: DeviceArray): Promise<DType.Storage> => {
  const host = DType.allocateUninitialized(array.dtype, array.length)
  await array.runtime.downloadAsync(array, host)
  return host
}
