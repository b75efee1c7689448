// The query, key and value products of self-attention read the same rows, so under tp they share
// one collective each way (Megatron's fused QKV): the rows are gathered once under SP (the
// backward reduce-scatters their summed gradient once), or copied in once without SP (one
// allreduce of the summed gradient). Counted on the tp group for random settings, forward and
// backward together, against the output projection's own collective each way.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as SelfAttention from "../../src/attention/SelfAttention.js"
import type * as Collective from "../../src/comm/Collective.js"
import { Communicator } from "../../src/comm/Communicator.js"
import * as Group from "../../src/comm/Group.js"
import * as ParallelLinear from "../../src/dataflow/ParallelLinear.js"
import * as Job from "../../src/runtime/Job.js"
import * as Reduce from "../../src/tensor/ops/Reduce.js"
import * as Tape from "../../src/tensor/Tape.js"
import { uniform } from "../tensor/gradcheck.js"

const setting = fc.record({
  sp: fc.boolean(),
  batch: fc.constantFrom(1, 2),
  kvGroups: fc.constantFrom(1, 2),
  seed: fc.integer({ min: 1, max: 10_000 }),
})

describe("fused QKV input", () => {
  test("one collective each way for the three input products, one for the output product", async () => {
    await fc.assert(
      fc.asyncProperty(setting, async (s) => {
        const tp = 2
        const seq = 4
        const hidden = 4
        const kvHeads = tp
        const heads = kvHeads * s.kvGroups
        const d = 2
        const counts = await Job.runPromise({ world: tp }, (rank) =>
          Effect.gen(function* () {
            const comm = yield* Communicator
            const issued = new Map<Collective.Op, number>()
            const counting = {
              ...comm,
              issue: (group: Group.Group, request: Parameters<typeof comm.issue>[1]) => {
                if (group.name === "tp") issued.set(request.op, (issued.get(request.op) ?? 0) + 1)
                return comm.issue(group, request)
              },
            }
            const tape = Tape.make({ name: `rank ${rank}` })
            const w = {
              wq: tape.parameter(ParallelLinear.columnShard(uniform([hidden, heads * d], s.seed), rank, tp)),
              wk: tape.parameter(ParallelLinear.columnShard(uniform([hidden, kvHeads * d], s.seed + 1), rank, tp)),
              wv: tape.parameter(ParallelLinear.columnShard(uniform([hidden, kvHeads * d], s.seed + 2), rank, tp)),
              wo: tape.parameter(ParallelLinear.rowShard(uniform([heads * d, hidden], s.seed + 3), rank, tp)),
            }
            const rows = (s.batch * seq) / (s.sp ? tp : 1)
            const x = tape.parameter(uniform([rows, hidden], s.seed + 10 + (s.sp ? rank : 0)))
            const c = { batch: s.batch, seq, heads, kvHeads, headDim: d, tp: Group.make("tp", [0, 1]), cp: Group.make("cp", [rank]), sequenceParallel: s.sp }
            yield* Effect.provideService(
              Effect.gen(function* () {
                const out = yield* SelfAttention.forward(x, w, c, 0)
                yield* tape.backwardEffect(Reduce.sumAll(out))
              }),
              Communicator,
              counting,
            )
            return Object.fromEntries(issued)
          }),
        )
        // SP: the input's gather (backward: reduce-scatter) and the output's reduce-scatter
        // (backward: gather). Without SP: the input's copy (no collective; backward: allreduce)
        // and the output's allreduce (backward: allreduce, each rank's loss counting its copy).
        // One gather per input product would make it 4 and 4, or 5.
        const expected = s.sp ? { allGather: 2, reduceScatter: 2 } : { allReduce: 3 }
        for (const c of counts) expect(c).toEqual(expected)
      }),
      { numRuns: 12 },
    )
  })
})
