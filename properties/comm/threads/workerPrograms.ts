// Rank programs of the shared-worker properties (Workers.prop.ts): named exports, as every
// threads job needs. Keep imports light: every worker loads this.
import * as Effect from "effect/Effect"
import { threadId } from "node:worker_threads"
import * as Comm from "../../../src/comm/Communicator.js"
import * as Group from "../../../src/comm/Group.js"
import * as Tensor from "../../../src/tensor/Tensor.js"
import { valuesOf } from "../scenarios.js"

/**
 * Collectives on the world and on the pairs (2r, 2r+1), p2p around a ring, `rounds` times;
 * returns what the rank received and the thread it ran on.
 */
export const mixed = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { world, rounds } = args as { world: number; rounds: number }
    const all = Group.world(world)
    const pair = Group.make("pair", rank % 2 === 0 && rank + 1 < world ? [rank, rank + 1] : rank % 2 === 1 ? [rank - 1, rank] : [rank])
    const next = (rank + 1) % world
    const prev = (rank + world - 1) % world
    const seen: Array<Array<number>> = []
    for (let i = 0; i < rounds; i++) {
      const x = Tensor.fromArray(valuesOf(rank, 6, i), [2, 3], { dtype: "float64" })
      seen.push(Tensor.toArray(yield* Comm.allReduce(all, x)))
      seen.push(Tensor.toArray(yield* Comm.allGather(pair, x)))
      yield* Comm.send(next, x, "ring")
      seen.push(Tensor.toArray(yield* Comm.recv(prev, "ring")))
    }
    return { seen, thread: threadId }
  })

/** Rank `args.exiting` ends its thread with process.exit(9) while the others wait in a collective. */
export const exitsFrom = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { world, exiting } = args as { world: number; exiting: number }
    if (rank === exiting) {
      yield* Effect.sleep(20)
      process.exit(9)
    }
    return Tensor.toArray(yield* Comm.allReduce(Group.world(world), Tensor.fromArray([rank], [1], { dtype: "float64" })))
  })
