// The sum of squares of the gradient norm and the non-finite check (tensor/kernels/SumSquares):
// the native kernel gives the same bits as the loop that specifies its order, on random
// float32 and float64 runs of every length (below and above eight lanes and the native
// threshold) at random offsets into larger arrays; it equals the exact sum to float64 rounding;
// a NaN or an infinity anywhere makes it non-finite. Many arrays at once (sumSquaresEach, the
// arrays over the kernels' pool, longest first, past 1 MiB in all) give each array's own bits,
// in the arrays' order, a non-finite sum only where that array holds a non-finite element.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as CpuOptional from "../../src/native/CpuOptional.js"
import { sumSquares, sumSquaresEach, sumSquaresLoop } from "../../src/tensor/kernels/SumSquares.js"

const kernel = CpuOptional.sumSquaresKernel()
const eachKernel = CpuOptional.sumSquaresEachKernel()

const caseArb = fc.record({
  dtype: fc.constantFrom("float32" as const, "float64" as const),
  n: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 2040, max: 5000 })),
  offset: fc.integer({ min: 0, max: 9 }),
  seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
})

const arrayOf = (c: { dtype: "float32" | "float64"; n: number; offset: number; seed: number }) => {
  let x = c.seed
  const whole = (c.dtype === "float32" ? new Float32Array(c.n + c.offset) : new Float64Array(c.n + c.offset)).map(() => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    return (x / 2 ** 32 - 0.5) * 2 ** ((x % 29) - 14)
  })
  return whole.subarray(c.offset)
}

describe("sum of squares", () => {
  test.skipIf(kernel === undefined)("the native kernel equals the loop bit for bit", () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const x = arrayOf(c)
        expect(Object.is(kernel?.(x), sumSquaresLoop(x))).toBe(true)
        expect(Object.is(sumSquares(x), sumSquaresLoop(x))).toBe(true)
      }),
      { numRuns: 200 },
    )
  })

  test("equals the sum of squares to float64 rounding", () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const x = arrayOf(c)
        let plain = 0
        let bound = 0
        for (const v of x) {
          plain += v * v
          bound += v * v
        }
        expect(Math.abs(sumSquares(x) - plain)).toBeLessThanOrEqual(2 * (x.length + 8) * 2 ** -53 * bound)
      }),
      { numRuns: 100 },
    )
  })

  test("a NaN or an infinity anywhere makes it non-finite", () => {
    fc.assert(
      fc.property(caseArb, fc.nat(), fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY), (c, at, bad) => {
        fc.pre(c.n > 0)
        const x = arrayOf(c)
        x[at % c.n] = bad
        expect(Number.isFinite(sumSquares(x))).toBe(false)
        expect(Number.isFinite(sumSquaresLoop(x))).toBe(false)
      }),
      { numRuns: 100 },
    )
  })

  test("many arrays at once: each array's own bits, in order, spread over the pool or not", () => {
    // Large runs too, so that some calls pass the pool's 1 MiB.
    const runArb = fc.record({
      dtype: fc.constantFrom("float32" as const, "float64" as const),
      n: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 2040, max: 5000 }), fc.integer({ min: 100_000, max: 300_000 })),
      offset: fc.integer({ min: 0, max: 9 }),
      seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
    })
    fc.assert(
      fc.property(fc.array(runArb, { maxLength: 12 }), fc.option(fc.nat(), { nil: undefined }), (cases, poisoned) => {
        const xs = cases.map(arrayOf)
        const bad = poisoned === undefined || xs.length === 0 ? -1 : poisoned % xs.length
        const target = xs[bad]
        if (target !== undefined && target.length > 0) target[poisoned === undefined ? 0 : poisoned % target.length] = Number.NaN
        const expected = xs.map(sumSquaresLoop)
        const got = sumSquaresEach(xs)
        expect(got.length).toBe(xs.length)
        got.forEach((v, i) => expect(Object.is(v, expected[i]), `array ${i} of ${xs.length}`).toBe(true))
        if (eachKernel !== undefined) Array.from(eachKernel(xs)).forEach((v, i) => expect(Object.is(v, expected[i])).toBe(true))
        got.forEach((v, i) => expect(Number.isFinite(v)).toBe(i !== bad || (xs[i]?.length ?? 0) === 0))
      }),
      { numRuns: 60 },
    )
  })

  test.skipIf(eachKernel === undefined)("many arrays at once: an element that is not a float array is a TypeError naming it", () => {
    const bad = [new Float32Array(3), new Int32Array(3)] as unknown as ReadonlyArray<Float32Array>
    expect(() => eachKernel?.(bad)).toThrow(/xs\[1\] must be a Float32Array or Float64Array/)
  })
})
