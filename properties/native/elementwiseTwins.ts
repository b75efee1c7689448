// The element-wise CUDA kernels (cuda/src/kernels/elementwise_cuda.cu) and their CPU twins
// (CpuElementwise: binary with the same / suffix / rows broadcasts, scale, the row and suffix
// sums), run on either executor of kernelTwins.ts: the host runs their element functions
// (elementwise_element.h) through pleat_kernel_emulation, the device the kernels through the
// CUDA addon's bindings (with narrowToFloat32, float64 to float32 as a typed array's set does, on
// the device only: its element function is one cast). No exp is involved: bit for bit on both.
// And the optimizer's sum of squares on a device, in its block order (sum_squares_element.h),
// and the bf16 rounding (round_bf16_element) against Bf16Round's rule on bit patterns.
import fc from "fast-check"
import { expect } from "vitest"
import { BroadcastKind, elementwiseKernels } from "../../src/native/CpuElementwise.js"
import { cudaArrays } from "../../src/native/CudaArrays.js"
import * as Bf16Round from "../../src/tensor/kernels/Bf16Round.js"
import { sumSquaresLoop } from "../../src/tensor/kernels/SumSquares.js"
import * as SwapDims from "../../src/tensor/kernels/SwapDims.js"
import { big, emulate, expectSame, floats, runnable, type Runnable, type Twin } from "./kernelTwins.js"

interface Case {
  readonly op: number
  readonly kind: number
  readonly rows: number
  readonly width: number
  readonly s: number
  readonly seed: number
}

const cpu = () => {
  const k = elementwiseKernels()
  if (k === undefined) throw new Error("the CPU addon's element-wise kernels are not built")
  return k
}

const device = () => {
  const a = cudaArrays()
  if ("why" in a) throw new Error(a.why)
  return a.addon
}

const elementwise: Twin<Case> = {
  name: "elementwise: binary (add, sub, mul, div) with each broadcast, scale, row sums and suffix sums: the CPU's bits",
  cases: (on) =>
    fc.record({
      op: fc.integer({ min: 0, max: 3 }),
      kind: fc.constantFrom(BroadcastKind.same, BroadcastKind.suffix, BroadcastKind.rows),
      rows: fc.integer({ min: 1, max: big(on, 120, 3000) }),
      width: fc.integer({ min: 1, max: big(on, 90, 700) }),
      s: fc.double({ min: -8, max: 8, noNaN: true }),
      seed: fc.integer(),
    }),
  check: ({ op, kind, rows, width, s, seed }, on) => {
    const n = rows * width
    const a = floats(n, seed)
    const b = floats(kind === BroadcastKind.same ? n : kind === BroadcastKind.suffix ? width : rows, seed + 1)
    const want = { binary: new Float32Array(n), scaled: new Float32Array(n), rows: new Float32Array(rows), suffix: new Float32Array(width) }
    cpu().binary(op, kind, a, b, want.binary, kind === BroadcastKind.same ? 0 : width)
    cpu().scale(a, s, want.scaled)
    cpu().sumRows(a, want.rows, width)
    cpu().sumSuffix(a, want.suffix, width)
    let got: typeof want
    if (on === "host") {
      const [binary, scaled, r, suffix] = emulate(
        "elementwise",
        [Float64Array.of(op, kind, n, width, s), a, b],
        [
          ["f32", n],
          ["f32", n],
          ["f32", rows],
          ["f32", width],
        ],
      )
      got = {
        binary: binary as Float32Array<ArrayBuffer>,
        scaled: scaled as Float32Array<ArrayBuffer>,
        rows: r as Float32Array<ArrayBuffer>,
        suffix: suffix as Float32Array<ArrayBuffer>,
      }
    } else {
      got = { binary: new Float32Array(n), scaled: new Float32Array(n), rows: new Float32Array(rows), suffix: new Float32Array(width) }
      device().elementwiseBinary(op, kind, a, b, got.binary, kind === BroadcastKind.same ? 0 : width)
      device().elementwiseScale(a, s, got.scaled)
      device().sumRows(a, got.rows, width)
      device().sumSuffix(a, got.suffix, width)
      // float64 to float32 on the device: a typed array's set (nearest even), on values that need rounding.
      const wide = Float64Array.from(a, (v, i) => v * (1 + 2 ** -30) + i * 2 ** -40)
      const narrowed = new Float32Array(n)
      device().narrowToFloat32(wide, narrowed)
      expectSame(narrowed, Float32Array.from(wide))
    }
    expectSame(got.binary, want.binary)
    expectSame(got.scaled, want.scaled)
    expectSame(got.rows, want.rows)
    expectSame(got.suffix, want.suffix)
  },
}

/**
 * The device's sum of squares order (cuda/src/kernels/sum_squares_element.h) written out here: a
 * thread t of chunk c sums x[c 4096 + t + 256 j]^2, j = 0..15; 256 thread sums are halved (s =
 * 128..1: sum[t] += sum[t + s]); the chunks' partials are summed by 256 threads the same way.
 */
const blockOrder = (x: Float32Array): number => {
  const halve = (sums: Float64Array): number => {
    for (let s = 128; s > 0; s >>= 1) for (let t = 0; t < s; t++) sums[t] = (sums[t] as number) + (sums[t + s] as number)
    return sums[0] as number
  }
  const chunks = Math.ceil(x.length / 4096)
  const partial = new Float64Array(chunks)
  const sums = new Float64Array(256)
  for (let c = 0; c < chunks; c++) {
    for (let t = 0; t < 256; t++) {
      let acc = 0
      for (let j = 0; j < 16 && c * 4096 + t + 256 * j < x.length; j++) {
        const v = x[c * 4096 + t + 256 * j] as number
        acc += v * v
      }
      sums[t] = acc
    }
    partial[c] = halve(sums)
  }
  for (let t = 0; t < 256; t++) {
    let acc = 0
    for (let i = t; i < chunks; i += 256) acc += partial[i] as number
    sums[t] = acc
  }
  return halve(sums)
}

const sumSquares: Twin<{ readonly n: number; readonly seed: number; readonly scale: number }> = {
  name: "sumSquares: the block order bit for bit (emulated and written out in TypeScript), within the rounding of either sum of SumSquares' eight lanes",
  cases: (on) =>
    fc.record({
      n: fc.oneof(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: big(on, 300_000, 3_000_000) })),
      seed: fc.integer(),
      scale: fc.constantFrom(1, 1e-20, 1e18),
    }),
  check: ({ n, seed, scale }, on) => {
    const x = floats(n, seed).map((v) => v * scale)
    const want = blockOrder(x)
    let got: number
    if (on === "host") got = (emulate("sum_squares", [Float64Array.of(n), x], [["f64", 1]])[0] as Float64Array)[0] as number
    else {
      const out = new Float64Array(3).fill(Number.NaN)
      device().sumSquares(x, out, 1)
      expect([out[0], out[2]]).toEqual([Number.NaN, Number.NaN])
      got = out[1] as number
    }
    expect(Object.is(got, want)).toBe(true)
    // Both sums add the same exact squares (a float32 squared is exact in float64): each within
    // (its longest chain of adds) x 2^-53 of the exact sum.
    const lanes = sumSquaresLoop(x)
    const chains = n / 8 + 16 + 8 + Math.ceil(n / 4096 / 256) + 8 + 2
    expect(Math.abs(got - lanes)).toBeLessThanOrEqual(chains * 2 ** -53 * lanes)
  },
}

const swapDims: Twin<{ readonly extents: ReadonlyArray<number>; readonly seed: number }> = {
  name: "swapDims: a transpose of [a, n0, b, n1, c] equals SwapDims.swapInto's copy",
  cases: (on) => fc.record({ extents: fc.array(fc.integer({ min: 0, max: big(on, 9, 40) }), { minLength: 5, maxLength: 5 }), seed: fc.integer() }),
  check: ({ extents, seed }, on) => {
    const [a, n0, b, n1, c] = extents as [number, number, number, number, number]
    const n = a * n0 * b * n1 * c
    const src = floats(n, seed)
    const want = new Float32Array(n)
    SwapDims.swapInto(src, want, { a, n0, b, n1, c })
    let got: Float32Array
    if (on === "host") got = emulate("swap_dims", [Float64Array.of(a, n0, b, n1, c), src], [["f32", n]])[0] as Float32Array
    else {
      got = new Float32Array(n)
      device().swapDims(src, got, a, n0, b, n1, c)
    }
    expectSame(got, want)
  },
}

/**
 * The float32 bit patterns that decide bf16 rounding, always first: +-0, +-Inf, NaNs (quiet and
 * signalling, payloads in either half), subnormals (the smallest, the largest, ties), the
 * largest finite values and the edge of the carry into Inf (0x7F7F7FFF stays, 0x7F7F8000
 * rounds up: an odd upper half), ties to even (0x3F808000 down, 0x3F818000 up), one either side
 * of a tie, and their negatives.
 */
const bf16Edges = ((): ReadonlyArray<number> => {
  const positive = [
    0x00000000, 0x7f800000, 0x7fc00000, 0x7f800001, 0x7f810000, 0x7fffffff, 0x7fbfffff, 0x7f80ffff, 0x7fa08000, 0x00000001, 0x00007fff, 0x00008000, 0x00018000, 0x00008001,
    0x007fffff, 0x007f8000, 0x00800000, 0x7f7fffff, 0x7f7f8000, 0x7f7f7fff, 0x7f7e8000, 0x7f7effff, 0x7f7f0000, 0x3f800000, 0x3f808000, 0x3f818000, 0x3f807fff, 0x3f808001,
    0x3f80ffff, 0x3fff8000, 0x3fffffff,
  ]
  return [...positive, ...positive.map((b) => (b | 0x80000000) >>> 0)]
})()

/**
 * n float32 bit patterns after the edges: random words, and random ones of each class (NaNs
 * with random payloads, subnormals, near the overflow threshold, exact ties).
 */
const bf16Patterns = (n: number, seed: number): Uint32Array => {
  let s = seed >>> 0 || 1
  const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0)
  const word = () => ((next() >>> 16) | (next() & 0xffff0000)) >>> 0
  const bits = new Uint32Array(bf16Edges.length + n)
  bits.set(bf16Edges)
  for (let i = bf16Edges.length; i < bits.length; i++) {
    const w = word()
    const sign = w & 0x80000000
    const kind = next() >>> 29
    bits[i] =
      kind === 0
        ? (sign | 0x7f800000 | (w & 0x007fffff) | 1) >>> 0 // NaN, payload anywhere
        : kind === 1
          ? (sign | (w & 0x007fffff)) >>> 0 // subnormal (or zero)
          : kind === 2
            ? (sign | 0x7f7f0000 | (w & 0xffff)) >>> 0 // the largest binade's last bf16 step
            : kind === 3
              ? ((w & 0xffff0000) | 0x8000) >>> 0 // an exact tie
              : w
  }
  return bits
}

/** The first index where two arrays' bits differ, as a message; "" when none. */
const bitDifference = (got: Float32Array, want: Float32Array): string => {
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length)
  const w = new Uint32Array(want.buffer, want.byteOffset, want.length)
  if (g.length !== w.length) return `lengths ${g.length} and ${w.length}`
  const hex = (b: number) => `0x${(b >>> 0).toString(16).padStart(8, "0")}`
  for (let i = 0; i < g.length; i++) if (g[i] !== w[i]) return `at ${i}: ${hex(g[i] as number)}, want ${hex(w[i] as number)}`
  return ""
}

const roundBf16: Twin<{ readonly n: number; readonly seed: number }> = {
  name: "roundBf16: float32 bit patterns (NaN payloads, +-Inf, +-0, subnormals, the overflow edge, ties) rounded to bfloat16 as Bf16Round.roundBits, bit for bit (in place too on the device)",
  cases: (on) => fc.record({ n: fc.integer({ min: 0, max: big(on, 4000, 1 << 20) }), seed: fc.integer() }),
  check: ({ n, seed }, on) => {
    const bits = bf16Patterns(n, seed)
    const src = new Float32Array(bits.buffer)
    const before = new Float32Array(bits.slice().buffer)
    const want = new Float32Array(src.length)
    Bf16Round.roundInto(src, want, "typescript")
    let got: Float32Array
    if (on === "host") got = emulate("round_bf16", [Float64Array.of(src.length), src], [["f32", src.length]])[0] as Float32Array
    else {
      got = new Float32Array(src.length)
      device().roundBf16(src, got)
      const inPlace = before.slice()
      device().roundBf16(inPlace, inPlace)
      expect(bitDifference(inPlace, want)).toBe("")
    }
    expect(bitDifference(got, want)).toBe("")
    expect(bitDifference(src, before)).toBe("")
  },
}

/** The element-wise twins, for both executors. */
export const elementwiseTwins: ReadonlyArray<Runnable> = [runnable(elementwise), runnable(sumSquares), runnable(swapDims), runnable(roundBf16)]
