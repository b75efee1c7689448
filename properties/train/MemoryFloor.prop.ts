// What a training job cannot do without, checked before any rank starts (MemoryFloor): each
// rank's floor is exactly what its trainer allocates for its parameter shards, their gradients
// and (without the distributed optimizer) AdamW's moments, under any mapping, pipeline split and
// dtype; a job whose ranks in this process need more than the machine, or with a shard over one
// buffer, is refused with a ConfigError naming the backend or the degree that splits the shard,
// as is a micro-batch's logits block over one buffer (naming --seq), and `pleat train` says so
// in one line with exit 2 before any work.
import { spawnSync } from "node:child_process"
import path from "node:path"
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ConfigError from "../../src/errors/ConfigError.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as MemoryFloor from "../../src/train/MemoryFloor.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import type * as RankTrainer from "../../src/train/RankTrainer.js"
import * as Train from "../../src/train/Train.js"
import { mappings, model } from "./arbitraries.js"

const root = path.resolve(import.meta.dirname, "..", "..")

const setupOf = (
  m: { world: number; tp: number; cp: number; pp: number; ep: number; etp: number; vpp: number | undefined; order: string; dp: number },
  dtype: "float32" | "float64",
  distributed: boolean,
): RankTrainer.TrainSetup => {
  const validated = ParallelConfig.validate({ world: m.world, tp: m.tp, cp: m.cp, pp: m.pp, ep: m.ep, etp: m.etp, vpp: m.vpp, order: m.order })
  if (validated._tag === "Failure") throw validated.failure
  return {
    parallel: validated.success,
    model,
    batch: { microBatch: 1, globalBatch: m.dp * (m.vpp === undefined ? 1 : m.pp) },
    seed: 5,
    dtype,
    optimizer: Optimizer.defaults(1),
    auxLossCoeff: 0.01,
    ...(distributed ? { distributedOptimizer: true } : {}),
  }
}

describe("the memory floor of a training job", () => {
  test("each rank's floor is what its trainer allocated: parameters, gradients and, without the distributed optimizer, the moments", async () => {
    await fc.assert(
      fc.asyncProperty(mappings({ minWorld: 1, maxWorld: 8 }), fc.constantFrom("float32" as const, "float64" as const), fc.boolean(), async (m, dtype, distributed) => {
        const setup = setupOf(m, dtype, distributed)
        const [summary] = await Effect.runPromise(Train.run(setup, { steps: 1 }))
        const measured = (summary as Train.StepSummary).ranks.map((r) => r.memory.parameterBytes + r.memory.gradientBytes + (distributed ? 0 : r.optimizerStateBytes))
        expect(MemoryFloor.perRank(setup).map((f) => f.bytes)).toEqual(measured)
      }),
      { numRuns: 12 },
    )
  }, 120_000)

  test("refusals: the ranks of this process over the machine's memory (all of them on local and threads, the largest under MPI); a shard over one buffer, named by the degree that splits it", () => {
    const setup = setupOf({ world: 8, tp: 2, cp: 1, pp: 2, dp: 2, ep: 2, etp: 1, vpp: undefined, order: "tp-cp-ep-dp-pp" }, "float32", false)
    const floors = MemoryFloor.perRank(setup).map((f) => f.bytes)
    const total = floors.reduce((a, b) => a + b, 0)
    const largest = Math.max(...floors)
    for (const backend of ["local", "threads"]) {
      expect(MemoryFloor.problem(setup, backend, total)).toBeUndefined()
      const refused = MemoryFloor.problem(setup, backend, total - 1) as ConfigError.ConfigError
      expect(refused).toBeInstanceOf(ConfigError.ConfigError)
      expect(refused.field).toBe("backend")
      expect(refused.reason).toContain("hosts all 8 ranks in this process")
    }
    expect(MemoryFloor.problem(setup, "mpi", largest)).toBeUndefined()
    expect((MemoryFloor.problem(setup, "mpi", largest - 1) as ConfigError.ConfigError).reason).toContain("the largest rank's")
    // The largest shard of this model is an expert weight: ep splits it.
    const bySharding = MemoryFloor.problem(setup, "local", total, 8) as ConfigError.ConfigError
    expect([bySharding.field, bySharding.value]).toEqual(["ep", 2])
    expect(bySharding.reason).toMatch(/leaves a parameter shard of .* more than one buffer holds/)
    // A model of one's own declares its own parameters: not counted.
    expect(MemoryFloor.problem({ ...setup, definition: { module: "x.mjs", export: "m" } }, "local", 1, 1)).toBeUndefined()
  })

  test("a micro-batch's logits: the ranks' blocks tile [micro-batch x seq, vocab] over tp x cp, and a block over one buffer is refused naming --seq", () => {
    fc.assert(
      fc.property(
        mappings({ minWorld: 1, maxWorld: 8 }),
        fc.integer({ min: 1, max: 4 }),
        // At least 32 rows and 40 columns a block: larger than any parameter shard of this model
        // (the vocabulary-parallel embedding holds 16 columns of each of the block's vocabulary).
        fc.integer({ min: 32, max: 128 }),
        fc.integer({ min: 40, max: 100 }),
        fc.constantFrom("float32" as const, "float64" as const),
        (m, microBatch, seqPerCp, vocabPerTp, dtype) => {
          const base = setupOf(m, dtype, false)
          const setup = { ...base, model: { ...base.model, seq: seqPerCp * m.cp, vocab: vocabPerTp * m.tp }, batch: { ...base.batch, microBatch } }
          const block = MemoryFloor.logitsBlock(setup)
          // Every (tp, cp) member holds one block; together they hold each logit once.
          expect(block.rows * block.cols * m.tp * m.cp).toBe(microBatch * setup.model.seq * setup.model.vocab)
          const bytes = block.rows * block.cols * (dtype === "float64" ? 8 : 4)
          const over = MemoryFloor.problem(setup, "local", Number.POSITIVE_INFINITY, bytes - 1) as ConfigError.ConfigError
          expect(over.field).toBe("seq")
          expect(over.reason).toContain(`makes each rank's logits [${block.rows}, ${block.cols}]`)
          const at = MemoryFloor.problem(setup, "local", Number.POSITIVE_INFINITY, bytes)
          expect(at).toBeUndefined()
          // On a GPU the logits are device memory: not this limit's.
          expect(MemoryFloor.problem({ ...setup, device: "cuda" }, "local", Number.POSITIVE_INFINITY, bytes - 1)).toBeUndefined()
        },
      ),
      { numRuns: 60 },
    )
  })

  test("pleat train refuses a model too large for this machine, or with a shard over one buffer, in one line with exit 2 before any work", () => {
    const cli = path.join(root, "dist", "cli", "main.js")
    const one = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1", "--steps", "1"]
    for (const [flags, line] of [
      [
        [...one, "--hidden", "8192", "--heads", "64", "--kv-heads", "8", "--moe-ffn", "28672", "--ffn", "28672", "--layers", "2"],
        /^pleat train: --ep: 1 leaves a parameter shard of 7\.0 GiB \(layers\.\d\.experts\.\w+, \[8, 8192, 28672\] in whole\), more than one buffer holds \(4\.0 GiB\); fix: a larger --ep/,
      ],
      [
        ["--hidden", "4096", "--heads", "32", "--kv-heads", "8", "--moe-ffn", "14336", "--ffn", "14336", "--layers", "64", "--steps", "1"],
        /^pleat train: --backend: "local" hosts all 8 ranks in this process: their parameters, gradients and optimizer state alone need [\d.]+ GiB, more than this machine's [\d.]+ GiB; fix: /,
      ],
      [
        // Node's buffers stop at 4 GiB: this run used to fail at step 1 with "The value of "size" is out of range" (exit 1).
        [...one, "--hidden", "16", "--heads", "2", "--kv-heads", "2", "--layers", "2", "--seq", "65536", "--vocab", "32768", "--global-batch", "1", "--micro-batch", "1"],
        /^pleat train: --seq: 65536 with --micro-batch 1, --vocab 32768, --cp 1 and --tp 1 makes each rank's logits \[65536, 32768\] 8\.0 GiB, more than one buffer holds \(4\.0 GiB\); fix: a shorter --seq or a smaller --micro-batch, or a larger --cp \(splits the sequence\) or --tp \(splits the vocabulary\)$/,
      ],
    ] as const) {
      const run = spawnSync(process.execPath, [cli, "train", ...flags], { encoding: "utf8", timeout: 60_000 })
      expect(run.status).toBe(2)
      expect(run.stdout).toBe("")
      expect(run.stderr.trim().split("\n")).toHaveLength(1)
      expect(run.stderr.trim()).toMatch(line)
    }
  })
  test("a tensor over one buffer that only a rank meets (routed rows x the expert width) ends pleat train with exit 2 and one line, on one thread and on workers", () => {
    const cli = path.join(root, "dist", "cli", "main.js")
    // 65,536 tokens x top-8 routed rows x an expert width of 4,096: 8 GiB in one block.
    const flags = ["--tp", "1", "--cp", "1", "--pp", "1", "--hidden", "16", "--heads", "2", "--kv-heads", "2", "--layers", "2", "--vocab", "32"].concat([
      "--micro-batch",
      "1",
      "--steps",
      "1",
      "--seq",
      "65536",
      "--topk",
      "8",
      "--moe-ffn",
      "4096",
      "--log-level",
      "warn",
    ])
    for (const mapping of [
      ["--world", "1", "--ep", "1", "--global-batch", "1"],
      ["--world", "2", "--ep", "2", "--global-batch", "2", "--backend", "threads"],
    ]) {
      const run = spawnSync(process.execPath, [cli, "train", ...mapping, ...flags], { encoding: "utf8", timeout: 120_000 })
      expect(run.status).toBe(2)
      expect(run.stderr.trim().split("\n")).toHaveLength(1)
      expect(run.stderr.trim()).toMatch(
        /^pleat train: rank \d failed at step 1: tensor: 8589934592 bytes \(8\.0 GiB: one layer's block of a micro-batch's tokens on a rank\) are more than one buffer holds \(4\.0 GiB\); fix: fewer tokens/,
      )
    }
  }, 240_000)
})
