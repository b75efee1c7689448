// Weights packed once per generation (cuda/src/kernels/packed_b_cache.h, src/tensor/StableWeights.ts):
// a product given a generation equals the plain product bit for bit for random shapes (few and
// many rows, both transpositions, accumulate, a B shared by a batch, 1 and 2 threads), its second
// call reuses the panels (the cache's hits grow) and still gives the same bits; a write to B
// under a new generation is seen, while one under the same generation is not (the contract the
// trainer keeps: a step never writes a weight it has multiplied); and training with the cache
// gives the losses and gradient norms of training without it (PLEAT_PACKED_WEIGHTS=0), bit for
// bit, on one rank, on tp 2 (local and threads), with full recompute and with the distributed
// optimizer under pp 2 vpp 2, with the cache used and emptied when the run ends.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { afterAll, describe, expect, test } from "vitest"
import * as TrainOptions from "../../src/cli/TrainOptions.js"
import { addonIfBuilt } from "../../src/native/CpuAddon.js"
import * as Cpu from "../../src/native/Cpu.js"
import { matmul } from "../../src/tensor/ops/Matmul.js"
import * as Recompute from "../../src/tensor/Recompute.js"
import * as StableWeights from "../../src/tensor/StableWeights.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import * as Train from "../../src/train/Train.js"
import { configs, pin, random, unpin } from "./tensorCases.js"

const stable = addonIfBuilt()?.matmulStable !== undefined
const hits = () => StableWeights.stats()?.hits ?? 0

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength)

const shape = fc.record({
  batch: fc.integer({ min: 1, max: 2 }),
  m: fc.oneof(fc.integer({ min: 1, max: 24 }), fc.integer({ min: 25, max: 80 })),
  n: fc.integer({ min: 440, max: 1100 }),
  k: fc.integer({ min: 240, max: 600 }),
  transA: fc.boolean(),
  transB: fc.boolean(),
  accumulate: fc.boolean(),
  seed: fc.integer(),
})

const filled = (rng: () => number, n: number) => Float32Array.from({ length: n }, () => Math.fround(rng()))

afterAll(unpin)

describe("packed weights", () => {
  for (const [isa, threads] of configs) {
    test.skipIf(!stable)(`${isa}, ${threads} thread(s): a product under a generation equals the plain one, and its panels are reused`, () => {
      pin(isa, threads)
      fc.assert(
        fc.property(shape, ({ batch, m, n, k, transA, transB, accumulate, seed }) => {
          // k * n >= 2^18: smaller B's are packed per product (kCachedMinFloats).
          fc.pre(k * n >= 1 << 18)
          const rng = random(seed)
          const a = filled(rng, batch * m * k)
          const b = filled(rng, k * n)
          const start = filled(rng, batch * m * n)
          const args = (out: Float32Array, generation?: number) => ({
            a,
            b,
            out,
            batch,
            m,
            n,
            k,
            transA,
            transB,
            strideA: m * k,
            strideB: 0,
            accumulate,
            ...(generation === undefined ? {} : { generation }),
          })
          const plain = Float32Array.from(start)
          Cpu.matmul(args(plain))
          const generation = StableWeights.nextGeneration()
          const first = Float32Array.from(start)
          Cpu.matmul(args(first, generation))
          const before = hits()
          const second = Float32Array.from(start)
          Cpu.matmul(args(second, generation))
          expect(hits()).toBe(before + 1)
          expect(bytes(first).equals(bytes(plain))).toBe(true)
          expect(bytes(second).equals(bytes(plain))).toBe(true)
        }),
        { numRuns: 30 },
      )
    })
  }

  test.skipIf(!stable)("a write to B is seen under a new generation and not under the same one", () => {
    const rng = random(7)
    const [m, n, k] = [8, 1024, 256]
    const a = filled(rng, m * k)
    const b = filled(rng, k * n)
    const product = (generation: number) => {
      const out = new Float32Array(m * n)
      Cpu.matmul({ a, b, out, batch: 1, m, n, k, transA: false, transB: false, strideA: 0, strideB: 0, accumulate: false, generation })
      return out
    }
    const plain = () => {
      const out = new Float32Array(m * n)
      Cpu.matmul({ a, b, out, batch: 1, m, n, k, transA: false, transB: false, strideA: 0, strideB: 0, accumulate: false })
      return out
    }
    const g1 = StableWeights.nextGeneration()
    const old = product(g1)
    b.fill(0.25)
    expect(bytes(product(g1)).equals(bytes(old))).toBe(true)
    const g2 = StableWeights.nextGeneration()
    expect(g2).toBeGreaterThan(g1)
    expect(bytes(product(g2)).equals(bytes(plain()))).toBe(true)
    expect(bytes(plain()).equals(bytes(old))).toBe(false)
  })

  const losses = async (flags: ReadonlyArray<string>) => {
    const backend = flags.includes("threads") ? "threads" : "local"
    const model = flags.filter((f) => f !== "threads")
    const resolved = TrainOptions.resolve([...model, "--hidden", "1024", "--global-batch", "4", "--micro-batch", "1", "--steps", "3"])
    if (resolved === "help") throw new Error("unreachable")
    const steps = await Effect.runPromise(Train.run(resolved.setup, { steps: 3, backend }))
    // The run takes its panels with it.
    expect(StableWeights.stats()?.entries).toBe(0)
    return steps.map((s) => [s.loss, s.gradNorm])
  }

  const one = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1"]
  for (const [label, flags] of [
    ["one rank", one],
    ["tp 2", ["--world", "2", "--tp", "2", "--cp", "1", "--pp", "1", "--ep", "1", "--etp", "2"]],
    ["one rank, full recompute: the replay's leaves keep the generation", [...one, "--recompute", "full"]],
    ["tp 2 on the threads backend: two ranks' steps share the cache", ["--world", "2", "--tp", "2", "--cp", "1", "--pp", "1", "--ep", "1", "--etp", "2", "threads"]],
    [
      "pp 2 vpp 2 dp 2 with the distributed optimizer: its all-gathers write the weights before each chunk's forward",
      ["--world", "4", "--tp", "1", "--cp", "1", "--pp", "2", "--vpp", "2", "--ep", "1", "--distributed-optimizer"],
    ],
  ] as const) {
    test.skipIf(!stable)(
      `training with packed weights gives the losses without them, bit for bit (${label})`,
      async () => {
        const before = hits()
        const kept = await losses(flags)
        expect(hits()).toBeGreaterThan(before)
        process.env.PLEAT_PACKED_WEIGHTS = "0"
        try {
          const without = hits()
          // Pooled worker threads keep the environment they started with: the run without the
          // cache is the local backend's (the backends give the same bits: Backends.prop.ts).
          const plain = await losses(flags.filter((f) => f !== "threads"))
          expect(hits()).toBe(without)
          expect(kept).toEqual(plain)
        } finally {
          delete process.env.PLEAT_PACKED_WEIGHTS
        }
      },
      120_000,
    )
  }

  test.skipIf(!stable)(
    "a recomputed layer's products read the kept panels too",
    async () => {
      const count = async (flags: ReadonlyArray<string>) => {
        const before = hits()
        await losses(flags)
        return hits() - before
      }
      // The replay multiplies each weight once more per micro-batch, from the same panels.
      expect(await count([...one, "--recompute", "full"])).toBeGreaterThan(await count(one))
    },
    120_000,
  )
  test.skipIf(!stable)("a weight given to recompute as an input keeps its generation in the replay", () => {
    const rng = random(11)
    const [m, n, k] = [16, 1024, 512]
    const tape = Tape.make()
    const w = StableWeights.mark(tape.parameter(Tensor.fromStorage(filled(rng, k * n), [k, n])), StableWeights.nextGeneration())
    const x = tape.parameter(Tensor.fromStorage(filled(rng, m * k), [m, k]))
    const y = Recompute.recompute("product", [x, w], ([xi, wi]) => matmul(xi as Tensor.Tensor, wi as Tensor.Tensor))
    const before = hits()
    tape.backward(y, { gradient: Tensor.fromStorage(filled(rng, m * n), [m, n]) })
    // The replay's x W reads the panels the first run packed (its leaf of W keeps the generation).
    expect(hits() - before).toBeGreaterThanOrEqual(1)
  })
})
