// Permute / unpermute / sortChunksByIndex: rows are expert-major and token-ascending (brute-force
// oracle) for any map (empty experts, dropped and padded tokens); unpermute(permute(x)) is x
// times the number of rows of each token, and x times the sum of its probs when weighted; the
// worked example of semantics.md 2.3; gradients equal finite differences in float64.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as DispatchPlan from "../../src/moe/DispatchPlan.js"
import * as Permute from "../../src/moe/Permute.js"
import * as RoutingMap from "../../src/moe/RoutingMap.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { gradcheck, uniform } from "../tensor/gradcheck.js"
import { seed } from "./arbitraries.js"
import { permuteOrder } from "./oracle.js"

/** Any map (rows of any weight, all-false and all-true included), probs 0 off it, tokens [T, H]. */
const problem = fc
  .record({ t: fc.integer({ min: 0, max: 7 }), e: fc.integer({ min: 1, max: 6 }), h: fc.integer({ min: 0, max: 3 }), density: fc.constantFrom(0, 0.3, 0.7, 1) })
  .chain(({ t, e, h, density }) =>
    fc.record({
      t: fc.constant(t),
      e: fc.constant(e),
      h: fc.constant(h),
      map: fc.array(
        fc.array(
          fc.double({ min: 0, max: 1, noNaN: true }).map((u) => (u < density ? 1 : 0)),
          { minLength: e, maxLength: e },
        ),
        { minLength: t, maxLength: t },
      ),
      s: seed,
    }),
  )
  .map(({ t, e, h, map, s }) => {
    const p = uniform([t, e], s, -1, 1)
    const probs = Tensor.fromArray(
      Array.from(p.data).map((v, i) => (map.flat()[i] === 1 ? v : 0)),
      [t, e],
      { dtype: "float64" },
    )
    return { t, e, h, map, routing: RoutingMap.make(t, e, map.flat()), probs, tokens: uniform([t, h], s + 1, -3, 3) }
  })

const close = (a: number, b: number, scale = 1) => Math.abs(a - b) <= 1e-12 * Math.max(1, scale)

describe("permute", () => {
  test("rows are expert-major, token-ascending (brute-force oracle); probs and counts follow", () => {
    fc.assert(
      fc.property(problem, ({ e, h, map, routing, probs, tokens }) => {
        const r = Permute.permute(tokens, routing, probs)
        const pairs = permuteOrder(map)
        expect(Array.from(r.sortedIndices)).toEqual(pairs.map((p) => p.t))
        expect(r.plan.experts).toEqual(pairs.map((p) => p.e))
        expect(r.tokensPerExpert).toEqual(RoutingMap.tokensPerExpert(routing))
        expect(r.permuted.shape).toEqual([pairs.length, h])
        pairs.forEach(({ t, e: ex }, j) => {
          for (let c = 0; c < h; c++) expect(r.permuted.data[j * h + c]).toBe(tokens.data[t * h + c])
          expect(r.permutedProbs?.data[j]).toBe(probs.data[t * e + ex])
        })
        expect(r.plan.probs).toEqual(Array.from(r.permutedProbs?.data ?? []))
      }),
      { numRuns: 300 },
    )
  })

  test("unpermute(permute(x)) = x * rows of the token; weighted by the probs = x * sum of its probs", () => {
    fc.assert(
      fc.property(problem, ({ t, e, h, routing, probs, tokens }) => {
        const r = Permute.permute(tokens, routing, probs)
        const plain = Permute.unpermute(r.permuted, r.sortedIndices, t)
        const weighted = Permute.unpermute(r.permuted, r.plan.sortedIndices, t, r.permutedProbs)
        const rows = RoutingMap.expertsPerToken(routing)
        for (let tok = 0; tok < t; tok++) {
          let sum = 0
          for (let j = 0; j < e; j++) sum += probs.data[tok * e + j] as number
          for (let c = 0; c < h; c++) {
            const x = tokens.data[tok * h + c] as number
            expect(close(plain.data[tok * h + c] as number, x * (rows[tok] as number), Math.abs(x) * e)).toBe(true)
            expect(close(weighted.data[tok * h + c] as number, x * sum, Math.abs(x) * e)).toBe(true)
          }
        }
      }),
      { numRuns: 300 },
    )
  })

  test("the worked example of semantics.md 2.3", () => {
    const map = RoutingMap.fromNested([
      [1, 0, 1, 0],
      [0, 1, 0, 1],
      [1, 1, 0, 0],
    ])
    const probs = Tensor.fromArray([0.7, 0, 0.3, 0, 0, 0.6, 0, 0.4, 0.5, 0.5, 0, 0], [3, 4], { dtype: "float64" })
    const x = Tensor.fromArray([1, 2, 3, 4, 5, 6], [3, 2], { dtype: "float64" })
    const r = Permute.permute(x, map, probs)
    expect(Array.from(r.sortedIndices)).toEqual([0, 2, 1, 2, 0, 1])
    expect(r.tokensPerExpert).toEqual([2, 2, 1, 1])
    expect(Array.from(r.permutedProbs?.data ?? [])).toEqual([0.7, 0.5, 0.6, 0.5, 0.3, 0.4])
    expect(DispatchPlan.offsets(r.plan)).toEqual([0, 2, 4, 5, 6])
    expect(Array.from(Permute.unpermute(r.permuted, r.sortedIndices, 3).data)).toEqual([2, 4, 6, 8, 10, 12])
    const w = Array.from(Permute.unpermute(r.permuted, r.sortedIndices, 3, r.permutedProbs).data)
    w.forEach((v, i) => expect(v).toBeCloseTo([1, 2, 3, 4, 5, 6][i] as number, 14))
  })

  test("backward matches finite differences: permute w.r.t. tokens and probs, unpermute w.r.t. rows and weights", () => {
    fc.assert(
      fc.property(problem, ({ t, routing, probs, tokens }) => {
        const p = gradcheck(
          ([x, q]) => {
            const r = Permute.permute(x as Tensor.Tensor, routing, q as Tensor.Tensor)
            // Both outputs in one: the weighted combine depends on the tokens and the probs.
            return Permute.unpermute(r.permuted, r.sortedIndices, t, r.permutedProbs)
          },
          [tokens, probs],
        )
        expect(p.maxRelativeError, p.worst).toBeLessThan(1e-6)
        const g = gradcheck(([x]) => Permute.permute(x as Tensor.Tensor, routing).permuted, [tokens])
        expect(g.maxRelativeError, g.worst).toBeLessThan(1e-6)
      }),
      { numRuns: 60 },
    )
  })
})

describe("sortChunksByIndex", () => {
  const chunks = fc
    .array(fc.nat({ max: 3 }), { minLength: 1, maxLength: 5 })
    .chain((sizes) => fc.tuple(fc.constant(sizes), fc.shuffledSubarray([...sizes.keys()], { minLength: sizes.length, maxLength: sizes.length }), seed))

  test("output chunk i is input chunk sortedIdxs[i]; the inverse order restores the input; backward matches finite differences", () => {
    fc.assert(
      fc.property(chunks, ([sizes, order, s]) => {
        const total = sizes.reduce((a, b) => a + b, 0)
        const x = uniform([total, 2], s)
        const probs = uniform([total], s + 1)
        const r = Permute.sortChunksByIndex(x, sizes, order, probs)
        const starts = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0))
        const expected = order.flatMap((c) => Array.from(x.data.subarray((starts[c] as number) * 2, ((starts[c] as number) + (sizes[c] as number)) * 2)))
        expect(Array.from(r.output.data)).toEqual(expected)
        const expectedProbs = order.flatMap((c) => Array.from(probs.data.subarray(starts[c] as number, (starts[c] as number) + (sizes[c] as number))))
        expect(Array.from(r.probs?.data ?? [])).toEqual(expectedProbs)
        const inverse = order.map((_, i) => order.indexOf(i))
        const back = Permute.sortChunksByIndex(
          r.output,
          order.map((c) => sizes[c] as number),
          inverse,
        )
        expect(Array.from(back.output.data)).toEqual(Array.from(x.data))
        const g = gradcheck(([t]) => Permute.sortChunksByIndex(t as Tensor.Tensor, sizes, order).output, [x])
        expect(g.maxRelativeError, g.worst).toBeLessThan(1e-6)
      }),
      { numRuns: 100 },
    )
  })

  test("a non-permutation or wrong sizes are ShapeErrors", () => {
    const x = uniform([3, 1], 1)
    expect(() => Permute.sortChunksByIndex(x, [1, 2], [0, 0])).toThrow(/permutation/)
    expect(() => Permute.sortChunksByIndex(x, [1, 1], [1, 0])).toThrow(/rows/)
    expect(() => Permute.sortChunksByIndex(x, [1, 2], [1])).toThrow(/indices/)
  })
})
