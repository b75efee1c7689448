// Capacity: C = ceil(numTokens / E * factor) is the least integer with C >= numTokens * factor / E
// (up to the float64 rounding of the reference's own arithmetic); minCapacity raises it; the
// router passes T * K; null and negative factors are dropless; bad inputs are ShapeErrors.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Capacity from "../../src/moe/Capacity.js"

describe("getCapacity", () => {
  test("is the ceiling of numTokens / E * factor", () => {
    fc.assert(
      fc.property(fc.nat({ max: 100_000 }), fc.integer({ min: 1, max: 512 }), fc.double({ min: 0, max: 16, noNaN: true }), (n, e, cf) => {
        const c = Capacity.getCapacity(n, e, cf)
        const exact = (n / e) * cf
        expect(Number.isInteger(c)).toBe(true)
        expect(c).toBeGreaterThanOrEqual(exact)
        expect(c - 1).toBeLessThan(exact)
      }),
      { numRuns: 300 },
    )
  })

  test("examples, minCapacity, the router's T * K, and dropless factors", () => {
    expect(Capacity.getCapacity(6, 4, 1)).toBe(2)
    expect(Capacity.getCapacity(6, 4, 0.5)).toBe(1)
    expect(Capacity.getCapacity(8, 4, 1)).toBe(2)
    expect(Capacity.getCapacity(0, 4, 1)).toBe(0)
    expect(Capacity.getCapacity(6, 4, 0)).toBe(0)
    expect(Capacity.getCapacity(6, 4, 0.5, 3)).toBe(3)
    expect(Capacity.getCapacity(6, 4, 1, 1)).toBe(2)
    expect(Capacity.routerCapacity(3, 2, 4, 1)).toBe(Capacity.getCapacity(6, 4, 1))
    expect(Capacity.isDropless(null)).toBe(true)
    expect(Capacity.isDropless(undefined)).toBe(true)
    expect(Capacity.isDropless(-1)).toBe(true)
    expect(Capacity.isDropless(0)).toBe(false)
    expect(() => Capacity.getCapacity(6, 0, 1)).toThrow(/numExperts/)
    expect(() => Capacity.getCapacity(6, 4, -1)).toThrow(/capacityFactor/)
    expect(() => Capacity.getCapacity(6, 4, Number.NaN)).toThrow(/capacityFactor/)
  })
})
