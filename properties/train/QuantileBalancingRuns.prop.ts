// Quantile balancing in training runs (--quantile-balancing): beta moves once per global batch
// and picks the experts, so it lives in checkpoints. A run saved at step 2 and resumed gives
// bit-identical losses to the run that never stopped, under the same mapping and one with
// another tp, cp and pp (any stage's ranks restore the layers they run); with its betas zeroed
// the checkpoint resumes to other losses (the check can fail). Full recompute replays the MoE
// layers in the backward, their gather over tp-cp included: its losses equal the run's without
// recompute, bit for bit. Beta starts at 0 (step 1 is plain top-k routing's) and the saved betas
// are centred: each layer's sums to 0.
import * as Effect from "effect/Effect"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { describe, expect, test } from "vitest"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as MoeSettings from "../../src/moe/MoeSettings.js"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import * as CheckpointDirectory from "../../src/train/CheckpointDirectory.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import type * as RankTrainer from "../../src/train/RankTrainer.js"
import * as Train from "../../src/train/Train.js"

const steps = 5
const moe: MoeSettings.MoeSettings = { ...MoeSettings.defaults, quantileBalancing: true, quantileBalancingEma: 0.25, auxLosses: [] }
const model = { ...ModelConfig.small, hidden: 16, heads: 4, kvHeads: 2, ffn: 16, moeFfn: 8, seq: 8, vocab: 16, moe }
const setup = (parallel: ParallelConfig.ParallelConfig, recompute: RankTrainer.TrainSetup["recompute"] = "none"): RankTrainer.TrainSetup => ({
  parallel,
  model,
  batch: { microBatch: 1, globalBatch: 4 },
  seed: 5,
  dtype: "float64",
  optimizer: Optimizer.defaults(steps),
  auxLossCoeff: 0,
  recompute,
})
const losses = (xs: ReadonlyArray<Train.StepSummary>) => xs.map((s) => s.loss)

describe("quantile balancing in training runs", () => {
  const a = ParallelConfig.make({ world: 4, tp: 1, cp: 1, pp: 2, ep: 2, etp: 1 })
  const b = ParallelConfig.make({ world: 4, tp: 2, cp: 2, pp: 1, ep: 4, etp: 1 })

  test("a resumed run continues with the saved betas, bit-exactly, under the same and another mapping", async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-quantile-")), "ckpt")
    const whole = await Effect.runPromise(Train.run(setup(a), { steps }))
    await Effect.runPromise(Train.run(setup(a), { steps: 2, save: dir }))
    const saved = Checkpoint.manifest(dir).quantileBeta ?? {}
    // Every MoE layer's beta, moved from 0 by two global batches, centred.
    expect(Object.keys(saved).sort()).toEqual(["0", "1", "2", "3"])
    for (const beta of Object.values(saved)) {
      expect(beta).toHaveLength(model.experts)
      expect(beta.some((v) => v !== 0)).toBe(true)
      expect(Math.abs(beta.reduce((x, y) => x + y, 0))).toBeLessThan(1e-12)
    }
    const resumed = await Effect.runPromise(Train.run(setup(a), { steps, resume: dir }))
    expect(losses(resumed)).toEqual(losses(whole).slice(2))
    const resharded = await Effect.runPromise(Train.run(setup(b), { steps, resume: dir }))
    losses(resharded).forEach((l, i) => expect(Math.abs(l - (losses(whole)[i + 2] as number)) / Math.abs(l)).toBeLessThan(1e-9))
  }, 120_000)

  test("without its betas the same checkpoint resumes to other losses", async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-quantile-")), "ckpt")
    const whole = await Effect.runPromise(Train.run(setup(a), { steps }))
    await Effect.runPromise(Train.run(setup(a), { steps: 2, save: dir }))
    const file = CheckpointDirectory.manifestOf(CheckpointDirectory.locate(dir) as string)
    const json = JSON.parse(readFileSync(file, "utf8")) as { quantileBeta: Record<string, Array<number>> }
    for (const layer of Object.keys(json.quantileBeta)) json.quantileBeta[layer] = (json.quantileBeta[layer] as Array<number>).map(() => 0)
    writeFileSync(file, JSON.stringify(json))
    const resumed = await Effect.runPromise(Train.run(setup(a), { steps, resume: dir }))
    expect(losses(resumed)).not.toEqual(losses(whole).slice(2))
  }, 120_000)

  test("full recompute replays the selection: the losses of the run without recompute, bit for bit", async () => {
    const plain = await Effect.runPromise(Train.run(setup(b), { steps: 3 }))
    const full = await Effect.runPromise(Train.run(setup(b, "full"), { steps: 3 }))
    expect(losses(full)).toEqual(losses(plain))
    // Beta is 0 in step 1 (the plain top-k's selection, the same loss) and picks the experts from step 2 on.
    const unbalanced = await Effect.runPromise(
      Train.run({ ...setup(b), model: { ...model, moe: { ...moe, quantileBalancing: false, quantileBalancingEma: undefined } } }, { steps: 3 }),
    )
    expect(losses(unbalanced)[0]).toBe(losses(plain)[0])
    expect(losses(unbalanced)[1]).not.toBe(losses(plain)[1])
  }, 120_000)
})
