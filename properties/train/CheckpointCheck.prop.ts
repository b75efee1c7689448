// A resume's rank files hashed by the job's ranks together (CheckpointCheck): the files are dealt
// out as a partition, balanced within the largest file; on a backend of its own threads or
// processes the ranks get one job with that partition and the driver learns every file's
// result (keys of the matched ones, the first damaged one refused naming it); on the local
// backend the driver hashes them itself. The CLI's threads resume of a damaged file is in
// properties/cli/Resume.test.ts.
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import fc from "fast-check"
import { beforeAll, describe, expect, test } from "vitest"
import * as ConfigError from "../../src/errors/ConfigError.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as Backend from "../../src/runtime/Backend.js"
import * as LocalBackend from "../../src/runtime/LocalBackend.js"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import * as CheckpointCheck from "../../src/train/CheckpointCheck.js"
import * as CheckpointVerified from "../../src/train/CheckpointVerified.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import * as Train from "../../src/train/Train.js"

const file = (i: number, bytes: number): Checkpoint.BinToCheck => ({ file: `/ck/rank-${i}.bin`, checksum: "sha256:x", bytes })

describe("dealing the files out", () => {
  test("a partition in the given order, each rank within the largest file of every other", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 1e9 }), { maxLength: 40 }), fc.integer({ min: 1, max: 9 }), (sizes, ranks) => {
        const files = sizes.map((bytes, i) => file(i, bytes))
        const dealt = CheckpointCheck.assign(files, ranks)
        expect(dealt).toHaveLength(ranks)
        // Every file exactly once, each rank's in the given order.
        expect(dealt.flat().sort((a, b) => a.file.localeCompare(b.file))).toEqual([...files].sort((a, b) => a.file.localeCompare(b.file)))
        for (const mine of dealt) expect(mine).toEqual(files.filter((f) => mine.includes(f)))
        // Greedy on the largest first: the fullest rank exceeds the emptiest by at most the largest file.
        const loads = dealt.map((mine) => mine.reduce((a, f) => a + f.bytes, 0))
        expect(Math.max(...loads) - Math.min(...loads)).toBeLessThanOrEqual(Math.max(0, ...sizes))
        expect(CheckpointCheck.assign(files, ranks)).toEqual(dealt)
      }),
      { numRuns: 200 },
    )
  })
})

const parallel = ParallelConfig.make({ world: 4, tp: 2, pp: 2, ep: 2, etp: 1 })
const setup = {
  parallel,
  model: { ...ModelConfig.small, hidden: 16, heads: 4, kvHeads: 2, ffn: 16, moeFfn: 8, seq: 8, vocab: 16 },
  batch: { microBatch: 1, globalBatch: 4 },
  seed: 3,
  dtype: "float64" as const,
  optimizer: Optimizer.defaults(2),
  auxLossCoeff: 0.01,
}

let saved = ""
const copy = (): string => {
  const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-check-")), "ckpt")
  cpSync(saved, dir, { recursive: true })
  return dir
}
const bin = (dir: string, rank: number) => path.join(dir, "step-00000001", `rank-${rank}.bin`)

/** A backend of `name` that records each job it gets and runs it on the local backend. */
const recording = (name: string, jobs: Array<Backend.JobSpec>) =>
  Layer.succeed(Backend.Backend, {
    name,
    run: (spec) => {
      jobs.push(spec)
      return Effect.provide(Backend.run(spec), LocalBackend.layer())
    },
  })

beforeAll(async () => {
  saved = path.join(mkdtempSync(path.join(tmpdir(), "pleat-check-")), "ckpt")
  await Effect.runPromise(Train.run(setup, { steps: 1, save: saved }))
}, 60_000)

describe("the ranks hash a resume's rank files together", () => {
  test("threads or processes: one job, the files dealt out among the ranks; every file checked after it", async () => {
    const dir = copy()
    const files = Checkpoint.binsToCheck(dir)
    expect(files.map((f) => path.basename(f.file))).toEqual(["rank-0.bin", "rank-1.bin", "rank-2.bin", "rank-3.bin"])
    const jobs: Array<Backend.JobSpec> = []
    await Effect.runPromise(Effect.provide(CheckpointCheck.onRanks(dir, 4), recording("threads", jobs)))
    expect(jobs).toHaveLength(1)
    const args = jobs[0]?.program.args as CheckpointCheck.CheckArgs
    expect(jobs[0]?.world).toBe(4)
    // Four files on four ranks: one a rank (the largest first: the first tp rank of each stage
    // also saves the norms, which the tp group replicates).
    const dealt = args.byRank.map((mine) => mine.map((f) => path.basename(f.file)))
    expect(dealt.every((mine) => mine.length === 1)).toBe(true)
    expect(dealt.flat().sort()).toEqual(["rank-0.bin", "rank-1.bin", "rank-2.bin", "rank-3.bin"])
    expect(Checkpoint.binsToCheck(dir)).toEqual([])
    // Checked: a second check has nothing to hash and runs no job.
    await Effect.runPromise(Effect.provide(CheckpointCheck.onRanks(dir, 4), recording("threads", jobs)))
    expect(jobs).toHaveLength(1)
  })

  test("a damaged file is refused naming it, whichever rank hashed it; the others count as checked", async () => {
    for (const damaged of [0, 2, 3]) {
      const dir = copy()
      const bytes = new Uint8Array(readFileSync(bin(dir, damaged)))
      bytes[17] = (bytes[17] as number) ^ 1
      writeFileSync(bin(dir, damaged), bytes)
      const jobs: Array<Backend.JobSpec> = []
      const failed = await Effect.runPromise(Effect.flip(Effect.provide(CheckpointCheck.onRanks(dir, 4), recording("mpi", jobs))))
      expect(jobs).toHaveLength(1)
      expect(ConfigError.isConfigError(failed)).toBe(true)
      expect((failed as ConfigError.ConfigError).field).toBe("resume")
      expect((failed as ConfigError.ConfigError).reason).toMatch(
        new RegExp(`has a damaged step-00000001/rank-${damaged}\\.bin \\(checksum sha256:[0-9a-f]{64}, manifest\\.json records sha256:[0-9a-f]{64}\\)`),
      )
      expect(Checkpoint.binsToCheck(dir).map((f) => path.basename(f.file))).toEqual([`rank-${damaged}.bin`])
      // The training job's resume refuses it too (its rank files checked the same way).
      const resumed = await Effect.runPromise(Effect.flip(Train.run(setup, { steps: 2, resume: dir, backend: "threads" })))
      expect(String((resumed as ConfigError.ConfigError).reason)).toContain(`rank-${damaged}.bin`)
    }
  }, 120_000)

  test("the local backend: no job, the driver hashes every file", async () => {
    const dir = copy()
    const jobs: Array<Backend.JobSpec> = []
    await Effect.runPromise(Effect.provide(CheckpointCheck.onRanks(dir, 4), recording("local", jobs)))
    expect(jobs).toHaveLength(0)
    expect(Checkpoint.binsToCheck(dir)).toEqual([])
    for (let r = 0; r < 4; r++) expect(CheckpointVerified.has(CheckpointVerified.keyOf(bin(dir, r), Checkpoint.manifest(dir).checksums[`rank-${r}.bin`] as string).key)).toBe(true)
  })
})
