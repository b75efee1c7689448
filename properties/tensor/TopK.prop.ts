// TopK: matches a sort-based oracle (value descending, ties to the lower index, NaN last) on rows
// full of ties, NaN and infinities; backward of values scatters the gradient and matches finite
// differences; k out of range is a ShapeError.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import { topk } from "../../src/tensor/ops/TopK.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { dtypeAgreement } from "./dtypes.js"
import { gradcheck, uniform } from "./gradcheck.js"

const dim = fc.oneof(fc.constantFrom(0, 1), fc.integer({ min: 1, max: 6 }))
const shapeArb = fc.array(dim, { minLength: 1, maxLength: 3 })
const seed = fc.integer({ min: 1, max: 1_000_000 })

/** The oracle: sort the positions of a row by (NaN last, value descending, index ascending). */
const oracle = (row: ReadonlyArray<number>, k: number): Array<number> =>
  row
    .map((v, i) => ({ v, i }))
    .sort((a, b) => {
      const an = Number.isNaN(a.v)
      const bn = Number.isNaN(b.v)
      if (an !== bn) return an ? 1 : -1
      if (!an && a.v !== b.v) return b.v - a.v > 0 ? 1 : -1
      return a.i - b.i
    })
    .slice(0, k)
    .map((e) => e.i)

/** Shapes with the rows' values drawn from a few numbers (many ties), NaN and infinities. */
const tieRows = shapeArb.chain((shape) =>
  fc.tuple(
    fc.constant(shape),
    fc.array(fc.constantFrom(0, 1, -1, 2, -0, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY), {
      minLength: Tensor.sizeOf(shape),
      maxLength: Tensor.sizeOf(shape),
    }),
    fc.nat(),
  ),
)

describe("topk", () => {
  test("matches the sort-based oracle: descending, ties to the lower index, NaN last", () => {
    fc.assert(
      fc.property(tieRows, fc.constantFrom("float32", "float64") as fc.Arbitrary<"float32" | "float64">, ([shape, values, kSeed], dtype) => {
        const e = shape[shape.length - 1] as number
        const k = kSeed % (e + 1)
        const x = Tensor.fromArray(values, shape, { dtype })
        const { values: top, indices } = topk(x, k)
        expect(top.shape).toEqual([...shape.slice(0, -1), k])
        expect(top.dtype).toBe(dtype)
        for (let r = 0; r < (e === 0 ? 0 : x.size / e); r++) {
          const row = values.slice(r * e, (r + 1) * e)
          const expected = oracle(row, k)
          expect(Array.from(indices.subarray(r * k, (r + 1) * k))).toEqual(expected)
          expect(Array.from(top.data.subarray(r * k, (r + 1) * k))).toEqual(expected.map((i) => row[i]))
        }
      }),
      { numRuns: 60 },
    )
  })

  test("a row of equal values picks 0..k-1 in order", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 8 }), fc.nat(), fc.double({ noNaN: true }), (e, kSeed, v) => {
        const k = kSeed % (e + 1)
        const { indices } = topk(Tensor.full([2, e], v, { dtype: "float64" }), k)
        const first = Array.from({ length: k }, (_, i) => i)
        expect(Array.from(indices)).toEqual([...first, ...first])
      }),
      { numRuns: 40 },
    )
  })

  test("backward of values scatters the gradient to the chosen positions, matching finite differences", () => {
    fc.assert(
      fc.property(shapeArb, seed, fc.nat(), (shape, s, kSeed) => {
        const e = shape[shape.length - 1] as number
        const k = kSeed % (e + 1)
        const x = uniform(shape, s)
        // Finite differences (step 1e-5) are only defined away from the selection's boundary:
        // rows whose k-th and (k+1)-th largest values lie within 1e-4 of each other would swap
        // under the step (a CI run met a gap of 8.5e-6).
        fc.pre(boundaryGap(x, e, k) > 1e-4)
        const r = gradcheck(([t]) => topk(t as Tensor.Tensor, k).values, [x])
        expect(r.maxRelativeError, r.worst).toBeLessThan(1e-6)
        // The scatter itself, exactly.
        const tape = Tape.make()
        const p = tape.parameter(x)
        const { values, indices } = topk(p, k)
        const g = uniform(values.shape, s + 1)
        tape.backward(values, { gradient: g })
        const expected = new Array<number>(x.size).fill(0)
        for (let i = 0; i < indices.length; i++) expected[Math.floor(i / k) * e + (indices[i] as number)] = g.data[i] as number
        expect(Tensor.toArray(p.grad as Tensor.Tensor)).toEqual(expected)
        const agree = dtypeAgreement(([t]) => topk(t as Tensor.Tensor, k).values, [x])
        expect(agree.forward + agree.backward, agree.worst).toBe(0)
      }),
      { numRuns: 50 },
    )
  })

  test("k outside 0..E is a ShapeError naming the op, k and the shape", () => {
    const x = Tensor.zeros([2, 3])
    expect(() => topk(x, 4)).toThrow("topk: k 4 is outside 0..3 for x [2, 3]")
    expect(() => topk(x, -1)).toThrow("topk: k -1 is outside 0..3 for x [2, 3]")
    expect(() => topk(x, 1.5)).toThrow("topk: k 1.5 is outside 0..3 for x [2, 3]")
    expect(() => topk(Tensor.zeros([]), 0)).toThrow("topk: needs at least 1 dim")
  })
})

/** The smallest gap, over the rows of e values, between the k-th and (k+1)-th largest (Infinity without one). */
const boundaryGap = (x: Tensor.Tensor, e: number, k: number): number => {
  if (k === 0 || k >= e) return Number.POSITIVE_INFINITY
  let gap = Number.POSITIVE_INFINITY
  for (let r = 0; r < x.size / e; r++) {
    const row = Array.from(x.data.subarray(r * e, (r + 1) * e)).sort((a, b) => b - a)
    gap = Math.min(gap, (row[k - 1] as number) - (row[k] as number))
  }
  return gap
}
