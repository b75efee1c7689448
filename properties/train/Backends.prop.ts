// The local and threads backends run the same rank program: on random folded mappings they
// give bit-identical per-step losses and gradient norms, and a checkpoint saved on one resumes
// on the other.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { afterAll, describe, expect, test } from "vitest"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as ThreadsBackend from "../../src/runtime/ThreadsBackend.js"
import * as ThreadsJob from "../../src/runtime/ThreadsJob.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import type * as RankTrainer from "../../src/train/RankTrainer.js"
import * as Train from "../../src/train/Train.js"
import { mappings } from "./arbitraries.js"

/** Folded mappings of 2 to 4 ranks (MoE groups cut across tp, cp and dp) and a seed. */
const folded = fc.tuple(mappings({ minWorld: 2, maxWorld: 4, folded: true }), fc.integer({ min: 1, max: 1000 })).map(([m, seed]) => ({ ...m, seed }))

const setupOf = (
  m: { world: number; tp: number; cp: number; pp: number; dp: number; ep: number; etp: number; vpp: number | undefined; order: string; seed: number },
  steps: number,
) => {
  const validated = ParallelConfig.validate({ world: m.world, tp: m.tp, cp: m.cp, pp: m.pp, ep: m.ep, etp: m.etp, vpp: m.pp > 1 ? m.vpp : undefined, order: m.order })
  if (validated._tag !== "Success") return undefined
  const microBatch = 1
  const setup: RankTrainer.TrainSetup = {
    parallel: validated.success,
    model: { ...ModelConfig.small, layers: 4, hidden: 16, heads: 4, kvHeads: 2, ffn: 16, moeFfn: 8, experts: 4, seq: 8, vocab: 16, moeEvery: 2 },
    batch: { microBatch, globalBatch: microBatch * m.dp * (m.pp > 1 ? 2 * m.pp : 2) },
    seed: m.seed,
    dtype: "float64",
    optimizer: Optimizer.defaults(steps),
    auxLossCoeff: 0.01,
  }
  return setup
}

afterAll(() => ThreadsJob.shutdown())

describe("the local and threads backends", () => {
  test("give bit-identical per-step losses and gradient norms on random folded mappings", async () => {
    await fc.assert(
      fc.asyncProperty(folded, async (m) => {
        const steps = 2
        const setup = setupOf(m, steps)
        fc.pre(setup !== undefined)
        if (setup === undefined) return
        const local = await Effect.runPromise(Train.run(setup, { steps, backend: "local" }))
        // The threads backend provided as a Layer to the trainer (what Train.run does by name).
        const threads = await Effect.runPromise(Effect.provide(Train.train(setup, { steps, timeoutMs: 60_000 }), ThreadsBackend.layer()))
        expect(threads.map((s) => s.step)).toEqual([0, 1])
        expect(threads.map((s) => s.loss)).toEqual(local.map((s) => s.loss))
        expect(threads.map((s) => s.gradNorm)).toEqual(local.map((s) => s.gradNorm))
        expect(threads.map((s) => s.imbalance)).toEqual(local.map((s) => s.imbalance))
        expect(threads.map((s) => s.overload)).toEqual(local.map((s) => s.overload))
      }),
      { numRuns: 4 },
    )
  }, 300_000)

  test("resuming from a directory that holds no checkpoint fails with a ConfigError on resume, before any rank starts", async () => {
    const setup = setupOf({ world: 2, tp: 2, cp: 1, pp: 1, dp: 1, ep: 2, etp: 1, vpp: undefined, order: "tp-cp-ep-dp-pp", seed: 1 }, 1) as RankTrainer.TrainSetup
    const missing = path.join(tmpdir(), "pleat-no-such-checkpoint")
    for (const backend of ["local", "threads"] as const) {
      const exit = await Effect.runPromiseExit(Train.run(setup, { steps: 1, backend, resume: missing }))
      const error = exit._tag === "Failure" ? (exit.cause.reasons.find((r) => r._tag === "Fail") as { error: { _tag: string; field: string } } | undefined)?.error : undefined
      expect(error?._tag).toBe("ConfigError")
      expect(error?.field).toBe("resume")
    }
  })

  test("a checkpoint saved on threads resumes on local, and one saved on local resumes on threads", async () => {
    const steps = 3
    const setup = setupOf({ world: 4, tp: 2, cp: 1, pp: 2, dp: 1, ep: 2, etp: 1, vpp: undefined, order: "tp-cp-ep-dp-pp", seed: 7 }, steps) as RankTrainer.TrainSetup
    const whole = await Effect.runPromise(Train.run(setup, { steps }))
    const root = mkdtempSync(path.join(tmpdir(), "pleat-backends-"))
    const onThreads = path.join(root, "threads")
    const onLocal = path.join(root, "local")
    await Effect.runPromise(Train.run(setup, { steps: 2, backend: "threads", save: onThreads }))
    await Effect.runPromise(Train.run(setup, { steps: 1, backend: "local", save: onLocal }))
    const fromThreads = await Effect.runPromise(Train.run(setup, { steps, backend: "local", resume: onThreads }))
    const fromLocal = await Effect.runPromise(Train.run(setup, { steps, backend: "threads", resume: onLocal }))
    expect(fromThreads.map((s) => s.loss)).toEqual(whole.slice(2).map((s) => s.loss))
    expect(fromLocal.map((s) => s.loss)).toEqual(whole.slice(1).map((s) => s.loss))
  }, 120_000)
})
