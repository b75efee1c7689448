// The data-parallel gradient sync hands its buckets back to the storage recycler where the
// transport kept none of them (RankParams.synchronize on a transport of private storage), and
// the next step's buckets reuse them. Over data-parallel jobs of 2-4 ranks, float32 and
// float64, two steps back to back: every gradient is the sum of the ranks' gradients after each
// step (integers, so any order of addition gives the same bits), the copying backend hands back
// a bucket and a sum for every bucket the sync sends and the second step takes memory back, and
// the zero-copy backend (results shared between ranks) hands back nothing. The suites run the
// recycler in checking mode, so a buffer read after it was handed back would fail loudly.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Folding from "../../src/mapping/Folding.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as Job from "../../src/runtime/Job.js"
import * as StorageRecycler from "../../src/tensor/StorageRecycler.js"
import * as Params from "../../src/train/Params.js"
import * as RankParams from "../../src/train/RankParams.js"
import { model as small } from "./arbitraries.js"

/** The training suites' model, wide enough that the dense and expert buckets pass the slabs' 64 KB. */
const model = { ...small, hidden: 64, ffn: 128, moeFfn: 64, vocab: 64 }

/** Rank `rank`'s gradient element `i` at `step`: a small integer, exact in float32. */
const gradAt = (rank: number, i: number, step: number): number => (rank + 1) * ((i % 7) - 3) + step

describe("the gradient sync's buckets go back to the recycler", () => {
  test("sums are exact over two steps; copying hands back and reuses, zero-copy hands back nothing", async () => {
    const setting = fc.record({ world: fc.integer({ min: 2, max: 4 }), float64: fc.boolean(), zeroCopy: fc.boolean(), seed: fc.integer({ min: 1, max: 1000 }) })
    await fc.assert(
      fc.asyncProperty(setting, async ({ world, float64, zeroCopy, seed }) => {
        const validated = ParallelConfig.validate({ world, tp: 1, cp: 1, pp: 1, ep: 1, etp: 1, order: "tp-cp-ep-dp-pp" })
        if (validated._tag !== "Success") throw new Error(`dp ${world} is a valid mapping`)
        const parallel = validated.success
        const dtype = float64 ? "float64" : "float32"
        StorageRecycler.clear()
        const before = StorageRecycler.stats()
        const steps = await Job.runPromise({ world, backend: zeroCopy ? "local-zero-copy" : "local" }, (rank) =>
          Effect.gen(function* () {
            const groups = RankParams.syncGroups(parallel, rank)
            const params = RankParams.make(Params.specs(model), () => true, Folding.place(Folding.make(parallel), rank), parallel.sizes, seed, dtype)
            const wrong: Array<string> = []
            for (const step of [0, 1]) {
              for (const h of params.values()) for (let i = 0; i < h.grad.length; i++) h.grad[i] = gradAt(rank, i, step)
              yield* RankParams.synchronize(params, groups, dtype)
              for (const h of params.values()) {
                for (let i = 0; i < h.grad.length; i++) {
                  let sum = 0
                  for (let r = 0; r < world; r++) sum += gradAt(r, i, step)
                  if (h.grad[i] !== sum) wrong.push(`step ${step} rank ${rank} ${h.spec.name}[${i}] = ${h.grad[i]}, not ${sum}`)
                }
              }
            }
            return wrong.slice(0, 3)
          }),
        )
        expect(steps.flat()).toEqual([])
        const after = StorageRecycler.stats()
        // A dp-only job sums every kind of gradient over all ranks: one bucket per kind held.
        const kinds = new Set(Params.specs(model).map((s) => RankParams.kindOf(s))).size
        if (zeroCopy) expect(after.recycled - before.recycled).toBe(0)
        else {
          // Each rank hands back a bucket and its sum per kind, each step (the collective's own
          // staging may add more).
          expect(after.recycled - before.recycled).toBeGreaterThanOrEqual(2 * kinds * world * 2)
          expect(after.reused + after.reusedSlabs - (before.reused + before.reusedSlabs)).toBeGreaterThan(0)
        }
      }),
      { numRuns: 12 },
    )
  })
})
