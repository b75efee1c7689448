// Tied input and output embeddings (the default; --untie-embeddings for Mixtral-style models):
// a tied model has no `output` parameter and the last stage holds a copy of the embedding when
// pp > 1; `pleat verify` agrees with one rank in float64 (under 1e-9 and Lockstep's tolerances)
// with pp > 1, vpp, a folded mapping and the distributed optimizer, tied and untied; after
// several steps the first stage's embedding and the last stage's copy are bit-identical (and
// are not when the gradient sum over the embedding group is left out); a tied checkpoint saved
// at pp 2 resumes at pp 1 (and back) with the uninterrupted run's losses, holds the embedding
// once, and a run refuses a checkpoint of the other kind; the presets are untied.
import * as Effect from "effect/Effect"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { describe, expect, test } from "vitest"
import * as Group from "../../src/comm/Group.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as Job from "../../src/runtime/Job.js"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import * as Lockstep from "../../src/train/Lockstep.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as ModelPresets from "../../src/train/ModelPresets.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import * as Params from "../../src/train/Params.js"
import * as RankParams from "../../src/train/RankParams.js"
import * as RankTrainer from "../../src/train/RankTrainer.js"
import * as Train from "../../src/train/Train.js"
import { model } from "./arbitraries.js"

const untied: ModelConfig.ModelConfig = { ...model, untieEmbeddings: true }

const job = (parallel: ParallelConfig.ParallelConfig, options: { steps: number; untie?: boolean; distributed?: boolean; globalBatch?: number }): RankTrainer.TrainSetup => ({
  parallel,
  model: options.untie === true ? untied : model,
  batch: { microBatch: 1, globalBatch: options.globalBatch ?? 4 },
  seed: 5,
  dtype: "float64",
  optimizer: Optimizer.defaults(options.steps),
  auxLossCoeff: 0.01,
  distributedOptimizer: options.distributed === true,
})

const losses = (xs: ReadonlyArray<Train.StepSummary>) => xs.map((s) => s.loss)
const close = (a: ReadonlyArray<number>, b: ReadonlyArray<number>, tolerance: number) => {
  expect(a.length).toBe(b.length)
  a.forEach((x, i) => expect(Math.abs(x - (b[i] as number)) / Math.abs(x), `step ${i}: ${x} vs ${b[i]}`).toBeLessThan(tolerance))
}

/** Verifies `setup` for 2 steps; the verdict, which must pass and stay under 1e-9 relative. */
const verifies = async (setup: RankTrainer.TrainSetup) => {
  const v = Lockstep.verdict(await Effect.runPromise(Lockstep.run(setup, { steps: 2, timeoutMs: 60_000 })), "float64")
  expect(v.failed, JSON.stringify(v)).toEqual([])
  for (const kind of ["loss", "gradNorm", "gradient", "parameter"] as const) expect(v[kind].error, kind).toBeLessThan(1e-9)
  return v
}

describe("the parameters", () => {
  test("tied: no output, the embedding also the output layer; untied: the output [H, vocab]; the count shrinks by it", () => {
    const tied = Params.specs(model)
    const apart = Params.specs(untied)
    expect(tied.map((s) => s.name)).not.toContain("output")
    expect(tied.find((s) => s.name === "embedding")?.tied).toBe(true)
    expect(apart.find((s) => s.name === "output")?.shape).toEqual([model.hidden, model.vocab])
    expect(apart.find((s) => s.name === "embedding")?.tied).toBeUndefined()
    const count = (specs: ReadonlyArray<Params.ParamSpec>) => specs.reduce((a, s) => a + s.shape.reduce((p, d) => p * d, 1), 0)
    expect(count(apart) - count(tied)).toBe(model.hidden * model.vocab)
  })

  test("with pp > 1 the first and last stage hold the embedding (the last a copy), a middle stage neither; pp 1 holds one", () => {
    const parallel = ParallelConfig.make({ world: 3, tp: 1, cp: 1, pp: 3, ep: 1, etp: 1 })
    const big = { ...model, layers: 3, moeEvery: 1 }
    const setup = { ...job(parallel, { steps: 1, globalBatch: 3 }), model: big }
    const held = [0, 1, 2].map((rank) => RankTrainer.make(setup, rank).params.get("embedding"))
    expect(held.map((h) => h !== undefined)).toEqual([true, false, true])
    expect(held.map((h) => h?.tiedCopy === true)).toEqual([false, false, true])
    expect(Array.from(held[2]?.value.data ?? [])).toEqual(Array.from(held[0]?.value.data ?? []))
    expect([0, 1, 2].map((rank) => RankTrainer.make({ ...setup, model: { ...big, untieEmbeddings: true } }, rank).params.has("embedding"))).toEqual([true, false, false])
    const one = RankTrainer.make({ ...setup, parallel: ParallelConfig.make({ world: 1 }) }, 0)
    expect(one.params.get("embedding")?.tiedCopy).toBeUndefined()
    expect(one.params.has("output")).toBe(false)
  })

  test("the embedding group is the first and last rank of the pipeline group, a rank alone elsewhere", () => {
    const pp = Group.make("pp#0", [1, 3, 5])
    expect(RankParams.embeddingGroup(pp, 1).ranks).toEqual([1, 5])
    expect(RankParams.embeddingGroup(pp, 5).ranks).toEqual([1, 5])
    expect(RankParams.embeddingGroup(pp, 3).ranks).toEqual([3])
    expect(RankParams.embeddingGroup(Group.make("pp#2", [2]), 2).ranks).toEqual([2])
    // On a folded mapping: the `embedding` family of `pleat groups` for the ranks in it.
    const parallel = ParallelConfig.make({ world: 8, tp: 2, cp: 1, pp: 2, ep: 2, etp: 1 })
    for (let rank = 0; rank < 8; rank++) {
      expect(RankParams.embeddingGroup(Group.ofFamily(parallel, "pp", rank), rank).ranks).toEqual(Group.ofFamily(parallel, "embedding", rank).ranks)
    }
  })

  test("every preset is untied (the real models are), the default model tied", () => {
    for (const name of ModelPresets.names) expect(ModelPresets.model(name, 64).untieEmbeddings, name).toBe(true)
    expect(ModelConfig.small.untieEmbeddings).toBeUndefined()
  })
})

describe("verify (float64, within 1e-9 of one rank)", () => {
  test("tied, pp 2 with tp 2 and ep 2 folded across tp", async () => {
    await verifies(job(ParallelConfig.make({ world: 4, tp: 2, pp: 2, ep: 2, etp: 1 }), { steps: 2 }))
  }, 120_000)

  test("tied, pp 2 with vpp 2 and dp 2", async () => {
    await verifies(job(ParallelConfig.make({ world: 4, tp: 1, cp: 1, pp: 2, vpp: 2, ep: 2, etp: 1 }), { steps: 2, globalBatch: 8 }))
  }, 120_000)

  test("tied, pp 2 with dp 2 and cp 2 under the distributed optimizer", async () => {
    await verifies(job(ParallelConfig.make({ world: 8, tp: 1, cp: 2, pp: 2, ep: 2, etp: 1 }), { steps: 2, distributed: true, globalBatch: 8 }))
  }, 120_000)

  test("untied (--untie-embeddings), pp 2: the output parameter is there and verifies", async () => {
    const parallel = ParallelConfig.make({ world: 4, tp: 2, pp: 2, ep: 2, etp: 1 })
    expect(RankTrainer.make(job(parallel, { steps: 2, untie: true }), 3).params.has("output")).toBe(true)
    await verifies(job(parallel, { steps: 2, untie: true }))
  }, 120_000)

  test("names the embedding when its sum over the embedding group is left out", async () => {
    process.env.PLEAT_FAULT_SKIP_SYNC = "embedding"
    try {
      const v = Lockstep.verdict(await Effect.runPromise(Lockstep.run(job(ParallelConfig.make({ world: 2, pp: 2 }), { steps: 1 }), { steps: 1 })), "float64")
      expect(v.failed).toContain("gradient")
      expect(v.gradient.name).toBe("embedding")
    } finally {
      delete process.env.PLEAT_FAULT_SKIP_SYNC
    }
  }, 120_000)
})

/** Every rank's embedding values after `steps` steps, with the rank's embedding group. */
const embeddingsAfter = (setup: RankTrainer.TrainSetup, steps: number) =>
  Job.runPromise({ world: setup.parallel.world }, (rank) =>
    Effect.gen(function* () {
      const trainer = RankTrainer.make(setup, rank)
      for (let k = 0; k < steps; k++) yield* trainer.step(k)
      const pp = Group.ofFamily(setup.parallel, "pp", rank)
      const held = trainer.params.get("embedding")
      return { rank, group: RankParams.embeddingGroup(pp, rank).ranks, copy: held?.tiedCopy === true, values: held === undefined ? undefined : Array.from(held.value.data) }
    }),
  )

/** Each last-stage copy against its first stage's embedding: true where bit-identical. */
const copiesIdentical = (ranks: ReadonlyArray<{ rank: number; group: ReadonlyArray<number>; copy: boolean; values: Array<number> | undefined }>) =>
  ranks
    .filter((r) => r.copy)
    .map((r) => {
      const first = ranks[r.group[0] as number]
      expect(first?.copy).toBe(false)
      expect(r.values?.length).toBe(first?.values?.length)
      return (r.values ?? []).every((x, i) => Object.is(x, first?.values?.[i]))
    })

describe("the last stage's copy", () => {
  const parallel = ParallelConfig.make({ world: 4, tp: 2, pp: 2, ep: 2, etp: 1 })

  test("is bit-identical to the first stage's embedding after 4 steps, with either optimizer, also with vpp and dp", async () => {
    for (const distributed of [false, true]) {
      expect(copiesIdentical(await embeddingsAfter(job(parallel, { steps: 4, distributed }), 4))).toEqual([true, true])
      const dp = ParallelConfig.make({ world: 4, tp: 1, cp: 1, pp: 2, vpp: 2, ep: 2, etp: 1 })
      expect(copiesIdentical(await embeddingsAfter(job(dp, { steps: 4, distributed, globalBatch: 8 }), 4))).toEqual([true, true])
    }
  }, 120_000)

  test("drifts from it when the sum over the embedding group is left out (the check can fail)", async () => {
    process.env.PLEAT_FAULT_SKIP_SYNC = "embedding"
    try {
      // dp = cp = 1: the embedding's dense bucket is a group of one, so only the embedding-group sum is missing.
      expect(copiesIdentical(await embeddingsAfter(job(parallel, { steps: 2 }), 2))).toEqual([false, false])
    } finally {
      delete process.env.PLEAT_FAULT_SKIP_SYNC
    }
  }, 120_000)
})

describe("checkpoints", () => {
  const steps = 4
  const pp2 = ParallelConfig.make({ world: 4, tp: 2, pp: 2, ep: 2, etp: 1 })
  const pp1 = ParallelConfig.make({ world: 2, tp: 2, pp: 1, ep: 2, etp: 1 })

  test("tied, saved at pp 2, resumes at pp 1 with the uninterrupted run's losses (and pp 1 to pp 2), holding the embedding once", async () => {
    const root = mkdtempSync(path.join(tmpdir(), "pleat-tied-"))
    for (const distributed of [false, true]) {
      const whole = await Effect.runPromise(Train.run(job(pp2, { steps, distributed }), { steps }))
      const saved = path.join(root, `pp2-${distributed}`)
      await Effect.runPromise(Train.run(job(pp2, { steps, distributed }), { steps: 2, save: saved }))
      const stepDir = path.join(saved, readFileSync(path.join(saved, "latest"), "utf8").trim())
      // The embedding is saved by the first stage only: its slices cover it exactly once.
      const tables = [0, 1, 2, 3].map((r) => JSON.parse(readFileSync(path.join(stepDir, `rank-${r}.json`), "utf8")) as Array<{ name: string; slice: Array<[number, number]> }>)
      const saved1 = tables.flatMap((t) => t.filter((e) => e.name === "embedding")).reduce((a, e) => a + e.slice.reduce((p, [x, y]) => p * (y - x), 1), 0)
      expect(saved1).toBe(model.vocab * model.hidden)
      expect(tables.flat().some((e) => e.name === "output")).toBe(false)
      close(losses(await Effect.runPromise(Train.run(job(pp1, { steps, distributed }), { steps, resume: saved }))), losses(whole).slice(2), 1e-9)
      expect(losses(await Effect.runPromise(Train.run(job(pp2, { steps, distributed }), { steps, resume: saved })))).toEqual(losses(whole).slice(2))
      const back = path.join(root, `pp1-${distributed}`)
      await Effect.runPromise(Train.run(job(pp1, { steps, distributed }), { steps: 2, save: back }))
      close(losses(await Effect.runPromise(Train.run(job(pp2, { steps, distributed }), { steps, resume: back }))), losses(whole).slice(2), 1e-9)
    }
  }, 300_000)

  test("the manifest records untied embeddings, and a run refuses a checkpoint of the other kind", async () => {
    const root = mkdtempSync(path.join(tmpdir(), "pleat-tied-"))
    const tiedDir = path.join(root, "tied")
    const untiedDir = path.join(root, "untied")
    await Effect.runPromise(Train.run(job(pp2, { steps: 1 }), { steps: 1, save: tiedDir }))
    await Effect.runPromise(Train.run(job(pp2, { steps: 1, untie: true }), { steps: 1, save: untiedDir }))
    expect(Checkpoint.manifest(tiedDir).model.untieEmbeddings).toBeUndefined()
    expect(Checkpoint.manifest(untiedDir).model.untieEmbeddings).toBe(true)
    const identity = (untie: boolean) => ({ model: untie ? untied : model, seed: 5, dtype: "float64" as const })
    expect(() => Checkpoint.manifestFor(untiedDir, identity(false))).toThrow("embeddings untied")
    expect(() => Checkpoint.manifestFor(tiedDir, identity(true))).toThrow("embeddings tied")
    expect(Checkpoint.manifestFor(untiedDir, identity(true)).step).toBe(1)
  }, 120_000)
})
