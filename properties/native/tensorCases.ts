/**
 * Helpers for the tensor-kernel suites: deterministic data from a seed (fast-check shrinks the
 * seed and the shape, not thousands of floats), float32 views placed in guarded plain or shared
 * buffers, the ISA x thread-count matrix, and tolerance checks that scale with the terms.
 */
import fc from "fast-check"
import * as Cpu from "../../src/native/Cpu.js"
import { type Placement, GUARD, guardsIntact, placement } from "./arbitraries.js"

export { guardsIntact, placement }
export type { Placement }

const features = Cpu.cpuFeatures()

/** Every ISA this CPU runs, best first. */
export const isas: ReadonlyArray<Cpu.Isa> = [...(features.avx512f ? (["avx512"] as const) : []), ...(features.avx2 && features.fma ? (["avx2"] as const) : []), "scalar"]

/** Each ISA with 1 thread and with 2 threads. */
export const configs: ReadonlyArray<readonly [Cpu.Isa, number]> = isas.flatMap((isa) => [[isa, 1] as const, [isa, 2] as const])

/** Pins the ISA and thread count for a test. */
export const pin = (isa: Cpu.Isa, threads: number): void => {
  Cpu.setIsa(isa)
  Cpu.setThreads(threads)
}

/** Back to the defaults. */
export const unpin = (): void => {
  Cpu.setIsa("auto")
  Cpu.setThreads(features.cores)
}

/** A small deterministic generator (mulberry32): uniform in [lo, hi). */
export const random = (seed: number): ((lo?: number, hi?: number) => number) => {
  let s = seed >>> 0
  return (lo = -1, hi = 1) => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296
    return lo + (hi - lo) * u
  }
}

/** n values from rng, rounded to float32 (so float64 references see exactly the same inputs). */
export const values = (rng: () => number, n: number): Float64Array => {
  const out = new Float64Array(n)
  for (let i = 0; i < n; i++) out[i] = Math.fround(rng())
  return out
}

/** A Float32Array view holding `data`, with GUARD elements around it in a plain or shared buffer. */
export const place32 = (data: ArrayLike<number>, at: Placement): Float32Array => {
  const total = at.before + data.length + at.after
  const buffer = at.shared ? new SharedArrayBuffer(total * 4) : new ArrayBuffer(total * 4)
  const full = new Float32Array(buffer)
  full.fill(GUARD)
  const view = full.subarray(at.before, at.before + data.length)
  view.set(data)
  return view
}

/** The same for Int32Array (guards are -12345; kernels only read index arrays). */
export const placeI32 = (data: ArrayLike<number>, at: Placement): Int32Array => {
  const total = at.before + data.length + at.after
  const buffer = at.shared ? new SharedArrayBuffer(total * 4) : new ArrayBuffer(total * 4)
  const full = new Int32Array(buffer).fill(-12345)
  const view = full.subarray(at.before, at.before + data.length)
  view.set(data)
  return view
}

/** A Float64Array copy of a float32 view (the reference's input). */
export const wide = (x: ArrayLike<number>): Float64Array => Float64Array.from(x)

/**
 * Throws with the first element where |got - want| > rel * bound[i] + abs (bound defaults to
 * |want|). NaN must meet NaN.
 */
export const expectClose = (what: string, got: ArrayLike<number>, want: ArrayLike<number>, rel: number, bound?: ArrayLike<number>, abs = 0): void => {
  if (got.length !== want.length) throw new Error(`${what}: length ${got.length}, want ${want.length}`)
  for (let i = 0; i < want.length; i++) {
    const g = got[i] as number
    const w = want[i] as number
    if (Number.isNaN(w) ? Number.isNaN(g) : g === w) continue
    const limit = rel * Math.abs(bound === undefined ? w : (bound[i] as number)) + abs
    if (!(Math.abs(g - w) <= limit)) {
      throw new Error(`${what}[${i}]: got ${g}, want ${w} (|diff| ${Math.abs(g - w)} > ${limit})`)
    }
  }
}

/** Throws unless the arrays are equal element for element (Object.is: signed zeros, NaN). */
export const expectSame = (what: string, got: ArrayLike<number>, want: ArrayLike<number>): void => {
  if (got.length !== want.length) throw new Error(`${what}: length ${got.length}, want ${want.length}`)
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i])) throw new Error(`${what}[${i}]: got ${got[i]}, want ${want[i]}`)
  }
}

/** Sizes biased to the edges: 0, 1, around the vector widths and register tiles, odd sizes. */
export const dim = (max: number): fc.Arbitrary<number> =>
  fc.oneof(fc.constantFrom(...[0, 1, 2, 5, 6, 7, 8, 9, 13, 14, 15, 16, 17, 31, 32, 33, 47, 48, 49].filter((v) => v <= max)), fc.integer({ min: 0, max }))

/**
 * A batched matmul case: sizes, transposes, batch strides (pad: extra elements between batch
 * entries; -1 for stride 0, one matrix shared by the batch), accumulate, and a data seed.
 */
export interface MatmulShape {
  readonly batch: number
  readonly m: number
  readonly n: number
  readonly k: number
  readonly transA: boolean
  readonly transB: boolean
  readonly padA: number
  readonly padB: number
  readonly accumulate: boolean
  readonly seed: number
}

/** The batch stride of a matrix of `size` elements with `pad` (see MatmulShape). */
export const stride = (size: number, pad: number): number => (pad < 0 ? 0 : size + pad)

/** Elements a batch of matrices takes with stride `s`. */
export const extent = (batch: number, size: number, s: number): number => (batch === 0 ? 0 : (batch - 1) * s + size)

/** Random matmul cases with m, n, k up to the given sizes (dims biased to the edges by `dim`). */
export const matmulShape = (maxM: number, maxN: number, maxK: number): fc.Arbitrary<MatmulShape> =>
  fc.record({
    batch: fc.integer({ min: 0, max: 3 }),
    m: dim(maxM),
    n: dim(maxN),
    k: dim(maxK),
    transA: fc.boolean(),
    transB: fc.boolean(),
    padA: fc.integer({ min: -1, max: 3 }),
    padB: fc.integer({ min: -1, max: 3 }),
    accumulate: fc.boolean(),
    seed: fc.integer(),
  })
