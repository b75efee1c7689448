// Training under random valid mappings over all five dims (with folding, and vpp) gives the
// same per-step losses and gradient norms as one rank, in float64 (dropless).
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import type * as RankTrainer from "../../src/train/RankTrainer.js"
import * as Train from "../../src/train/Train.js"
import { mappings, model } from "./arbitraries.js"

const relative = (a: number, b: number) => Math.abs(a - b) / Math.max(1e-12, Math.abs(b))

const mapping = mappings({ minWorld: 1, maxWorld: 8 })

describe("training under a mapping equals training on one rank", () => {
  test("per-step losses and gradient norms, float64, random mappings over all five dims", async () => {
    await fc.assert(
      fc.asyncProperty(mapping, fc.integer({ min: 1, max: 1000 }), async (m, seed) => {
        const vpp = m.pp > 1 ? m.vpp : undefined
        const validated = ParallelConfig.validate({ world: m.world, tp: m.tp, cp: m.cp, pp: m.pp, ep: m.ep, etp: m.etp, vpp, order: m.order })
        fc.pre(validated._tag === "Success")
        const parallel = validated._tag === "Success" ? validated.success : ParallelConfig.make({ world: 1 })
        const steps = 2
        const microBatch = 2
        const setup = (p: ParallelConfig.ParallelConfig, globalBatch: number): RankTrainer.TrainSetup => ({
          parallel: p,
          model,
          batch: { microBatch, globalBatch },
          seed,
          dtype: "float64",
          optimizer: Optimizer.defaults(steps),
          auxLossCoeff: 0.01,
        })
        const globalBatch = microBatch * m.dp * (m.pp > 1 ? 2 * m.pp : 2)
        const parallelRun = await Effect.runPromise(Train.run(setup(parallel, globalBatch), { steps, timeoutMs: 20_000 }))
        const single = await Effect.runPromise(Train.run(setup(ParallelConfig.make({ world: 1 }), globalBatch), { steps }))
        parallelRun.forEach((s, k) => {
          const one = single[k] as Train.StepSummary
          expect(relative(s.loss, one.loss), `loss of step ${k}: ${s.loss} vs ${one.loss}`).toBeLessThan(1e-9)
          expect(relative(s.gradNorm, one.gradNorm), `grad norm of step ${k}: ${s.gradNorm} vs ${one.gradNorm}`).toBeLessThan(1e-9)
        })
      }),
      { numRuns: 12 },
    )
  }, 300_000)

  test("a model that does not fit the mapping is rejected before any work, naming the field", () => {
    const parallel = ParallelConfig.make({ world: 8, tp: 2, pp: 2, ep: 2 })
    const batch = { microBatch: 1, globalBatch: 4 }
    expect(() => ModelConfig.check({ ...ModelConfig.small, layers: 3 }, batch, parallel)).toThrow("layers: 3 is not divisible by pp*vpp = 2*1")
    expect(() => ModelConfig.check({ ...ModelConfig.small, heads: 3, hidden: 33 }, batch, parallel)).toThrow("heads: 3 is not divisible by tp = 2")
    expect(() => ModelConfig.check({ ...ModelConfig.small, experts: 3 }, batch, parallel)).toThrow("experts: 3 is not divisible by ep = 2")
    expect(() => ModelConfig.check(ModelConfig.small, { microBatch: 3, globalBatch: 4 }, parallel)).toThrow("global-batch: 4 is not divisible by micro-batch*dp = 3*2")
    expect(() => ModelConfig.check({ ...ModelConfig.small, seq: 10 }, batch, ParallelConfig.make({ world: 2, cp: 2 }))).toThrow("seq: 10 is not divisible by 2*cp = 4")
  })
})
