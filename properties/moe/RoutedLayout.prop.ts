// The layouts of a dispatch: both dispatchers hand the tokens back in the layout they came in
// (here sequence-parallel rows), through typed channels; the combine refuses rows that are not
// back in sequence order, not complete, or not as many as came in, naming the layout.
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { describe, expect, test } from "vitest"
import type * as Comm from "../../src/comm/Communicator.js"
import * as Group from "../../src/comm/Group.js"
import * as TensorLayout from "../../src/dataflow/TensorLayout.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as AllGatherDispatcher from "../../src/moe/AllGatherDispatcher.js"
import * as AllToAllDispatcher from "../../src/moe/AllToAllDispatcher.js"
import type * as Dispatcher from "../../src/moe/Dispatcher.js"
import * as RoutedLayout from "../../src/moe/RoutedLayout.js"
import * as Router from "../../src/moe/Router.js"
import * as Job from "../../src/runtime/Job.js"
import { matmul } from "../../src/tensor/ops/Matmul.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { uniform } from "../tensor/gradcheck.js"
import { identityExperts } from "./identityExperts.js"

const h = 3
const spRows = TensorLayout.make([TensorLayout.dim("tokens", 8, [{ axis: "tp", size: 2 }]), TensorLayout.dim("hidden", h)])
const failureOf = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) ? String(exit.cause.reasons.map((r) => (r._tag === "Fail" ? (r.error as Error).message : ""))) : "(succeeded)"

describe("dispatch layouts", () => {
  test("both dispatchers return the tokens in the layout they came in, on ep 2 x etp 2", async () => {
    const config = ParallelConfig.make({ world: 4, tp: 2, cp: 2, ep: 2, etp: 2 })
    const router = uniform([h, 4], 3)
    const run = (dispatcher: (input: Dispatcher.DispatchInput) => Effect.Effect<{ readonly layout: TensorLayout.TensorLayout }, unknown, Comm.Communicator>) =>
      Job.runPromise({ world: 4 }, (rank) =>
        Effect.gen(function* () {
          const x = uniform([4, h], 20 + rank)
          const routed = Router.routing(matmul(x, router), { topk: 2, scoreFunction: "softmax" })
          const groups = { ep: Group.ofFamily(config, "ep", rank), etp: Group.ofFamily(config, "etp", rank), etpEp: Group.ofFamily(config, "etp-ep", rank) }
          const empty = Tensor.zeros([0, 0, 0], { dtype: "float64" })
          const experts = { wGate: empty, wUp: empty, wDown: empty }
          const out = yield* dispatcher({ tokens: x, layout: spRows, probs: routed.probs, map: routed.routingMap, numExperts: 4, experts, groups, compute: identityExperts })
          return TensorLayout.format(out.layout)
        }),
      )
    for (const dispatcher of [AllToAllDispatcher.run, AllGatherDispatcher.run]) expect(await run(dispatcher)).toEqual(Array(4).fill("[tokens 8/tp2, hidden 3] sequence-parallel"))
  })

  test("the combine refuses rows still permuted, partial, or of another count", async () => {
    const groups = { ep: Group.world(2), etp: Group.world(1), etpEp: Group.world(2) }
    const batch = RoutedLayout.enter(spRows, groups)
    expect(TensorLayout.format(batch)).toBe("[tokens ragged 4/ep2, hidden 3]")
    const permuted = TensorLayout.attach(Tensor.zeros([6, h]), RoutedLayout.permuted(batch, 6))
    expect(TensorLayout.format(permuted.layout)).toBe("[routed ragged 6/ep2, hidden 3] token-permuted")
    const back = await Effect.runPromise(RoutedLayout.unpermute(permuted, Tensor.zeros([4, h]), 4))
    expect(TensorLayout.format(back.layout)).toBe("[tokens ragged 4/ep2, hidden 3]")
    expect(TensorLayout.format((await Effect.runPromise(RoutedLayout.leave(back, spRows))).layout)).toBe(TensorLayout.format(spRows))

    const exit = (e: Effect.Effect<unknown, unknown>) => Effect.runPromise(Effect.exit(e))
    expect(failureOf(await exit(RoutedLayout.unpermute(back, back.tensor, 4)))).toContain("unpermute: needs token-permuted rows but the tensor is [tokens ragged 4/ep2, hidden 3]")
    expect(failureOf(await exit(RoutedLayout.leave(permuted, spRows)))).toContain(
      "combine: needs 4 complete rows in sequence order to return to [tokens 8/tp2, hidden 3] sequence-parallel but the tensor is [routed ragged 6/ep2, hidden 3] token-permuted",
    )
    const partial = TensorLayout.attach(back.tensor, TensorLayout.partialOver(back.layout, { axis: "ep", size: 2 }))
    expect(failureOf(await exit(RoutedLayout.leave(partial, spRows)))).toContain("partial over ep")
  })
})
