// What two checkpoint suites share: their small float64 job, and the resume check (a run saved
// at step 2 of `steps` and resumed under the same mapping gives the uninterrupted run's later
// losses bit for bit, and under another mapping within 1e-9, relative).
import * as Effect from "effect/Effect"
import { expect } from "vitest"
import type * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import type * as MoeSettings from "../../src/moe/MoeSettings.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import type * as RankTrainer from "../../src/train/RankTrainer.js"
import * as Train from "../../src/train/Train.js"

const losses = (xs: ReadonlyArray<Train.StepSummary>) => xs.map((s) => s.loss)

/** The suites' model: ModelConfig.small at hidden 16 (with router settings `moe` where given). */
export const smallModel = (moe?: MoeSettings.MoeSettings): ModelConfig.ModelConfig => ({
  ...ModelConfig.small,
  hidden: 16,
  heads: 4,
  kvHeads: 2,
  ffn: 16,
  moeFfn: 8,
  seq: 8,
  vocab: 16,
  ...(moe === undefined ? {} : { moe }),
})

/** The suites' job on `parallel`: `model`, 4 sequences a step, float64, an AdamW of `steps`. */
export const smallSetup = (
  parallel: ParallelConfig.ParallelConfig,
  model: ModelConfig.ModelConfig,
  steps: number,
  o: { readonly seed: number; readonly auxLossCoeff: number },
): RankTrainer.TrainSetup => ({
  parallel,
  model,
  batch: { microBatch: 1, globalBatch: 4 },
  seed: o.seed,
  dtype: "float64",
  optimizer: Optimizer.defaults(steps),
  auxLossCoeff: o.auxLossCoeff,
})

/**
 * Runs `steps` under `a`, saves a run at step 2 into `dir` (then `saved(dir)`), and resumes it
 * under `a` and `b`; expects the later losses of the uninterrupted run.
 */
export const expectResumes = async (
  setup: (parallel: ParallelConfig.ParallelConfig) => RankTrainer.TrainSetup,
  mappings: { readonly a: ParallelConfig.ParallelConfig; readonly b: ParallelConfig.ParallelConfig },
  steps: number,
  dir: string,
  saved: (dir: string) => void = () => undefined,
): Promise<void> => {
  const whole = await Effect.runPromise(Train.run(setup(mappings.a), { steps }))
  await Effect.runPromise(Train.run(setup(mappings.a), { steps: 2, save: dir }))
  saved(dir)
  const resumed = await Effect.runPromise(Train.run(setup(mappings.a), { steps, resume: dir }))
  expect(losses(resumed)).toEqual(losses(whole).slice(2))
  const resharded = await Effect.runPromise(Train.run(setup(mappings.b), { steps, resume: dir }))
  losses(resharded).forEach((l, i) => expect(Math.abs(l - (losses(whole)[i + 2] as number)) / Math.abs(l)).toBeLessThan(1e-9))
}
