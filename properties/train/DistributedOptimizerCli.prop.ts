// `--distributed-optimizer` as users run it: `pleat verify --dtype float64` agrees with one rank;
// `pleat train`'s summary (pretty and --log json) reports the optimizer state per rank, which
// falls by the data-parallel group sizes; a checkpoint saved with it resumes without it.
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"

const run = async (argv: ReadonlyArray<string>) => {
  const io = memoryIo()
  const status = await Cli.run(argv, io)
  return { status, out: io.out, err: io.err }
}

// 8 ranks: tp 2 x cp 2 x dp 2, ep 2 x edp 4: dense state shards over dp-cp (4), experts over
// edp (4), norms and routers over tp-dp-cp (8).
const model = ["--world", "8", "--tp", "2", "--cp", "2", "--pp", "1", "--ep", "2", "--hidden", "16", "--seq", "8", "--global-batch", "4"]

const records = (out: string) =>
  out
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>)

describe("--distributed-optimizer", () => {
  test("pleat verify --dtype float64 agrees with one rank", async () => {
    const r = await run(["verify", ...model, "--dtype", "float64", "--steps", "2", "--distributed-optimizer"])
    expect(r.status, r.out + r.err).toBe(0)
    expect(r.out).toMatch(/: OK$/m)
  }, 120_000)

  test("the summary reports optimizer state per rank, a quarter or less of the replicated optimizer's here", async () => {
    const json = async (flags: ReadonlyArray<string>) => {
      const r = await run(["train", ...model, "--steps", "2", "--dtype", "float64", "--log", "json", ...flags])
      expect(r.status, r.err).toBe(0)
      const lines = records(r.out)
      return { summary: lines.at(-1) as Record<string, unknown>, losses: lines.filter((l) => l.msg === "step").map((l) => l.loss as number) }
    }
    const replicated = await json([])
    const sharded = await json(["--distributed-optimizer"])
    expect(replicated.summary.distributedOptimizer).toBe(false)
    expect(sharded.summary.distributedOptimizer).toBe(true)
    const before = replicated.summary.optimizerStateBytes as number
    const after = sharded.summary.optimizerStateBytes as number
    expect(before).toBeGreaterThan(0)
    // Each kind's state falls by its group's size (4, 4 and 8), up to one element (8 bytes) per kind.
    expect(after).toBeLessThanOrEqual(before / 4 + 3 * 8)
    expect((sharded.summary.optimizerStateBytesPerRank as Array<number>).length).toBe(8)
    sharded.losses.forEach((l, i) => expect(Math.abs(l - (replicated.losses[i] as number)) / l).toBeLessThan(1e-12))
    const pretty = await run(["train", ...model, "--steps", "1", "--distributed-optimizer"])
    expect(pretty.status, pretty.err).toBe(0)
    expect(pretty.out).toMatch(/optimizer state \(AdamW moments\) per rank: [\d.]+ (B|KiB|MiB) max over ranks, [\d.]+ (B|KiB|MiB) in all \(distributed optimizer/)
  }, 120_000)

  test("a checkpoint saved with it resumes without it (and under another mapping with it)", async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-distopt-cli-")), "ckpt")
    const lossesOf = (out: string) =>
      records(out)
        .filter((l) => l.msg === "step")
        .map((l) => l.loss as number)
    const whole = await run(["train", ...model, "--steps", "3", "--dtype", "float64", "--log", "json", "--distributed-optimizer"])
    const saved = await run(["train", ...model, "--steps", "1", "--dtype", "float64", "--log", "json", "--distributed-optimizer", "--save", dir])
    expect(saved.status, saved.err).toBe(0)
    const plain = await run(["train", ...model, "--steps", "3", "--dtype", "float64", "--log", "json", "--resume", dir])
    expect(plain.status, plain.err).toBe(0)
    const other = ["--world", "4", "--tp", "1", "--cp", "2", "--pp", "2", "--ep", "2", "--hidden", "16", "--seq", "8", "--global-batch", "4"]
    const resharded = await run(["train", ...other, "--steps", "3", "--dtype", "float64", "--log", "json", "--resume", dir, "--distributed-optimizer"])
    expect(resharded.status, resharded.err).toBe(0)
    const expected = lossesOf(whole.out).slice(1)
    for (const resumed of [lossesOf(plain.out), lossesOf(resharded.out)]) {
      expect(resumed.length).toBe(2)
      resumed.forEach((l, i) => expect(Math.abs(l - (expected[i] as number)) / l).toBeLessThan(1e-12))
    }
  }, 120_000)
})
