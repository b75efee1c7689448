// `--force-load-balancing` in training (MoeSettings.forceLoadBalancing, moe/ForcedBalance.ts):
// the experts' loads at the first step come close to even where the router's own logits leave
// them uneven, the run trains (finite losses that move), and expert parallelism folded over
// data parallelism (tp = cp = 1: every sequence's logits computed alike, bit for bit, so the same
// noise) gives one rank's losses. `--force-biased` (the benchmark's skewed loads) loads the experts
// far less evenly than forced balance, and also gives one rank's losses, its bias drawn once per
// layer or per micro-batch alike on every mapping.
import * as Effect from "effect/Effect"
import { describe, expect, test } from "vitest"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as MoeSettings from "../../src/moe/MoeSettings.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import type * as RankTrainer from "../../src/train/RankTrainer.js"
import * as Train from "../../src/train/Train.js"
import { model } from "./arbitraries.js"

const steps = 3

const job = (parallel: ParallelConfig.ParallelConfig, force: boolean): RankTrainer.TrainSetup => ({
  parallel,
  model: { ...model, seq: 32, moe: { ...MoeSettings.defaults, forceLoadBalancing: force } },
  batch: { microBatch: 1, globalBatch: 8 },
  seed: 5,
  dtype: "float64",
  optimizer: Optimizer.defaults(steps),
  auxLossCoeff: 0.01,
})

const run = (parallel: ParallelConfig.ParallelConfig, force: boolean) => Effect.runPromise(Train.run(job(parallel, force), { steps }))

describe("--force-load-balancing", () => {
  test("even loads from the first step; it trains; ep 2 over dp 2 gives one rank's losses", async () => {
    const one = ParallelConfig.make({ world: 1 })
    const plain = await run(one, false)
    const forced = await run(one, true)
    const worst = (s: Train.StepSummary) => Math.max(...s.imbalance.map((i) => i.value))
    const first = (xs: ReadonlyArray<Train.StepSummary>) => xs[0] as Train.StepSummary
    // 8 sequences of 32 tokens, top-2 of 8 experts: 64 per expert on average.
    expect(worst(first(forced))).toBeLessThan(1.5)
    expect(worst(first(forced))).toBeLessThan(worst(first(plain)))
    for (const s of forced) expect(Number.isFinite(s.loss)).toBe(true)
    expect((forced.at(-1) as Train.StepSummary).loss).not.toBe(first(forced).loss)
    const folded = await run(ParallelConfig.make({ world: 2, ep: 2, etp: 1 }), true)
    folded.forEach((s, i) => expect(s.loss).toBeCloseTo((forced[i] as Train.StepSummary).loss, 9))
  }, 120_000)
})

describe("--force-biased", () => {
  const biased = (parallel: ParallelConfig.ParallelConfig, std: number): RankTrainer.TrainSetup => ({
    ...job(parallel, false),
    model: { ...model, seq: 32, moe: { ...MoeSettings.defaults, forceBiased: std } },
  })
  const runBiased = (parallel: ParallelConfig.ParallelConfig, std: number) => Effect.runPromise(Train.run(biased(parallel, std), { steps }))

  test("skewed loads from the first step, more with a larger std; per micro-batch too; ep 2 over dp 2 gives one rank's losses", async () => {
    const one = ParallelConfig.make({ world: 1 })
    const worst = (s: Train.StepSummary) => Math.max(...s.imbalance.map((i) => i.value))
    const balanced = (await run(one, true))[0] as Train.StepSummary
    const skewed = await runBiased(one, -3)
    expect(worst(skewed[0] as Train.StepSummary)).toBeGreaterThan(2 * worst(balanced))
    for (const s of skewed) expect(Number.isFinite(s.loss)).toBe(true)
    for (const std of [-3, 3]) {
      const alone = std === -3 ? skewed : await runBiased(one, std)
      const folded = await runBiased(ParallelConfig.make({ world: 2, ep: 2, etp: 1 }), std)
      folded.forEach((s, i) => expect(s.loss).toBeCloseTo((alone[i] as Train.StepSummary).loss, 9))
    }
  }, 120_000)
})
