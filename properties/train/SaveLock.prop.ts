// One run at a time saves into a checkpoint directory (SaveLock): a lock whose holder may still
// be saving (this host and its process alive since the recorded start, or another host) refuses
// the next run with a ConfigError on `save` naming the holder; a lock whose holder is gone or
// whose file is damaged is taken over; a run's lock goes when the run ends, however it ends,
// and only its own. Two `pleat train` processes on one directory: the second is refused with
// exit 2 and one line, and the first's checkpoint is intact.
import { spawn, spawnSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { hostname, tmpdir } from "node:os"
import path from "node:path"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ConfigError from "../../src/errors/ConfigError.js"
import * as CheckpointDirectory from "../../src/train/CheckpointDirectory.js"
import * as SaveLock from "../../src/train/SaveLock.js"
import * as Train from "../../src/train/Train.js"
import { smallJob } from "./arbitraries.js"

const root = path.resolve(import.meta.dirname, "..", "..")
const fresh = (): string => path.join(mkdtempSync(path.join(tmpdir(), "pleat-lock-")), "ckpt")
const lockOf = (dir: string): string => path.join(dir, CheckpointDirectory.lockName)
const startTime = (pid: number): number => Number(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ")[19])

/** The pid of a process that has ended. */
const deadPid = (): number => {
  const done = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" })
  return Number(done.stdout)
}

const refusalOf = (dir: string): ConfigError.ConfigError | SaveLock.SaveLock => {
  const exit = Effect.runSyncExit(SaveLock.take(dir))
  if (exit._tag === "Success") return exit.value
  const failure = exit.cause.reasons[0]
  if (failure?._tag !== "Fail") throw new Error("expected a typed failure")
  return failure.error
}

describe("the lock of a save directory", () => {
  test("a holder that may be saving refuses the next run; one that is gone, or a damaged file, is taken over", () => {
    const here = hostname()
    fc.assert(
      fc.property(fc.constantFrom("this process", "this process, another start", "a dead process", "another host", "another container or boot", "damaged", "empty"), (holder) => {
        const dir = fresh()
        mkdirSync(dir, { recursive: true })
        const record = (pid: number, host: string, started: number | null, space?: string) =>
          JSON.stringify({ pid, host, started, since: "2026-12-06T00:00:00.000Z", token: "theirs", ...(space === undefined ? {} : { space }) })
        const written = {
          "this process": record(process.pid, here, startTime(process.pid)),
          "this process, another start": record(process.pid, here, startTime(process.pid) + 1),
          "a dead process": record(deadPid(), here, 1),
          "another host": record(process.pid, `${here}-elsewhere`, null),
          // Under this host name, a pid namespace and boot not this process's: its pid says nothing here.
          "another container or boot": record(deadPid(), here, 1, "pid:[1] another-boot"),
          damaged: "{ not json",
          empty: "",
        }[holder]
        writeFileSync(lockOf(dir), written)
        const result = refusalOf(dir)
        const mayBeSaving = holder === "this process" || holder === "another host" || holder === "another container or boot"
        if (mayBeSaving) {
          expect(result).toBeInstanceOf(ConfigError.ConfigError)
          const error = result as ConfigError.ConfigError
          expect(error.field).toBe("save")
          expect(error.message).toMatch(/pid \d+ on /)
          expect(error.message).toContain(lockOf(dir))
          // Only a lock whose pid cannot be checked here tells the user to remove it.
          expect(error.fix.includes("remove")).toBe(holder !== "this process")
          expect(readFileSync(lockOf(dir), "utf8")).toBe(written)
        } else {
          expect(result).not.toBeInstanceOf(ConfigError.ConfigError)
          const mine = JSON.parse(readFileSync(lockOf(dir), "utf8")) as { pid: number; token: string }
          expect(mine.pid).toBe(process.pid)
          expect(mine.token).not.toBe("theirs")
          ;(result as SaveLock.SaveLock).release()
          expect(existsSync(lockOf(dir))).toBe(false)
        }
      }),
      { numRuns: 24 },
    )
  })

  test("a run's release removes its own lock only, and the directory is free again", () => {
    const dir = fresh()
    const first = refusalOf(dir) as SaveLock.SaveLock
    expect(refusalOf(dir)).toBeInstanceOf(ConfigError.ConfigError)
    first.release()
    expect(existsSync(lockOf(dir))).toBe(false)
    const second = refusalOf(dir) as SaveLock.SaveLock
    // The first run's release, late, does not remove the second run's lock.
    first.release()
    expect(existsSync(lockOf(dir))).toBe(true)
    second.release()
    expect(existsSync(lockOf(dir))).toBe(false)
  })

  test("a folder holding only a lock (a run that died before its first file) counts as empty; a folder of other files is refused", () => {
    const dir = fresh()
    mkdirSync(dir, { recursive: true })
    writeFileSync(`${lockOf(dir)}.123.abc`, "")
    expect(CheckpointDirectory.mayWrite(dir)).toBe(true)
    writeFileSync(path.join(dir, "notes.txt"), "mine")
    const refused = refusalOf(dir) as ConfigError.ConfigError
    expect(refused).toBeInstanceOf(ConfigError.ConfigError)
    expect(refused.message).toContain("pleat did not write")
    expect(existsSync(lockOf(dir))).toBe(false)
  })
})

/** The small 4-rank job of the training suites (tp 2 x pp 2, ep 2). */
const setup = smallJob(2)

describe("training with the lock", () => {
  test("a run into a locked directory fails with the ConfigError before any work; every run's lock goes when it ends: done, failed or interrupted", async () => {
    const dir = fresh()
    const held = refusalOf(dir) as SaveLock.SaveLock
    let steps = 0
    const refused = await Effect.runPromise(Effect.flip(Train.run(setup, { steps: 2, save: dir, onStep: () => void steps++ })))
    expect(refused).toBeInstanceOf(ConfigError.ConfigError)
    expect(steps).toBe(0)
    held.release()

    await Effect.runPromise(Train.run(setup, { steps: 2, save: dir }))
    expect(existsSync(lockOf(dir))).toBe(false)
    expect(readFileSync(path.join(dir, "latest"), "utf8").trim()).toBe("step-00000002")

    // A job whose rank fails mid-step (the test-only fault injection, read at the run's start).
    process.env.PLEAT_FAULT = "throw@3:3"
    const failed = Train.run(setup, { steps: 4, save: dir, resume: dir })
    const exit = await Effect.runPromise(Effect.exit(failed)).finally(() => delete process.env.PLEAT_FAULT)
    expect(exit._tag).toBe("Failure")
    expect(existsSync(lockOf(dir))).toBe(false)

    // A job interrupted while it trains.
    let started: () => void = () => {}
    const running = new Promise<void>((resolve) => (started = resolve))
    const fiber = Effect.runFork(Train.run(setup, { steps: 400, save: dir, resume: dir, onStep: () => started() }))
    await running
    expect(existsSync(lockOf(dir))).toBe(true)
    await Effect.runPromise(Fiber.interrupt(fiber))
    expect(existsSync(lockOf(dir))).toBe(false)
  }, 60_000)

  test("two pleat train processes on one directory: the second is refused with exit 2 and one line, the first's checkpoint is intact", async () => {
    const dir = fresh()
    const cli = path.join(root, "dist", "cli", "main.js")
    const flags = ["train", "--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1", "--log-level", "warn", "--save", dir]
    const first = spawn(process.execPath, [cli, ...flags, "--steps", "400"], { stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    first.stdout.on("data", (d) => (out += String(d)))
    const ended = new Promise<number | null>((resolve) => first.on("exit", resolve))
    try {
      // Once the first holds the lock (it takes it before its first step).
      const deadline = Date.now() + 30_000
      while (!existsSync(lockOf(dir)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
      expect(existsSync(lockOf(dir)), "the first run takes the lock").toBe(true)
      const second = spawnSync(process.execPath, [cli, ...flags, "--steps", "2", "--seed", "9"], { encoding: "utf8", timeout: 60_000 })
      expect(second.status).toBe(2)
      expect(second.stdout).toBe("")
      const lines = second.stderr.trim().split("\n")
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/^pleat train: --save: .* is being saved into by another pleat run \(pid \d+ on this host, .*; fix: /)
      expect(await ended).toBe(0)
      expect(out).toContain(`checkpoint: ${dir}/step-00000400`)
      expect(readFileSync(path.join(dir, "latest"), "utf8").trim()).toBe("step-00000400")
      expect(JSON.parse(readFileSync(path.join(dir, "step-00000400", "manifest.json"), "utf8")).seed).toBe(1)
      expect(existsSync(lockOf(dir))).toBe(false)
    } finally {
      first.kill()
    }
  }, 120_000)
})
