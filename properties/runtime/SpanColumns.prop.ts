// SpanColumns (a trace's spans in typed columns): any spans pushed, past several doublings, read
// back as the same objects in the same order; byRank lists every index once, each rank's in
// order, ranks ascending.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import { SpanColumns } from "../../src/runtime/SpanColumns.js"
import type * as Trace from "../../src/runtime/Trace.js"

const span: fc.Arbitrary<Trace.Span> = fc.record({
  rank: fc.integer({ min: 0, max: 1023 }),
  name: fc.oneof(fc.constantFrom("forward mb 0 chunk 0", "allReduce dp#0 [0,1]", "step 3"), fc.string({ maxLength: 12 })),
  category: fc.constantFrom("compute" as const, "comm" as const, "idle" as const, "step" as const),
  start: fc.double({ min: -1e13, max: 1e13, noNaN: true }),
  end: fc.double({ min: -1e13, max: 1e13, noNaN: true }),
})

describe("SpanColumns", () => {
  test("reads back what was pushed, in order, and byRank partitions the indices by rank", () => {
    fc.assert(
      fc.property(fc.array(span, { maxLength: 3000 }), (spans) => {
        const columns = new SpanColumns()
        for (const s of spans) columns.push(s)
        expect(columns.length).toBe(spans.length)
        expect(columns.toArray()).toEqual(spans)
        const groups = columns.byRank()
        expect(groups.map((g) => g.rank)).toEqual([...new Set(spans.map((s) => s.rank))].sort((a, b) => a - b))
        for (const { rank, indices } of groups) {
          const want = spans.flatMap((s, i) => (s.rank === rank ? [i] : []))
          expect(Array.from(indices)).toEqual(want)
        }
      }),
      { numRuns: 60 },
    )
  })
})
