// A rank program for MemoryHeadroom.prop.ts (any backend imports it): each rank makes its share
// of an allGather whose result is a new buffer of `checkEvery` bytes or more, then this thread's
// meter is made to read a machine with no memory left, so the refusal is thrown inside the
// collective, while it makes the result (on the copying local backend the snapshot of a rank's
// share may be the buffer refused, just before the collective: the same ConfigError).
import * as Effect from "effect/Effect"
import * as Comm from "../../src/comm/Communicator.js"
import * as Group from "../../src/comm/Group.js"
import * as MemoryHeadroom from "../../src/tensor/MemoryHeadroom.js"
import * as Tensor from "../../src/tensor/Tensor.js"

export const gatherShortOfMemory = (_rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { world, rows } = args as { world: number; rows: number }
    const group = Group.world(world)
    const x = Tensor.zeros([rows, 1024], { dtype: "float32" })
    yield* Comm.barrier(group)
    MemoryHeadroom.setReader(() => ({ available: 0, memory: 2 ** 30, of: "the machine" }))
    return yield* Comm.allGather(group, x).pipe(Effect.ensuring(Effect.sync(() => MemoryHeadroom.setReader(undefined))))
  })
