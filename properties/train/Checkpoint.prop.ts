// Checkpoints: resume is bit-exact, a checkpoint saved under one mapping resumes under another
// (float64, equal within 1e-9), and a save that dies midway leaves the previous one intact.
import * as Effect from "effect/Effect"
import { existsSync, mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { describe, expect, test } from "vitest"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import type * as RankTrainer from "../../src/train/RankTrainer.js"
import * as Train from "../../src/train/Train.js"

const steps = 4
const model = { ...ModelConfig.small, hidden: 16, heads: 4, kvHeads: 2, ffn: 16, moeFfn: 8, seq: 8, vocab: 16 }
const setup = (parallel: ParallelConfig.ParallelConfig): RankTrainer.TrainSetup => ({
  parallel,
  model,
  batch: { microBatch: 1, globalBatch: 4 },
  seed: 3,
  dtype: "float64",
  optimizer: Optimizer.defaults(steps),
  auxLossCoeff: 0.01,
})
const losses = (xs: ReadonlyArray<Train.StepSummary>) => xs.map((s) => s.loss)

describe("checkpoints", () => {
  const a = ParallelConfig.make({ world: 4, tp: 2, pp: 2, ep: 2, etp: 1 })
  const b = ParallelConfig.make({ world: 4, cp: 2, pp: 1, ep: 4, etp: 1, tp: 1 })

  test("resume is bit-exact, and a checkpoint resumes under another mapping", async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-ckpt-")), "ckpt")
    const whole = await Effect.runPromise(Train.run(setup(a), { steps }))
    await Effect.runPromise(Train.run({ ...setup(a), optimizer: Optimizer.defaults(steps) }, { steps: 2, save: dir }))
    // --steps is the total: the saved run stopped at 2 of 4, and the schedule knows it.
    expect(Checkpoint.manifest(dir).step).toBe(2)
    const resumed = await Effect.runPromise(Train.run(setup(a), { steps, resume: dir }))
    expect(losses(resumed)).toEqual(losses(whole).slice(2))
    const resharded = await Effect.runPromise(Train.run(setup(b), { steps, resume: dir }))
    losses(resharded).forEach((l, i) => expect(Math.abs(l - (losses(whole)[i + 2] as number)) / Math.abs(l)).toBeLessThan(1e-9))
  }, 120_000)

  test("a save that dies midway leaves the previous checkpoint intact", async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-ckpt-")), "ckpt")
    await Effect.runPromise(Train.run(setup(a), { steps: 1, save: dir }))
    // A second save starts, writes part of its files and dies before the manifest and rename.
    Checkpoint.begin(dir)
    writeFileSync(path.join(Checkpoint.temporary(dir), "rank-0.bin"), new Uint8Array([1, 2, 3]))
    expect(Checkpoint.manifest(dir).step).toBe(1)
    const resumed = await Effect.runPromise(Train.run(setup(a), { steps: 2, resume: dir }))
    expect(resumed.length).toBe(1)
    // The next save clears the stale temporary directory and replaces the checkpoint.
    await Effect.runPromise(Train.run(setup(a), { steps: 2, resume: dir, save: dir }))
    expect(Checkpoint.manifest(dir).step).toBe(2)
    expect(existsSync(Checkpoint.temporary(dir))).toBe(false)
    expect(() => Checkpoint.manifest(path.join(dir, "nowhere"))).toThrow("holds no complete checkpoint")
  }, 120_000)
})
