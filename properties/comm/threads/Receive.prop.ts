// Receive.outputFor (each member computes its own output) against Collective.compute (one place
// computes everyone's): equal bit for bit for every op, with and without receive buffers, on
// sizes that take both the JS and the native paths, and on contributions in SharedArrayBuffers.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Collective from "../../../src/comm/Collective.js"
import { outputFor } from "../../../src/comm/threads/Receive.js"
import * as DType from "../../../src/tensor/DType.js"

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
        op === "allGatherV" ? at(m) : op === "allToAllV" ? sendSplits.reduce((a, b) => a + b, 0) : op === "reduceScatter" ? block * n : op === "reduceScatterV" ? counts.reduce((a, b) => a + b, 0) : block
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

describe("Receive.outputFor", () => {
  test("equals Collective.compute for every member, bit for bit", () => {
    fc.assert(
      fc.property(cases, ({ contributions, withOut }) => {
        const expected = Collective.compute(contributions, false)
        contributions.forEach((c, j) => {
          const e = expected[j] as Collective.Output
          // Receive buffers: Collective.compute ignores them for reduceScatter(V) and so must we.
          const out = withOut ? DType.allocate(c.dtype, e.data.length).fill(-1) : undefined
          const got = outputFor(contributions, j, out)
          expect(got.shape).toEqual(e.shape)
          expect(got.splits).toEqual(e.splits)
          expect(Array.from(got.data)).toEqual(Array.from(e.data))
          expect(DType.of(got.data)).toBe(c.dtype)
          if (out !== undefined && !c.op.startsWith("reduceScatter")) expect(got.data).toBe(out)
        })
      }),
      { numRuns: 300 },
    )
  })
})
