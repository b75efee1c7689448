// Grouped matmul: equals one matmul per segment, empty segments included; backward matches
// finite differences in float64.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import { groupedMatmul } from "../../src/tensor/ops/GroupedMatmul.js"
import { matmul } from "../../src/tensor/ops/Matmul.js"
import * as Shape from "../../src/tensor/ops/Shape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { gradcheck, uniform } from "./gradcheck.js"

describe("grouped matmul", () => {
  test("equals per-segment matmuls and its backward matches finite differences", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 0, max: 3 }),
        fc.integer({ min: 1, max: 1000 }),
        (segments, k, m, seed) => {
          const n = segments.reduce((a, b) => a + b, 0)
          const x = uniform([n, k], seed)
          const w = uniform([segments.length, k, m], seed + 1)
          const out = Tensor.toArray(groupedMatmul(x, w, segments))
          let start = 0
          const expected: Array<number> = []
          segments.forEach((rows, e) => {
            const we = Shape.reshape(Shape.rows(w, e, e + 1), [k, m])
            expected.push(...Tensor.toArray(matmul(Shape.rows(x, start, start + rows), we)))
            start += rows
          })
          out.forEach((v, i) => expect(v).toBeCloseTo(expected[i] as number, 12))
          const r = gradcheck(([a, b]) => groupedMatmul(a as Tensor.Tensor, b as Tensor.Tensor, segments), [x, w])
          expect(r.maxRelativeError, r.worst).toBeLessThan(1e-6)
        },
      ),
      { numRuns: 60 },
    )
  })

  test("segments that do not cover the rows are refused naming the op", () => {
    expect(() => groupedMatmul(Tensor.zeros([3, 2]), Tensor.zeros([2, 2, 2]), [1, 1])).toThrow("groupedMatmul: segments [1, 1] do not cover the 3 rows of x")
  })
})
