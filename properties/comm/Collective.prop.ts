// The one semantics of the collectives: Collective.outputFor (each member computes its own
// output, as the threads transport does) against a naive element-by-element oracle written
// here, and Collective.compute (one place computes everyone's, as the local transport does)
// against outputFor: equal bit for bit for every op, with and without receive buffers, on
// sizes that take both the JS and the native paths, and on contributions in SharedArrayBuffers.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Collective from "../../src/comm/Collective.js"
import * as DType from "../../src/tensor/DType.js"

const ops: ReadonlyArray<Collective.Op> = ["allReduce", "allGather", "allGatherV", "reduceScatter", "reduceScatterV", "allToAllV", "broadcast", "barrier"]

interface Case {
  readonly contributions: Array<Collective.Contribution>
  readonly withOut: boolean
}

const fill = (dtype: DType.DType, n: number, seed: number): DType.Storage => {
  const data = DType.allocate(dtype, n, true)
  for (let i = 0; i < n; i++) data[i] = Math.sin(seed * 7.1 + i * 0.37) * 100
  return data
}

/** Agreeing contributions of one op for n members (rows and splits chosen per op). */
const cases: fc.Arbitrary<Case> = fc
  .record({
    op: fc.constantFrom(...ops),
    n: fc.integer({ min: 1, max: 5 }),
    dtype: fc.constantFrom<DType.DType>("float32", "float64"),
    // Wide rows so that some cases cross the native threshold (2048 elements).
    inner: fc.constantFrom(1, 3, 700),
    reduce: fc.constantFrom<"sum" | "max">("sum", "max"),
    seed: fc.nat(1000),
    rows: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 25, maxLength: 25 }),
    withOut: fc.boolean(),
  })
  .map(({ op, n, dtype, inner, reduce, seed, rows, withOut }): Case => {
    const at = (i: number) => rows[i % rows.length] as number
    const block = Math.max(1, at(0))
    const counts = Array.from({ length: n }, (_, j) => at(j + 1))
    const contributions = Array.from({ length: n }, (_, m): Collective.Contribution => {
      const sendSplits = Array.from({ length: n }, (_, j) => at(m * n + j))
      const r =
        op === "allGatherV"
          ? at(m)
          : op === "allToAllV"
            ? sendSplits.reduce((a, b) => a + b, 0)
            : op === "reduceScatter"
              ? block * n
              : op === "reduceScatterV"
                ? counts.reduce((a, b) => a + b, 0)
                : block
      const shape = op === "barrier" ? [0] : [r, inner]
      return {
        op,
        rank: m,
        dtype,
        shape,
        data: fill(dtype, op === "barrier" ? 0 : r * inner, seed + m),
        reduce,
        root: seed % n,
        ...(op === "allToAllV" ? { sendSplits } : {}),
        ...(op === "reduceScatterV" ? { counts } : {}),
      }
    })
    return { contributions, withOut }
  })

/** Member j's result, element by element from the definitions (rounded to the dtype at each step). */
const oracle = (cs: ReadonlyArray<Collective.Contribution>, j: number): { data: Array<number>; rows: number; splits?: Array<number> } => {
  const first = cs[0] as Collective.Contribution
  const round = first.dtype === "float32" ? Math.fround : (x: number) => x
  const inner = first.shape[1] ?? 0
  const rowsOf = (c: Collective.Contribution) => c.shape[0] ?? 0
  const reduced = () =>
    Array.from(first.data, (_, i) =>
      cs.reduce((acc, c, m) => (m === 0 ? (c.data[i] as number) : round(first.reduce === "max" ? Math.max(acc, c.data[i] as number) : acc + (c.data[i] as number))), 0),
    )
  switch (first.op) {
    case "barrier":
      return { data: [], rows: 0 }
    case "allReduce":
      return { data: reduced(), rows: rowsOf(first) }
    case "broadcast": {
      const root = cs[first.root ?? 0] as Collective.Contribution
      return { data: Array.from(root.data), rows: rowsOf(root) }
    }
    case "allGather":
    case "allGatherV":
      return { data: cs.flatMap((c) => Array.from(c.data)), rows: cs.reduce((a, c) => a + rowsOf(c), 0), splits: cs.map(rowsOf) }
    case "reduceScatter":
    case "reduceScatterV": {
      const counts = first.counts ?? cs.map(() => rowsOf(first) / cs.length)
      const start = counts.slice(0, j).reduce((a, b) => a + b, 0)
      return { data: reduced().slice(start * inner, (start + (counts[j] as number)) * inner), rows: counts[j] as number }
    }
    case "allToAllV": {
      const blocks = cs.map((c) => {
        const s = c.sendSplits ?? []
        const begin = s.slice(0, j).reduce((a, b) => a + b, 0)
        return Array.from(c.data.subarray(begin * inner, (begin + (s[j] as number)) * inner))
      })
      const splits = cs.map((c) => (c.sendSplits ?? [])[j] as number)
      return { data: blocks.flat(), rows: splits.reduce((a, b) => a + b, 0), splits }
    }
  }
}

describe("Collective", () => {
  test("outputFor equals the element-by-element oracle for every member, bit for bit", () => {
    fc.assert(
      fc.property(cases, ({ contributions, withOut }) => {
        contributions.forEach((c, j) => {
          const e = oracle(contributions, j)
          const out = withOut ? DType.allocate(c.dtype, e.data.length).fill(-1) : undefined
          const got = Collective.outputFor(contributions, j, out)
          expect(got.shape[0]).toBe(c.op === "barrier" ? 0 : e.rows)
          expect(got.splits).toEqual(e.splits)
          expect(Array.from(got.data)).toEqual(e.data)
          expect(DType.of(got.data)).toBe(c.dtype)
          // Receive buffers are used except by reduceScatter(V).
          if (out !== undefined && !c.op.startsWith("reduceScatter")) expect(got.data).toBe(out)
        })
      }),
      { numRuns: 300 },
    )
  })

  test("compute gives every member its outputFor (copies unless shared; receive buffers used)", () => {
    fc.assert(
      fc.property(cases, fc.boolean(), ({ contributions }, share) => {
        const expected = contributions.map((_, j) => Collective.outputFor(contributions, j))
        const outputs = Collective.compute(contributions, share)
        outputs.forEach((o, j) => {
          const e = expected[j] as Collective.Output
          expect(o.shape).toEqual(e.shape)
          expect(o.splits).toEqual(e.splits)
          expect(Array.from(o.data)).toEqual(Array.from(e.data))
          if (!share && j > 0 && o.data.length > 0) expect(o.data).not.toBe(outputs[0]?.data)
        })
      }),
      { numRuns: 200 },
    )
  })

  test("receiveBufferProblem names the rank and both sizes", () => {
    const c: Collective.Contribution = { op: "allGather", rank: 3, dtype: "float32", shape: [2, 2], data: new Float32Array(4) }
    expect(Collective.receiveBufferProblem([c, { ...c, rank: 5 }], 0, { length: 8, dtype: "float32" })).toBeUndefined()
    expect(Collective.receiveBufferProblem([c, { ...c, rank: 5 }], 1, { length: 7, dtype: "float32" })).toBe(
      "rank 5: the receive buffer holds 7 float32 elements; the result needs 8 float32",
    )
  })
})
