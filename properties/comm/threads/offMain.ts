// Rank programs for MainThread.prop.ts: collectives and p2p messages that must go on while
// the main thread is blocked. Keep imports light: every worker loads this.
import * as Effect from "effect/Effect"
import * as Comm from "../../../src/comm/Communicator.js"
import * as Group from "../../../src/comm/Group.js"
import * as Tensor from "../../../src/tensor/Tensor.js"

/** The shared memory of `whileMainBlocked`: a go flag, then one finish time per rank. */
export interface OffMainArgs {
  readonly world: number
  readonly rounds: number
  /** Int32 [0]: set by the main thread once it starts blocking. */
  readonly flags: SharedArrayBuffer
  /** Float64 per rank: when it finished its rounds (performance.timeOrigin + now, ms). */
  readonly done: SharedArrayBuffer
}

/**
 * One collective to get the group's control block (the main thread hands it out), an event
 * that makes the main thread block, then `rounds` of an allReduce, an allToAllV and a p2p ring
 * exchange; records when it finished and returns checksums of what it received.
 */
export const whileMainBlocked = (rank: number, args: unknown, emit: (event: unknown) => void) =>
  Effect.gen(function* () {
    const { world, rounds, flags, done } = args as OffMainArgs
    const group = Group.world(world)
    yield* Comm.barrier(group)
    if (rank === 0) emit("block now")
    const go = new Int32Array(flags)
    while (Atomics.load(go, 0) === 0) yield* Effect.sleep(1)
    let sum = 0
    let moved = 0
    let ring = 0
    for (let i = 0; i < rounds; i++) {
      const x = Tensor.fromArray([rank + i], [1, 1], { dtype: "float64" })
      sum += Tensor.item(yield* Comm.allReduce(group, x))
      const out = yield* Comm.allToAllV(
        group,
        Tensor.fromArray(
          Array.from({ length: world }, (_, j) => rank * 100 + j),
          [world, 1],
          { dtype: "float64" },
        ),
        new Array<number>(world).fill(1),
      )
      moved += out.tensor.data[(rank + 1) % world] as number
      yield* Comm.send((rank + 1) % world, Tensor.fromArray([rank * 1000 + i], [1], { dtype: "float64" }))
      ring += Tensor.item(yield* Comm.recv((rank + world - 1) % world))
    }
    new Float64Array(done)[rank] = performance.timeOrigin + performance.now()
    return { sum, moved, ring }
  })
