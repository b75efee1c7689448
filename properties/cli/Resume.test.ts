// `--resume DIR` with a directory that holds no usable checkpoint is the user's input, not a
// bug: a missing directory, no complete step directory, an unreadable or malformed manifest
// (decoded with a Schema), a missing or damaged rank file (checksums), or a checkpoint of
// another model, seed or dtype each exit 2 with one line naming --resume (and the file or each
// differing field with its saved value), before any work starts. A resume with nothing left
// to train says so and exits 0. A good checkpoint still resumes.
import { spawnSync } from "node:child_process"
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { beforeAll, describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"
import { pleatMain } from "../support/pleatProcess.js"

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
/** The one step directory of `dir` (a copy of `saved`). */
const step = (dir: string, file = "") => path.join(dir, "step-00000001", file)
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
  test("a damaged newest step names the older complete one, which resumes", async () => {
    const dir = path.join(scratch(), "ckpt")
    expect((await run(["train", ...model, "--steps", "2", "--save-every", "1", "--save", dir, "--log", "json"])).status).toBe(0)
    const newest = path.join(dir, "step-00000002", "rank-1.bin")
    const bin = new Uint8Array(readFileSync(newest))
    bin[8] = (bin[8] as number) ^ 0xff
    writeFileSync(newest, bin)
    const older = path.join(dir, "step-00000001")
    const r = await run(["train", ...model, "--steps", "3", "--resume", dir])
    expect(r.status, r.err).toBe(2)
    expect(r.err).toMatch(new RegExp(`has a damaged step-00000002/rank-1\\.bin .*; fix: pass another complete step directory instead: ${older}\n$`))
    const resumed = await run(["train", ...model, "--steps", "3", "--resume", older, "--log", "json"])
    expect(resumed.status, resumed.err).toBe(0)
  }, 60_000)

  test("a directory that does not exist: exit 2, one line on stderr (as a process, before any work)", () => {
    const missing = path.join(scratch(), "no", "such", "dir")
    const r = spawnSync(process.execPath, [pleatMain, "train", "--resume", missing], { cwd: root, encoding: "utf8" })
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
    rmSync(step(noManifest, "manifest.json"))
    expect(await refused(noManifest)).toContain("holds no complete checkpoint (no step directory with a manifest.json)")

    const notJson = copy()
    writeFileSync(step(notJson, "manifest.json"), '{"step": 1,')
    expect(await refused(notJson)).toContain("has a step-00000001/manifest.json that cannot be read as JSON")

    const manifest = JSON.parse(readFileSync(step(saved, "manifest.json"), "utf8")) as Record<string, unknown>
    for (const broken of [
      { ...manifest, step: -1 },
      { ...manifest, dtype: "bfloat16" },
      { ...manifest, model: { ...(manifest.model as object), hidden: "16" } },
      { ...manifest, ranks: undefined },
      { ...manifest, checksums: undefined },
    ]) {
      const dir = copy()
      writeFileSync(step(dir, "manifest.json"), JSON.stringify(broken))
      expect(await refused(dir)).toContain("has a step-00000001/manifest.json that is not a pleat checkpoint manifest")
    }

    const noRank = copy()
    rmSync(step(noRank, "rank-1.bin"))
    expect(await refused(noRank)).toContain("lacks rank-1.bin of its 2 ranks")

    const file = path.join(copy(), "latest")
    expect(await refused(file)).toContain("is not a directory")
  })

  test("4 flipped bytes in a shard, an empty shard, an edited dtype: exit 2 naming the file", async () => {
    const flipped = copy()
    const bin = new Uint8Array(readFileSync(step(flipped, "rank-0.bin")))
    for (let i = 40; i < 44; i++) bin[i] = (bin[i] as number) ^ 0x5a
    writeFileSync(step(flipped, "rank-0.bin"), bin)
    expect(await refused(flipped)).toMatch(/has a damaged step-00000001\/rank-0\.bin \(checksum sha256:[0-9a-f]{64}, manifest\.json records sha256:[0-9a-f]{64}\)/)
    expect(await refused(flipped)).toContain(`; fix: use another checkpoint (${flipped} holds no other complete step)`)

    // Hashed by the ranks (CheckpointCheck: rank-0.bin by one worker, rank-1.bin by the other):
    // the same refusal, still before any output.
    expect(await refused(flipped, [...model, "--backend", "threads"])).toMatch(/has a damaged step-00000001\/rank-0\.bin \(checksum sha256:[0-9a-f]{64}, manifest/)

    const empty = copy()
    writeFileSync(step(empty, "rank-1.json"), "")
    expect(await refused(empty)).toContain("has a damaged step-00000001/rank-1.json (checksum")

    const edited = copy()
    const manifest = JSON.parse(readFileSync(step(edited, "manifest.json"), "utf8")) as Record<string, unknown>
    writeFileSync(step(edited, "manifest.json"), JSON.stringify({ ...manifest, dtype: "float64" }))
    expect(await refused(edited, [...model, "--dtype", "float64"])).toContain("is not laid out as float64 values as manifest.json says")
  })

  test("a resume with nothing left to train says so and exits 0, also when the manifest's step was edited", async () => {
    const r = await run(["train", ...model, "--steps", "1", "--resume", saved])
    expect(r.status, r.err).toBe(0)
    expect(r.out).toBe(
      `pleat train: nothing to do: the checkpoint in ${saved} is at step 1 and --steps 1 counts all steps, resumed ones included; pass --steps above 1 to train on\n`,
    )
    const edited = copy()
    const manifest = JSON.parse(readFileSync(step(edited, "manifest.json"), "utf8")) as Record<string, unknown>
    writeFileSync(step(edited, "manifest.json"), JSON.stringify({ ...manifest, step: 9 }))
    const j = await run(["train", ...model, "--steps", "2", "--resume", edited, "--log", "json"])
    expect(j.status, j.err).toBe(0)
    expect(JSON.parse(j.out.trim())).toMatchObject({ msg: "nothing to do", first: 9, steps: 2 })
  })

  test("a checkpoint of another model, seed or dtype names each field that differs and its saved value", async () => {
    const line = await refused(saved, flagsOf({ ...sizes, hidden: 32, layers: 4 }))
    expect(line).toContain("was saved from another run (hidden 16, layers 2; this run has hidden 32, layers 4)")
    for (const [flags, differs] of [
      [{ experts: 4 }, "experts 8; this run has experts 4"],
      [{ vocab: 64 }, "vocab 32; this run has vocab 64"],
      [{ seed: 2 }, "seed 1; this run has seed 2"],
    ] as const) {
      expect(await refused(saved, flagsOf({ ...sizes, ...flags }))).toContain(`was saved from another run (${differs})`)
    }
    expect(await refused(saved, [...model, "--dtype", "float64"])).toContain("was saved from another run (dtype float32; this run has dtype float64)")
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

  test("shared experts are part of the model: a checkpoint with them is not resumed without them, nor the reverse", async () => {
    const withShared = path.join(scratch(), "shared")
    const r = await run(["train", ...model, "--shared-expert-ffn", "8", "--steps", "1", "--save", withShared, "--log", "json"])
    expect(r.status, r.err).toBe(0)
    expect(await refused(withShared)).toContain("was saved from another run (sharedExpertFfn 8; this run has sharedExpertFfn none)")
    expect(await refused(saved, [...model, "--shared-expert-ffn", "8"])).toContain("was saved from another run (sharedExpertFfn none; this run has sharedExpertFfn 8)")
    const again = await run(["train", ...model, "--shared-expert-ffn", "8", "--steps", "2", "--resume", withShared, "--log", "json"])
    expect(again.status, again.err).toBe(0)
  }, 60_000)
})
