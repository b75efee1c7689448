// Router state in checkpoints: the expert biases of aux-loss-free balancing (--expert-bias) and
// the betas of quantile balancing (--quantile-balancing) move once per global batch and steer
// which experts are picked, so a run resumed from a checkpoint must continue with them. A run
// saved at step 2 and resumed gives bit-identical losses to the run that never stopped, under the
// same mapping and under one with another tp, cp and pp split (the manifest holds each MoE layer's
// state by layer; any stage's ranks restore the layers they run); a checkpoint whose state was
// zeroed resumes to different losses (the check can fail), and one saved after a resume holds what
// the uninterrupted run saves (each rank saves the layers it ran, not the other stage's restored,
// stale ones). Quantile balancing's betas are centred.
import * as Effect from "effect/Effect"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { describe, expect, test } from "vitest"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as MoeSettings from "../../src/moe/MoeSettings.js"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import * as CheckpointDirectory from "../../src/train/CheckpointDirectory.js"
import type * as RankTrainer from "../../src/train/RankTrainer.js"
import * as Train from "../../src/train/Train.js"
import { expectResumes, smallModel, smallSetup } from "./resumes.js"

const steps = 5
const cases = [
  { key: "expertBias" as const, moe: { ...MoeSettings.defaults, scoreFunction: "sigmoid" as const, expertBias: true, biasUpdateRate: 0.05, auxLosses: [] } },
  { key: "quantileBeta" as const, moe: { ...MoeSettings.defaults, quantileBalancing: true, quantileBalancingEma: 0.25, auxLosses: [] } },
]
const losses = (xs: ReadonlyArray<Train.StepSummary>) => xs.map((s) => s.loss)

describe.each(cases)("$key in checkpoints", ({ key, moe }) => {
  const model = smallModel(moe)
  const setup = (parallel: ParallelConfig.ParallelConfig): RankTrainer.TrainSetup => smallSetup(parallel, model, steps, { seed: 5, auxLossCoeff: 0 })
  const a = ParallelConfig.make({ world: 4, tp: 1, cp: 1, pp: 2, ep: 2, etp: 1 })
  const b = ParallelConfig.make({ world: 4, tp: 2, cp: 2, pp: 1, ep: 4, etp: 1 })

  test("a resumed run continues with the saved state, bit-exactly, under the same and another mapping", async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-router-state-")), "ckpt")
    await expectResumes(setup, { a, b }, steps, dir, (at) => {
      const saved = Checkpoint.manifest(at)[key] ?? {}
      // Every MoE layer's state, moved from 0 by two global batches.
      expect(Object.keys(saved).sort()).toEqual(["0", "1", "2", "3"])
      for (const values of Object.values(saved)) {
        expect(values).toHaveLength(model.experts)
        expect(values.some((v) => v !== 0)).toBe(true)
        if (key === "quantileBeta") expect(Math.abs(values.reduce((x, y) => x + y, 0))).toBeLessThan(1e-12)
      }
    })
  }, 120_000)

  test("a checkpoint saved after a resume holds every layer's state as the uninterrupted run saves it", async () => {
    const root = mkdtempSync(path.join(tmpdir(), "pleat-router-state-"))
    const [early, resumed, whole] = ["early", "resumed", "whole"].map((name) => path.join(root, name)) as [string, string, string]
    await Effect.runPromise(Train.run(setup(a), { steps: 4, save: whole }))
    await Effect.runPromise(Train.run(setup(a), { steps: 2, save: early }))
    // Every rank restores every layer's state; the ranks of the other stage must not save theirs, stale.
    await Effect.runPromise(Train.run(setup(a), { steps: 4, resume: early, save: resumed }))
    expect(Checkpoint.manifest(resumed)[key]).toEqual(Checkpoint.manifest(whole)[key])
    expect(Checkpoint.manifest(resumed)[key]).not.toEqual(Checkpoint.manifest(early)[key])
  }, 120_000)

  test("without its state the same checkpoint resumes to other losses", async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-router-state-")), "ckpt")
    const whole = await Effect.runPromise(Train.run(setup(a), { steps }))
    await Effect.runPromise(Train.run(setup(a), { steps: 2, save: dir }))
    // Zero the state in the manifest (it holds no checksum of itself).
    const file = CheckpointDirectory.manifestOf(CheckpointDirectory.locate(dir) as string)
    const json = JSON.parse(readFileSync(file, "utf8")) as Record<string, Record<string, Array<number>>>
    const state = json[key] as Record<string, Array<number>>
    for (const layer of Object.keys(state)) state[layer] = (state[layer] as Array<number>).map(() => 0)
    writeFileSync(file, JSON.stringify(json))
    const resumed = await Effect.runPromise(Train.run(setup(a), { steps, resume: dir }))
    expect(losses(resumed)).not.toEqual(losses(whole).slice(2))
  }, 120_000)
})
