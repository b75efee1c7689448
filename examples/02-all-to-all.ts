// Example 02: 8 ranks exchange tokens with an all-to-all, as an MoE dispatcher does.
//
//   npx tsx examples/02-all-to-all.ts
//
// Each rank holds a few tokens, each labelled with its source rank (hundreds) and its index.
// Rank r sends (r + j) % 3 tokens to rank j; every rank prints what it received from whom.
//
// Expected output (abridged):
//   rank 0 sends [0,1,2,0,1,2,0,1] tokens to ranks 0..7
//   rank 0 received from rank 1: [100]
//   rank 0 received from rank 2: [200,201]
//   rank 7 received from rank 6: [606]
//   8 ranks exchanged 64 tokens; sending them back restores every rank's tokens: true
import * as Effect from "effect/Effect"
import * as Comm from "../src/comm/Communicator.js"
import * as Group from "../src/comm/Group.js"
import * as Job from "../src/runtime/Job.js"
import * as Tensor from "../src/tensor/Tensor.js"

const world = 8
const group = Group.world(world)
const splitsOf = (rank: number) => Array.from({ length: world }, (_, j) => (rank + j) % 3)

const results = await Job.runPromise({ world }, (rank) =>
  Effect.gen(function* () {
    const splits = splitsOf(rank)
    const count = splits.reduce((a, b) => a + b, 0)
    // One row per token; its value names the source rank and the token index.
    const tokens = Tensor.fromArray(
      Array.from({ length: count }, (_, i) => rank * 100 + i),
      [count, 1],
      { dtype: "float64" },
    )
    const received = yield* Comm.allToAllV(group, tokens, splits)
    const back = yield* Comm.allToAllV(group, received.tensor, received.recvSplits)
    return { splits, received: Tensor.toArray(received.tensor), recvSplits: received.recvSplits, restored: Tensor.toArray(back.tensor).every((v, i) => v === tokens.data[i]) }
  }),
)

console.log(`rank 0 sends [${splitsOf(0).join(",")}] tokens to ranks 0..${world - 1}`)
let total = 0
results.forEach((r, rank) => {
  let offset = 0
  r.recvSplits.forEach((n, from) => {
    if (n > 0) console.log(`rank ${rank} received from rank ${from}: [${r.received.slice(offset, offset + n).join(",")}]`)
    offset += n
    total += n
  })
})
console.log(`${world} ranks exchanged ${total} tokens; sending them back restores every rank's tokens: ${results.every((r) => r.restored)}`)
