// `pleat train --save DIR` never destroys what pleat did not write: a file or a folder of other
// files is refused (exit 2, one line, before any work) and left as it was, also through
// Train.run. --save-every N writes periodic checkpoints and --keep K keeps the newest K; the
// directory holds step-N/ directories, `latest` and the pleat-checkpoint marker, and resumes
// from the last one.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import * as Effect from "effect/Effect"
import { describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"
import * as TrainOptions from "../../src/cli/TrainOptions.js"
import * as Train from "../../src/train/Train.js"

const model = ["--world", "2", "--tp", "1", "--cp", "1", "--pp", "2", "--ep", "1", "--layers", "2", "--hidden", "16", "--seq", "8", "--global-batch", "4"]

const run = async (argv: ReadonlyArray<string>) => {
  const io = memoryIo()
  const status = await Cli.run(argv, io)
  return { status, out: io.out, err: io.err }
}

const records = (text: string) =>
  text
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>)

describe("pleat train --save", () => {
  test("a file or a folder of notes is refused before any work and left untouched, by the CLI and by Train.run", async () => {
    const scratch = mkdtempSync(path.join(tmpdir(), "pleat-save-"))
    const notes = path.join(scratch, "notes")
    mkdirSync(notes)
    writeFileSync(path.join(notes, "todo.txt"), "keep me")
    mkdirSync(path.join(notes, "step-00000001"))
    const file = path.join(scratch, "file.txt")
    writeFileSync(file, "keep me too")
    for (const [target, reason, fix] of [
      [notes, "is a folder pleat did not write (it holds files and no pleat-checkpoint marker)", "pass a new or empty directory, or one written by --save"],
      [file, "is a file, not a checkpoint directory", "pass a new directory, or one written by --save"],
    ] as const) {
      const r = await run(["train", ...model, "--steps", "1", "--save", target])
      expect(r.status, r.err).toBe(2)
      expect(r.out).toBe("")
      expect(r.err).toBe(`pleat train: --save: ${JSON.stringify(target)} ${reason}; fix: ${fix}\n`)
    }
    const resolved = TrainOptions.resolve([...model, "--steps", "1"])
    if (resolved === "help") throw new Error("unreachable")
    for (const target of [notes, file]) {
      const exit = await Effect.runPromiseExit(Train.run(resolved.setup, { steps: 1, save: target }))
      expect(exit._tag).toBe("Failure")
      expect(JSON.stringify(exit)).toContain("no pleat-checkpoint marker")
    }
    expect(readdirSync(notes).sort()).toEqual(["step-00000001", "todo.txt"])
    expect(readFileSync(path.join(notes, "todo.txt"), "utf8")).toBe("keep me")
    expect(readFileSync(file, "utf8")).toBe("keep me too")
  }, 60_000)

  test("--save-every without --save is refused", async () => {
    const r = await run(["train", ...model, "--save-every", "2"])
    expect(r.status).toBe(2)
    expect(r.err).toBe("pleat train: --save-every: 2 has no directory to write into; fix: add --save DIR, or drop --save-every\n")
  })

  test("--save-every 2 --keep 2 over 5 steps: checkpoints at 2, 4 and 5, the newest two kept, resumed from the last", async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-save-")), "ckpt")
    const r = await run(["train", ...model, "--steps", "5", "--save", dir, "--save-every", "2", "--keep", "2", "--log", "json"])
    expect(r.status, r.err).toBe(0)
    const lines = records(r.out)
    expect(lines.map((l) => (l.msg === "checkpoint" ? `checkpoint ${l.step}` : l.msg))).toEqual([
      "start",
      "step",
      "step",
      "checkpoint 2",
      "step",
      "step",
      "checkpoint 4",
      "step",
      "checkpoint 5",
      "summary",
    ])
    expect(readdirSync(dir).sort()).toEqual(["latest", "pleat-checkpoint", "step-00000004", "step-00000005"])
    expect(readFileSync(path.join(dir, "latest"), "utf8")).toBe("step-00000005\n")
    const resumed = await run(["train", ...model, "--steps", "6", "--resume", dir, "--save", dir, "--log", "json"])
    expect(resumed.status, resumed.err).toBe(0)
    expect(
      records(resumed.out)
        .filter((l) => l.msg === "step")
        .map((l) => l.step),
    ).toEqual([6])
    expect(readdirSync(dir).sort()).toEqual(["latest", "pleat-checkpoint", "step-00000005", "step-00000006"])
    // A step directory itself resumes too.
    const fromStep = await run(["train", ...model, "--steps", "6", "--resume", path.join(dir, "step-00000005"), "--log", "json"])
    expect(fromStep.status, fromStep.err).toBe(0)
    expect(records(fromStep.out).filter((l) => l.msg === "step")).toEqual([expect.objectContaining({ step: 6, loss: records(resumed.out).find((l) => l.msg === "step")?.loss })])
  }, 60_000)
})
