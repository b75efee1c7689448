// Off the tape, the dispatchers hand the rows their experts ran on (and the experts' output)
// back to the storage recycler once the combine has summed them, and the next step reuses that
// memory. Steps run back to back give the same bits as with recycling declined (computeRetains),
// all-to-all (EP 1: the permuted rows; EP 2 and 4: the received rows) and allgather (the
// permuted gathered rows), with identity experts and with the SwiGLU experts, rows of more than
// the recycler's 1 MiB, on the local backend and on worker threads (copying and zero-copy); and a `compute` that keeps its rows while saying it does not finds them
// detached (the suites' checking mode), not overwritten by the next step.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as AllToAllDispatcher from "../../src/moe/AllToAllDispatcher.js"
import type * as Dispatcher from "../../src/moe/Dispatcher.js"
import * as RoutingMap from "../../src/moe/RoutingMap.js"
import * as Job from "../../src/runtime/Job.js"
import * as StorageRecycler from "../../src/tensor/StorageRecycler.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { seed } from "./arbitraries.js"
import { identityExperts } from "./identityExperts.js"
import * as Backend from "../../src/runtime/Backend.js"
import * as LocalBackend from "../../src/runtime/LocalBackend.js"
import * as RankProgram from "../../src/runtime/RankProgram.js"
import * as ThreadsBackend from "../../src/runtime/ThreadsBackend.js"
import { epGroups, hidden, type RecyclingArgs, type RecyclingResult } from "./recyclingSteps.js"

/** The backends the steps run on: one thread, and workers (2 ranks a thread, copying and zero-copy). */
const layers = {
  local: LocalBackend.layer(),
  threads: ThreadsBackend.layer({ workers: 2 }),
  "threads-zero-copy": ThreadsBackend.layer({ workers: 2, copy: false }),
} as const

const module = new URL("./recyclingSteps.ts", import.meta.url)

const steps = (backend: keyof typeof layers, args: RecyclingArgs): Promise<ReadonlyArray<RecyclingResult>> =>
  Effect.runPromise(Effect.provide(Backend.run<RecyclingResult>({ world: args.ep, program: RankProgram.make(module, "recyclingSteps", args), timeoutMs: 30_000 }), layers[backend]))

describe("the dispatchers recycle the rows their experts ran on", () => {
  test("steps give the same bits with and without recycling, and the memory is reused", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(1, 2, 4),
        seed,
        fc.constantFrom<"identity" | "swiglu">("identity", "swiglu"),
        fc.constantFrom<Dispatcher.ProbsAt>("experts", "combine"),
        fc.constantFrom<RecyclingArgs["dispatcher"]>("all-to-all", "allgather"),
        fc.constantFrom<keyof typeof layers>("local", "threads", "threads-zero-copy"),
        async (ep, s, experts, probsAt, dispatcher, backend) => {
          const args = { ep, seed: s, steps: 3, experts, probsAt, dispatcher }
          const kept = await steps(backend, { ...args, retains: true })
          const recycled = await steps(backend, { ...args, retains: false })
          expect(recycled.map((r) => r.outputs)).toEqual(kept.map((r) => r.outputs))
          // Every rank hands back its rows each step (each result is the member's own buffer,
          // zero-copy transports included) on top of what the exchange hands back either way
          // (the staging buffers of a transport of private storage, ChunkedLowering), and later
          // steps take memory back.
          recycled.forEach((r, i) => expect(r.recycled).toBeGreaterThanOrEqual((kept[i]?.recycled ?? 0) + 3))
          expect(recycled.some((r) => r.reused > 0)).toBe(true)
        },
      ),
      { numRuns: 10 },
    )
  })

  test("a compute that keeps its rows against its word finds them detached, not overwritten", async () => {
    StorageRecycler.clear()
    const ep = 2
    const kept: Array<Tensor.Tensor> = []
    await Job.runPromise({ world: ep }, (rank) =>
      Effect.gen(function* () {
        const groups = epGroups(ep, rank)
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
