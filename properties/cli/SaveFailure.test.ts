// A save that fails mid-run never throws the run away (issue 11, item 7). The failure comes from
// the test-only hook PLEAT_SAVE_FAIL (CheckpointDurable): every file operation on a path holding
// its text throws ENOSPC, as a full disk would (tests may run as root, where an unwritable
// directory cannot be made). The run trains on, says in one line on stderr where the state
// went, and exits 3; a fallback checkpoint holds the same bytes as a clean run's and resumes
// the same; when the fallback fails too, the previous checkpoint stays and is named.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { afterEach, beforeEach, describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import * as ExitCode from "../../src/cli/ExitCode.js"
import { memoryIo } from "../../src/cli/Io.js"

const model = ["--world", "2", "--tp", "1", "--cp", "1", "--pp", "2", "--ep", "1", "--layers", "2", "--hidden", "16", "--seq", "8", "--global-batch", "4"]

const run = async (argv: ReadonlyArray<string>) => {
  const io = memoryIo()
  const status = await Cli.run(argv, io)
  return { status, out: io.out, err: io.err }
}

const losses = (text: string) =>
  text
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === "step")
    .map((l) => l.loss)

let scratch = ""
const saved = { fail: process.env.PLEAT_SAVE_FAIL, tmp: process.env.TMPDIR }
beforeEach(() => {
  scratch = mkdtempSync(path.join(tmpdir(), "pleat-save-failure-"))
  // The fallback directory goes under os.tmpdir(): keep it inside this test's scratch.
  process.env.TMPDIR = scratch
})
afterEach(() => {
  for (const [key, value] of [
    ["PLEAT_SAVE_FAIL", saved.fail],
    ["TMPDIR", saved.tmp],
  ] as const) {
    if (value === undefined) delete process.env[key]
    else process.env[key] = value
  }
  rmSync(scratch, { recursive: true, force: true })
})

/** Trains 4 steps saving at 2 and 4 into scratch/NAME with PLEAT_SAVE_FAIL=fail. */
const failingRun = async (name: string, fail: string) => {
  const dir = path.join(scratch, name)
  process.env.PLEAT_SAVE_FAIL = fail
  const r = await run(["train", ...model, "--steps", "4", "--save", dir, "--save-every", "2"])
  delete process.env.PLEAT_SAVE_FAIL
  return { dir, ...r }
}

const fallbackOf = (name: string) => path.join(scratch, `pleat-fallback-${name}-${process.pid}`)

describe("pleat train --save when a save fails mid-run", () => {
  for (const [what, fail] of [
    ["the ranks cannot write their shards", "ckpt/step-00000004"],
    ["the manifest cannot be published", "ckpt/step-00000004/manifest"],
  ] as const) {
    test(`${what}: the checkpoint goes to the fallback, bit-exact, resumable; one line says where; exit 3`, async () => {
      const clean = path.join(scratch, "clean")
      const reference = await run(["train", ...model, "--steps", "4", "--save", clean, "--save-every", "2"])
      expect(reference.status, reference.err).toBe(ExitCode.ok)

      const failed = await failingRun("ckpt", fail)
      expect(failed.status, failed.err).toBe(ExitCode.saveFailed)
      expect(ExitCode.saveFailed).toBe(3)
      const fallback = fallbackOf("ckpt")
      const lines = failed.err.split("\n").filter((l) => l.startsWith("pleat train:"))
      expect(lines).toEqual([
        expect.stringMatching(
          new RegExp(
            `^pleat train: could not save step 4 into ${failed.dir} \\(ENOSPC: no space left on device \\(PLEAT_SAVE_FAIL\\), '${failed.dir}/step-00000004[^)]*\\); saved it into ${fallback}/step-00000004 instead: resume with --resume ${fallback}$`,
          ),
        ),
      ])
      // The summary still comes, naming where the checkpoint is.
      expect(failed.out).toContain(`checkpoint: ${fallback}/step-00000004\n`)
      // Step 2 went where planned; step 4 only to the fallback (nothing partial left in DIR).
      expect(readdirSync(failed.dir).sort()).toEqual(["latest", "pleat-checkpoint", "step-00000002"])
      expect(readdirSync(fallback).sort()).toEqual(["latest", "pleat-checkpoint", "step-00000004"])
      // Bit-exact: the same files as the clean run's checkpoint of step 4.
      for (const file of ["rank-0.bin", "rank-0.json", "rank-1.bin", "rank-1.json", "manifest.json"]) {
        expect(readFileSync(path.join(fallback, "step-00000004", file)).equals(readFileSync(path.join(clean, "step-00000004", file))), file).toBe(true)
      }
      // And it resumes as the clean checkpoint does.
      const fromFallback = await run(["train", ...model, "--steps", "6", "--resume", fallback, "--log", "json"])
      const fromClean = await run(["train", ...model, "--steps", "6", "--resume", clean, "--log", "json"])
      expect(fromFallback.status, fromFallback.err).toBe(ExitCode.ok)
      expect(losses(fromFallback.out)).toHaveLength(2)
      expect(losses(fromFallback.out)).toEqual(losses(fromClean.out))
    }, 90_000)
  }

  test("the fallback fails too: the previous checkpoint stays, one line names it, exit 3, nothing partial left", async () => {
    const failed = await failingRun("ckpt", "step-00000004")
    expect(failed.status, failed.err).toBe(ExitCode.saveFailed)
    const fallback = fallbackOf("ckpt")
    const lines = failed.err.split("\n").filter((l) => l.startsWith("pleat train:"))
    expect(lines).toEqual([
      expect.stringMatching(
        new RegExp(
          `^pleat train: could not save step 4 into ${failed.dir} \\(ENOSPC[^)]*\\)[^)]*\\) nor into ${fallback} \\(ENOSPC[^)]*\\)[^)]*\\); the latest intact checkpoint is step 2 in ${failed.dir}/step-00000002$`,
        ),
      ),
    ])
    expect(readdirSync(failed.dir).sort()).toEqual(["latest", "pleat-checkpoint", "step-00000002"])
    expect(existsSync(path.join(fallback, "step-00000004"))).toBe(false)
    const resumed = await run(["train", ...model, "--steps", "3", "--resume", failed.dir, "--log", "json"])
    expect(resumed.status, resumed.err).toBe(ExitCode.ok)
    expect(losses(resumed.out)).toHaveLength(1)
  }, 90_000)

  test("no earlier checkpoint: the line says the state is not saved", async () => {
    const failed = await failingRun("ckpt", "step-0000000")
    expect(failed.status, failed.err).toBe(ExitCode.saveFailed)
    const lines = failed.err.split("\n").filter((l) => l.startsWith("pleat train:"))
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatch(/^pleat train: could not save step 2 into .* nor into .*; no earlier checkpoint is intact, so this run's state is not saved$/)
    expect(lines[1]).toMatch(/^pleat train: could not save step 4 into .* nor into .*; no earlier checkpoint is intact, so this run's state is not saved$/)
  }, 90_000)
})
