/**
 * Cpu: typed wrappers over the CPU addon `pleat_cpu.node` (cuda/src/binding.cc).
 *
 * Every kernel works zero-copy on the memory of the typed arrays it is given: a subarray view
 * is used at its byteOffset, and SharedArrayBuffer-backed arrays work the same (so ranks in
 * worker threads can run kernels on shared windows). Argument mistakes throw a TypeError
 * (RangeError for out-of-range numbers) from the addon with the function and argument named.
 * The addon picks AVX-512, AVX2+FMA or scalar code at run time; `setIsa` pins a lower one so
 * tests and benches can exercise every path on one machine.
 */
import * as Addon from "./Addon.js"

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

// The raw module, as the binding exports it.
interface CpuAddon {
  axpy(a: number, x: FloatArray, y: FloatArray): void
  copy(dst: TypedArray, src: TypedArray): void
  fmaPeak(seconds: number, threads: number): FmaPeak
  cpuFeatures(): CpuFeatures
  setIsa(isa: Isa | "auto"): Isa
  activeIsa(): Isa
}

const functions = ["axpy", "copy", "fmaPeak", "cpuFeatures", "setIsa", "activeIsa"] as const

let cached: CpuAddon | undefined

// Loaded on first use, so importing this module never fails on a machine without the build.
const addon = (): CpuAddon => (cached ??= Addon.load<CpuAddon>("pleat_cpu", functions))

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
