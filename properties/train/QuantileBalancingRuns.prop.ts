// Quantile balancing in training runs (--quantile-balancing): full recompute replays the MoE
// layers in the backward, their gather over tp-cp included, and its losses equal the run's
// without recompute, bit for bit. Beta starts at 0, so step 1 is plain top-k routing's, and picks
// the experts from step 2 on. (Its checkpoints: RouterStateCheckpoint.prop.ts.)
import * as Effect from "effect/Effect"
import { describe, expect, test } from "vitest"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as MoeSettings from "../../src/moe/MoeSettings.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import type * as RankTrainer from "../../src/train/RankTrainer.js"
import * as Train from "../../src/train/Train.js"

const moe: MoeSettings.MoeSettings = { ...MoeSettings.defaults, quantileBalancing: true, quantileBalancingEma: 0.25, auxLosses: [] }
const model = { ...ModelConfig.small, hidden: 16, heads: 4, kvHeads: 2, ffn: 16, moeFfn: 8, seq: 8, vocab: 16, moe }
const parallel = ParallelConfig.make({ world: 4, tp: 2, cp: 2, pp: 1, ep: 4, etp: 1 })
const setup = (m: ModelConfig.ModelConfig, recompute: RankTrainer.TrainSetup["recompute"] = "none"): RankTrainer.TrainSetup => ({
  parallel,
  model: m,
  batch: { microBatch: 1, globalBatch: 4 },
  seed: 5,
  dtype: "float64",
  optimizer: Optimizer.defaults(3),
  auxLossCoeff: 0,
  recompute,
})
const losses = (xs: ReadonlyArray<Train.StepSummary>) => xs.map((s) => s.loss)

describe("quantile balancing in training runs", () => {
  test("full recompute replays the selection: the losses of the run without recompute, bit for bit", async () => {
    const plain = await Effect.runPromise(Train.run(setup(model), { steps: 3 }))
    const full = await Effect.runPromise(Train.run(setup(model, "full"), { steps: 3 }))
    expect(losses(full)).toEqual(losses(plain))
    // Beta is 0 in step 1 (the plain top-k's selection, the same loss) and picks the experts from step 2 on.
    const unbalanced = await Effect.runPromise(Train.run(setup({ ...model, moe: { ...moe, quantileBalancing: false, quantileBalancingEma: undefined } }), { steps: 3 }))
    expect(losses(unbalanced)[0]).toBe(losses(plain)[0])
    expect(losses(unbalanced)[1]).not.toBe(losses(plain)[1])
  }, 120_000)
})
