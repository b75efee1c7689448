// The global norm after the gradient sync reads, for each shard the sync cannot have changed
// (RankParams.changedBySync: every group it is summed over holds only this rank), the sum of
// squares the non-finite check kept before the sync, and takes a fresh pass over the others
// (RankParams.squaresAfterSync). On random mappings, tied or untied embeddings, float32 and
// float64, and gradients different on every rank: a shard called unchanged is bit for bit what
// it was, and the norm equals the one from a fresh pass over every gradient, bit for bit.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Folding from "../../src/mapping/Folding.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as Job from "../../src/runtime/Job.js"
import * as NonFinite from "../../src/train/NonFinite.js"
import * as Params from "../../src/train/Params.js"
import * as RankParams from "../../src/train/RankParams.js"
import { mappings, model } from "./arbitraries.js"

describe("sums of squares kept across the gradient sync", () => {
  test("unchanged shards keep their bits; the norm equals a fresh pass's, bit for bit", async () => {
    const setting = fc.record({ m: mappings({ minWorld: 1, maxWorld: 8 }), untie: fc.boolean(), float64: fc.boolean(), seed: fc.integer({ min: 1, max: 1000 }) })
    await fc.assert(
      fc.asyncProperty(setting, async ({ m, untie, float64, seed }) => {
        const validated = ParallelConfig.validate({ world: m.world, tp: m.tp, cp: m.cp, pp: m.pp, ep: m.ep, etp: m.etp, order: m.order })
        fc.pre(validated._tag === "Success")
        if (validated._tag !== "Success") return
        const parallel = validated.success
        const dtype = float64 ? "float64" : "float32"
        const results = await Job.runPromise({ world: parallel.world }, (rank) =>
          Effect.gen(function* () {
            const groups = RankParams.syncGroups(parallel, rank)
            const specs = Params.specs({ ...model, untieEmbeddings: untie })
            const params = RankParams.make(specs, () => true, Folding.place(Folding.make(parallel), rank), parallel.sizes, seed, dtype)
            for (const h of params.values()) for (let i = 0; i < h.grad.length; i++) h.grad[i] = Math.sin(seed + rank * 7919 + i * 0.37)
            const before = new Map([...params.values()].map((h) => [h, Array.from(h.grad)]))
            const kept = new Map<RankParams.Held, number>()
            expect(NonFinite.find(0, params, NonFinite.keepingSquares(kept))).toBeUndefined()
            yield* RankParams.synchronize(params, groups, dtype)
            let unchanged = 0
            for (const h of params.values()) {
              if (RankParams.changedBySync(h, groups)) continue
              unchanged++
              const was = before.get(h) as Array<number>
              for (let i = 0; i < was.length; i++) expect(Object.is(h.grad[i], was[i]), `${h.spec.name}[${i}] on rank ${rank}`).toBe(true)
            }
            const reused = yield* RankParams.globalNorm(params, groups, rank, RankParams.squaresAfterSync(params, groups, rank, kept))
            const fresh = yield* RankParams.globalNorm(params, groups, rank)
            return { reused, fresh, unchanged, shards: params.size }
          }),
        )
        for (const r of results) expect(Object.is(r.reused, r.fresh), `${JSON.stringify(m)}: ${r.reused} vs ${r.fresh}`).toBe(true)
        // One rank changes nothing; a job whose groups all span ranks changes everything.
        if (parallel.world === 1) for (const r of results) expect(r.unchanged).toBe(r.shards)
      }),
      // Always the case where only the tied embedding's sum spans ranks (its first and last stage).
      { numRuns: 30, examples: [[{ m: { tp: 1, cp: 1, pp: 2, dp: 1, vpp: undefined, order: "tp-cp-ep-dp-pp", world: 2, ep: 1, etp: 1 }, untie: false, float64: true, seed: 3 }]] },
    )
  })
})
