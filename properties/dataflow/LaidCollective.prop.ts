// Collectives as typed channels on laid tensors: the laid MLP gives exactly the plain MLP's
// output and hands back the layout it was given (SP rows or whole rows); every channel refuses
// a tensor that does not meet its precondition, naming the collective, the axis and the layout.
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { describe, expect, test } from "vitest"
import type { Communicator } from "../../src/comm/Communicator.js"
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
