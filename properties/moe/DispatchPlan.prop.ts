// DispatchPlan: counts, offsets and splits agree with the rows; contiguous destinations sum
// their experts; the plan is frozen; out-of-order rows are ShapeErrors.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as DispatchPlan from "../../src/moe/DispatchPlan.js"
import * as Permute from "../../src/moe/Permute.js"
import * as RoutingMap from "../../src/moe/RoutingMap.js"

const mapArb = fc
  .record({ t: fc.integer({ min: 0, max: 6 }), e: fc.constantFrom(1, 2, 4, 6, 8) })
  .chain(({ t, e }) => fc.tuple(fc.constant(t), fc.constant(e), fc.array(fc.boolean(), { minLength: t * e, maxLength: t * e })))
  .map(([t, e, bits]) => RoutingMap.make(t, e, bits.map(Number)))

describe("DispatchPlan", () => {
  test("offsets, tokensPerExpert and splits for every destination count that divides E", () => {
    fc.assert(
      fc.property(mapArb, (map) => {
        const { sortedIndices, experts } = Permute.order(map)
        const plan = DispatchPlan.make({ numTokens: map.numTokens, numExperts: map.numExperts, sortedIndices, experts })
        const off = DispatchPlan.offsets(plan)
        expect(off[off.length - 1]).toBe(DispatchPlan.numRows(plan))
        plan.tokensPerExpert.forEach((c, e) => {
          for (let j = off[e] as number; j < (off[e + 1] as number); j++) expect(plan.experts[j]).toBe(e)
          expect(c).toBe((off[e + 1] as number) - (off[e] as number))
        })
        expect(plan.splits).toEqual(plan.tokensPerExpert)
        for (let d = 1; d <= map.numExperts; d++) {
          if (map.numExperts % d !== 0) continue
          const splits = DispatchPlan.splitsFor(plan.tokensPerExpert, d)
          const per = map.numExperts / d
          splits.forEach((s, i) => expect(s).toBe(plan.tokensPerExpert.slice(i * per, (i + 1) * per).reduce((a, b) => a + b, 0)))
        }
        expect(Object.isFrozen(plan) && Object.isFrozen(plan.sortedIndices) && Object.isFrozen(plan.splits)).toBe(true)
        expect(Array.from(DispatchPlan.indexArray(plan))).toEqual(Array.from(sortedIndices))
      }),
      { numRuns: 200 },
    )
  })

  test("the worked example, destinations, and rejected plans", () => {
    const plan = DispatchPlan.make({ numTokens: 3, numExperts: 4, sortedIndices: [0, 2, 1, 2, 0, 1], experts: [0, 0, 1, 1, 2, 3], numDestinations: 2 })
    expect(plan.tokensPerExpert).toEqual([2, 2, 1, 1])
    expect(plan.splits).toEqual([4, 2])
    expect(() => DispatchPlan.make({ numTokens: 3, numExperts: 2, sortedIndices: [2, 0], experts: [0, 0] })).toThrow(/not after/)
    expect(() => DispatchPlan.make({ numTokens: 3, numExperts: 2, sortedIndices: [0, 0], experts: [1, 0] })).toThrow(/not after/)
    expect(() => DispatchPlan.make({ numTokens: 1, numExperts: 2, sortedIndices: [1], experts: [0] })).toThrow(/token 1/)
    expect(() => DispatchPlan.splitsFor([1, 2, 3], 2)).toThrow(/divide/)
  })
})
