/**
 * CpuAddon: the raw CPU addon `pleat_cpu.node` as the binding exports it, loaded on first use,
 * so importing the typed wrappers (Cpu.ts) never fails on a machine without the build. Every
 * function is checked at load, so a stale build fails with "run npm run build:native".
 */
import * as Addon from "./Addon.js"
import type { CpuFeatures, FloatArray, FmaPeak, Isa, OpenBlasStatus, TypedArray } from "./Cpu.js"
import type { PoolProbe } from "./PoolProbe.js"
import type { Bf16Path } from "./CpuBf16.js"
import type { DeviceAllocatorStats } from "./Cuda.js"

/** Query or key positions or query first keys, or null for the default. */
export type Positions = Int32Array | null
/** matmul's positional arguments. */
export type MatmulTuple = [Float32Array, Float32Array, Float32Array, number, number, number, number, boolean, boolean, number, number, boolean]
/** attention's positional dims: b, sq, sk, hq, hkv, d, dv, scale, causal, queryPositions, keyPositions, queryFirstKeys. */
export type Dims = [number, number, number, number, number, number, number, number, boolean, Positions, Positions, Positions]

/** The raw module, as the binding exports it. */
export interface CpuAddon {
  axpy(a: number, x: FloatArray, y: FloatArray): void
  copy(dst: TypedArray, src: TypedArray): void
  fmaPeak(seconds: number, threads: number): FmaPeak
  cpuFeatures(): CpuFeatures
  setIsa(isa: Isa | "auto"): Isa
  activeIsa(): Isa
  setThreads(n: number): number
  threads(): number
  poolAddBusy(delta: number): number
  /** Optional: the bytes free in the C heap (mallinfo2), absent from builds older than it. */
  heapFreeBytes?(): number
  /** Optional: who runs a job of sleeping tasks (kernels/pool_probe.h), absent from builds older than it. */
  poolProbe?(tasks: number, micros: number): PoolProbe
  matmul(...args: MatmulTuple): void
  matmulAsync(...args: MatmulTuple): Promise<void>
  /** Optional: matmul with B's panels kept for a generation (kernels/packed_b_cache.h), absent from builds older than it. */
  matmulStable?(...args: [...MatmulTuple, number]): void
  nextGeneration?(): number
  retireGeneration?(generation: number): void
  clearPackedWeights?(): void
  packedWeightsStats?(): PackedWeightsStats
  gatherRows(src: Float32Array, index: Int32Array, out: Float32Array, cols: number): void
  scatterAddRows(src: Float32Array, index: Int32Array, out: Float32Array, cols: number): void
  softmaxRows(x: Float32Array, out: Float32Array, rows: number, cols: number): void
  rmsnormRows(x: Float32Array, weight: Float32Array, out: Float32Array, rstd: FloatArray, rows: number, cols: number, eps: number): void
  swiglu(gate: Float32Array, up: Float32Array, out: Float32Array): void
  attention(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, lse: FloatArray | null, ...dims: Dims): void
  attentionAsync(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, lse: FloatArray | null, ...dims: Dims): Promise<void>
  attentionBackward(...args: [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, FloatArray, Float32Array, Float32Array, Float32Array, ...Dims]): void
  openblasStatus(): OpenBlasStatus
  openblasMatmul(...args: MatmulTuple): void
  openblasSetThreads(n: number): boolean
  /** Optional: a build older than the bf16 kernel lacks it (callers fall back to TypeScript). */
  roundBf16?(src: Float32Array, dst: Float32Array, path: Bf16Path | "auto"): Bf16Path
  bf16Hardware?(): boolean
  /** Optional: AdamW over a run of elements (kernels/adamw.h), absent from builds older than it. */
  adamw?(w: FloatArray, g: FloatArray, m: Float32Array, v: Float32Array, ...scalars: AdamwScalars): void
  /** Optional: the sum of squares in a fixed order (kernels/sum_squares.h), absent from builds older than it. */
  sumSquares?(x: FloatArray): number
  /** Optional: sumSquares of each array, the arrays over the kernels' pool (kernels/sum_squares.h), absent from builds older than it. */
  sumSquaresEach?(xs: ReadonlyArray<FloatArray>): Float64Array
  /** Optional: a parameter's initial values as float32 (kernels/normals.h), absent from builds older than it. */
  normalsF32?(seed: number, first: number, count: number, std: number, out: Float32Array, marginLog2: number): ReadonlyArray<number>
  /** Optional: rmsnormRows' gradients (kernels/rmsnorm_backward.cc), absent from builds older than it. */
  rmsnormBackward?(x: Float32Array, w: Float32Array, g: Float32Array, rstd: Float64Array, rows: number, cols: number, dx: Float32Array | null, dw: Float64Array | null): void
  /** Optional: swiglu's gradients (kernels/swiglu_backward.cc), absent from builds older than it. */
  swigluBackward?(gate: Float32Array, up: Float32Array, grad: Float32Array, dGate: Float32Array | null, dUp: Float32Array | null): void
  /** Optional: the gated MLP activation and its gradients (kernels/gated_activation.h), absent from builds older than it. */
  gatedActivation?: GatedActivationCall
  gatedActivationBackward?: GatedActivationBackwardCall
  /** Optional: the grouped expert GEMM (kernels/grouped_matmul.h), absent from builds older than it. */
  groupedRows?(a: Float32Array, b: Float32Array, out: Float32Array, rows: Int32Array, k: number, n: number, transB: boolean): void
  groupedWeights?(a: Float32Array, c: Float32Array, out: Float32Array, rows: Int32Array, m: number, n: number, accumulate: boolean): void
  /** Optional: the bf16 GEMM (AVX512-BF16), absent from builds older than it. */
  matmulBf16?(...args: MatmulTuple): void
  matmulBf16Async?(...args: MatmulTuple): Promise<void>
  /** Optional: the device caching allocator over a simulated device (SimulatedDevice.ts). */
  SimulatedDeviceAllocator?: new (
    capacityBytes: number,
  ) => SimulatedDeviceAllocator
  /** Optional: loads a GPU library by path for `pleat doctor` (GpuLibraryProbe.ts). */
  probeGpuLibrary?(path: string, kind: "nccl" | "cublas", symbols: ReadonlyArray<string>): GpuLibraryProbe
  /** Optional: the process's last word on a signal while native code holds the main thread (SignalNet.ts). */
  signalNetArm?(prefix: string, graceMs: number, signals: ReadonlyArray<number>): Array<number>
  signalNetSeen?(): void
  signalNetDescribe?(text: string): void
  signalNetDisarm?(): void
  exitWithin?(code: number, ms: number): boolean
}

/**
 * The gated MLP activation as the addons take it (the CPU's kernels/gated_activation.h, the GPU's
 * kernels/gated_sinks_cuda.h): Megatron-Core's options, limit null for no clamp.
 * @category models
 */
export type GatedActivationCall = (gate: Float32Array, up: Float32Array, out: Float32Array, alpha: number, offset: number, limit: number | null) => void

/**
 * Its gradients (dGate or dUp null: not wanted).
 * @category models
 */
export type GatedActivationBackwardCall = (
  gate: Float32Array,
  up: Float32Array,
  grad: Float32Array,
  dGate: Float32Array | null,
  dUp: Float32Array | null,
  alpha: number,
  offset: number,
  limit: number | null,
) => void

/**
 * What loading a GPU library told: dlerror's text when it did not load, its version code, the
 * asked entry points it lacks.
 * @category models
 */
export interface GpuLibraryProbe {
  readonly error: string | null
  readonly version: number | null
  readonly missing: ReadonlyArray<string>
}

/**
 * The device caching allocator (cuda/src/device/caching_allocator.h) over a simulated device:
 * addresses are numbers, never dereferenced.
 * @category models
 */
export interface SimulatedDeviceAllocator {
  allocate(bytes: number, stream: number): number | null
  free(address: number): boolean
  recordStream(address: number, stream: number): boolean
  /** Marks every event recorded on `stream` so far as done. */
  completeStream(stream: number): void
  emptyCache(): void
  /** The rounded size of a live block, 0 for any other address. */
  blockSize(address: number): number
  stats(): SimulatedDeviceStats
}

/**
 * What the allocator (the counters of Cuda.DeviceAllocatorStats) and its simulated device hold.
 * @category models
 */
export interface SimulatedDeviceStats extends DeviceAllocatorStats {
  readonly deviceUsedBytes: number
  readonly liveEvents: number
}

/**
 * What the packed-weights cache holds (kernels/packed_b_cache.h): entries, bytes, and the
 * panels built and reused since the process started.
 * @category models
 */
export interface PackedWeightsStats {
  readonly entries: number
  readonly bytes: number
  readonly builds: number
  readonly hits: number
}

/** beta1, beta2, c1 = 1 - beta1^t, c2 = 1 - beta2^t, eps, lr, clip scale, weight decay. */
type AdamwScalars = [number, number, number, number, number, number, number, number]

const functions = [
  "axpy",
  "copy",
  "fmaPeak",
  "cpuFeatures",
  "setIsa",
  "activeIsa",
  "setThreads",
  "threads",
  "poolAddBusy",
  "matmul",
  "matmulAsync",
  "gatherRows",
  "scatterAddRows",
  "softmaxRows",
  "rmsnormRows",
  "swiglu",
  "attention",
  "attentionAsync",
  "attentionBackward",
  "openblasStatus",
  "openblasMatmul",
  "openblasSetThreads",
] as const

let cached: CpuAddon | undefined

// Loaded on first use, so importing this module never fails on a machine without the build.
/** The loaded module (loaded on first use). */
export const addon = (): CpuAddon => (cached ??= Addon.load<CpuAddon>("pleat_cpu", functions))

/**
 * The addon, or undefined when it is not built (for the optional kernels, whose callers then
 * fall back to TypeScript).
 * @category constructors
 */
export const addonIfBuilt = (): CpuAddon | undefined => {
  try {
    return addon()
  } catch {
    return undefined
  }
}
