// Crash safety of a checkpoint save, tried at every step of the protocol: a child process
// (checkpointCrashChild.mjs: `pleat train --resume DIR --save DIR --keep 1` without the rest of the
// CLI) is killed with SIGKILL at the n-th step of
// its save (PLEAT_CRASH_AT=n, see CheckpointDurable), for n = 1, 2, ... until a run finishes.
// After each crash, DIR loads the previous checkpoint or the new one, its files bit-identical
// to an uninterrupted save of that step; training resumes from it exactly as the reference
// run; and the next save into DIR succeeds and leaves nothing of the crash behind. The first
// save into a new directory, killed the same way, leaves no checkpoint or the new one, and never
// a directory that a later --save would refuse.
import { spawnSync } from "node:child_process"
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import * as Effect from "effect/Effect"
import { describe, expect, test } from "vitest"
import * as TrainOptions from "../../src/cli/TrainOptions.js"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import * as Checksum from "../../src/train/CheckpointChecksum.js"
import * as CheckpointDirectory from "../../src/train/CheckpointDirectory.js"
import * as Train from "../../src/train/Train.js"

const root = path.resolve(import.meta.dirname, "../..")
const model = ["--world", "2", "--tp", "1", "--cp", "1", "--pp", "2", "--ep", "1", "--layers", "2", "--hidden", "16", "--seq", "8", "--global-batch", "4"]

const resolved = (argv: ReadonlyArray<string>): TrainOptions.Resolved => {
  const r = TrainOptions.resolve([...model, ...argv])
  if (r === "help") throw new Error("unreachable: no --help")
  return r
}

/** The rank files of the checkpoint `dir` loads, by name. */
const files = (dir: string): Map<string, string> => {
  const stepDir = CheckpointDirectory.locate(dir) as string
  return new Map(
    readdirSync(stepDir)
      .filter((f) => f.startsWith("rank-"))
      .sort()
      .map((f) => [f, Checksum.of(readFileSync(path.join(stepDir, f)))]),
  )
}

describe("a save killed at any step of its protocol", () => {
  test("leaves the previous or the new checkpoint, bit-exact, every time; the next save succeeds", async () => {
    const scratch = mkdtempSync(path.join(tmpdir(), "pleat-crash-"))
    const pristine = path.join(scratch, "pristine")
    const complete = path.join(scratch, "complete")
    const dir = path.join(scratch, "ckpt")
    const setup = resolved(["--steps", "3"]).setup
    await Effect.runPromise(Train.run(setup, { steps: 1, save: pristine }))
    cpSync(pristine, complete, { recursive: true })
    await Effect.runPromise(Train.run(setup, { steps: 2, resume: complete, save: complete, keep: 1 }))
    const reference = (await Effect.runPromise(Train.run(setup, { steps: 3 }))).map((s) => s.loss)
    const saved = new Map([
      [1, files(pristine)],
      [2, files(complete)],
    ])
    const outcomes: Array<number> = []
    for (let n = 1; n <= 60; n++) {
      rmSync(dir, { recursive: true, force: true })
      cpSync(pristine, dir, { recursive: true })
      const child = spawnSync(process.execPath, ["properties/train/checkpointCrashChild.mjs", ...model, "--steps", "2", "--resume", dir, "--save", dir, "--keep", "1"], {
        cwd: root,
        encoding: "utf8",
        env: { ...process.env, PLEAT_CRASH_AT: String(n) },
      })
      if (child.status === 0) break
      expect(child.signal, `crash point ${n}: ${child.stderr}`).toBe("SIGKILL")
      // The previous checkpoint or the new one, whole.
      const step = Checkpoint.manifest(dir).step
      expect([1, 2], `crash point ${n}`).toContain(step)
      expect(files(dir), `crash point ${n}`).toEqual(saved.get(step))
      outcomes.push(step)
      // It resumes the reference run exactly, and the next save clears what the crash left.
      const again = resolved(["--steps", "3", "--resume", dir, "--save", dir, "--keep", "1"])
      expect(again.first).toBe(step)
      const resumed = await Effect.runPromise(Train.run(again.setup, { steps: 3, resume: dir, save: dir, keep: 1 }))
      expect(
        resumed.map((s) => s.loss),
        `crash point ${n}`,
      ).toEqual(reference.slice(step))
      expect(readdirSync(dir).sort(), `crash point ${n}`).toEqual(["latest", "pleat-checkpoint", "step-00000003"])
    }
    // Every step of the protocol was tried (a run went through), and both outcomes occurred.
    expect(outcomes.length).toBeGreaterThanOrEqual(12)
    expect(outcomes.length).toBeLessThan(60)
    expect(new Set(outcomes)).toEqual(new Set([1, 2]))
  }, 600_000)

  test("the first save into a new directory leaves no checkpoint or the new one, and never a directory a later --save refuses", async () => {
    const scratch = mkdtempSync(path.join(tmpdir(), "pleat-crash-new-"))
    const complete = path.join(scratch, "complete")
    const dir = path.join(scratch, "ckpt")
    const setup = resolved(["--steps", "1"]).setup
    await Effect.runPromise(Train.run(setup, { steps: 1, save: complete }))
    const outcomes: Array<string> = []
    for (let n = 1; n <= 40; n++) {
      rmSync(dir, { recursive: true, force: true })
      const child = spawnSync(process.execPath, ["properties/train/checkpointCrashChild.mjs", ...model, "--steps", "1", "--save", dir], {
        cwd: root,
        encoding: "utf8",
        env: { ...process.env, PLEAT_CRASH_AT: String(n) },
      })
      if (child.status === 0) break
      expect(child.signal, `crash point ${n}: ${child.stderr}`).toBe("SIGKILL")
      const loadable = existsSync(dir) && CheckpointDirectory.locate(dir) !== undefined
      if (loadable) expect(files(dir), `crash point ${n}`).toEqual(files(complete))
      else expect(() => Checkpoint.manifest(dir), `crash point ${n}`).toThrow("holds no complete checkpoint")
      outcomes.push(loadable ? "new" : "none")
      // A later --save into the same path is accepted and succeeds.
      expect(resolved(["--steps", "1", "--save", dir]).save).toBe(dir)
      await Effect.runPromise(Train.run(setup, { steps: 1, save: dir, keep: 1 }))
      expect(files(dir), `crash point ${n}`).toEqual(files(complete))
      expect(readdirSync(dir).sort(), `crash point ${n}`).toEqual(["latest", "pleat-checkpoint", expect.stringMatching(/^step-00000001(-2)?$/)])
    }
    expect(outcomes.length).toBeGreaterThanOrEqual(10)
    expect(new Set(outcomes)).toEqual(new Set(["none", "new"]))
  }, 600_000)
})
