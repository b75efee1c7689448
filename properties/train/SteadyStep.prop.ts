// SteadyStep: a run's steady step is the median of its second half (pleat train's "steady
// tokens/s"). What the first half holds never moves it, nor does the order of the second half;
// it lies within the second half's range, is one of its values when that half has an odd count,
// moves with a shift of that half, and the range it names covers exactly those steps.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as SteadyStep from "../../src/train/SteadyStep.js"

const seconds = fc.double({ min: 1e-4, max: 10, noNaN: true })
const run = fc.array(seconds, { minLength: 1, maxLength: 60 })

describe("SteadyStep", () => {
  test("no steps: no steady step", () => {
    expect(SteadyStep.steadySeconds([])).toBeUndefined()
  })

  test("the first half does not count: any values there give the same steady step", () => {
    fc.assert(
      fc.property(run, fc.array(seconds, { minLength: 30, maxLength: 30 }), (xs, other) => {
        const half = Math.floor(xs.length / 2)
        const replaced = [...other.slice(0, half), ...xs.slice(half)]
        expect(SteadyStep.steadySeconds(replaced)).toBe(SteadyStep.steadySeconds(xs))
      }),
    )
  })

  test("the order of the second half does not count, and the result lies within it", () => {
    fc.assert(
      fc.property(run, fc.integer(), (xs, seed) => {
        const half = Math.floor(xs.length / 2)
        const later = xs.slice(half)
        const shuffled = [...later]
          .map((x, i) => ({ x, k: (Math.imul(i + 1, seed | 1) >>> 0) % 9973 }))
          .sort((a, b) => a.k - b.k)
          .map((e) => e.x)
        const steady = SteadyStep.steadySeconds(xs) as number
        expect(SteadyStep.steadySeconds([...xs.slice(0, half), ...shuffled])).toBe(steady)
        expect(steady).toBeGreaterThanOrEqual(Math.min(...later))
        expect(steady).toBeLessThanOrEqual(Math.max(...later))
        if (later.length % 2 === 1) expect(later).toContain(steady)
        // As many of the half at or below it as at or above it.
        expect(later.filter((x) => x <= steady).length).toBeGreaterThanOrEqual(Math.ceil(later.length / 2))
        expect(later.filter((x) => x >= steady).length).toBeGreaterThanOrEqual(Math.ceil(later.length / 2))
      }),
    )
  })

  test("shifting every step of the second half shifts the steady step alike", () => {
    fc.assert(
      fc.property(run, fc.integer({ min: 1, max: 1000 }), (xs, k) => {
        const half = Math.floor(xs.length / 2)
        const shift = k / 64 // exact in binary: the sums below round alike
        const shifted = xs.map((x, i) => (i < half ? x : x + shift))
        expect(SteadyStep.steadySeconds(shifted) as number).toBeCloseTo((SteadyStep.steadySeconds(xs) as number) + shift, 9)
      }),
    )
  })

  test("one step, two steps: that step; the later one", () => {
    expect(SteadyStep.steadySeconds([3])).toBe(3)
    expect(SteadyStep.steadySeconds([9, 2])).toBe(2)
    expect(SteadyStep.steadySeconds([9, 9, 2, 4])).toBe(3)
  })

  test("the range names the later ceil(n/2) steps, ending at the run's last", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 1, max: 10_000 }), (steps, first) => {
        const r = SteadyStep.steadyRange(steps, first)
        expect(r.to).toBe(first + steps - 1)
        expect(r.to - r.from + 1).toBe(steps - Math.floor(steps / 2))
      }),
    )
  })
})
