// Checkpoints: resume is bit-exact, a checkpoint saved under one mapping resumes under another
// (float64, equal within 1e-9); the directory of checkpoints ignores an interrupted save, falls
// back from a damaged `latest`, keeps the newest --keep; a damaged file or another run's
// checkpoint is refused naming it; the replicated optimizer saves each element once. (CheckpointCrash.prop.ts kills a save at every step.)
import * as Effect from "effect/Effect"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { describe, expect, test } from "vitest"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import * as BuiltinModels from "../../src/train/BuiltinModels.js"
import * as ModelDefinition from "../../src/train/ModelDefinition.js"
import * as RankTrainer from "../../src/train/RankTrainer.js"
import * as Train from "../../src/train/Train.js"
import { expectResumes, smallModel, smallSetup } from "./resumes.js"

const steps = 4
const model = smallModel()
const setup = (parallel: ParallelConfig.ParallelConfig): RankTrainer.TrainSetup => smallSetup(parallel, model, steps, { seed: 3, auxLossCoeff: 0.01 })
const losses = (xs: ReadonlyArray<Train.StepSummary>) => xs.map((s) => s.loss)

describe("checkpoints", () => {
  const a = ParallelConfig.make({ world: 4, tp: 2, pp: 2, ep: 2, etp: 1 })
  const b = ParallelConfig.make({ world: 4, cp: 2, pp: 1, ep: 4, etp: 1, tp: 1 })

  test("resume is bit-exact, and a checkpoint resumes under another mapping", async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-ckpt-")), "ckpt")
    // --steps is the total: the saved run stopped at 2 of 4, and the schedule knows it.
    await expectResumes(setup, { a, b }, steps, dir, (saved) => expect(Checkpoint.manifest(saved).step).toBe(2))
  }, 120_000)

  test("an interrupted save is ignored, a damaged latest falls back, the newest --keep are kept, and the next save clears the leftovers", async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-ckpt-")), "ckpt")
    await Effect.runPromise(Train.run(setup(a), { steps: 1, save: dir }))
    expect(existsSync(path.join(dir, "pleat-checkpoint"))).toBe(true)
    expect(readFileSync(path.join(dir, "latest"), "utf8").trim()).toBe("step-00000001")
    // A second save wrote part of its files and died before its manifest: ignored.
    mkdirSync(path.join(dir, "step-00000002"))
    writeFileSync(path.join(dir, "step-00000002", "rank-0.bin"), new Uint8Array([1, 2, 3]))
    expect(Checkpoint.manifest(dir).step).toBe(1)
    const resumed = await Effect.runPromise(Train.run(setup(a), { steps: 2, resume: dir }))
    expect(resumed.length).toBe(1)
    // The next save takes the step's name back, and prunes to the newest two.
    await Effect.runPromise(Train.run(setup(a), { steps: 4, resume: dir, save: dir, saveEvery: 1 }))
    expect(Checkpoint.manifest(dir).step).toBe(4)
    expect(readdirSync(dir).sort()).toEqual(["latest", "pleat-checkpoint", "step-00000003", "step-00000004"])
    // A damaged or missing `latest` falls back to the newest complete step directory.
    writeFileSync(path.join(dir, "latest"), "step-000")
    expect(Checkpoint.manifest(dir).step).toBe(4)
    rmSync(path.join(dir, "latest"))
    rmSync(path.join(dir, "step-00000004", "manifest.json"))
    expect(Checkpoint.manifest(dir).step).toBe(3)
    // A periodic checkpoint resumes the reference run exactly.
    const whole = await Effect.runPromise(Train.run(setup(a), { steps }))
    const fromThree = await Effect.runPromise(Train.run(setup(a), { steps, resume: dir }))
    expect(losses(fromThree)).toEqual(losses(whole).slice(3))
    // Saving the same step again keeps the first copy until the new one is published.
    await Effect.runPromise(Train.run(setup(a), { steps: 3, save: dir, keep: 3 }))
    expect(readFileSync(path.join(dir, "latest"), "utf8").trim()).toBe("step-00000003-2")
    expect(
      readdirSync(dir)
        .filter((n) => n.startsWith("step-"))
        .sort(),
    ).toEqual(["step-00000003", "step-00000003-2"])
    expect(() => Checkpoint.manifest(path.join(dir, "nowhere"))).toThrow("holds no complete checkpoint")
  }, 120_000)

  test("a checkpoint of another seed or dtype, a flipped byte, an edited dtype: each refused naming the field or the file", async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-ckpt-")), "ckpt")
    await Effect.runPromise(Train.run(setup(a), { steps: 1, save: dir }))
    const run = { model, seed: 3, dtype: "float64" } as const
    expect(Checkpoint.manifestFor(dir, run).step).toBe(1)
    expect(() => Checkpoint.manifestFor(dir, { ...run, seed: 4, dtype: "float32" })).toThrow(
      "was saved from another run (seed 3, dtype float64; this run has seed 4, dtype float32)",
    )
    expect(() => Checkpoint.manifestFor(dir, { ...run, model: { ...model, hidden: 32 } })).toThrow("(hidden 16; this run has hidden 32)")
    const step = path.join(dir, "step-00000001")
    const bin = readFileSync(path.join(step, "rank-1.bin"))
    const flipped = new Uint8Array(bin)
    for (let i = 0; i < 4; i++) flipped[100 + i] = (flipped[100 + i] as number) ^ 0xff
    writeFileSync(path.join(step, "rank-1.bin"), flipped)
    expect(() => Checkpoint.manifestFor(dir, run)).toThrow(/has a damaged step-00000001\/rank-1.bin \(checksum sha256:[0-9a-f]{64}, manifest.json records sha256:[0-9a-f]{64}\)/)
    const exit = await Effect.runPromiseExit(Train.run(setup(a), { steps: 2, resume: dir }))
    expect(exit._tag).toBe("Failure")
    writeFileSync(path.join(step, "rank-1.bin"), bin)
    const manifest = JSON.parse(readFileSync(path.join(step, "manifest.json"), "utf8")) as Record<string, unknown>
    writeFileSync(path.join(step, "manifest.json"), JSON.stringify({ ...manifest, dtype: "float32" }))
    expect(() => Checkpoint.manifestFor(dir, { ...run, dtype: "float32" })).toThrow("is not laid out as float32 values as manifest.json says")
  }, 120_000)

  test("the replicated optimizer saves every element once (the first rank of its replicas), and a run with data-parallel replicas resumes bit-exact from it", async () => {
    const replicated = [
      ParallelConfig.make({ world: 8, tp: 2, pp: 1, ep: 2, etp: 1 }), // dp 4, edp 4
      ParallelConfig.make({ world: 8, tp: 1, cp: 2, pp: 2, ep: 2, etp: 1 }), // dp 2 (cp 2), tied embedding copies on stage 1
      ParallelConfig.make({ world: 4, tp: 1, pp: 1, ep: 1, etp: 1 }), // dp 4, experts replicated 4 times
    ]
    for (const parallel of replicated) {
      const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-ckpt-")), "ckpt")
      const run = { ...setup(parallel), batch: { microBatch: 1, globalBatch: 8 } }
      const whole = await Effect.runPromise(Train.run(run, { steps: 3 }))
      await Effect.runPromise(Train.run(run, { steps: 1, save: dir }))
      const step = path.join(dir, "step-00000001")
      const slices = new Map<string, { shape: ReadonlyArray<number>; boxes: Array<ReadonlyArray<[number, number]>> }>()
      for (let r = 0; r < parallel.world; r++) {
        const table = JSON.parse(readFileSync(path.join(step, `rank-${r}.json`), "utf8")) as Array<{ name: string; shape: Array<number>; slice: Array<[number, number]> }>
        for (const e of table) {
          const entry = slices.get(e.name) ?? { shape: e.shape, boxes: [] }
          entry.boxes.push(e.slice)
          slices.set(e.name, entry)
        }
      }
      const volume = (box: ReadonlyArray<[number, number]>) => box.reduce((a, [from, to]) => a * (to - from), 1)
      const overlap = (p: ReadonlyArray<[number, number]>, q: ReadonlyArray<[number, number]>) =>
        p.every(([a, b], i) => a < (q[i] as [number, number])[1] && (q[i] as [number, number])[0] < b)
      for (const [name, { shape, boxes }] of slices) {
        // Disjoint boxes covering the whole parameter: each element once.
        expect(
          boxes.reduce((a, b) => a + volume(b), 0),
          `${name} under ${JSON.stringify(parallel.sizes)}`,
        ).toBe(shape.reduce((a, d) => a * d, 1))
        for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) expect(overlap(boxes[i] as never, boxes[j] as never)).toBe(false)
      }
      const resumed = await Effect.runPromise(Train.run(run, { steps: 3, resume: dir }))
      expect(losses(resumed)).toEqual(losses(whole).slice(1))
    }
  }, 240_000)

  test("a rank hashes only the rank files it reads: another stage's damaged file is not read, its own is named", async () => {
    // pp 2: each stage's parameters in its own rank file (the last stage's copy of the tied embedding is not saved).
    const staged = ParallelConfig.make({ world: 2, tp: 1, pp: 2, ep: 1, etp: 1 })
    const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-ckpt-")), "ckpt")
    await Effect.runPromise(Train.run(setup(staged), { steps: 1, save: dir }))
    const step = path.join(dir, "step-00000001")
    // Stage 1's file damaged (rewritten: a new modification time, so no process has checked it).
    const flipped = new Uint8Array(readFileSync(path.join(step, "rank-1.bin")))
    const last = flipped.length - 1
    flipped[last] = (flipped[last] as number) ^ 0xff
    writeFileSync(path.join(step, "rank-1.bin"), flipped)
    const definition = await ModelDefinition.load(BuiltinModels.defaultRef)
    const stage = (rank: number) => RankTrainer.make(setup(staged), rank, [], definition, "given")
    const first = stage(0)
    expect(() => Checkpoint.loadInto(dir, first.params, first.moments)).not.toThrow()
    const second = stage(1)
    expect(() => Checkpoint.loadInto(dir, second.params, second.moments)).toThrow(/has a damaged step-00000001\/rank-1.bin \(checksum sha256:[0-9a-f]{64}, manifest.json records/)
    // The driver's check before any work still names it.
    expect(() => Checkpoint.manifestFor(dir, { model, seed: 3, dtype: "float64" })).toThrow("has a damaged step-00000001/rank-1.bin")
  }, 120_000)
})
