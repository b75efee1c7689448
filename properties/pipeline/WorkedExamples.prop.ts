// The worked examples of semantics.md section 3, reproduced exactly (compute orders copied from
// the text), plus full action lists of small cases that pin down where the p2p actions sit.
import * as Result from "effect/Result"
import { describe, expect, test } from "vitest"
import * as Action from "../../src/pipeline/Action.js"
import * as Check from "../../src/pipeline/Check.js"
import * as Plan from "../../src/pipeline/Plan.js"
import * as Schedule from "../../src/pipeline/Schedule.js"

const order = (s: Schedule.Schedule, pp: number): string =>
  Action.computes(s.ranks[pp] ?? [])
    .map(Action.format)
    .join(" ")
const full = (s: Schedule.Schedule, pp: number): string => (s.ranks[pp] ?? []).map(Action.format).join(" ")
const counts = (s: Schedule.Schedule, key: "warmup" | "steady" | "cooldown") => s.phases.map((p) => p[key])
const passes = (s: Schedule.Schedule) => expect(Result.isSuccess(Check.check(s))).toBe(true)

describe("semantics.md 3.3: non-interleaved 1F1B", () => {
  test("P=4, M=8: warmups (3,2,1,0), steady (5,6,7,8), cooldown (3,2,1,0)", () => {
    const s = Schedule.oneFOneB(4, 8)
    expect(counts(s, "warmup")).toEqual([3, 2, 1, 0])
    expect(counts(s, "steady")).toEqual([5, 6, 7, 8])
    expect(counts(s, "cooldown")).toEqual([3, 2, 1, 0])
    expect(order(s, 1)).toBe("F0c0 F1c0 F2c0 B0c0 F3c0 B1c0 F4c0 B2c0 F5c0 B3c0 F6c0 B4c0 F7c0 B5c0 B6c0 B7c0")
    passes(s)
  })

  test("P=4, M=2: warmups capped at M (2,2,1,0), steady (0,0,1,2)", () => {
    const s = Schedule.oneFOneB(4, 2)
    expect(counts(s, "warmup")).toEqual([2, 2, 1, 0])
    expect(counts(s, "steady")).toEqual([0, 0, 1, 2])
    passes(s)
  })

  test("P=2, M=2: the full action lists, with the combined exchanges as send-then-receive", () => {
    const s = Schedule.oneFOneB(2, 2)
    expect(full(s, 0)).toBe("F0c0 sF0c0>1 F1c0 sF1c0>1 rB0c0<1 B0c0 rB1c0<1 B1c0")
    expect(full(s, 1)).toBe("rF0c0<0 F0c0 B0c0 sB0c0>0 rF1c0<0 F1c0 B1c0 sB1c0>0")
    passes(s)
  })

  test("no pipelining: forward then backward of each micro-batch", () => {
    expect(order(Schedule.noPipelining(3), 0)).toBe("F0c0 B0c0 F1c0 B1c0 F2c0 B2c0")
    expect(order(Schedule.noPipelining(3, { forwardOnly: true }), 0)).toBe("F0c0 F1c0 F2c0")
  })
})

describe("semantics.md 3.4: interleaved 1F1B", () => {
  test("schedule table P=2, N=3, M=5, V=2 (reference docs)", () => {
    const table = Plan.scheduleTable(5, 2, 3)
    expect(table.map((x) => x.microBatch).join(" ")).toBe("0 1 2 0 1 2 3 4 3 4")
    expect(table.map((x) => x.chunk).join(" ")).toBe("0 0 0 1 1 1 0 0 1 1")
    passes(Schedule.interleaved(2, 2, 5, 3))
  })

  test("P=2, V=2, M=4, N=2: both ranks' orders", () => {
    const s = Schedule.interleaved(2, 2, 4, 2)
    expect(
      Plan.scheduleTable(4, 2, 2)
        .map((x) => `(${x.microBatch},${x.chunk})`)
        .join(","),
    ).toBe("(0,0),(1,0),(0,1),(1,1),(2,0),(3,0),(2,1),(3,1)")
    expect(counts(s, "warmup")).toEqual([4, 2])
    const rank0 = "F0c0 F1c0 F0c1 F1c1 | F2c0 B0c1 F3c0 B1c1 F2c1 B0c0 F3c1 B1c0 | B2c1 B3c1 B2c0 B3c0"
    const rank1 = "F0c0 F1c0 | F0c1 B0c1 F1c1 B1c1 F2c0 B0c0 F3c0 B1c0 F2c1 B2c1 F3c1 B3c1 | B2c0 B3c0"
    expect(order(s, 0)).toBe(rank0.replaceAll(" |", ""))
    expect(order(s, 1)).toBe(rank1.replaceAll(" |", ""))
    passes(s)
  })

  test("P=2, V=2, M=4, N=2: where the receives sit (recv_tensor_from_previous_stage)", () => {
    const s = Schedule.interleaved(2, 2, 4, 2)
    // Rank 0 leads in forward: after step k >= 1 it takes rank 1's step k-1 output unless that was
    // rank 1's last chunk; the output gradient of B0 (chunk 1) arrives in the last warmup exchange.
    expect(full(s, 0)).toBe(
      "F0c0 sF0c0>1 F1c0 sF1c0>1 rF0c1<1 F0c1 sF0c1>1 rF1c1<1 F1c1 sF1c1>1 rB0c1<1 " +
        "F2c0 B0c1 sF2c0>1 sB0c1>1 rB1c1<1 F3c0 B1c1 sF3c0>1 sB1c1>1 rF2c1<1 rB0c0<1 " +
        "F2c1 B0c0 sF2c1>1 rF3c1<1 rB1c0<1 F3c1 B1c0 sF3c1>1 rB2c1<1 " +
        "B2c1 sB2c1>1 rB3c1<1 B3c1 sB3c1>1 rB2c0<1 B2c0 rB3c0<1 B3c0",
    )
    // Rank 1 leads in backward: after step k >= 1 it takes rank 0's step k-1 gradient unless that
    // came from rank 0's chunk 0; its chunk 0 output goes around the ring to rank 0's chunk 1.
    expect(full(s, 1)).toBe(
      "rF0c0<0 F0c0 sF0c0>0 rF1c0<0 F1c0 sF1c0>0 rF0c1<0 " +
        "F0c1 B0c1 sB0c1>0 rF1c1<0 F1c1 B1c1 sB1c1>0 rF2c0<0 rB0c0<0 F2c0 B0c0 sF2c0>0 sB0c0>0 rF3c0<0 rB1c0<0 " +
        "F3c0 B1c0 sF3c0>0 sB1c0>0 rF2c1<0 F2c1 B2c1 sB2c1>0 rF3c1<0 F3c1 B3c1 sB3c1>0 rB2c0<0 " +
        "B2c0 sB2c0>0 rB3c0<0 B3c0 sB3c0>0",
    )
  })

  test("P=4, V=2, M=8, N=4: warmups (10,8,6,4), steady (6,8,10,12), rank 3's order", () => {
    const s = Schedule.interleaved(4, 2, 8)
    expect(counts(s, "warmup")).toEqual([10, 8, 6, 4])
    expect(counts(s, "steady")).toEqual([6, 8, 10, 12])
    expect(counts(s, "cooldown")).toEqual([10, 8, 6, 4])
    const rank3 =
      "F0c0 F1c0 F2c0 F3c0 | F0c1 B0c1 F1c1 B1c1 F2c1 B2c1 F3c1 B3c1 F4c0 B0c0 F5c0 B1c0 F6c0 " + "B2c0 F7c0 B3c0 F4c1 B4c1 F5c1 B5c1 F6c1 B6c1 F7c1 B7c1 | B4c0 B5c0 B6c0 B7c0"
    expect(order(s, 3)).toBe(rank3.replaceAll(" |", ""))
    passes(s)
  })
})
