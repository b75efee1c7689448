// Off the tape, the dispatchers hand the rows their experts ran on (and the experts' output)
// back to the storage recycler once the combine has summed them, and the next step reuses that
// memory. Steps run back to back give the same bits as with recycling declined (computeRetains),
// all-to-all (EP 1: the permuted rows; EP 2 and 4: the received rows) and allgather (the
// permuted gathered rows), with identity experts and with the SwiGLU experts, rows of more than
// the recycler's 1 MiB; and a `compute` that keeps its rows while saying it does not finds them
// detached (the suites' checking mode), not overwritten by the next step.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import type * as Comm from "../../src/comm/Communicator.js"
import * as Group from "../../src/comm/Group.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as AllGatherDispatcher from "../../src/moe/AllGatherDispatcher.js"
import * as AllToAllDispatcher from "../../src/moe/AllToAllDispatcher.js"
import type * as Dispatcher from "../../src/moe/Dispatcher.js"
import * as RoutingMap from "../../src/moe/RoutingMap.js"
import * as Job from "../../src/runtime/Job.js"
import * as StorageRecycler from "../../src/tensor/StorageRecycler.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { rng } from "../tensor/gradcheck.js"
import { seed } from "./arbitraries.js"
import { identityExperts } from "./identityExperts.js"

const hidden = 1024
/** Either dispatcher's entry point (the output is what this file reads). */
type Dispatch = (input: Dispatcher.DispatchInput) => Effect.Effect<{ readonly output: Tensor.Tensor }, unknown, Comm.Communicator>
const bitsOf = (t: Tensor.Tensor): Array<number> => Array.from(new Uint32Array(Float32Array.from(t.data).buffer))

/** `steps` dispatcher steps of fresh random tokens on every rank of EP `ep`: each step's output bits per rank. */
const steps = (ep: number, s: number, count: number, experts: "identity" | "swiglu", keeps: boolean, probsAt: Dispatcher.ProbsAt, dispatcher: Dispatch) =>
  Job.runPromise({ world: ep }, (rank) =>
    Effect.gen(function* () {
      const config = ParallelConfig.make({ world: ep, ep, etp: 1 })
      const groups = { ep: Group.ofFamily(config, "ep", rank), etp: Group.ofFamily(config, "etp", rank), etpEp: Group.ofFamily(config, "etp-ep", rank) }
      const numExperts = 2 * ep
      const r = rng(s + 101 * rank)
      const local = numExperts / ep
      const ffn = 8
      const weight = (shape: Array<number>) =>
        Tensor.fromArray(
          Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (r() - 0.5) * 0.2),
          shape,
        )
      const w = { wGate: weight([local, hidden, ffn]), wUp: weight([local, hidden, ffn]), wDown: weight([local, ffn, hidden]) }
      const out: Array<Array<number>> = []
      for (let i = 0; i < count; i++) {
        // 320-351 tokens, each to 2 of the experts: ~640 rows of 4 KiB to receive, more than the
        // recycler's 1 MiB, a little more or less from step to step (as routing varies).
        const t = 320 + Math.floor(r() * 32)
        const mask = new Array<number>(t * numExperts).fill(0)
        for (let k = 0; k < t; k++) {
          const first = Math.floor(r() * numExperts)
          mask[k * numExperts + first] = 1
          mask[k * numExperts + ((first + 1 + Math.floor(r() * (numExperts - 1))) % numExperts)] = 1
        }
        const tokens = Tensor.fromArray(
          Float32Array.from({ length: t * hidden }, () => r() * 2 - 1),
          [t, hidden],
        )
        const probs = Tensor.fromArray(
          mask.map((m) => m * r()),
          [t, numExperts],
        )
        const { output } = yield* dispatcher({
          tokens,
          probs,
          map: RoutingMap.make(t, numExperts, Uint8Array.from(mask)),
          numExperts,
          experts: w,
          groups,
          ...(experts === "identity" ? { compute: identityExperts } : {}),
          computeRetains: keeps,
          probsAt,
        })
        out.push(bitsOf(output))
      }
      return out
    }),
  )

describe("the dispatchers recycle the rows their experts ran on", () => {
  test("steps give the same bits with and without recycling, and the memory is reused", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(1, 2, 4),
        seed,
        fc.constantFrom<"identity" | "swiglu">("identity", "swiglu"),
        fc.constantFrom<Dispatcher.ProbsAt>("experts", "combine"),
        fc.constantFrom<Dispatch>(AllToAllDispatcher.run, AllGatherDispatcher.run),
        async (ep, s, experts, probsAt, dispatcher) => {
          StorageRecycler.clear()
          const kept = await steps(ep, s, 3, experts, true, probsAt, dispatcher)
          expect(StorageRecycler.stats().pooledBytes).toBe(0)
          const before = StorageRecycler.stats()
          const recycled = await steps(ep, s, 3, experts, false, probsAt, dispatcher)
          expect(recycled).toEqual(kept)
          const after = StorageRecycler.stats()
          // Every rank hands back its received rows each step, and the next steps take memory back.
          expect(after.recycled - before.recycled).toBeGreaterThanOrEqual(3 * ep)
          expect(after.reused).toBeGreaterThan(before.reused)
          StorageRecycler.clear()
        },
      ),
      { numRuns: 6 },
    )
  })

  test("a compute that keeps its rows against its word finds them detached, not overwritten", async () => {
    StorageRecycler.clear()
    const ep = 2
    const kept: Array<Tensor.Tensor> = []
    await Job.runPromise({ world: ep }, (rank) =>
      Effect.gen(function* () {
        const config = ParallelConfig.make({ world: ep, ep, etp: 1 })
        const groups = { ep: Group.ofFamily(config, "ep", rank), etp: Group.ofFamily(config, "etp", rank), etpEp: Group.ofFamily(config, "etp-ep", rank) }
        const t = 512
        const mask = Array.from({ length: t * 4 }, (_, i) => (i % 4 === (Math.floor(i / 4) + rank) % 4 || i % 4 === (Math.floor(i / 4) + rank + 2) % 4 ? 1 : 0))
        const empty = Tensor.zeros([0, 0, 0])
        yield* AllToAllDispatcher.run({
          tokens: Tensor.fromArray(new Float32Array(t * hidden).fill(rank + 1), [t, hidden]),
          probs: Tensor.fromArray(
            mask.map((m) => m * 0.5),
            [t, 4],
          ),
          map: RoutingMap.make(t, 4, Uint8Array.from(mask)),
          numExperts: 4,
          experts: { wGate: empty, wUp: empty, wDown: empty },
          groups,
          compute: (rows, probs) => {
            kept.push(rows)
            return identityExperts(rows, probs)
          },
          computeRetains: false,
        })
      }),
    )
    expect(kept).toHaveLength(ep)
    for (const rows of kept) {
      expect(rows.size).toBe(2 * 512 * hidden)
      expect(rows.data.length).toBe(0)
    }
    StorageRecycler.clear()
  })
})
