// `--resume DIR` with a directory that holds no usable checkpoint is the user's input, not a
// bug: a missing directory, a missing, unreadable or malformed manifest (decoded with a
// Schema), a missing rank file, or a checkpoint of another model each exit 2 with one line
// naming --resume, before any work starts. A good checkpoint still resumes.
import { spawnSync } from "node:child_process"
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { beforeAll, describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"

const root = path.resolve(import.meta.dirname, "../..")
const sizes = { world: 2, tp: 1, cp: 1, pp: 2, ep: 1, layers: 2, hidden: 16, seq: 8, "global-batch": 4 }
const flagsOf = (o: Record<string, number>) => Object.entries(o).flatMap(([k, v]) => [`--${k}`, String(v)])
const model = flagsOf(sizes)

const run = async (argv: ReadonlyArray<string>) => {
  const io = memoryIo()
  const status = await Cli.run(argv, io)
  return { status, out: io.out, err: io.err }
}

/** Resuming `dir` must be refused before any work: status 2, nothing on stdout, one line. */
const refused = async (dir: string, args: ReadonlyArray<string> = model): Promise<string> => {
  const r = await run(["train", ...args, "--steps", "2", "--resume", dir])
  expect(r.status, r.err).toBe(2)
  expect(r.out).toBe("")
  expect(r.err.trimEnd().split("\n"), r.err).toHaveLength(1)
  expect(r.err).toMatch(/^pleat train: --resume: ".*" .*; fix: /)
  return r.err.trimEnd()
}

let saved = ""
const scratch = () => mkdtempSync(path.join(tmpdir(), "pleat-resume-"))
const copy = (): string => {
  const dir = path.join(scratch(), "ckpt")
  cpSync(saved, dir, { recursive: true })
  return dir
}

beforeAll(async () => {
  saved = path.join(scratch(), "ckpt")
  const r = await run(["train", ...model, "--steps", "1", "--save", saved, "--log", "json"])
  expect(r.status, r.err).toBe(0)
}, 60_000)

describe("pleat train --resume", () => {
  test("a directory that does not exist: exit 2, one line on stderr (as a process, before any work)", () => {
    const missing = path.join(scratch(), "no", "such", "dir")
    const r = spawnSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", "train", "--resume", missing], { cwd: root, encoding: "utf8" })
    expect(r.status).toBe(2)
    expect(r.stdout).toBe("")
    expect(r.stderr.endsWith("\n")).toBe(true)
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1)
    expect(r.stderr).toBe(
      `pleat train: --resume: ${JSON.stringify(missing)} holds no complete checkpoint (the directory does not exist); fix: pass a directory written by --save\n`,
    )
  })

  test("no manifest, a manifest that is not JSON, one that is not a manifest, a missing rank file, a file for a directory", async () => {
    const noManifest = copy()
    rmSync(path.join(noManifest, "manifest.json"))
    expect(await refused(noManifest)).toContain("holds no complete checkpoint (no manifest.json)")

    const notJson = copy()
    writeFileSync(path.join(notJson, "manifest.json"), '{"step": 1,')
    expect(await refused(notJson)).toContain("has a manifest.json that cannot be read as JSON")

    const manifest = JSON.parse(readFileSync(path.join(saved, "manifest.json"), "utf8")) as Record<string, unknown>
    for (const broken of [
      { ...manifest, step: -1 },
      { ...manifest, dtype: "bfloat16" },
      { ...manifest, model: { ...(manifest.model as object), hidden: "16" } },
      { ...manifest, ranks: undefined },
    ]) {
      const dir = copy()
      writeFileSync(path.join(dir, "manifest.json"), JSON.stringify(broken))
      expect(await refused(dir)).toContain("has a manifest.json that is not a pleat checkpoint manifest")
    }

    const noRank = copy()
    rmSync(path.join(noRank, "rank-1.bin"))
    expect(await refused(noRank)).toContain("lacks rank-1.bin of its 2 ranks")

    const file = path.join(copy(), "manifest.json")
    expect(await refused(file)).toContain("is not a directory")
  })

  test("a checkpoint of another model names each size that differs", async () => {
    const line = await refused(saved, flagsOf({ ...sizes, hidden: 32, layers: 4 }))
    expect(line).toContain("was saved from another model (hidden 16, layers 2; this run has hidden 32, layers 4)")
    // Sizes that do not shape the parameters may change: another mapping, batch and sequence.
    const r = await run(["train", ...flagsOf({ ...sizes, pp: 1, ep: 2, seq: 16 }), "--steps", "2", "--resume", saved, "--log", "json"])
    expect(r.status, r.err).toBe(0)
    const steps = r.out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === "step")
    expect(steps.map((s) => s.step)).toEqual([2])
  }, 60_000)
})
