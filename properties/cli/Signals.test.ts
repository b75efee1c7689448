// Signals at the process edge: SIGINT or SIGTERM to a running `pleat train` stops every rank
// and ends the process within 5 s with status 130 / 143 and one line on stderr saying what
// was interrupted; nothing of the process is left (on the threads backend, its workers are
// threads of the process, so a process that is gone has no worker left). A checkpoint
// directory keeps its last published checkpoint and nothing of an unpublished one. A main thread
// held by one long kernel cannot run JavaScript's handler: the native net (src/native/SignalNet.ts)
// ends the process then, with the same kind of line.
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { describe, expect, test } from "vitest"
import * as Cli from "../../src/cli/Cli.js"
import { memoryIo } from "../../src/cli/Io.js"
import { pleatMain } from "../support/pleatProcess.js"

const root = path.resolve(import.meta.dirname, "../..")
// A small model so that the job starts fast, and enough steps that it is still running.
const model = ["--world", "2", "--tp", "1", "--cp", "1", "--pp", "2", "--ep", "1", "--layers", "2", "--hidden", "16", "--seq", "8", "--global-batch", "4"]
const small = [...model, "--steps", "100000", "--log", "json"]

interface Running {
  readonly child: ChildProcess
  readonly stdout: () => string
  readonly stderr: () => string
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>
}

const start = (args: ReadonlyArray<string>): Running => {
  const child = spawn(process.execPath, [pleatMain, ...args], { cwd: root, stdio: ["ignore", "pipe", "pipe"] })
  let out = ""
  let err = ""
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()))
  child.stderr?.on("data", (d: Buffer) => (err += d.toString()))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal, at: performance.now() })),
  )
  return { child, stdout: () => out, stderr: () => err, exited }
}

const records = (text: string): Array<Record<string, unknown>> =>
  text
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>)

const until = async (what: string, ok: () => boolean, ms: number): Promise<void> => {
  const deadline = performance.now() + ms
  while (!ok()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Starts a job, waits until it trains, sends `signal`, and checks how the process ended. */
const interrupt = async (backend: string, signal: NodeJS.Signals, status: number, extra: ReadonlyArray<string> = []) => {
  const job = start(["train", "--backend", backend, ...small, ...extra])
  try {
    // Every backend streams its steps: once one is out, every rank is busy training.
    await until("the first step", () => records(job.stdout()).some((r) => r.msg === "step"), 60_000)
    expect(job.child.exitCode, "the job must still be running when the signal comes").toBe(null)
    const sent = performance.now()
    job.child.kill(signal)
    const ended = await Promise.race([job.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 5_000))])
    expect(ended, `still running 5 s after ${signal}`).toBeDefined()
    expect(ended?.code).toBe(status)
    expect((ended?.at ?? Infinity) - sent).toBeLessThan(5_000)
    const lines = job.stderr().trimEnd().split("\n")
    expect(lines, job.stderr()).toHaveLength(1)
    expect(lines[0]).toMatch(
      new RegExp(
        `^pleat train: interrupted by ${signal} after step \\d+ of 100000; (no checkpoint written( to .+ \\(a previous one there is kept\\))?|last checkpoint written: step \\d+ in .+)$`,
      ),
    )
    expect(isAlive(job.child.pid as number)).toBe(false)
    // No summary: the job did not finish.
    expect(records(job.stdout()).some((r) => r.msg === "summary")).toBe(false)
    return lines[0] as string
  } finally {
    if (job.child.exitCode === null && job.child.signalCode === null) job.child.kill("SIGKILL")
  }
}

/** The CPU time a process has used so far (user and system, /proc/PID/stat), in seconds. */
const cpuSeconds = (pid: number): number => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.split(" ") ?? []
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/**
 * Starts a job whose one step sits in a single attention call for minutes (262,144 positions on one
 * rank: on the local backend the main thread inside native code, on threads a worker's), lets
 * `signal` act on it, and says how it ended: its
 * status, ms from the first signal to the exit, its stderr lines; no process or summary is left.
 */
const whileHeld = async (signal: (job: Running) => void | Promise<void>, backend = "local"): Promise<{ code: number | null; ms: number; lines: Array<string> }> => {
  const one = ["--world", "1", "--tp", "1", "--cp", "1", "--pp", "1", "--ep", "1", "--layers", "1", "--hidden", "16", "--heads", "1", "--kv-heads", "1"]
  const job = start(["train", "--backend", backend, ...one, "--seq", "262144", "--global-batch", "1", "--steps", "1", "--log", "json"])
  try {
    await until("the start record", () => records(job.stdout()).some((r) => r.msg === "start"), 60_000)
    // Start-up costs under a second of CPU and the step's first products milliseconds; then the
    // attention keeps the cores busy for minutes: 4 s of CPU mean it runs, however loaded the machine.
    await until("4 s of CPU", () => cpuSeconds(job.child.pid as number) >= 4, 60_000)
    expect(job.child.exitCode, "the job must still be running when the signal comes").toBe(null)
    const sent = performance.now()
    await signal(job)
    const ended = await Promise.race([job.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 5_000))])
    expect(ended, "still running 5 s after the signal").toBeDefined()
    expect(isAlive(job.child.pid as number)).toBe(false)
    expect(records(job.stdout()).some((r) => r.msg === "summary")).toBe(false)
    return { code: ended?.code ?? null, ms: (ended?.at ?? Infinity) - sent, lines: job.stderr().trimEnd().split("\n") }
  } finally {
    if (job.child.exitCode === null && job.child.signalCode === null) job.child.kill("SIGKILL")
  }
}

describe("signals", () => {
  test("SIGINT ends a threads-backend job within 5 s, status 130, one line, no process left", async () => {
    await interrupt("threads", "SIGINT", 130)
  }, 90_000)

  test("SIGTERM ends a local-backend job within 5 s, status 143, one line naming the step; the previous checkpoint is kept", async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-signals-")), "ckpt")
    const io = memoryIo()
    expect(await Cli.run(["train", ...model, "--steps", "1", "--save", dir, "--log", "json"], io), io.err).toBe(0)
    const manifest = path.join(dir, "step-00000001", "manifest.json")
    const before = readFileSync(manifest, "utf8")
    const line = await interrupt("local", "SIGTERM", 143, ["--save", dir])
    expect(line).toContain(`no checkpoint written to ${dir} (a previous one there is kept)`)
    expect(readFileSync(manifest, "utf8")).toBe(before)
    expect(JSON.parse(before).step).toBe(1)
    expect(readdirSync(dir).sort()).toEqual(["latest", "pleat-checkpoint", "step-00000001"])
  }, 90_000)

  // Local: the main thread is in the kernel, so the native net prints the line at the grace.
  // Threads: a worker is, so JavaScript prints its line at the grace, and since Node's exit waits for
  // that worker, a native timer ends the process a second later.
  test.each([
    ["the main thread", "local", "native code held the main thread past the 3 s grace, stopped at once"],
    ["a worker thread", "threads", "did not stop within 3 s, stopped anyway"],
  ])(
    "SIGTERM while one kernel holds %s (the %s backend: attention over 262,144 positions, minutes of work): status 143 within 5 s, one line",
    async (_held, backend, ending) => {
      const ended = await whileHeld((job) => {
        job.child.kill("SIGTERM")
      }, backend)
      expect(ended.code).toBe(143)
      expect(ended.ms).toBeLessThan(5_000)
      expect(ended.lines).toEqual([`pleat train: interrupted by SIGTERM before step 1 of 1 completed; no checkpoint written; ${ending}`])
    },
    90_000,
  )

  test("a second SIGINT while one kernel holds the main thread ends the process at once, status 130, one line", async () => {
    const ended = await whileHeld(async (job) => {
      job.child.kill("SIGINT")
      await new Promise((r) => setTimeout(r, 500))
      job.child.kill("SIGINT")
    })
    expect(ended.code).toBe(130)
    expect(ended.ms).toBeLessThan(2_500)
    expect(ended.lines).toEqual([
      "pleat train: interrupted by SIGINT before step 1 of 1 completed; no checkpoint written; stopped at once by a second SIGINT while native code held the main thread",
    ])
  }, 90_000)

  test("SIGINT during a run with --save-every keeps the last periodic checkpoint, named in the line, and nothing unpublished", async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-signals-")), "ckpt")
    const job = start(["train", "--backend", "local", ...small, "--save", dir, "--save-every", "2"])
    try {
      await until("a periodic checkpoint", () => records(job.stdout()).some((r) => r.msg === "checkpoint"), 60_000)
      job.child.kill("SIGINT")
      const ended = await Promise.race([job.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 5_000))])
      expect(ended?.code).toBe(130)
      const saved = records(job.stdout()).filter((r) => r.msg === "checkpoint")
      const last = saved[saved.length - 1] as { step: number; checkpoint: string }
      expect(last.step % 2).toBe(0)
      expect(job.stderr()).toContain(`; last checkpoint written: step ${last.step} in ${last.checkpoint}`)
      expect(readFileSync(path.join(dir, "latest"), "utf8").trim()).toBe(path.basename(last.checkpoint))
      // The newest two periodic checkpoints, each complete; no step directory without its manifest.
      const steps = readdirSync(dir).filter((n) => n.startsWith("step-"))
      expect(steps.length).toBeLessThanOrEqual(2)
      for (const s of steps) expect(readdirSync(path.join(dir, s))).toContain("manifest.json")
    } finally {
      if (job.child.exitCode === null && job.child.signalCode === null) job.child.kill("SIGKILL")
    }
  }, 90_000)
})
