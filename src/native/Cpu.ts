/**
 * Cpu: typed wrappers over the CPU addon `pleat_cpu.node` (cuda/src/binding.cc).
 *
 * Every kernel works zero-copy on the memory of the typed arrays it is given: a subarray view
 * is used at its byteOffset, and SharedArrayBuffer-backed arrays work the same (so ranks in
 * worker threads can run kernels on shared windows). Argument mistakes throw a TypeError
 * (RangeError for out-of-range numbers) from the addon with the function and argument named.
 * The addon picks AVX-512, AVX2+FMA or scalar code at run time; `setIsa` pins a lower one so
 * tests and benches can exercise every path on one machine.
 *
 * Tensor kernels (float32): matmul, gatherRows, scatterAddRows, softmaxRows, rmsnormRows, swiglu,
 * attention (+ backward). Wrong array types and overlapping outputs throw TypeError; lengths
 * that do not match the dims, bad dims and out-of-range indices throw RangeError, before
 * anything is written. Large kernels run on a persistent thread pool (`setThreads`);
 * `matmulAsync` / `attentionAsync` run on libuv's thread pool instead of the calling thread
 * and pay off above ASYNC_MIN_FLOPS (see `preferAsync`).
 */
import { addon, type Dims, type MatmulTuple } from "./CpuAddon.js"

/**
 * The instruction sets the kernels are written for.
 * @category models
 */
export type Isa = "avx512" | "avx2" | "scalar"

/**
 * The element types axpy accepts.
 * @category models
 */
export type FloatArray = Float32Array | Float64Array

/**
 * Any typed array (the element type does not matter to `copy`).
 * @category models
 */
export type TypedArray =
  | Int8Array
  | Uint8Array
  | Uint8ClampedArray
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array

/**
 * What the CPU supports, as seen at run time (AVX-512 includes the OS check).
 * @category models
 */
export interface CpuFeatures {
  readonly avx2: boolean
  readonly fma: boolean
  readonly avx512f: boolean
  /** Hardware threads the process may see (std::thread::hardware_concurrency). */
  readonly cores: number
}

/**
 * Result of the FMA throughput probe.
 * @category models
 */
export interface FmaPeak {
  /** fp32 GFLOP/s of all threads together (one FMA = 2 FLOP). */
  readonly gflops: number
  /** The code path that ran. */
  readonly isa: Isa
}

/**
 * A batched float32 matrix product: out[b] = op(a[b]) x op(b[b]) (+ out[b] when `accumulate`).
 * op(a) is m x k (a stored k x m when transA), op(b) is k x n (b stored n x k when transB);
 * `strideA` / `strideB` are elements between batch entries (0: one matrix for all). `out` has
 * exactly batch * m * n elements and must not overlap a or b.
 * @category models
 */
export interface MatmulArgs {
  readonly a: Float32Array
  readonly b: Float32Array
  readonly out: Float32Array
  readonly batch: number
  readonly m: number
  readonly n: number
  readonly k: number
  readonly transA: boolean
  readonly transB: boolean
  readonly strideA: number
  readonly strideB: number
  readonly accumulate: boolean
  /**
   * B (batch entry 0) stays unchanged while this generation lasts (tensor/StableWeights.ts: a
   * parameter during one rank's step), so its packed panels are kept and reused by the
   * generation's other products (kernels/packed_b_cache.h); the same bits either way.
   */
  readonly generation?: number | undefined
}

/**
 * Shape and masking of an attention call. q [b, sq, hq, d], k [b, sk, hkv, d], v [b, sk, hkv,
 * dv], out [b, sq, hq, dv], lse [b, hq, sq]; hq a multiple of hkv (query head h reads kv head
 * floor(h / (hq / hkv))). With `causal` (default true) key j is visible to query i iff
 * keyPositions[j] <= queryPositions[i] and, given queryFirstKeys, queryFirstKeys[i] <=
 * keyPositions[j] (each query's lowest visible key position: its document's first); positions
 * default to 0..S-1 and hold S (shared by the batch) or b * S entries, queryFirstKeys as
 * queryPositions. A query that sees no key outputs zeros and lse = -Infinity.
 * @category models
 */
export interface AttentionShape {
  readonly b: number
  readonly sq: number
  readonly sk: number
  readonly hq: number
  readonly hkv: number
  readonly d: number
  readonly dv: number
  /** Multiplies q . k (default 1 / sqrt(d), 1 when d = 0). */
  readonly scale?: number | undefined
  readonly causal?: boolean | undefined
  readonly queryPositions?: Int32Array | undefined
  readonly keyPositions?: Int32Array | undefined
  readonly queryFirstKeys?: Int32Array | undefined
}

/**
 * The shape part of attention arguments, fields written out (a caller swapping the operands
 * writes `{ q, k, ..., ...attentionShape(p) }`, not `{ ...p, q, k }`: scripts/check-spreads.mjs).
 * @category constructors
 */
export const attentionShape = (p: AttentionShape): AttentionShape => ({
  b: p.b,
  sq: p.sq,
  sk: p.sk,
  hq: p.hq,
  hkv: p.hkv,
  d: p.d,
  dv: p.dv,
  scale: p.scale,
  causal: p.causal,
  queryPositions: p.queryPositions,
  keyPositions: p.keyPositions,
  queryFirstKeys: p.queryFirstKeys,
})

/**
 * Attention forward: writes out and, when given, the row log-sum-exp `lse` (Float32Array or
 * Float64Array) that the backward needs.
 * @category models
 */
export interface AttentionArgs extends AttentionShape {
  readonly q: Float32Array
  readonly k: Float32Array
  readonly v: Float32Array
  readonly out: Float32Array
  readonly lse?: Float32Array | Float64Array | undefined
}

/**
 * Attention backward: given the forward's out and lse and the gradient of out, overwrites gradQ,
 * gradK, gradV (shaped like q, k, v).
 * @category models
 */
export interface AttentionBackwardArgs extends AttentionShape {
  readonly q: Float32Array
  readonly k: Float32Array
  readonly v: Float32Array
  readonly out: Float32Array
  readonly gradOut: Float32Array
  readonly lse: Float32Array | Float64Array
  readonly gradQ: Float32Array
  readonly gradK: Float32Array
  readonly gradV: Float32Array
}

/**
 * Whether OpenBLAS could be loaded for bench comparisons (never linked, never required).
 * @category models
 */
export interface OpenBlasStatus {
  readonly available: boolean
  /** The library name, or the loader's reason it is absent. */
  readonly detail: string
}

/**
 * `y[i] += a * x[i]` in place. x and y must have the same element type and length; they may be
 * the same view but must not otherwise overlap.
 *
 * Rounding: float64 is bit-identical to JS `y[i] + a * x[i]`; float32 uses one fused
 * multiply-add per element on AVX2/AVX-512 (`a` rounded to float32 first).
 * @category kernels
 */
export function axpy(a: number, x: Float32Array, y: Float32Array): void
export function axpy(a: number, x: Float64Array, y: Float64Array): void
export function axpy(a: number, x: FloatArray, y: FloatArray): void {
  addon().axpy(a, x, y)
}

/**
 * Copies the bytes of `src` into `dst` (memmove; equal byte lengths required, element types
 * may differ). The bandwidth reference of the benches.
 * @category kernels
 */
export const copy = (dst: TypedArray, src: TypedArray): void => addon().copy(dst, src)

/**
 * Measures fp32 FMA throughput for about `seconds` (0 < seconds <= 60) on `threads` OS threads
 * (1..1024). Blocks the calling thread while it runs.
 * @category kernels
 */
export const fmaPeak = (seconds: number, threads: number): FmaPeak => addon().fmaPeak(seconds, threads)

/**
 * The CPU features the kernels can use.
 * @category kernels
 */
export const cpuFeatures = (): CpuFeatures => addon().cpuFeatures()

/**
 * Pins every kernel of this process to `isa` ("auto" returns to the best one) and returns the
 * ISA now active. Throws RangeError if the CPU lacks it. Process-wide: for tests and benches.
 * @category configuration
 */
export const setIsa = (isa: Isa | "auto"): Isa => addon().setIsa(isa)

/**
 * The ISA the kernels currently dispatch to.
 * @category configuration
 */
export const activeIsa = (): Isa => addon().activeIsa()

/**
 * Sets the kernel thread pool to `n` threads (1..1024, the calling thread included) and returns
 * the count in effect. Default: the number of cores. Process-wide.
 * @category configuration
 */
export const setThreads = (n: number): number => addon().setThreads(n)

/**
 * Threads a kernel call may use.
 * @category configuration
 */
export const threads = (): number => addon().threads()

/**
 * Adds `delta` to the threads outside the kernel pool that hold a core now (the other awake
 * workers of a threads job): that many of the pool's threads step aside, between tasks, so that
 * the threads computing never outnumber the cores; a worker that sleeps gives its core back to
 * the pool (runtime/threads/KernelThreads.ts). Returns the count after the change. Process-wide.
 * @category configuration
 */
export const poolAddBusy = (delta: number): number => addon().poolAddBusy(delta)

/**
 * A matmul's arguments in the order the addon takes them.
 * @category mapping
 */
export const matmulTuple = (p: MatmulArgs): MatmulTuple => [p.a, p.b, p.out, p.batch, p.m, p.n, p.k, p.transA, p.transB, p.strideA, p.strideB, p.accumulate]

/**
 * Below this many FLOPs a kernel should run synchronously; from here on the async variant pays.
 * The async path adds a fixed 42-54 us per call on the idle 2-vCPU dev VM (17-20 us while other
 * processes keep the cores awake): libuv queues the work to a pool thread and wakes the JS loop
 * when it is done, two cross-thread wake-ups. Rule: async once the kernel itself runs at least
 * twice that overhead, so the overhead is at most half of the time the JS thread gets back for
 * other ranks' fibers. `npm run bench -- tensor` measures both ("async overhead", "async
 * break-even"): 12-18 MFLOP in three runs on the quiet machine (2-3 MFLOP on a busy one);
 * 2^24 is a 200^3 matmul.
 * @category configuration
 */
export const ASYNC_MIN_FLOPS = 2 ** 24

/**
 * FLOPs of a matmul call: 2 * batch * m * n * k.
 * @category mapping
 */
export const matmulFlops = (p: Pick<MatmulArgs, "batch" | "m" | "n" | "k">): number => 2 * p.batch * p.m * p.n * p.k

/**
 * Whether a kernel of `flops` should take the async path (see ASYNC_MIN_FLOPS).
 * @category guards
 */
export const preferAsync = (flops: number): boolean => flops >= ASYNC_MIN_FLOPS

/**
 * Batched float32 matmul on the calling thread (multi-threaded inside for large products).
 * @category kernels
 */
export const matmul = (p: MatmulArgs): void => {
  const loaded = addon()
  if (p.generation !== undefined && p.generation > 0 && loaded.matmulStable !== undefined) loaded.matmulStable(...matmulTuple(p), p.generation)
  else loaded.matmul(...matmulTuple(p))
}

/**
 * `matmul` on libuv's thread pool: resolves when out is written, rejects with the same errors
 * (argument errors throw synchronously). Do not touch the arrays until it settles. Results are
 * bit-identical to `matmul`.
 * @category kernels
 */
export const matmulAsync = (p: MatmulArgs): Promise<void> => addon().matmulAsync(...matmulTuple(p))

/**
 * out[i, :] = src[index[i], :] for rows of `cols` floats; out has index.length * cols elements.
 * An index outside src's rows throws RangeError naming it.
 * @category kernels
 */
export const gatherRows = (src: Float32Array, index: Int32Array, out: Float32Array, cols: number): void => addon().gatherRows(src, index, out, cols)

/**
 * out[index[i], :] += src[i, :] in increasing i (bit-identical to that sequential loop whatever
 * the ISA and thread count); src has index.length * cols elements.
 * @category kernels
 */
export const scatterAddRows = (src: Float32Array, index: Int32Array, out: Float32Array, cols: number): void => addon().scatterAddRows(src, index, out, cols)

/**
 * Row softmax (max-subtracted, sum in float64). out may be x itself but no other overlap.
 * @category kernels
 */
export const softmaxRows = (x: Float32Array, out: Float32Array, rows: number, cols: number): void => addon().softmaxRows(x, out, rows, cols)

/**
 * RMSNorm rows: rstd[r] = 1 / sqrt(mean(x[r, :]^2) + eps) (float64 math), out = x * rstd * weight.
 * `rstd` (rows entries) may be Float32Array or Float64Array.
 * @category kernels
 */
export const rmsnormRows = (x: Float32Array, weight: Float32Array, out: Float32Array, rstd: FloatArray, rows: number, cols: number, eps: number): void =>
  addon().rmsnormRows(x, weight, out, rstd, rows, cols, eps)

/**
 * out[i] = gate[i] * sigmoid(gate[i]) * up[i]; out may be gate or up itself.
 * @category kernels
 */
export const swiglu = (gate: Float32Array, up: Float32Array, out: Float32Array): void => addon().swiglu(gate, up, out)

/**
 * The dims arguments of an attention call, in the order both addons' bindings take them.
 * @category mapping
 */
export const attentionDims = (s: AttentionShape): Dims => [
  s.b,
  s.sq,
  s.sk,
  s.hq,
  s.hkv,
  s.d,
  s.dv,
  s.scale ?? (s.d > 0 ? 1 / Math.sqrt(s.d) : 1),
  s.causal ?? true,
  s.queryPositions ?? null,
  s.keyPositions ?? null,
  s.queryFirstKeys ?? null,
]

/**
 * Scaled dot-product attention forward (flash-style online softmax; see AttentionShape).
 * @category kernels
 */
export const attention = (p: AttentionArgs): void => addon().attention(p.q, p.k, p.v, p.out, p.lse ?? null, ...attentionDims(p))

/**
 * `attention` on libuv's thread pool; bit-identical results. Do not touch the arrays until it
 * settles.
 * @category kernels
 */
export const attentionAsync = (p: AttentionArgs): Promise<void> => addon().attentionAsync(p.q, p.k, p.v, p.out, p.lse ?? null, ...attentionDims(p))

/**
 * Attention backward (probabilities recomputed from lse; delta_i = gradOut_i . out_i).
 * @category kernels
 */
export const attentionBackward = (p: AttentionBackwardArgs): void =>
  addon().attentionBackward(p.q, p.k, p.v, p.out, p.gradOut, p.lse, p.gradQ, p.gradK, p.gradV, ...attentionDims(p))

/**
 * Whether libopenblas.so.0 loaded (bench comparisons only).
 * @category kernels
 */
export const openblasStatus = (): OpenBlasStatus => addon().openblasStatus()

/**
 * cblas_sgemm of OpenBLAS with matmul's arguments; throws when OpenBLAS is absent.
 * @category kernels
 */
export const openblasMatmul = (p: MatmulArgs): void => addon().openblasMatmul(...matmulTuple(p))

/**
 * openblas_set_num_threads; false when OpenBLAS (or that function) is absent.
 * @category configuration
 */
export const openblasSetThreads = (n: number): boolean => addon().openblasSetThreads(n)
