// The distributed optimizer (ZeRO-1): a shard's owned run splits into rectangular slices that
// are that run; with it, a parallel step equals one rank's in float64 within Lockstep's
// tolerances on random folded mappings with dp or cp > 1 and edp > 1; training with and without
// it gives the same losses (1e-12); its optimizer state per rank falls by the size of each
// kind's group (dp x cp for dense parameters, edp for experts, tp x dp x cp for norms and
// routers); checkpoints saved with it resume without it and the other way round, also under
// another mapping.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { afterAll, describe, expect, test } from "vitest"
import * as Folding from "../../src/mapping/Folding.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as Job from "../../src/runtime/Job.js"
import * as ThreadsJob from "../../src/runtime/ThreadsJob.js"
import * as DistributedOptimizer from "../../src/train/DistributedOptimizer.js"
import * as Pieces from "../../src/train/DistributedOptimizerPieces.js"
import * as Lockstep from "../../src/train/Lockstep.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import * as Params from "../../src/train/Params.js"
import * as RankParams from "../../src/train/RankParams.js"
import * as RankTrainer from "../../src/train/RankTrainer.js"
import * as Train from "../../src/train/Train.js"
import { mappings, model } from "./arbitraries.js"

const job = (parallel: ParallelConfig.ParallelConfig, distributed: boolean, steps: number, seed = 7): RankTrainer.TrainSetup => ({
  parallel,
  model,
  batch: { microBatch: 1, globalBatch: 8 },
  seed,
  dtype: "float64",
  optimizer: Optimizer.defaults(steps),
  auxLossCoeff: 0.01,
  distributedOptimizer: distributed,
})

const losses = (xs: ReadonlyArray<Train.StepSummary>) => xs.map((s) => s.loss)
const close = (a: ReadonlyArray<number>, b: ReadonlyArray<number>, tolerance: number) => {
  expect(a.length).toBe(b.length)
  a.forEach((x, i) => expect(Math.abs(x - (b[i] as number)) / Math.abs(x), `step ${i}: ${x} vs ${b[i]}`).toBeLessThan(tolerance))
}

describe("the pieces of an owned run", () => {
  test("are rectangles whose elements, in row-major order, are exactly the run", () => {
    const shapes = fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 4 })
    const runs = shapes.chain((shape) => {
      const n = shape.reduce((a, b) => a * b, 1)
      return fc.tuple(fc.constant(shape), fc.integer({ min: 0, max: n }), fc.integer({ min: 0, max: n })).map(([s, a, b]) => [s, Math.min(a, b), Math.max(a, b)] as const)
    })
    fc.assert(
      fc.property(runs, ([shape, from, to]) => {
        const pieces = Pieces.ofRun(shape, from, to)
        expect(pieces.length).toBeLessThanOrEqual(Math.max(0, 2 * shape.length - 1))
        const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1))
        const flat: Array<number> = []
        for (const p of pieces) {
          // Every element of the rectangle in row-major order, as a flat index of the tensor.
          const walk = (dim: number, base: number) => {
            if (dim === shape.length) return void flat.push(base)
            const [a, b] = p.ranges[dim] as [number, number]
            for (let i = a; i < b; i++) walk(dim + 1, base + i * (strides[dim] as number))
          }
          const before = flat.length
          walk(0, 0)
          expect(flat.slice(before)).toEqual(Array.from({ length: p.to - p.from }, (_, i) => p.from + i))
        }
        expect(flat).toEqual(Array.from({ length: to - from }, (_, i) => from + i))
      }),
      { numRuns: 300 },
    )
  })
})

afterAll(() => ThreadsJob.shutdown())

describe("the distributed optimizer", () => {
  test("a parallel step equals one rank's (float64, Lockstep tolerances), random folded mappings with dp or cp > 1 and edp > 1", async () => {
    const mapping = mappings({ minWorld: 4, maxWorld: 8, folded: true }).filter((m) => (m.dp > 1 || m.cp > 1) && m.world / (m.pp * m.ep * m.etp) > 1)
    await fc.assert(
      fc.asyncProperty(mapping, fc.integer({ min: 1, max: 1000 }), async (m, seed) => {
        const validated = ParallelConfig.validate({ world: m.world, tp: m.tp, cp: m.cp, pp: m.pp, ep: m.ep, etp: m.etp, vpp: m.vpp, order: m.order })
        fc.pre(validated._tag === "Success")
        if (validated._tag !== "Success") return
        const setup = { ...job(validated.success, true, 2, seed), batch: { microBatch: 1, globalBatch: m.dp * (m.pp > 1 ? 2 * m.pp : 2) } }
        const comparisons = await Effect.runPromise(Lockstep.run(setup, { steps: 2, timeoutMs: 20_000 }))
        const v = Lockstep.verdict(comparisons, "float64")
        expect(v.failed, `${JSON.stringify(m)}, seed ${seed}: ${JSON.stringify(v)}`).toEqual([])
      }),
      { numRuns: 4 },
    )
  }, 300_000)

  test("buckets of any size give the same steps as one bucket per kind and as the replicated optimizer (1e-12)", async () => {
    const parallel = ParallelConfig.make({ world: 4, tp: 2, cp: 1, pp: 1, ep: 2, etp: 1 })
    const config = Optimizer.defaults(3)
    // Three steps from made-up gradients (different on every rank) with `bucketElements`, or
    // with the replicated optimizer when undefined; every rank's values and state bytes after.
    const train = (bucketElements: number | undefined) =>
      Job.runPromise({ world: parallel.world }, (rank) =>
        Effect.gen(function* () {
          const groups = RankParams.syncGroups(parallel, rank)
          const params = RankParams.make(Params.specs(model), () => true, Folding.place(Folding.make(parallel), rank), parallel.sizes, 7, "float64")
          const opt = bucketElements === undefined ? undefined : DistributedOptimizer.make(params, groups, rank, "float64", bucketElements)
          const moments = Optimizer.moments(params)
          for (let t = 1; t <= 3; t++) {
            for (const h of params.values()) for (let i = 0; i < h.grad.length; i++) h.grad[i] = Math.sin(rank * 7919 + i * 0.37 + t * 1.3)
            if (opt === undefined) yield* RankParams.synchronize(params, groups, "float64")
            else yield* DistributedOptimizer.reduceScatter(opt)
            const norm = opt === undefined ? yield* RankParams.globalNorm(params, groups, rank) : yield* DistributedOptimizer.globalNorm(opt, params)
            const clip = Math.min(1, config.clip / (norm + 1e-6))
            if (opt === undefined) Optimizer.step(config, params, moments, t, 0.01, clip)
            else yield* DistributedOptimizer.step(config, opt, params, t, 0.01, clip)
          }
          if (opt !== undefined) yield* DistributedOptimizer.settle(opt)
          return { buckets: opt?.buckets.length ?? 0, values: [...params.values()].flatMap((h) => Array.from(h.value.data)) }
        }),
      )
    const one = await train(DistributedOptimizer.defaultBucketElements)
    const many = await train(100)
    const replicated = await train(undefined)
    expect(one.map((r) => r.buckets)).toEqual([3, 3, 3, 3])
    for (const r of many) expect(r.buckets).toBeGreaterThan(10)
    // Which rank owns an element depends on the buckets, so the norm's squares add in another
    // order: equal to rounding (the clip factor differs in its last bits).
    for (const other of [many, replicated]) {
      one.forEach((r, rank) => {
        const theirs = (other[rank] as { values: Array<number> }).values
        expect(theirs.length).toBe(r.values.length)
        r.values.forEach((x, i) => expect(Math.abs(x - (theirs[i] as number)), `rank ${rank}, element ${i}`).toBeLessThan(1e-12 * Math.max(1, Math.abs(x))))
      })
    }
  }, 120_000)

  test("verify still names a missing synchronisation", async () => {
    const parallel = ParallelConfig.make({ world: 4, tp: 1, cp: 2, pp: 1, ep: 2, etp: 1 })
    process.env.PLEAT_FAULT_SKIP_SYNC = "layers.1.wq"
    try {
      const comparisons = await Effect.runPromise(Lockstep.run(job(parallel, true, 1), { steps: 1 }))
      const v = Lockstep.verdict(comparisons, "float64")
      expect(v.failed).toContain("gradient")
      expect(v.gradient.name).toBe("layers.1.wq")
    } finally {
      delete process.env.PLEAT_FAULT_SKIP_SYNC
    }
  }, 120_000)

  test("training with and without it gives the same losses (float64, 1e-12)", async () => {
    const parallel = ParallelConfig.make({ world: 8, tp: 2, cp: 2, pp: 1, ep: 2, etp: 1 })
    const plain = await Effect.runPromise(Train.run(job(parallel, false, 4), { steps: 4 }))
    const sharded = await Effect.runPromise(Train.run(job(parallel, true, 4), { steps: 4 }))
    close(losses(sharded), losses(plain), 1e-12)
  }, 120_000)

  test("runs the same on worker threads as on fibers (bit-identical losses and norms)", async () => {
    const parallel = ParallelConfig.make({ world: 4, tp: 1, cp: 2, pp: 2, vpp: 2, ep: 2, etp: 1 })
    const local = await Effect.runPromise(Train.run(job(parallel, true, 2), { steps: 2, backend: "local" }))
    const threads = await Effect.runPromise(Train.run(job(parallel, true, 2), { steps: 2, backend: "threads", timeoutMs: 60_000 }))
    expect(threads.map((s) => [s.loss, s.gradNorm])).toEqual(local.map((s) => [s.loss, s.gradNorm]))
  }, 120_000)

  test("optimizer state per rank falls by each kind's group size: dp x cp (dense), edp (experts), tp x dp x cp (replicated)", async () => {
    const parallel = ParallelConfig.make({ world: 8, tp: 2, cp: 2, pp: 1, ep: 2, etp: 1 })
    const s = parallel.sizes
    const groupSize: Record<RankParams.Kind, number> = { dense: s.dp * s.cp, replicated: s.tp * s.dp * s.cp, expert: s.edp }
    expect(groupSize).toEqual({ dense: 4, replicated: 8, expert: 4 })
    for (let rank = 0; rank < parallel.world; rank++) {
      const plain = RankTrainer.make(job(parallel, false, 1), rank)
      const sharded = RankTrainer.make(job(parallel, true, 1), rank)
      const distributed = sharded.distributed as DistributedOptimizer.DistributedOptimizer
      const bytes = DistributedOptimizer.stateBytes(distributed, sharded.params)
      for (const kind of RankParams.kinds) {
        const whole = [...plain.moments].filter(([name]) => RankParams.kindOf((plain.params.get(name) as RankParams.Held).spec) === kind)
        const full = Optimizer.stateBytes(new Map(whole))
        expect(full).toBeGreaterThan(0)
        // Each member keeps floor or ceil of its group's share of the elements (8 bytes each).
        const elements = full / 8
        expect(bytes[kind] / 8, `${kind} on rank ${rank}`).toBeGreaterThanOrEqual(Math.floor(elements / groupSize[kind]))
        expect(bytes[kind] / 8, `${kind} on rank ${rank}`).toBeLessThanOrEqual(Math.ceil(elements / groupSize[kind]))
      }
    }
    // The step reports (the summary's per-rank numbers) show the same fall.
    const stateOf = async (distributed: boolean) => {
      const [summary] = await Effect.runPromise(Train.run(job(parallel, distributed, 1), { steps: 1 }))
      return (summary as Train.StepSummary).ranks.map((r) => r.optimizerStateBytes)
    }
    const plain = await stateOf(false)
    const sharded = await stateOf(true)
    expect(Math.max(...sharded)).toBeLessThan(Math.max(...plain) / 4 + 8 * 3)
    expect(sharded.reduce((a, b) => a + b, 0)).toBeLessThan(plain.reduce((a, b) => a + b, 0) / 4 + 8 * 3 * 8)
  }, 120_000)

  test("checkpoints: saved with it, resumed without it and the other way round, also under another mapping", async () => {
    const steps = 4
    const a = ParallelConfig.make({ world: 4, tp: 1, cp: 2, pp: 1, ep: 2, etp: 1 })
    const b = ParallelConfig.make({ world: 4, tp: 2, pp: 2, ep: 2, etp: 1 })
    const root = mkdtempSync(path.join(tmpdir(), "pleat-distopt-"))
    const whole = await Effect.runPromise(Train.run(job(a, true, steps), { steps }))
    const saved = path.join(root, "sharded")
    await Effect.runPromise(Train.run(job(a, true, steps), { steps: 2, save: saved }))
    // The same run resumes exactly; the replicated optimizer and another mapping within 1e-12.
    expect(losses(await Effect.runPromise(Train.run(job(a, true, steps), { steps, resume: saved })))).toEqual(losses(whole).slice(2))
    close(losses(await Effect.runPromise(Train.run(job(a, false, steps), { steps, resume: saved }))), losses(whole).slice(2), 1e-12)
    close(losses(await Effect.runPromise(Train.run(job(b, true, steps), { steps, resume: saved }))), losses(whole).slice(2), 1e-12)
    close(losses(await Effect.runPromise(Train.run(job(b, false, steps), { steps, resume: saved }))), losses(whole).slice(2), 1e-12)
    // Saved by the replicated optimizer, resumed by the distributed one.
    const replicated = path.join(root, "replicated")
    await Effect.runPromise(Train.run(job(b, false, steps), { steps: 2, save: replicated }))
    close(losses(await Effect.runPromise(Train.run(job(a, true, steps), { steps, resume: replicated }))), losses(whole).slice(2), 1e-12)
  }, 300_000)
})
