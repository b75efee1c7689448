// Expert biases in checkpoints (--expert-bias, aux-loss-free balancing): the biases move once
// per global batch and steer which experts are picked, so a run resumed from a checkpoint must
// continue with them. A run saved at step 2 and resumed gives bit-identical losses to the run
// that never stopped, under the same mapping and under one with another pp split (the manifest
// holds each MoE layer's bias by layer; any stage's ranks restore the layers they run); a
// checkpoint whose biases were zeroed resumes to different losses (the check can fail).
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
const moe: MoeSettings.MoeSettings = { ...MoeSettings.defaults, scoreFunction: "sigmoid", expertBias: true, biasUpdateRate: 0.05, auxLosses: [] }
const model = { ...ModelConfig.small, hidden: 16, heads: 4, kvHeads: 2, ffn: 16, moeFfn: 8, seq: 8, vocab: 16, moe }
const setup = (parallel: ParallelConfig.ParallelConfig): RankTrainer.TrainSetup => ({
  parallel,
  model,
  batch: { microBatch: 1, globalBatch: 4 },
  seed: 5,
  dtype: "float64",
  optimizer: Optimizer.defaults(steps),
  auxLossCoeff: 0,
})
const losses = (xs: ReadonlyArray<Train.StepSummary>) => xs.map((s) => s.loss)

describe("expert biases in checkpoints", () => {
  const a = ParallelConfig.make({ world: 4, tp: 1, cp: 1, pp: 2, ep: 2, etp: 1 })
  const b = ParallelConfig.make({ world: 4, tp: 2, cp: 1, pp: 1, ep: 4, etp: 1 })

  test("a resumed run continues with the saved biases, bit-exactly, under the same and another mapping", async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-bias-")), "ckpt")
    const whole = await Effect.runPromise(Train.run(setup(a), { steps }))
    await Effect.runPromise(Train.run(setup(a), { steps: 2, save: dir }))
    const saved = Checkpoint.manifest(dir).expertBias ?? {}
    // Every MoE layer's bias, moved from 0 by two global batches.
    expect(Object.keys(saved).sort()).toEqual(["0", "1", "2", "3"])
    for (const bias of Object.values(saved)) {
      expect(bias).toHaveLength(model.experts)
      expect(bias.some((v) => v !== 0)).toBe(true)
    }
    const resumed = await Effect.runPromise(Train.run(setup(a), { steps, resume: dir }))
    expect(losses(resumed)).toEqual(losses(whole).slice(2))
    const resharded = await Effect.runPromise(Train.run(setup(b), { steps, resume: dir }))
    losses(resharded).forEach((l, i) => expect(Math.abs(l - (losses(whole)[i + 2] as number)) / Math.abs(l)).toBeLessThan(1e-9))
  }, 120_000)

  test("without its biases the same checkpoint resumes to other losses", async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-bias-")), "ckpt")
    const whole = await Effect.runPromise(Train.run(setup(a), { steps }))
    await Effect.runPromise(Train.run(setup(a), { steps: 2, save: dir }))
    // Zero the biases in the manifest (it holds no checksum of itself).
    const stepDir = CheckpointDirectory.locate(dir) as string
    const file = CheckpointDirectory.manifestOf(stepDir)
    const json = JSON.parse(readFileSync(file, "utf8")) as { expertBias: Record<string, Array<number>> }
    for (const layer of Object.keys(json.expertBias)) json.expertBias[layer] = (json.expertBias[layer] as Array<number>).map(() => 0)
    writeFileSync(file, JSON.stringify(json))
    const resumed = await Effect.runPromise(Train.run(setup(a), { steps, resume: dir }))
    expect(losses(resumed)).not.toEqual(losses(whole).slice(2))
  }, 120_000)
})
