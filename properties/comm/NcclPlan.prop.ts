// NcclPlan: every member's NCCL calls, carried out by a small model of NCCL's semantics (sends
// matched to receives per pair in order, collectives matched across members in order), give
// each member exactly Collective.outputFor's result, for every op, dtype, group size and split
// (integer values, so any summation order is exact).
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import type * as Collective from "../../src/comm/Collective.js"
import { outputFor } from "../../src/comm/Collective.js"
import * as NcclPlan from "../../src/comm/nccl/NcclPlan.js"
import * as DType from "../../src/tensor/DType.js"

type Storage = DType.Storage

const reduce = (op: number, parts: ReadonlyArray<Storage>, from: number, count: number, dtype: DType.DType): Storage => {
  const out = DType.allocate(dtype, count)
  for (let e = 0; e < count; e++) {
    const values = parts.map((p) => p[from + e] as number)
    out[e] = op === NcclPlan.RED_OP.max ? Math.max(...values) : values.reduce((a, b) => a + b, 0)
  }
  return out
}

/** Runs every member's plan on a model of NCCL; returns each member's receive buffer. */
const execute = (plans: ReadonlyArray<NcclPlan.Plan>, sends: ReadonlyArray<Storage>, dtype: DType.DType): Array<Storage> => {
  const g = plans.length
  const recv = plans.map((p) => DType.allocate(dtype, p.recvLength).fill(Number.NaN))
  const collectives = plans.map((p) => p.calls.filter((c) => !["ncclGroupStart", "ncclGroupEnd", "ncclSend", "ncclRecv", "copy"].includes(c.fn)))
  // Collectives: the same sequence on every member (reduces matched by root inside a group).
  const first = collectives[0] ?? []
  for (const c of collectives) expect(c.map((x) => x.fn)).toEqual(first.map((x) => x.fn))
  first.forEach((_, k) => {
    const calls = collectives.map((c) => c[k] as NcclPlan.Call)
    for (let j = 0; j < g; j++) {
      const c = calls[j] as NcclPlan.Call
      const out = recv[j] as Storage
      if (c.fn === "ncclAllReduce") out.set(reduce(c.op, sends, 0, c.count, dtype))
      else if (c.fn === "ncclAllGather") sends.forEach((s, i) => out.set(s.subarray(0, c.sendcount), i * c.sendcount))
      else if (c.fn === "ncclReduceScatter") out.set(reduce(c.op, sends, j * c.recvcount, c.recvcount, dtype))
      else if (c.fn === "ncclBroadcast") out.set((sends[c.root] as Storage).subarray(0, c.count))
      else if (c.fn === "ncclReduce" && c.root === j) {
        // Every member issues the reduce rooted at j over the same block.
        const mine = collectives.map((cs) => cs.find((x) => x.fn === "ncclReduce" && x.root === j) as Extract<NcclPlan.Call, { fn: "ncclReduce" }>)
        for (const m of mine) expect([m.count, m.sendOffset]).toEqual([c.count, c.sendOffset])
        out.set(reduce(c.op, sends, c.sendOffset, c.count, dtype))
      }
    }
  })
  // Point to point: the k-th send from i to p meets the k-th receive of p from i, same count.
  for (let i = 0; i < g; i++) {
    for (let p = 0; p < g; p++) {
      const out = (plans[i] as NcclPlan.Plan).calls.filter((c): c is Extract<NcclPlan.Call, { fn: "ncclSend" }> => c.fn === "ncclSend" && c.peer === p)
      const into = (plans[p] as NcclPlan.Plan).calls.filter((c): c is Extract<NcclPlan.Call, { fn: "ncclRecv" }> => c.fn === "ncclRecv" && c.peer === i)
      expect(into.map((c) => c.count)).toEqual(out.map((c) => c.count))
      out.forEach((s, k) => {
        const r = into[k] as Extract<NcclPlan.Call, { fn: "ncclRecv" }>
        ;(recv[p] as Storage).set((sends[i] as Storage).subarray(s.sendOffset, s.sendOffset + s.count), r.recvOffset)
      })
    }
  }
  plans.forEach((plan, j) => {
    for (const c of plan.calls) {
      if (c.fn === "copy") (recv[j] as Storage).set((sends[j] as Storage).subarray(c.sendOffset, c.sendOffset + c.count), c.recvOffset)
    }
    // Point-to-point calls only inside a group, every group closed.
    let open = false
    for (const c of plan.calls) {
      if (c.fn === "ncclGroupStart") open = true
      else if (c.fn === "ncclGroupEnd") open = false
      else if (c.fn === "ncclSend" || c.fn === "ncclRecv" || c.fn === "ncclReduce") expect(open).toBe(true)
    }
    expect(open).toBe(false)
  })
  return recv
}

const partition = (total: number, parts: number): fc.Arbitrary<Array<number>> =>
  fc.array(fc.integer({ min: 0, max: total }), { minLength: parts - 1, maxLength: parts - 1 }).map((cuts) => {
    const sorted = [0, ...cuts.sort((a, b) => a - b), total]
    return sorted.slice(1).map((c, i) => c - (sorted[i] as number))
  })

/** Random agreed contributions of one collective over a group of `g`. */
const contributions = fc
  .record({
    g: fc.integer({ min: 1, max: 5 }),
    op: fc.constantFrom<Collective.Op>("allReduce", "allGather", "allGatherV", "reduceScatter", "reduceScatterV", "allToAllV", "broadcast"),
    dtype: fc.constantFrom<DType.DType>("float32", "float64"),
    width: fc.integer({ min: 1, max: 3 }),
    reduce: fc.constantFrom<"sum" | "max">("sum", "max"),
    seed: fc.integer(),
  })
  .chain((c) => {
    const rowsOf = c.op === "reduceScatter" ? fc.integer({ min: 0, max: 4 }).map((r) => r * c.g) : fc.integer({ min: 0, max: 7 })
    const sameRows = !["allGatherV", "allToAllV"].includes(c.op)
    return fc.record({
      c: fc.constant(c),
      rows: fc.array(rowsOf, { minLength: c.g, maxLength: c.g }).map((r) => (sameRows ? r.map(() => r[0] as number) : r)),
      root: fc.integer({ min: 0, max: c.g - 1 }),
      splits: fc.array(fc.integer({ min: 0, max: 7 }), { minLength: c.g, maxLength: c.g }),
    })
  })
  .chain(({ c, rows, root, splits }) =>
    fc.record({
      c: fc.constant(c),
      rows: fc.constant(rows),
      root: fc.constant(root),
      sendSplits: fc.tuple(...rows.map((r) => partition(r, c.g))),
      counts: partition(rows[0] as number, c.g),
      splits: fc.constant(splits),
    }),
  )

describe("NcclPlan", () => {
  test("the calls of every member, run on a model of NCCL, give Collective.outputFor's results", () => {
    fc.assert(
      fc.property(contributions, ({ c, rows, root, sendSplits, counts }) => {
        let next = (Math.abs(c.seed) % 97) + 1
        const cs: Array<Collective.Contribution> = rows.map((r, j) => {
          const data = DType.allocate(c.dtype, r * c.width)
          for (let e = 0; e < data.length; e++) data[e] = (next = (next * 31 + 7) % 41) - 20
          return {
            op: c.op,
            rank: j,
            dtype: c.dtype,
            shape: [r, c.width],
            data,
            ...(c.op === "allReduce" || c.op.startsWith("reduceScatter") ? { reduce: c.reduce } : {}),
            ...(c.op === "broadcast" ? { root } : {}),
            ...(c.op === "allToAllV" ? { sendSplits: sendSplits[j] as Array<number> } : {}),
            ...(c.op === "reduceScatterV" ? { counts } : {}),
          }
        })
        const plans = cs.map((_, j) => NcclPlan.planFor(cs, j))
        const got = execute(
          plans,
          cs.map((x) => x.data),
          c.dtype,
        )
        cs.forEach((_, j) => {
          const result = outputFor(cs, j)
          const want = result.data
          expect(Array.from(got[j] as Storage)).toEqual(Array.from(want))
          expect(NcclPlan.resultShape(cs, j)).toEqual({ shape: result.shape, ...(result.splits === undefined ? {} : { splits: result.splits }) })
          expect((plans[j] as NcclPlan.Plan).datatype).toBe(NcclPlan.DATA_TYPE[c.dtype])
        })
      }),
      { numRuns: 400 },
    )
  })

  test("allToAllV sends nothing for an empty split and keeps the own rows by a copy", () => {
    const cs: Array<Collective.Contribution> = [
      { op: "allToAllV", rank: 0, dtype: "float32", shape: [3, 2], data: new Float32Array(6), sendSplits: [1, 0, 2] },
      { op: "allToAllV", rank: 1, dtype: "float32", shape: [0, 2], data: new Float32Array(0), sendSplits: [0, 0, 0] },
      { op: "allToAllV", rank: 2, dtype: "float32", shape: [1, 2], data: new Float32Array(2), sendSplits: [1, 0, 0] },
    ]
    expect(NcclPlan.planFor(cs, 1).calls).toEqual([])
    expect(NcclPlan.planFor(cs, 0).calls).toEqual([
      { fn: "ncclGroupStart" },
      { fn: "ncclSend", sendOffset: 2, count: 4, peer: 2 },
      { fn: "ncclRecv", recvOffset: 2, count: 2, peer: 2 },
      { fn: "ncclGroupEnd" },
      { fn: "copy", sendOffset: 0, recvOffset: 0, count: 2 },
    ])
  })

  test("the native rows: one row of five numbers per call, its code first, then its fields in nccl_plan.h's order", () => {
    const calls: ReadonlyArray<NcclPlan.Call> = [
      { fn: "ncclGroupStart" },
      { fn: "ncclReduce", sendOffset: 6, count: 3, op: 2, root: 1 },
      { fn: "ncclSend", sendOffset: 2, count: 4, peer: 2 },
      { fn: "ncclRecv", recvOffset: 5, count: 1, peer: 3 },
      { fn: "ncclGroupEnd" },
      { fn: "copy", sendOffset: 7, recvOffset: 8, count: 9 },
      { fn: "ncclBroadcast", count: 11, root: 2 },
    ]
    expect(Array.from(NcclPlan.encode(calls))).toEqual([0, 0, 0, 0, 0, 5, 6, 3, 2, 1, 7, 2, 4, 2, 0, 8, 5, 1, 3, 0, 1, 0, 0, 0, 0, 9, 7, 8, 9, 0, 6, 11, 2, 0, 0])
  })
})
