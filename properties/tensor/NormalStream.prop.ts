// The parameters' initial values through the native kernel (tensor/NormalStream.ts,
// cuda/src/kernels/normals.h): `fill` on float32 storage gives the definition's bits
// (`normalsInto`, V8's Math functions) for random seeds, ranges of the stream and standard
// deviations, on one thread and on the pool; the kernel's undecided list is exactly the
// elements whose float64 value lies within its relative margin of a float32 rounding boundary
// (checked with coarse margins, 2^-26 to 2^-32, where it lists many), and `fill` with that margin still gives
// the definition's bits.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as CpuOptional from "../../src/native/CpuOptional.js"
import * as NormalStream from "../../src/tensor/NormalStream.js"

const kernel = CpuOptional.normalsKernel()

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength)

/** Whether every double within a relative `margin` of v rounds to v's float32. */
const decided = (v: number, margin: number): boolean => {
  const f = Math.fround(v)
  const d = Math.abs(v) * margin
  return Math.fround(v - d) === f && Math.fround(v + d) === f
}

const range = fc.record({
  seed: fc.integer({ min: 0, max: 0xffffffff }),
  first: fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 2 ** 33 })),
  count: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 1, max: 200_000 })),
  std: fc.oneof(fc.constantFrom(1, 0.5 / 32, 0.5 / 1024), fc.double({ min: 1e-4, max: 4, noNaN: true })),
})

describe("NormalStream", () => {
  test.skipIf(kernel === undefined)("fill on float32 gives the definition's bits, on one thread and on the pool", () => {
    expect(NormalStream.native()).toBe(true)
    fc.assert(
      fc.property(range, fc.integer({ min: 0, max: 7 }), ({ seed, first, count, std }, at) => {
        const want = new Float32Array(at + count)
        const got = new Float32Array(at + count)
        NormalStream.normalsInto(seed, first, count, std, want, at)
        NormalStream.fill(seed, first, count, std, got, at)
        expect(bytes(got).equals(bytes(want))).toBe(true)
      }),
      { numRuns: 40 },
    )
  })

  test.skipIf(kernel === undefined)("the undecided list is the elements within the margin of a rounding boundary; fill still gives the definition", () => {
    const k = kernel as NonNullable<typeof kernel>
    fc.assert(
      fc.property(range, fc.integer({ min: 26, max: 32 }), ({ seed, first, count, std }, marginLog2) => {
        const exact = new Float64Array(count)
        NormalStream.normalsInto(seed, first, count, std, exact, 0)
        const out = new Float32Array(count)
        const listed = k(seed, first, count, std, out, marginLog2)
        const expected: Array<number> = []
        exact.forEach((v, j) => {
          if (!decided(v, 2 ** -marginLog2)) expected.push(j)
        })
        expect(listed).toEqual(expected)
        // Every element the kernel decided is the definition's float32.
        const rounded = Float32Array.from(exact)
        for (const j of listed) rounded[j] = out[j] as number
        expect(bytes(out).equals(bytes(rounded))).toBe(true)
        const filled = new Float32Array(count)
        NormalStream.fill(seed, first, count, std, filled, 0, marginLog2)
        expect(bytes(filled).equals(bytes(Float32Array.from(exact)))).toBe(true)
        // A margin of 2^-26..2^-32 against float32's 2^-24 spacing: some listed, most not.
        if (count >= 100_000) expect(listed.length).toBeGreaterThan(0)
        if (count >= 1000) expect(listed.length).toBeLessThan(count / 2)
      }),
      { numRuns: 25 },
    )
  })

  test.skipIf(kernel === undefined)("the kernel refuses bad arguments, naming them", () => {
    const k = kernel as NonNullable<typeof kernel>
    expect(() => k(1, 0, 10, 1, new Float32Array(9), 44)).toThrow(/out holds 9 elements, fewer than count 10/)
    expect(() => k(1, 0, 4, 1, new Float64Array(4) as unknown as Float32Array, 44)).toThrow(/out must be a Float32Array/)
    expect(() => k(2 ** 32, 0, 4, 1, new Float32Array(4), 44)).toThrow(/seed must be an integer/)
    expect(() => k(1, 0, 4, 1, new Float32Array(4), 10)).toThrow(/marginLog2 must be in \[20, 52\]/)
    expect(() => k(1, 0, 4, Number.NaN, new Float32Array(4), 44)).toThrow(/std must be finite/)
  })
})
