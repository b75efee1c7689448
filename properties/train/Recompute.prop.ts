// Activation recompute in training (--recompute selective | full, selective with random
// --recompute-modules): on random folded mappings with random router options, a parallel step
// with recompute equals one rank's without it in float64 within 1e-9 (Lockstep's tolerances are
// tighter still); in float32 a run with recompute gives bit-identical losses to one without (the
// replay recomputes the same values); the per-rank memory shows the activation peak falling from
// none to selective to full, and under each module that frees memory, while parameters,
// gradients and optimizer state stay the same.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as RecomputeModules from "../../src/model/RecomputeModules.js"
import * as MoeSettings from "../../src/moe/MoeSettings.js"
import * as Lockstep from "../../src/train/Lockstep.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import type * as RankTrainer from "../../src/train/RankTrainer.js"
import * as Train from "../../src/train/Train.js"
import { mappings, model, type TrainingMapping } from "./arbitraries.js"

/** Full recompute, or selective with a random set of modules (or its defaults). */
const modes = fc.oneof(
  fc.constant({ recompute: "full" as const }),
  fc.constant({ recompute: "selective" as const }),
  fc.record({ recompute: fc.constant("selective" as const), recomputeModules: fc.subarray([...RecomputeModules.all], { minLength: 1 }) }),
)

const validated = (m: TrainingMapping): ParallelConfig.ParallelConfig | undefined => {
  const v = ParallelConfig.validate({ world: m.world, tp: m.tp, cp: m.cp, pp: m.pp, ep: m.ep, etp: m.etp, vpp: m.vpp, order: m.order })
  return v._tag === "Success" ? v.success : undefined
}

/** Router options that touch what a replay must reproduce: state across micro-batches, shared experts, the allgather dispatcher. */
const optionsArb = (dp: number) =>
  fc.record({
    global: dp === 1 ? fc.boolean() : fc.constant(false),
    dispatcher: fc.constantFrom("alltoall" as const, "allgather" as const),
    shared: fc.boolean(),
    zLoss: fc.boolean(),
  })

describe("recompute agrees with one rank without it (float64)", () => {
  test("selective and full on random folded mappings and router options", async () => {
    const cases = mappings({ minWorld: 2, maxWorld: 8, folded: true }).chain((m) => fc.tuple(fc.constant(m), modes, optionsArb(m.dp), fc.integer({ min: 1, max: 1000 })))
    await fc.assert(
      fc.asyncProperty(cases, async ([m, recompute, o, seed]) => {
        const parallel = validated(m)
        fc.pre(parallel !== undefined)
        if (parallel === undefined) return
        const moe: MoeSettings.MoeSettings = {
          ...MoeSettings.defaults,
          auxLosses: [{ type: o.global ? "global_aux" : "aux", coeff: 0.01 }],
          zLossCoeff: o.zLoss ? 0.01 : 0,
          dispatcher: o.dispatcher,
        }
        const setup: RankTrainer.TrainSetup = {
          parallel,
          model: { ...model, moe, ...(o.shared ? { sharedExpertFfn: 8 } : {}) },
          batch: { microBatch: 1, globalBatch: m.dp * (m.pp > 1 ? 2 * m.pp : 2) },
          seed,
          dtype: "float64",
          optimizer: Optimizer.defaults(2),
          auxLossCoeff: 0,
          ...recompute,
        }
        ModelConfig.check(setup.model, setup.batch, setup.parallel)
        const comparisons = await Effect.runPromise(Lockstep.run(setup, { steps: 2, timeoutMs: 20_000 }))
        const v = Lockstep.verdict(comparisons, "float64")
        const label = `${JSON.stringify(recompute)} ${JSON.stringify(m)} ${JSON.stringify(o)} seed ${seed}`
        expect(v.failed, `${label}: ${JSON.stringify(v)}`).toEqual([])
        for (const c of comparisons) {
          for (const part of [c.loss, c.gradNorm, c.gradient, c.parameter]) expect(part.error, label).toBeLessThan(1e-9)
        }
      }),
      { numRuns: 8 },
    )
  }, 300_000)
})

describe("recompute in float32 training", () => {
  const parallel = ParallelConfig.make({ world: 8, tp: 2, cp: 1, pp: 2, ep: 2, etp: 1 })
  const run = (recompute: RankTrainer.Recompute) =>
    Effect.runPromise(
      Train.run(
        {
          parallel,
          model: ModelConfig.small,
          batch: { microBatch: 1, globalBatch: 8 },
          seed: 3,
          dtype: "float32",
          optimizer: Optimizer.defaults(3),
          auxLossCoeff: 0.01,
          recompute,
        },
        { steps: 3 },
      ),
    )

  test("losses are bit-identical; the activation peak falls while the rest of memory stays", async () => {
    const [none, selective, full] = await Promise.all([run("none"), run("selective"), run("full")])
    for (const other of [selective, full]) expect(other.map((s) => s.loss)).toEqual(none.map((s) => s.loss))
    const memory = (summaries: ReadonlyArray<Train.StepSummary>) => (summaries[summaries.length - 1] as Train.StepSummary).ranks.map((r) => r.memory)
    const [m0, m1, m2] = [memory(none), memory(selective), memory(full)]
    for (let r = 0; r < parallel.world; r++) {
      const [a, b, c] = [m0[r], m1[r], m2[r]] as [RankTrainer.StepReport["memory"], RankTrainer.StepReport["memory"], RankTrainer.StepReport["memory"]]
      expect(a.peakActivationBytes).toBeGreaterThan(0)
      expect(b.peakActivationBytes).toBeLessThan(a.peakActivationBytes)
      expect(c.peakActivationBytes).toBeLessThan(b.peakActivationBytes)
      for (const field of ["parameterBytes", "gradientBytes", "optimizerStateBytes"] as const) {
        expect(b[field]).toBe(a[field])
        expect(c[field]).toBe(a[field])
      }
    }
  }, 120_000)
})

describe("each recompute module in float32 training", () => {
  // Dense layers, shared experts and multi-latent attention, so that every module has something to recompute.
  const parallel = ParallelConfig.make({ world: 4, tp: 2, cp: 1, pp: 1, ep: 2, etp: 1 })
  const run = (recomputeModules: ReadonlyArray<RecomputeModules.RecomputeModule> | undefined) =>
    Effect.runPromise(
      Train.run(
        {
          parallel,
          model: {
            ...ModelConfig.small,
            denseFirst: 1,
            sharedExpertFfn: 32,
            kvHeads: ModelConfig.small.heads,
            mla: { qLoraRank: 0, kvLoraRank: 16, qkHeadDim: 8, qkPosEmbHeadDim: 4, vHeadDim: 8 },
          },
          batch: { microBatch: 1, globalBatch: 4 },
          seed: 5,
          dtype: "float32",
          optimizer: Optimizer.defaults(3),
          auxLossCoeff: 0.01,
          ...(recomputeModules === undefined ? {} : { recompute: "selective" as const, recomputeModules }),
        },
        { steps: 3 },
      ),
    )

  test("losses bit-identical; every module but core_attn lowers the activation peak, moe the most", async () => {
    const none = await run(undefined)
    const peak = (summaries: ReadonlyArray<Train.StepSummary>) => Math.max(...(summaries[summaries.length - 1] as Train.StepSummary).ranks.map((r) => r.memory.peakActivationBytes))
    const peaks = new Map<RecomputeModules.RecomputeModule, number>()
    for (const module of RecomputeModules.all) {
      const summaries = await run([module])
      expect(
        summaries.map((s) => s.loss),
        module,
      ).toEqual(none.map((s) => s.loss))
      peaks.set(module, peak(summaries))
    }
    // pleat's attention core keeps no probabilities: recomputing it frees only its row statistics.
    expect(peaks.get("core_attn")).toBeLessThanOrEqual(peak(none))
    for (const module of RecomputeModules.all.filter((m) => m !== "core_attn")) expect(peaks.get(module), module).toBeLessThan(peak(none))
    // The whole MoE layer frees what the experts, their activation and the shared experts free.
    for (const module of ["experts", "moe_act", "shared_experts"] as const) expect(peaks.get("moe"), module).toBeLessThan(peaks.get(module) as number)
  }, 120_000)
})
