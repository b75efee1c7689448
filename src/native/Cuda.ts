/**
 * Cuda: the optional CUDA addon `pleat_cuda.node` (cuda/src/cuda_binding.cc).
 *
 * The addon is only built where nvcc exists, and only useful where a GPU and driver exist, so
 * everything here starts from `cudaStatus()`, which never throws: "not built" (no file, or it
 * failed to load) or "no device" (loaded, but the CUDA runtime found no usable GPU, e.g.
 * `cudaErrorInsufficientDriver` on a machine without a driver). GPU code paths and tests gate
 * on `available`.
 */
import * as Addon from "./Addon.js"
import * as Cpu from "./Cpu.js"
import type { Dims, GatedActivationBackwardCall, GatedActivationCall } from "./CpuAddon.js"
import type { DispatchKernels } from "./CpuDispatch.js"

/**
 * Whether the CUDA addon can run kernels here, and if not, why.
 * @category models
 */
export type CudaStatus = { readonly available: false; readonly reason: "no device" | "not built"; readonly detail: string } | { readonly available: true; readonly devices: number }

/**
 * What the CUDA runtime reports about this machine.
 * @category models
 */
export interface DeviceInfo {
  /** Usable CUDA devices (0 when the query failed). */
  readonly count: number
  /** The runtime's error for the device query ("cudaErrorNoDevice: ..."), or null. */
  readonly error: string | null
  /** CUDA runtime version linked into the addon, e.g. 13000 for 13.0. */
  readonly runtimeVersion: number
  /** Installed driver's CUDA version, 0 when there is no driver. */
  readonly driverVersion: number
  /** Each device: name, global memory in bytes, compute capability ("9.0"). */
  readonly gpus: ReadonlyArray<{ readonly index: number; readonly name: string; readonly memoryBytes: number; readonly computeCapability: string }>
}

// The raw module, as the binding exports it.
interface CudaAddon {
  deviceInfo(): DeviceInfo
  axpy(a: number, x: Float32Array, y: Float32Array): void
  deviceAllocate(bytes: number, stream: number): number | null
  deviceFree(address: number): boolean
  deviceRecordStream(address: number, stream: number): boolean
  deviceCopyIn(address: number, src: ArrayBufferView, stream: number): void
  deviceCopyOut(address: number, dst: ArrayBufferView, stream: number): void
  deviceAllocatorStats(): DeviceAllocatorStats
  gatherRows(src: Float32Array, index: Int32Array, out: Float32Array, cols: number): void
  softmaxRows(x: Float32Array, out: Float32Array, rows: number, cols: number): void
  /** CpuDispatch's permuteRows, the same arguments (cuda/src/cuda_ops_binding.cc). */
  permuteRows: DispatchKernels["permuteRows"]
  rmsnormRows(x: Float32Array, weight: Float32Array, out: Float32Array, rstd: Float64Array | null, rows: number, cols: number, eps: number): void
  swiglu(gate: Float32Array, up: Float32Array, out: Float32Array): void
  combineRows(rows: Float32Array, rowCols: number, index: Int32Array, weights: Float32Array | null, tokens: number, cols: number, out: Float32Array): void
  /** CpuDispatch's combineBackward, the same arguments (cuda/src/cuda_dispatch_binding.cc). */
  combineBackward: DispatchKernels["combineBackward"]
  adamw(w: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, ...scalars: [number, number, number, number, number, number, number, number]): void
  ropeRotate(x: Float32Array, cos: Float64Array, sin: Float64Array, out: Float32Array, b: number, s: number, heads: number, d: number, tableRows: number, sign: number): void
  swigluBackward(gate: Float32Array, up: Float32Array, grad: Float32Array, dGate: Float32Array | null, dUp: Float32Array | null): void
  rmsnormBackward(x: Float32Array, w: Float32Array, g: Float32Array, rstd: Float64Array, rows: number, cols: number, dx: Float32Array | null, dw: Float64Array | null): void
  gatedActivation: GatedActivationCall
  gatedActivationBackward: GatedActivationBackwardCall
  attentionSinksFold(out: Float32Array, lse: Float64Array, sinks: Float32Array, b: number, sq: number, hq: number, dv: number): void
  attentionSinksGradient(g: Float32Array, out: Float32Array, lse: Float64Array, sinks: Float32Array, b: number, sq: number, hq: number, dv: number, dz: Float32Array): void
  crossEntropyRowMax(x: Float32Array, rows: number, cols: number, max: Float64Array): void
  crossEntropyRowSumExp(x: Float32Array, rows: number, cols: number, max: Float64Array, sum: Float64Array): void
  crossEntropyGrad(x: Float32Array, rows: number, cols: number, logSum: Float64Array, targets: Int32Array, ignore: number, start: number, scale: number, d: Float32Array): void
  router(
    logits: Float32Array,
    tokens: number,
    experts: number,
    topk: number,
    mode: number,
    numGroups: number,
    groupTopk: number,
    bias: Float64Array | null,
    scale: number,
    indices: Int32Array,
    probs: Float32Array,
  ): void
  attention(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, lse: Float32Array | Float64Array | null, ...dims: Dims): void
  attentionBackward(
    ...args: [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array | Float64Array, Float32Array, Float32Array, Float32Array, ...Dims]
  ): void
  cublasLoad(path: string): { readonly loaded: true; readonly path: string } | { readonly loaded: false; readonly error: string }
  gemm(a: Float32Array, b: Float32Array, out: Float32Array, m: number, n: number, k: number, bf16: boolean): number
  groupedGemm(a: Float32Array, b: Float32Array, out: Float32Array, counts: Int32Array, k: number, n: number, bf16: boolean): number
}

/**
 * What the device caching allocator holds (cuda/src/device/caching_allocator.h).
 * @category models
 */
export interface DeviceAllocatorStats {
  readonly allocatedBytes: number
  readonly reservedBytes: number
  readonly peakAllocatedBytes: number
  readonly segments: number
  readonly deviceAllocations: number
  readonly deviceReleases: number
  readonly pendingBlocks: number
}

/** The router kernel's modes (ops_element.h router_token): softmax before or after the top-k, an elementwise score. */
const routerModes = { pre: 0, post: 1, sigmoid: 2, sqrtsoftplus: 3 } as const

const functions = [
  "deviceInfo",
  "axpy",
  "deviceAllocate",
  "deviceFree",
  "deviceRecordStream",
  "deviceCopyIn",
  "deviceCopyOut",
  "deviceAllocatorStats",
  "gatherRows",
  "softmaxRows",
  "permuteRows",
  "rmsnormRows",
  "swiglu",
  "adamw",
  "combineRows",
  "combineBackward",
  "ropeRotate",
  "swigluBackward",
  "rmsnormBackward",
  "gatedActivation",
  "gatedActivationBackward",
  "attentionSinksFold",
  "attentionSinksGradient",
  "crossEntropyRowMax",
  "crossEntropyRowSumExp",
  "crossEntropyGrad",
  "router",
  "attention",
  "attentionBackward",
  "cublasLoad",
  "gemm",
  "groupedGemm",
] as const

// The outcome of the one load attempt: the module, or why it could not be used.
let cached: { readonly addon: CudaAddon } | { readonly error: Addon.AddonLoadError } | undefined

const loadOnce = (): { readonly addon: CudaAddon } | { readonly error: Addon.AddonLoadError } => {
  if (cached === undefined) {
    try {
      cached = { addon: Addon.load<CudaAddon>("pleat_cuda", functions) }
    } catch (error) {
      if (!(error instanceof Addon.AddonLoadError)) throw error
      cached = { error }
    }
  }
  return cached
}

const addon = (): CudaAddon => {
  const loaded = loadOnce()
  if ("error" in loaded) throw loaded.error
  return loaded.addon
}

/**
 * Whether CUDA kernels can run here. Never throws.
 * @category guards
 */
export const cudaStatus = (): CudaStatus => {
  const loaded = loadOnce()
  if ("error" in loaded) return { available: false, reason: "not built", detail: loaded.error.message }
  const info = loaded.addon.deviceInfo()
  if (info.count > 0) return { available: true, devices: info.count }
  const detail = info.error ?? "the CUDA runtime reports 0 devices"
  return { available: false, reason: "no device", detail: `${detail} (driver ${info.driverVersion}, runtime ${info.runtimeVersion})` }
}

/**
 * The CUDA runtime's view of this machine. Throws AddonLoadError when the addon is not built.
 * @category kernels
 */
export const deviceInfo = (): DeviceInfo => addon().deviceInfo()

/**
 * `y[i] += a * x[i]` on device 0: copies x and y in, runs the kernel, copies y back (one fused
 * multiply-add per element). Throws an Error starting "no device:" without a usable GPU,
 * "CUDA error:" naming the failed call otherwise, TypeError for bad arguments.
 * @category kernels
 */
export const axpy = (a: number, x: Float32Array, y: Float32Array): void => addon().axpy(a, x, y)

/**
 * Device memory on device 0 through the caching allocator (cuda/src/device_memory_binding.cc):
 * addresses are numbers; streams are numbers (0 the compute stream, others one per group).
 * allocate gives null when the device is full even after its cache was released. Every call
 * throws an Error starting "no device:" without a usable GPU; copies are waited for.
 * @category kernels
 */
export const deviceMemory = () => {
  const a = addon()
  return {
    allocate: (bytes: number, stream: number): number | null => a.deviceAllocate(bytes, stream),
    free: (address: number): boolean => a.deviceFree(address),
    recordStream: (address: number, stream: number): boolean => a.deviceRecordStream(address, stream),
    copyIn: (address: number, src: ArrayBufferView, stream: number): void => a.deviceCopyIn(address, src, stream),
    copyOut: (address: number, dst: ArrayBufferView, stream: number): void => a.deviceCopyOut(address, dst, stream),
    stats: (): DeviceAllocatorStats => a.deviceAllocatorStats(),
  }
}

/**
 * The first CUDA kernels (cuda/src/kernels/ops_cuda.h) on host arrays, with the CPU kernels'
 * signatures (Cpu.gatherRows, Cpu.rmsnormRows, Cpu.swiglu, CpuOptional's AdamW, SwiGLU and
 * RMSNorm backwards, CpuDispatch's combineRows without its extra column and its combineBackward, CpuElementwise's RoPE,
 * CpuCrossEntropy's row kernels, and the router: moe/Router.ts's select and probsFor in one
 * kernel): copied to the device, run, copied back. The router picks the experts Router.select
 * picks and its probs are within one float ulp of probsFor's (exp's last bit). gatherRows and the
 * cross-entropy row maxima are exact, AdamW, combineRows (the MoE unpermute) and its backward
 * combineBackward, RoPE and the RMSNorm backward the same bits as the CPU; the cross-entropy sums within a few double ulp and
 * its gradient within one float ulp (exp's last bit); RMSNorm and SwiGLU forward and backward within one float
 * ulp (their float64 sums and exp differ in order or last bit). Throw
 * "no device:" without a GPU, TypeError / RangeError for bad arguments.
 * @category kernels
 */
export const deviceOps = () => {
  const a = addon()
  return {
    gatherRows: (src: Float32Array, index: Int32Array, out: Float32Array, cols: number): void => a.gatherRows(src, index, out, cols),
    /** Cpu.softmaxRows's contract: the CPU's scalar path's arithmetic, within one float ulp (exp's last bit). */
    softmaxRows: (x: Float32Array, out: Float32Array, rows: number, cols: number): void => a.softmaxRows(x, out, rows, cols),
    /**
     * CpuDispatch's permuteRows (the MoE permute) on the device: the rows of src picked by index,
     * with outCols = cols + 1 each row's prob (probs [T, E] at expert[j]) as a last column,
     * and / or into probsOut.
     */
    permuteRows: (
      src: Float32Array,
      cols: number,
      index: Int32Array,
      out: Float32Array,
      outCols: number,
      probs?: { readonly probs: Float32Array; readonly experts: Int32Array; readonly numExperts: number; readonly probsOut?: Float32Array | undefined },
    ): void => a.permuteRows(src, cols, index, out, outCols, probs?.probs ?? null, probs?.experts ?? null, probs?.numExperts ?? 0, probs?.probsOut ?? null),
    rmsnormRows: (x: Float32Array, weight: Float32Array, out: Float32Array, rstd: Float64Array | undefined, rows: number, cols: number, eps: number): void =>
      a.rmsnormRows(x, weight, out, rstd ?? null, rows, cols, eps),
    swiglu: (gate: Float32Array, up: Float32Array, out: Float32Array): void => a.swiglu(gate, up, out),
    combineRows: (rows: Float32Array, rowCols: number, index: Int32Array, weights: Float32Array | undefined, tokens: number, cols: number, out: Float32Array): void =>
      a.combineRows(rows, rowCols, index, weights ?? null, tokens, cols, out),
    /**
     * CpuDispatch's combineBackward (the MoE unpermute's backward) on the device, the same
     * arguments and the same bits: gradRows [N, cols] = g[index[j]] * weights[j], gradWeights [N]
     * = the float32 products g[index[j]] * rows[j] summed in float64 in order; either output null.
     */
    combineBackward: (...args: Parameters<DispatchKernels["combineBackward"]>): void => a.combineBackward(...args),
    adamw: (
      w: Float32Array,
      g: Float32Array,
      m: Float32Array,
      v: Float32Array,
      s: { beta1: number; beta2: number; c1: number; c2: number; eps: number; lr: number; clip: number; decay: number },
    ): void => a.adamw(w, g, m, v, s.beta1, s.beta2, s.c1, s.c2, s.eps, s.lr, s.clip, s.decay),
    ropeRotate: (
      x: Float32Array,
      cos: Float64Array,
      sin: Float64Array,
      out: Float32Array,
      dims: { readonly b: number; readonly s: number; readonly heads: number; readonly d: number; readonly tableRows: number },
      sign: 1 | -1,
    ): void => a.ropeRotate(x, cos, sin, out, dims.b, dims.s, dims.heads, dims.d, dims.tableRows, sign),
    swigluBackward: (gate: Float32Array, up: Float32Array, grad: Float32Array, dGate: Float32Array | undefined, dUp: Float32Array | undefined): void =>
      a.swigluBackward(gate, up, grad, dGate ?? null, dUp ?? null),
    rmsnormBackward: (
      x: Float32Array,
      w: Float32Array,
      g: Float32Array,
      rstd: Float64Array,
      rows: number,
      cols: number,
      dx: Float32Array | undefined,
      dw: Float64Array | undefined,
    ): void => a.rmsnormBackward(x, w, g, rstd, rows, cols, dx ?? null, dw ?? null),
    /**
     * CpuOptional.gatedActivationKernels' forward on the device (cuda/src/kernels/gated_sinks_cuda.h):
     * the gated MLP activation with Megatron-Core's options (limit null: no clamp), float64 rounded
     * once, within one float ulp of the CPU's scalar path (exp's last bit).
     */
    gatedActivation: (...args: Parameters<GatedActivationCall>): void => a.gatedActivation(...args),
    /** Its gradients (dGate or dUp null: not wanted), within one float ulp of the CPU's scalar path. */
    gatedActivationBackward: (...args: Parameters<GatedActivationBackwardCall>): void => a.gatedActivationBackward(...args),
    /**
     * AttentionSinks.fold on the device: the sink logits (float32, one per query head) folded into
     * out [b, sq, hq, dv] and lse [b, hq, sq] in place, within exp's and log's last bits of it.
     */
    attentionSinksFold: (out: Float32Array, lse: Float64Array, sinks: Float32Array, b: number, sq: number, hq: number, dv: number): void =>
      a.attentionSinksFold(out, lse, sinks, b, sq, hq, dv),
    /** AttentionSinks.gradient on the device, in its order of sums, rounded to float32 into dz [hq]. */
    attentionSinksGradient: (g: Float32Array, out: Float32Array, lse: Float64Array, sinks: Float32Array, b: number, sq: number, hq: number, dv: number, dz: Float32Array): void =>
      a.attentionSinksGradient(g, out, lse, sinks, b, sq, hq, dv, dz),
    /**
     * Router.select + Router.probsFor fused (one thread per token): `mode` "pre" (softmax over
     * all experts before the top-k), "post" (softmax over the top-k) or "sigmoid" (bias for the
     * selection only); group-limited with numGroups and groupTopk; indices [T * K] best first,
     * probs [T * E] dense, times `scale`.
     */
    router: (
      logits: Float32Array,
      dims: { readonly tokens: number; readonly experts: number },
      options: {
        readonly topk: number
        readonly mode: "pre" | "post" | "sigmoid" | "sqrtsoftplus"
        readonly numGroups?: number | undefined
        readonly groupTopk?: number | undefined
        readonly bias?: Float64Array | undefined
        readonly scale: number
      },
      indices: Int32Array,
      probs: Float32Array,
    ): void =>
      a.router(
        logits,
        dims.tokens,
        dims.experts,
        options.topk,
        routerModes[options.mode],
        options.numGroups ?? 0,
        options.groupTopk ?? 0,
        options.bias ?? null,
        options.scale,
        indices,
        probs,
      ),
    /** CpuCrossEntropy's kernels (cuda/src/kernels/cross_entropy.h) on the device. */
    crossEntropy: {
      rowMax: (x: Float32Array, rows: number, cols: number, max: Float64Array): void => a.crossEntropyRowMax(x, rows, cols, max),
      rowSumExp: (x: Float32Array, rows: number, cols: number, max: Float64Array, sum: Float64Array): void => a.crossEntropyRowSumExp(x, rows, cols, max, sum),
      grad: (x: Float32Array, rows: number, cols: number, logSum: Float64Array, targets: Int32Array, ignore: number, start: number, scale: number, d: Float32Array): void =>
        a.crossEntropyGrad(x, rows, cols, logSum, targets, ignore, start, scale, d),
    },
    /**
     * Cpu.attention and Cpu.attentionBackward on the device: every element from the definition in
     * float64 in the CPU's scalar order (within one float ulp of it); correct, not yet fast.
     */
    attention: (p: Cpu.AttentionArgs): void => a.attention(p.q, p.k, p.v, p.out, p.lse ?? null, ...Cpu.attentionDims(p)),
    attentionBackward: (p: Cpu.AttentionBackwardArgs): void => a.attentionBackward(p.q, p.k, p.v, p.out, p.gradOut, p.lse, p.gradQ, p.gradK, p.gradV, ...Cpu.attentionDims(p)),
    /** Row-major out[m, n] = a[m, k] b[k, n] through cuBLAS (loadCublas first); bf16 rounds a and b
     * to bfloat16 on the device and multiplies with fp32 accumulation. The GEMM's device ms. */
    gemm: (x: Float32Array, y: Float32Array, out: Float32Array, m: number, n: number, k: number, bf16 = false): number => a.gemm(x, y, out, m, n, k, bf16),
    /** The expert GEMM: a's rows in groups of counts[e], b [E, k, n]; out[group e] = a[group e] b[e]. Device ms. */
    groupedGemm: (x: Float32Array, y: Float32Array, out: Float32Array, counts: Int32Array, k: number, n: number, bf16 = false): number =>
      a.groupedGemm(x, y, out, counts, k, n, bf16),
  }
}

/**
 * Loads cuBLAS (dlopen, once per process) from `path`: a file (pleat doctor's cublas.path) or a
 * name the loader finds (libcublas.so.13); with a device, also makes its handle. Returns the
 * path loaded, or why not.
 * @category kernels
 */
export const loadCublas = (path: string): { readonly loaded: true; readonly path: string } | { readonly loaded: false; readonly error: string } => addon().cublasLoad(path)
