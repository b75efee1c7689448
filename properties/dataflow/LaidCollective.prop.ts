// Collectives as typed channels on laid tensors: the laid MLP gives exactly the plain MLP's
// output and hands back the layout it was given (SP rows or whole rows); every channel refuses
// a tensor that does not meet its precondition, naming the collective, the axis and the layout.
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { describe, expect, test } from "vitest"
import type { Communicator } from "../../src/comm/Communicator.js"
import * as Diff from "../../src/comm/Differentiable.js"
import * as Group from "../../src/comm/Group.js"
import * as DenseMlp from "../../src/dataflow/DenseMlp.js"
import * as LaidCollective from "../../src/dataflow/LaidCollective.js"
import * as ParallelLinear from "../../src/dataflow/ParallelLinear.js"
import * as TensorLayout from "../../src/dataflow/TensorLayout.js"
import * as Job from "../../src/runtime/Job.js"
import * as Shape from "../../src/tensor/ops/Shape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { uniform } from "../tensor/gradcheck.js"

const tp = 2
const rows = (sp: boolean) => TensorLayout.make([TensorLayout.dim("tokens", 8, sp ? [{ axis: "tp", size: tp }] : []), TensorLayout.dim("hidden", 4)])
const failureOf = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) ? String(exit.cause.reasons.map((r) => (r._tag === "Fail" ? (r.error as Error).message : ""))) : "(succeeded)"

describe("typed collectives", () => {
  test("the laid MLP equals the plain MLP bit for bit and keeps the layout, with and without sequence parallelism", async () => {
    const x = uniform([8, 4], 1)
    const w = { wGate: uniform([4, 6], 2), wUp: uniform([4, 6], 3), wDown: uniform([6, 4], 4) }
    for (const sp of [false, true]) {
      const out = await Job.runPromise({ world: tp }, (rank) =>
        Effect.gen(function* () {
          const mine = sp ? Shape.rows(x, rank * 4, rank * 4 + 4) : x
          const shards = {
            wGate: ParallelLinear.columnShard(w.wGate, rank, tp),
            wUp: ParallelLinear.columnShard(w.wUp, rank, tp),
            wDown: ParallelLinear.rowShard(w.wDown, rank, tp),
          }
          const options = { tp: Group.world(tp), sequenceParallel: sp }
          const plain = yield* DenseMlp.forward(mine, shards, options)
          const laid = yield* DenseMlp.forwardLaid(TensorLayout.attach(mine, rows(sp)), shards, options)
          return { plain: Tensor.toArray(plain), laid: Tensor.toArray(laid.tensor), layout: TensorLayout.format(laid.layout) }
        }),
      )
      for (const r of out) {
        expect(r.laid).toEqual(r.plain)
        expect(r.layout).toBe(TensorLayout.format(rows(sp)))
      }
    }
  })

  test("each channel refuses a tensor that does not meet its precondition", async () => {
    const run = (f: (g: Group.Group) => Effect.Effect<unknown, unknown, Communicator>) =>
      Effect.runPromise(Effect.exit(Job.run({ world: tp, timeoutMs: 500 }, () => f(Group.world(tp)))))
    const whole = TensorLayout.attach(Tensor.zeros([8, 4]), rows(false))
    const split = TensorLayout.attach(Tensor.zeros([4, 4]), rows(true))
    expect(failureOf(await run((g) => LaidCollective.allGather("tp", g, whole)))).toContain("allGather: over tp needs rows split over tp but the tensor is [tokens 8, hidden 4]")
    expect(failureOf(await run((g) => LaidCollective.reduceScatter("tp", g, whole)))).toContain(
      "reduceScatter: over tp needs values partial over tp but the tensor is [tokens 8, hidden 4]",
    )
    expect(failureOf(await run((g) => LaidCollective.allReduce("tp", g, split)))).toContain(
      "allReduce: over tp needs values partial over tp but the tensor is [tokens 8/tp2, hidden 4] sequence-parallel",
    )
    expect(failureOf(await run((g) => LaidCollective.copyToGroup("tp", g, split)))).toContain("copyToGroup: over tp needs rows whole and values complete over tp")
    expect(failureOf(await run((g) => ParallelLinear.rowParallelLaid(whole, Tensor.zeros([4, 4]), { tp: g, sequenceParallel: false }, "hidden")))).toContain(
      "rowParallel: needs its input columns split over tp but the tensor is [tokens 8, hidden 4]",
    )
    // On a group of one, nothing is split: every precondition holds.
    const one = await Job.runPromise({ world: 1 }, () => LaidCollective.allGather("tp", Group.world(1), whole))
    expect(TensorLayout.format(one[0]?.layout ?? rows(true))).toBe("[tokens 8, hidden 4]")
  })
})

describe("variable-size typed collectives", () => {
  const ep = 2
  const routed = (n: number, rank: number) => uniform([n, 3], 10 + rank)
  const tokens = (n: number) => TensorLayout.make([TensorLayout.dim("tokens", n), TensorLayout.dim("hidden", 3)])

  test("allToAllV, allGatherV and reduceScatterV equal the untyped calls bit for bit, with the layouts they promise", async () => {
    const counts = [5, 3]
    const splits = [
      [2, 3],
      [0, 3],
    ]
    const out = await Job.runPromise({ world: ep }, (rank) =>
      Effect.gen(function* () {
        const g = Group.world(ep)
        const x = routed(counts[rank] as number, rank)
        const laid = TensorLayout.attach(x, tokens(counts[rank] as number))
        const sent = yield* LaidCollective.allToAllV("ep", g, laid, splits[rank] as Array<number>)
        const plainSent = yield* Diff.allToAllV(g, x, splits[rank] as Array<number>)
        const gathered = yield* LaidCollective.allGatherV("ep", g, sent)
        const plainGathered = yield* Diff.allGatherV(g, plainSent.tensor)
        const partial = TensorLayout.attach(gathered.tensor, TensorLayout.partialOver(gathered.layout, { axis: "ep", size: ep }))
        const scattered = yield* LaidCollective.reduceScatterV("ep", g, partial, gathered.splits)
        const plainScattered = yield* Diff.reduceScatterV(g, plainGathered.tensor, plainGathered.splits)
        return {
          sent: [Tensor.toArray(sent.tensor), Tensor.toArray(plainSent.tensor), sent.recvSplits, plainSent.recvSplits, TensorLayout.format(sent.layout)],
          gathered: [Tensor.toArray(gathered.tensor), Tensor.toArray(plainGathered.tensor), gathered.splits, plainGathered.splits, TensorLayout.format(gathered.layout)],
          scattered: [Tensor.toArray(scattered.tensor), Tensor.toArray(plainScattered), TensorLayout.format(scattered.layout)],
          fits: TensorLayout.misfit(scattered.layout, scattered.tensor),
        }
      }),
    )
    out.forEach((r, rank) => {
      expect(r.sent[0]).toEqual(r.sent[1])
      expect(r.sent[2]).toEqual(r.sent[3])
      expect(r.gathered[0]).toEqual(r.gathered[1])
      expect(r.gathered[2]).toEqual(r.gathered[3])
      expect(r.scattered[0]).toEqual(r.scattered[1])
      expect(r.fits).toBeUndefined()
      const received = rank === 0 ? 2 : 6
      expect(r.sent[4]).toBe(`[tokens ragged ${received}/ep2, hidden 3] token-permuted`)
      expect(r.gathered[4]).toBe("[tokens ragged 8, hidden 3] token-permuted")
      expect(r.scattered[2]).toBe(`[tokens ragged ${received}/ep2, hidden 3] token-permuted`)
    })
  })

  test("the V channels over several axes check that their shards span the group", async () => {
    const over = [
      { axis: "etp" as const, size: 1 },
      { axis: "ep" as const, size: 2 },
    ]
    const out = await Job.runPromise({ world: ep }, (rank) =>
      Effect.gen(function* () {
        const x = TensorLayout.attach(routed(rank + 1, rank), TensorLayout.make([TensorLayout.ragged("tokens", rank + 1, over), TensorLayout.dim("hidden", 3)]))
        const gathered = yield* LaidCollective.allGatherV(over, Group.world(ep), x)
        return TensorLayout.format(gathered.layout)
      }),
    )
    expect(out).toEqual(["[tokens ragged 3, hidden 3]", "[tokens ragged 3, hidden 3]"])
    const wrong = [{ axis: "ep" as const, size: 4 }]
    const x = TensorLayout.attach(Tensor.zeros([2, 3]), TensorLayout.make([TensorLayout.ragged("tokens", 2, wrong), TensorLayout.dim("hidden", 3)]))
    const exit = await Effect.runPromise(Effect.exit(Job.run({ world: ep, timeoutMs: 500 }, () => LaidCollective.reduceScatterV(wrong, Group.world(ep), x, [1, 1]))))
    expect(failureOf(exit)).toContain("reduceScatterV: over ep spans 4 members where the group has 2")
  })

  test("each V channel refuses a tensor that does not meet its precondition", async () => {
    const run = (f: (g: Group.Group) => Effect.Effect<unknown, unknown, Communicator>) =>
      Effect.runPromise(Effect.exit(Job.run({ world: ep, timeoutMs: 500 }, () => f(Group.world(ep)))))
    const whole = TensorLayout.attach(Tensor.zeros([4, 3]), tokens(4))
    const partial = TensorLayout.attach(Tensor.zeros([4, 3]), TensorLayout.partialOver(tokens(4), { axis: "ep", size: ep }))
    expect(failureOf(await run((g) => LaidCollective.allToAllV("ep", g, whole, [1, 2])))).toContain(
      "allToAllV: over ep needs 2 row counts that add up to the rows, not [1, 2], but the tensor is [tokens 4, hidden 3]",
    )
    expect(failureOf(await run((g) => LaidCollective.allToAllV("ep", g, partial, [2, 2])))).toContain(
      "allToAllV: over ep needs values complete over ep but the tensor is [tokens 4, hidden 3] partial over ep",
    )
    expect(failureOf(await run((g) => LaidCollective.allGatherV("ep", g, whole)))).toContain(
      "allGatherV: over ep needs rows that differ over ep but the tensor is [tokens 4, hidden 3]",
    )
    expect(failureOf(await run((g) => LaidCollective.reduceScatterV("ep", g, whole, [2, 2])))).toContain(
      "reduceScatterV: over ep needs values partial over ep but the tensor is [tokens 4, hidden 3]",
    )
    expect(failureOf(await run((g) => LaidCollective.reduceScatterV("ep", g, partial, [2, 3])))).toContain(
      "reduceScatterV: over ep needs 2 row counts that add up to the rows, not [2, 3], but the tensor is [tokens 4, hidden 3] partial over ep",
    )
  })
})
