// HostChecks (when the NCCL backend judges a collective on the host) and PLEAT_DISTRIBUTED_DEBUG:
// a collective is handed to NCCL before its verdict exactly when the job checks "alongside", the
// op is fixed-size and the member's own arguments are sound; and wherever the members'
// signatures pass the host's judgement, the NCCL calls a member plans from its own signature
// alone (every member assumed to have issued the same) are the calls and result it would plan
// from everyone's, so planning before the verdict changes nothing for collectives that match.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import type * as Collective from "../../../src/comm/Collective.js"
import * as Group from "../../../src/comm/Group.js"
import * as HostChecks from "../../../src/comm/mpi/HostChecks.js"
import * as NcclPlan from "../../../src/comm/nccl/NcclPlan.js"
import * as Verdict from "../../../src/comm/Verdict.js"
import * as ConfigError from "../../../src/errors/ConfigError.js"
import * as DistributedDebug from "../../../src/runtime/DistributedDebug.js"

const ops: ReadonlyArray<Collective.Op> = ["allReduce", "allGather", "allGatherV", "reduceScatter", "reduceScatterV", "allToAllV", "broadcast", "barrier"]
const fixed = new Set<Collective.Op>(["allReduce", "allGather", "reduceScatter", "reduceScatterV", "barrier"])

/** A member's signature: shapes and splits from small sets, so that members often agree. */
const signature = (g: number) =>
  fc.record({
    op: fc.constantFrom(...ops),
    dtype: fc.constantFrom("float32" as const, "float64" as const),
    shape: fc.constantFrom([g, 2], [2 * g, 3], [3, 2], [0, 2], [2]),
    reduce: fc.constantFrom("sum" as const, "max" as const),
    root: fc.integer({ min: 0, max: g - 1 }),
    splits: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: g, maxLength: g }),
    // An all-to-all's member may say what it receives (recvSplits), as the MoE exchanges do.
    tells: fc.boolean(),
    recv: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: g, maxLength: g }),
  })

const materialize = (
  s: {
    op: Collective.Op
    dtype: "float32" | "float64"
    shape: ReadonlyArray<number>
    reduce: "sum" | "max"
    root: number
    splits: Array<number>
    tells: boolean
    recv: Array<number>
  },
  rank: number,
): Collective.Signature => ({
  op: s.op,
  rank,
  dtype: s.dtype,
  // An all-to-all's rows are what its splits send (most draws are then sound).
  shape: s.op === "allToAllV" ? [s.splits.reduce((a, b) => a + b, 0), 2] : s.shape,
  ...(s.op === "allReduce" || s.op === "reduceScatter" || s.op === "reduceScatterV" ? { reduce: s.reduce } : {}),
  ...(s.op === "broadcast" ? { root: s.root } : {}),
  ...(s.op === "allToAllV" ? { sendSplits: s.splits, ...(s.tells ? { recvSplits: s.recv } : {}) } : {}),
  ...(s.op === "reduceScatterV" ? { counts: s.splits } : {}),
})

describe("host checks of the NCCL backend", () => {
  test("a collective goes to NCCL before its verdict exactly when the job checks alongside, its op is fixed-size or an all-to-all that says what it receives, and its own arguments are sound", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }).chain((g) => fc.tuple(fc.constant(g), signature(g))),
        fc.constantFrom<HostChecks.HostChecks>("first", "alongside"),
        ([g, s], checks) => {
          const mine = materialize(s, 0)
          const group = Group.make(
            "ep#0",
            Array.from({ length: g }, (_, r) => r),
          )
          const alike = group.ranks.map((rank) => ({ ...mine, rank }))
          const soundAlone =
            Verdict.judge(
              group,
              0,
              alike,
              alike.map(() => undefined),
            ) === undefined
          const tellsItsReceives = mine.op === "allToAllV" && mine.recvSplits !== undefined
          expect(HostChecks.handsOverEarly(checks, mine, g)).toBe(checks === "alongside" && (fixed.has(mine.op) || tellsItsReceives) && soundAlone)
        },
      ),
      { numRuns: 500 },
    )
  })

  test("where the members' signatures pass the host's judgement (and an all-to-all's receives are what the others send), the plan from a member's own signature is the plan from everyone's", () => {
    let compared = 0
    let exchanges = 0
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }).chain((g) => fc.tuple(fc.constant(g), fc.array(signature(g), { minLength: g, maxLength: g }), fc.boolean())),
        ([g, members, same]) => {
          // Half the draws give every member the first one's signature (agreement is then likely);
          // an all-to-all member that says what it receives mostly says what the others send.
          const drawn = members.map((m, rank) => materialize(same ? (members[0] as typeof m) : m, rank))
          const parts = drawn.map((m, j) =>
            m.recvSplits !== undefined && (members[j] as { recv: Array<number> }).recv[0] !== 2 ? { ...m, recvSplits: drawn.map((o) => (o.sendSplits ?? [])[j] ?? 0) } : m,
          )
          const group = Group.make(
            "ep#0",
            Array.from({ length: g }, (_, r) => r),
          )
          if (
            Verdict.judge(
              group,
              0,
              parts,
              parts.map(() => undefined),
            ) !== undefined
          )
            return
          for (let j = 0; j < g; j++) {
            const mine = parts[j] as Collective.Signature
            if (!HostChecks.handsOverEarly("alongside", mine, g)) continue
            const problem = HostChecks.receivesProblem(mine, parts, j)
            const consistent = mine.recvSplits === undefined || mine.recvSplits.every((r, p) => r === (parts[p] as Collective.Signature).sendSplits?.[j])
            expect(problem === undefined).toBe(consistent)
            if (problem !== undefined) continue
            compared++
            if (mine.op === "allToAllV") exchanges++
            const assumed = HostChecks.assumed(group, mine, j)
            expect(NcclPlan.planFor(assumed, j)).toEqual(NcclPlan.planFor(parts, j))
            expect(NcclPlan.resultShape(assumed, j)).toEqual(NcclPlan.resultShape(parts, j))
          }
        },
      ),
      { numRuns: 1000 },
    )
    // Coverage: the draws reach agreeing members, all-to-alls among them (300 draws once gave
    // exactly 10 all-to-alls; 12 runs of 1000 gave 717 or more compared and 46 or more all-to-alls).
    expect(compared).toBeGreaterThan(300)
    expect(exchanges).toBeGreaterThan(15)
  })
})

describe("PLEAT_DISTRIBUTED_DEBUG", () => {
  test("unset or OFF: alongside NCCL; DETAIL: first (any case, spaces around); anything else names the variable and the fix", () => {
    expect(DistributedDebug.hostChecks({})).toBe("alongside")
    for (const v of ["", "OFF", "off", " Off "]) expect(DistributedDebug.hostChecks({ PLEAT_DISTRIBUTED_DEBUG: v })).toBe("alongside")
    for (const v of ["DETAIL", "detail", " Detail\n"]) expect(DistributedDebug.hostChecks({ PLEAT_DISTRIBUTED_DEBUG: v })).toBe("first")
    for (const v of ["INFO", "1", "on"]) {
      let error: unknown
      try {
        DistributedDebug.hostChecks({ PLEAT_DISTRIBUTED_DEBUG: v })
      } catch (e) {
        error = e
      }
      expect(ConfigError.isConfigError(error)).toBe(true)
      expect(String((error as Error).message)).toContain("PLEAT_DISTRIBUTED_DEBUG")
      expect(String((error as Error).message)).toContain("DETAIL")
    }
  })
})
