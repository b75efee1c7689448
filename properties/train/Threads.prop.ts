// Training on the threads backend (ranks in worker threads) gives the local backend's losses,
// publishes each step's summary in order as it completes, and its checkpoints resume on the
// local backend; ranks sharing worker threads train to the same bits.
import * as Effect from "effect/Effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { describe, expect, test } from "vitest"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import type * as RankTrainer from "../../src/train/RankTrainer.js"
import * as Train from "../../src/train/Train.js"

describe("training on the threads backend", () => {
  test("equals the local backend step by step, and checkpoints cross backends", async () => {
    const steps = 3
    const setup: RankTrainer.TrainSetup = {
      parallel: ParallelConfig.make({ world: 4, tp: 2, pp: 2, ep: 2, etp: 1 }),
      model: { ...ModelConfig.small, hidden: 16, heads: 4, kvHeads: 2, ffn: 16, moeFfn: 8, seq: 8, vocab: 16 },
      batch: { microBatch: 1, globalBatch: 4 },
      seed: 5,
      dtype: "float64",
      optimizer: Optimizer.defaults(steps),
      auxLossCoeff: 0.01,
    }
    const local = await Effect.runPromise(Train.run(setup, { steps }))
    const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-threads-")), "ckpt")
    const published: Array<Train.StepSummary> = []
    const threads = await Effect.runPromise(Train.run(setup, { steps: 2, backend: "threads", save: dir, onStep: (s) => published.push(s) }))
    expect(published).toEqual(threads)
    expect(threads.map((s) => s.step)).toEqual([0, 1])
    threads.forEach((s, k) => expect(s.loss).toBe((local[k] as Train.StepSummary).loss))
    const resumed = await Effect.runPromise(Train.run(setup, { steps, resume: dir }))
    expect(resumed.map((s) => s.loss)).toEqual(local.slice(2).map((s) => s.loss))
    // Ranks sharing workers (3 workers for 4 ranks: blocks of 1, 1 and 2) train to the same bits.
    const shared = await Effect.runPromise(Train.run(setup, { steps, backend: "threads", workers: 3 }))
    expect(shared.map((s) => s.loss)).toEqual(local.map((s) => s.loss))
  }, 120_000)
})
