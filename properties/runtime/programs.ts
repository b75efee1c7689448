// Rank programs for the backend properties: each sees only its Communicator and RankEvents.
import * as Effect from "effect/Effect"
import * as Comm from "../../src/comm/Communicator.js"
import * as Group from "../../src/comm/Group.js"
import { RankEvents } from "../../src/runtime/RankEvents.js"
import * as Tensor from "../../src/tensor/Tensor.js"

/** Reports `reports` numbered values, logs once, then returns the world's sum of rank + 1. */
export const reportAndSum = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { world, reports } = args as { world: number; reports: number }
    const events = yield* RankEvents
    for (let i = 0; i < reports; i++) events.report({ rank, i })
    events.log.info({ reports }, "hello from a rank")
    const sum = yield* Comm.allReduce(Group.world(world), Tensor.fromArray([rank + 1], [1, 1], { dtype: "float64" }))
    return Tensor.item(sum)
  })

/** Rank `failing` fails; the others wait in a barrier it never joins. */
export const oneFails = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { world, failing } = args as { world: number; failing: number }
    if (rank === failing) return yield* Effect.fail(new Error(`rank ${rank} ran out of patience`))
    yield* Comm.barrier(Group.world(world))
  })

/** Not a function. */
export const notAProgram = 42
