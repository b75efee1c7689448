// Gather, scatter-add and embedding: backward equals finite differences in float64; gather and
// scatter-add are adjoints; scatter-add sums repeated indices in increasing order (bit for bit);
// out-of-range indices and ids are ShapeErrors.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import { embedding, gatherRows, scatterAddRows } from "../../src/tensor/ops/Gather.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { asDType, dtypeAgreement } from "./dtypes.js"
import { gradcheck, uniform } from "./gradcheck.js"

const dim = fc.oneof(fc.constantFrom(0, 1), fc.integer({ min: 1, max: 4 }))
const rowShape = fc.array(dim, { minLength: 0, maxLength: 2 })
const seed = fc.integer({ min: 1, max: 1_000_000 })

/** numRows (>= 1 when there are indices), a row shape, and an index of any length into numRows. */
const problem = fc.tuple(fc.integer({ min: 0, max: 5 }), rowShape, fc.array(fc.nat(), { maxLength: 7 })).map(([n, row, raw]) => {
  const numRows = raw.length > 0 ? Math.max(n, 1) : n
  return { numRows, row, index: Int32Array.from(raw.map((r) => r % numRows)) }
})

const dot = (a: Tensor.Tensor, b: Tensor.Tensor): number => {
  let s = 0
  for (let i = 0; i < a.size; i++) s += (a.data[i] as number) * (b.data[i] as number)
  return s
}

describe("gatherRows and scatterAddRows", () => {
  test("backward matches finite differences (repeated indices, empty index, empty rows)", () => {
    fc.assert(
      fc.property(problem, seed, ({ numRows, row, index }, s) => {
        const src = uniform([numRows, ...row], s)
        const r1 = gradcheck(([t]) => gatherRows(t as Tensor.Tensor, index), [src])
        expect(r1.maxRelativeError, r1.worst).toBeLessThan(1e-6)
        const y = uniform([index.length, ...row], s + 1)
        const r2 = gradcheck(([t]) => scatterAddRows(t as Tensor.Tensor, index, numRows), [y])
        expect(r2.maxRelativeError, r2.worst).toBeLessThan(1e-6)
      }),
      { numRuns: 60 },
    )
  })

  test("they are adjoints: <gather(x), y> = <x, scatterAdd(y)>", () => {
    fc.assert(
      fc.property(problem, seed, ({ numRows, row, index }, s) => {
        const x = uniform([numRows, ...row], s)
        const y = uniform([index.length, ...row], s + 1)
        const left = dot(gatherRows(x, index), y)
        const right = dot(x, scatterAddRows(y, index, numRows))
        expect(Math.abs(left - right)).toBeLessThan(1e-12 * Math.max(1, Math.abs(left)))
      }),
      { numRuns: 60 },
    )
  })

  test("scatter-add sums repeated rows in increasing i, bit for bit in either dtype", () => {
    fc.assert(
      fc.property(problem, seed, fc.constantFrom("float32", "float64") as fc.Arbitrary<"float32" | "float64">, ({ numRows, row, index }, s, dtype) => {
        const y = Tensor.fromArray(uniform([index.length, ...row], s).data, [index.length, ...row], { dtype })
        const cols = Tensor.sizeOf(row)
        const expected = dtype === "float32" ? new Float32Array(numRows * cols) : new Float64Array(numRows * cols)
        for (let i = 0; i < index.length; i++) {
          for (let j = 0; j < cols; j++) {
            const at = (index[i] as number) * cols + j
            expected[at] = (expected[at] as number) + (y.data[i * cols + j] as number)
          }
        }
        const out = scatterAddRows(y, index, numRows)
        expect(out.shape).toEqual([numRows, ...row])
        expect(Array.from(out.data)).toEqual(Array.from(expected))
        expect(Tensor.toArray(gatherRows(out, index))).toEqual(Array.from(index).flatMap((r) => Array.from(out.data.subarray(r * cols, (r + 1) * cols))))
      }),
      { numRuns: 40 },
    )
  })

  test("float32 matches float64", () => {
    fc.assert(
      fc.property(problem, seed, ({ numRows, row, index }, s) => {
        const a = dtypeAgreement(([t]) => gatherRows(t as Tensor.Tensor, index), [uniform([numRows, ...row], s)])
        expect(a.forward + a.backward, a.worst).toBeLessThan(1e-5)
        // The scatter-add kernels accumulate in the storage dtype (a float32 rounding per add), so
        // a sum that cancels is held to the summation bound: 1e-5 of the sum of |terms|.
        const y = asDType(uniform([index.length, ...row], s), "float64")
        const y32 = asDType(y, "float32")
        const exact = scatterAddRows(y, index, numRows)
        const approx = scatterAddRows(y32, index, numRows)
        const magnitude = scatterAddRows(Tensor.fromArray(Tensor.toArray(y).map(Math.abs), y.shape, { dtype: "float64" }), index, numRows)
        for (let i = 0; i < exact.size; i++) {
          const bound = 1e-5 * Math.max(magnitude.data[i] as number, 1e-30)
          expect(Math.abs((approx.data[i] as number) - (exact.data[i] as number))).toBeLessThanOrEqual(bound)
        }
        const b = dtypeAgreement(([t]) => scatterAddRows(t as Tensor.Tensor, index, numRows), [y])
        expect(b.backward, b.worst).toBeLessThan(1e-5)
      }),
      { numRuns: 30 },
    )
  })

  test("an index out of range is a ShapeError naming the op, the position and the row count", () => {
    const x = Tensor.zeros([3, 2])
    expect(() => gatherRows(x, Int32Array.from([0, 3]))).toThrow("gatherRows: index 3 at position 1 is outside [0, 3)")
    expect(() => gatherRows(x, Int32Array.from([-1]))).toThrow("gatherRows: index -1 at position 0 is outside [0, 3)")
    expect(() => scatterAddRows(x, Int32Array.from([0, 1, 5]), 5)).toThrow("scatterAddRows: index 5 at position 2 is outside [0, 5)")
    expect(() => scatterAddRows(x, Int32Array.from([0]), 2)).toThrow("scatterAddRows: index has 1 entries but src [3, 2] has 3 rows")
  })
})

describe("embedding", () => {
  test("equals gatherRows, takes an ids shape, and accumulates gradients of repeated ids", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }), seed, (v, h, b, s, sd) => {
        const ids = Int32Array.from({ length: b * s }, (_, i) => (i * 7 + sd) % v)
        const table = uniform([v, h], sd)
        const y = embedding(table, ids, [b, s])
        expect(y.shape).toEqual([b, s, h])
        expect(Tensor.toArray(y)).toEqual(Tensor.toArray(gatherRows(table, ids)))
        const r = gradcheck(([t]) => embedding(t as Tensor.Tensor, ids, [b, s]), [table])
        expect(r.maxRelativeError, r.worst).toBeLessThan(1e-6)
        const tape = Tape.make()
        const p = tape.parameter(table)
        tape.backward(embedding(p, ids), { gradient: Tensor.full([ids.length, h], 1, { dtype: "float64" }) })
        for (let id = 0; id < v; id++) {
          const uses = ids.filter((x) => x === id).length
          for (let j = 0; j < h; j++) expect(p.grad?.data[id * h + j]).toBe(uses)
        }
      }),
      { numRuns: 40 },
    )
  })

  test("an id outside [0, V) is a ShapeError naming the op, the id and V", () => {
    const table = Tensor.zeros([5, 4])
    expect(() => embedding(table, Int32Array.from([1, 5]))).toThrow("embedding: id 5 at position 1 is outside [0, 5) (table [5, 4])")
    expect(() => embedding(table, Int32Array.from([-2]))).toThrow("embedding: id -2 at position 0 is outside [0, 5)")
    expect(() => embedding(table, Int32Array.from([1, 2]), [3])).toThrow("embedding: ids shape [3] does not hold the 2 ids")
    expect(() => embedding(Tensor.zeros([5]), Int32Array.from([1]))).toThrow("embedding: table must be [V, H], got [5]")
  })
})
