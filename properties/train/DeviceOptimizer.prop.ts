// The optimizer on the device (train/DeviceOptimizer.ts), on the simulated device (sim: the host's
// kernels on separate buffers, every copy counted): a one-rank job trains with its weights,
// gradients and AdamW moments resident, and
// - its steps equal the host's bit for bit (losses, gradient norms), and so do its checkpoints
//   (weights and moments, byte for byte, saved mid-run and at the end), and a run resumed on sim
//   from the mid-run checkpoint continues as the uninterrupted one;
// - after the first step, a step moves less than the shards' bytes between host and device in
//   all (the host's optimizer moves every shard up and every gradient down: twice that);
// - a non-finite gradient on the device stops the rank naming the shard and the value;
// - so do bf16 runs (weights rounded to bf16 copies on the device each step, bf16 products and
//   rounded activations there: DeviceKernels.roundBf16 and bf16Products);
// - ranks whose gradients are shared (summed by collectives on their device tensors) take the
//   host's steps bit for bit too (the local backend sums host copies; NcclSuite.prop.ts runs
//   the same on the NCCL backend, where the sums stay in device memory).
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { mkdtempSync, readdirSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { describe, expect, test } from "vitest"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as Device from "../../src/tensor/Device.js"
import { simulated } from "../../src/tensor/device/SimulatedRuntime.js"
import * as GradAccumulator from "../../src/tensor/GradAccumulator.js"
import { to } from "../../src/tensor/ops/Transfer.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import * as DeviceOptimizer from "../../src/train/DeviceOptimizer.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as NonFinite from "../../src/train/NonFinite.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import type * as Params from "../../src/train/Params.js"
import type * as RankParams from "../../src/train/RankParams.js"
import type * as RankTrainer from "../../src/train/RankTrainer.js"
import * as Train from "../../src/train/Train.js"

const runtime = simulated(0)

const setupOf = (c: {
  readonly seed: number
  readonly hidden: number
  readonly vocab: number
  readonly experts: number
  readonly steps: number
  readonly precision?: "fp32" | "bf16"
}): RankTrainer.TrainSetup => ({
  precision: c.precision ?? "fp32",
  parallel: ParallelConfig.make({ world: 1 }),
  model: { ...ModelConfig.small, layers: 2, hidden: c.hidden, heads: 4, kvHeads: 2, ffn: 16, moeFfn: 8, experts: c.experts, seq: 8, vocab: c.vocab, moeEvery: 2 },
  batch: { microBatch: 1, globalBatch: 2 },
  seed: c.seed,
  dtype: "float32",
  optimizer: Optimizer.defaults(c.steps),
  auxLossCoeff: 0.01,
})

/** The files of the newest checkpoint in `dir` but its manifest (which names the time), by name. */
const checkpointFiles = (dir: string): Map<string, Buffer> => {
  const step = readFileSync(path.join(dir, "latest"), "utf8").trim()
  return new Map(
    readdirSync(path.join(dir, step))
      .filter((f) => f !== "manifest.json")
      .map((f) => [f, readFileSync(path.join(dir, step, f))]),
  )
}

const fresh = () => mkdtempSync(path.join(tmpdir(), "pleat-devopt-"))

/**
 * `setup` trained `steps` steps on the host and on sim: the same losses, gradient norms and
 * checkpoints, bit for bit; and sim saved after `mid` steps (a checkpoint equal to the host's
 * then) and resumed there reaches the uninterrupted run's last steps. The two runs' summaries.
 */
const expectHostsSteps = async (setup: RankTrainer.TrainSetup, steps: number, mid: number) => {
  const dirs = { host: fresh(), sim: fresh(), hostMid: fresh(), simMid: fresh() }
  const host = await Effect.runPromise(Train.run(setup, { steps, save: dirs.host }))
  const sim = await Effect.runPromise(Train.run({ ...setup, device: "sim" }, { steps, save: dirs.sim }))
  expect(sim.map((s) => s.loss)).toEqual(host.map((s) => s.loss))
  expect(sim.map((s) => s.gradNorm)).toEqual(host.map((s) => s.gradNorm))
  expect(checkpointFiles(dirs.sim)).toEqual(checkpointFiles(dirs.host))
  // A mid-run save (the device state comes to the host between steps), then a resume on sim.
  await Effect.runPromise(Train.run({ ...setup, device: "sim" }, { steps: mid, save: dirs.simMid }))
  await Effect.runPromise(Train.run(setup, { steps: mid, save: dirs.hostMid }))
  expect(checkpointFiles(dirs.simMid)).toEqual(checkpointFiles(dirs.hostMid))
  const resumed = await Effect.runPromise(Train.run({ ...setup, device: "sim" }, { steps, resume: dirs.simMid }))
  expect(resumed.map((s) => s.loss)).toEqual(host.slice(mid).map((s) => s.loss))
  return { host, sim }
}

describe("the optimizer on the device (sim)", () => {
  test("one rank's training equals the host's bit for bit: steps, checkpoints mid-run and at the end, and a resume on sim", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          seed: fc.integer({ min: 1, max: 1000 }),
          hidden: fc.constantFrom(16, 32),
          vocab: fc.constantFrom(16, 40),
          experts: fc.constantFrom(2, 4),
          steps: fc.integer({ min: 2, max: 4 }),
          precision: fc.constantFrom("fp32" as const, "bf16" as const),
        }),
        async (c) => {
          await expectHostsSteps(setupOf(c), c.steps, Math.max(1, c.steps - 1))
        },
      ),
      { numRuns: 6 },
    )
  }, 240_000)

  test("several ranks sharing gradients (dp, tp, ep, a tied embedding over pp): the host's steps and checkpoints bit for bit, and a resume on sim", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          seed: fc.integer({ min: 1, max: 1000 }),
          mapping: fc.constantFrom({ world: 2 }, { world: 4, tp: 2, ep: 2 }, { world: 4, pp: 2, ep: 2 }, { world: 4, tp: 2, pp: 2 }),
          precision: fc.constantFrom("fp32" as const, "bf16" as const),
        }),
        async ({ seed, mapping, precision }) => {
          const one = setupOf({ seed, hidden: 16, vocab: 16, experts: 4, steps: 3, precision })
          const { host, sim } = await expectHostsSteps({ ...one, parallel: ParallelConfig.make(mapping), batch: { microBatch: 1, globalBatch: 4 } }, 3, 2)
          // The device's counts show the step ran there (the host's steps have none).
          expect(sim.every((s) => s.ranks.every((r) => (r.hostDeviceBytes ?? 0) > 0))).toBe(true)
          expect(host.every((s) => s.ranks.every((r) => r.hostDeviceBytes === undefined && r.deviceMemory === undefined))).toBe(true)
          // Every rank's weights and AdamW moments live on the one simulated device its ranks share.
          // A rank makes its device copies at its first step, and the ranks end a step at different
          // times (a pipeline's last stage before its first): at the first step's end the device holds
          // at least the reporting rank's own; from the second step on, everyone's.
          for (const [step, s] of sim.entries()) {
            const all = s.ranks.reduce((a, r) => a + r.memory.parameterBytes + r.memory.optimizerStateBytes, 0)
            for (const r of s.ranks) {
              const m = r.deviceMemory
              expect(m).toBeDefined()
              if (m === undefined) continue
              const held = step === 0 ? r.memory.parameterBytes + r.memory.optimizerStateBytes : all
              expect(m.allocatedBytes).toBeGreaterThanOrEqual(held)
              expect(m.peakAllocatedBytes).toBeGreaterThanOrEqual(m.allocatedBytes)
              expect(m.reservedBytes).toBe(m.allocatedBytes)
            }
          }
        },
      ),
      { numRuns: 5 },
    )
  }, 240_000)

  test("the distributed optimizer on the device (DeviceDistributed): the host's steps, gradient norms and checkpoints bit for bit, and a resume on sim", async () => {
    await fc.assert(
      fc.asyncProperty(fc.record({ seed: fc.integer({ min: 1, max: 1000 }), precision: fc.constantFrom("fp32" as const, "bf16" as const) }), async ({ seed, precision }) => {
        const one = setupOf({ seed, hidden: 16, vocab: 16, experts: 4, steps: 3, precision })
        // Every mapping each run; interleaved (vpp 2, 4 layers): a model chunk's reduce-scatters start as soon as it is done.
        for (const mapping of [{ world: 2 }, { world: 4, tp: 2, ep: 2 }, { world: 4, pp: 2, ep: 2 }, { world: 4, pp: 2, vpp: 2, ep: 2 }]) {
          const model = { ...one.model, layers: "vpp" in mapping ? 4 : one.model.layers }
          await expectHostsSteps({ ...one, model, parallel: ParallelConfig.make(mapping), batch: { microBatch: 1, globalBatch: 4 }, distributedOptimizer: true }, 3, 2)
        }
        // Hybrid sharding (--distributed-optimizer-instances): each part all-reduced across the instances on the device.
        for (const [mapping, instances] of [
          [{ world: 4 }, 2],
          [{ world: 4, ep: 2 }, 2],
          [{ world: 4 }, 4],
        ] as const) {
          const setup = {
            ...one,
            parallel: ParallelConfig.make(mapping),
            batch: { microBatch: 1, globalBatch: 4 },
            distributedOptimizer: true,
            distributedOptimizerInstances: instances,
          }
          await expectHostsSteps(setup, 3, 2)
        }
      }),
      { numRuns: 2 },
    )
  }, 240_000)

  test("after the first step, a step moves less than the shards' bytes between host and device, in fp32 and in bf16", async () => {
    for (const precision of ["fp32", "bf16"] as const) await movesLittle(precision)
  }, 60_000)

  const movesLittle = async (precision: "fp32" | "bf16") => {
    const setup = setupOf({ seed: 7, hidden: 32, vocab: 256, experts: 4, steps: 4, precision })
    const moved: Array<number> = []
    let before = { ...runtime.transfers }
    const summaries = await Effect.runPromise(
      Train.run(
        { ...setup, device: "sim" },
        {
          steps: 4,
          onStep: () => {
            const t = runtime.transfers
            moved.push(t.uploadedBytes - before.uploadedBytes + t.downloadedBytes - before.downloadedBytes)
            before = { ...t }
          },
        },
      ),
    )
    const shardBytes = summaries[0]?.ranks[0]?.memory.parameterBytes as number
    expect(shardBytes).toBeGreaterThan(0)
    // The first step uploads the weights (a fresh run's zero moments are made on the device); the end of the run
    // brings them back (counted with the last step, whose summary comes after it).
    expect(moved[0]).toBeGreaterThanOrEqual(shardBytes)
    expect(moved[0]).toBeLessThan(3 * shardBytes)
    expect(moved.length).toBe(4)
    for (const bytes of moved.slice(1, -1)) expect(bytes, precision).toBeLessThan(shardBytes)
  }

  test("a non-finite gradient on the device is found and named, with its value", async () => {
    const spec = (name: string, shape: ReadonlyArray<number>): Params.ParamSpec => ({ name, shape, sharding: "replicated", layer: 0 }) as unknown as Params.ParamSpec
    const held = (name: string, n: number): RankParams.Held => ({
      spec: spec(name, [n]),
      value: Tensor.fromStorage(new Float32Array(n).fill(0.5), [n]),
      grad: new Float32Array(n),
      slice: [[0, n]],
    })
    const params = new Map([
      ["a", held("a", 5)],
      ["b", held("b", 9)],
    ])
    const moments = Optimizer.moments(params)
    const o = DeviceOptimizer.make(runtime, params, moments)
    DeviceOptimizer.startStep(o, new Map())
    const grads = new Map([
      ["a", Float32Array.of(1, 2, 3, 4, 5)],
      ["b", Float32Array.from({ length: 9 }, (_, i) => (i === 6 ? Number.NEGATIVE_INFINITY : i))],
    ])
    for (const [name, g] of grads) GradAccumulator.addGradient(DeviceOptimizer.gradOf(o, params.get(name) as RankParams.Held), to(Tensor.fromStorage(g, [g.length]), Device.sim(0)))
    const squares = await Effect.runPromise(DeviceOptimizer.squares(o))
    expect(squares.get(params.get("a") as RankParams.Held)).toBe(55)
    const diverged = NonFinite.find(1, params, { squares: (h) => squares.get(h) as number, values: (h) => DeviceOptimizer.gradientOnHost(o, h) })
    expect(diverged?.message).toBe("gradient of b is -Infinity after the backward")
    expect(Device.same(runtime.device, Device.sim(0))).toBe(true)
  })
})
