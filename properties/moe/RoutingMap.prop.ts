// RoutingMap: fromIndices marks exactly the chosen pairs; counts, row and column sums agree;
// and() is the pairwise AND; nested round trip; bad indices are ShapeErrors.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as RoutingMap from "../../src/moe/RoutingMap.js"

describe("RoutingMap", () => {
  test("fromIndices, counts, sums, and, nested round trip", () => {
    fc.assert(
      fc.property(
        fc
          .record({ t: fc.integer({ min: 0, max: 6 }), e: fc.integer({ min: 1, max: 6 }) })
          .chain(({ t, e }) =>
            fc.tuple(
              fc.constant(t),
              fc.constant(e),
              fc.array(fc.shuffledSubarray([...Array(e).keys()], { minLength: 1, maxLength: 1 }), { minLength: t, maxLength: t }),
              fc.array(fc.boolean(), { minLength: t * e, maxLength: t * e }),
            ),
          ),
        ([t, e, picks, bits]) => {
          const a = RoutingMap.fromIndices(t, e, picks.flat(), 1)
          expect(RoutingMap.count(a)).toBe(t)
          expect(RoutingMap.expertsPerToken(a).every((n) => n === 1)).toBe(true)
          const b = RoutingMap.make(t, e, bits.map(Number))
          const both = RoutingMap.and(a, b)
          for (let i = 0; i < t * e; i++) expect(both.mask[i]).toBe((a.mask[i] as number) & (b.mask[i] as number))
          expect(RoutingMap.tokensPerExpert(b).reduce((x, y) => x + y, 0)).toBe(RoutingMap.count(b))
          expect(RoutingMap.fromNested(RoutingMap.toNested(b), e)).toEqual(b)
          expect(Array.from(RoutingMap.toTensor(b).data)).toEqual(bits.map(Number))
        },
      ),
      { numRuns: 150 },
    )
  })

  test("bad shapes and indices are ShapeErrors", () => {
    expect(() => RoutingMap.make(2, 2, [1, 0, 1])).toThrow(/mask/)
    expect(() => RoutingMap.fromIndices(1, 2, [2], 1)).toThrow(/outside/)
    expect(() => RoutingMap.fromNested([[1, 0], [1]])).toThrow(/row 1/)
    expect(() => RoutingMap.and(RoutingMap.make(1, 2), RoutingMap.make(2, 1))).toThrow(/maps/)
  })
})
