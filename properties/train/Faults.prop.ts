// Faults inside training (issue 11, items 5 and 6): a rank that throws mid-step, a NaN in one
// rank's gradient, a non-finite loss share, a worker thread killed: each ends the run promptly
// with a RankFailed naming the rank, the step and the cause; the last checkpoint written before
// the fault stays intact and resumes exactly; no worker thread is left. Faults are injected with
// the test-only PLEAT_FAULT (src/train/Fault.ts).
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { mkdtempSync, readdirSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { afterAll, beforeAll, describe, expect, test } from "vitest"
import type * as ChooseBackend from "../../src/runtime/ChooseBackend.js"
import { RankFailed } from "../../src/runtime/JobError.js"
import * as ThreadsJob from "../../src/runtime/ThreadsJob.js"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import * as Fault from "../../src/train/Fault.js"
import * as Train from "../../src/train/Train.js"
import { smallJob } from "./arbitraries.js"

const steps = 6
const setup = smallJob(steps)
const timeoutMs = 3000

/**
 * Runs with PLEAT_FAULT set to `fault` (only for this run's start); how it ended, and how long
 * after the last step completed on every rank (the faulty step and the stopping).
 */
const runWithFault = async (fault: string, backend: ChooseBackend.Name, save: string) => {
  process.env.PLEAT_FAULT = fault
  let lastStep = performance.now()
  try {
    const exit = await Effect.runPromiseExit(Train.run(setup, { steps, backend, save, saveEvery: 2, timeoutMs, onStep: () => (lastStep = performance.now()) }))
    return { exit, ms: performance.now() - lastStep }
  } finally {
    delete process.env.PLEAT_FAULT
  }
}

const failureOf = (exit: Exit.Exit<unknown, unknown>): RankFailed => {
  expect(Exit.isFailure(exit)).toBe(true)
  const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
  expect(error).toBeInstanceOf(RankFailed)
  return error as RankFailed
}

let reference: Array<Train.StepSummary> = []
beforeAll(async () => {
  reference = await Effect.runPromise(Train.run(setup, { steps }))
}, 120_000)
afterAll(() => ThreadsJob.shutdown())

const cases: ReadonlyArray<{ fault: string; rank: number; step: number; cause: RegExp; backends: ReadonlyArray<ChooseBackend.Name> }> = [
  { fault: "throw@3:3", rank: 3, step: 3, cause: /injected fault \(PLEAT_FAULT throw\): the rank threw mid-step/, backends: ["local", "threads"] },
  { fault: "nan@1:3", rank: 1, step: 3, cause: /gradient of \S+ is NaN after the backward/, backends: ["local", "threads"] },
  { fault: "loss@2:4", rank: 2, step: 4, cause: /the rank's loss share is NaN/, backends: ["local", "threads"] },
  { fault: "kill@2:3", rank: 2, step: 3, cause: /the worker of rank 2 exited with code 70 before its program finished/, backends: ["threads"] },
]

describe("a fault inside training ends the run naming rank, step and cause", () => {
  for (const c of cases) {
    for (const backend of c.backends) {
      test(`${c.fault} on ${backend}`, async () => {
        await ThreadsJob.shutdown()
        const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-faults-")), "ckpt")
        const { exit, ms } = await runWithFault(c.fault, backend, dir)
        const failed = failureOf(exit)
        expect(failed.rank).toBe(c.rank)
        expect(failed.step).toBe(c.step)
        expect(failed.message).toMatch(new RegExp(`^rank ${c.rank} failed at step ${c.step}: `))
        expect(failed.message).toMatch(c.cause)
        // Promptly: well within the collectives' watchdog timeout, not by it.
        expect(ms).toBeLessThan(timeoutMs)
        // No worker thread is left.
        expect(ThreadsJob.liveThreads()).toEqual([])
        // The last checkpoint before the fault (step 2) is intact, alone, and resumes exactly.
        expect(Checkpoint.manifest(dir).step).toBe(2)
        expect(readdirSync(dir).sort()).toEqual(["latest", "pleat-checkpoint", "step-00000002"])
        const resumed = await Effect.runPromise(Train.run(setup, { steps, backend, resume: dir }))
        expect(resumed.map((s) => s.loss)).toEqual(reference.slice(2).map((s) => s.loss))
      }, 120_000)
    }
  }

  test("kill on the local backend has no worker to kill and says so", async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-faults-")), "ckpt")
    const failed = failureOf((await runWithFault("kill@0:1", "local", dir)).exit)
    expect(failed.message).toBe("rank 0 failed at step 1: injected fault (PLEAT_FAULT kill): the local backend has no worker thread to kill")
  })

  test("a malformed PLEAT_FAULT is refused naming the entry", () => {
    expect(Fault.parse("nan@1:2,throw@0:5")).toEqual([
      { kind: "nan", rank: 1, step: 2 },
      { kind: "throw", rank: 0, step: 5 },
    ])
    expect(() => Fault.parse("melt@1:2")).toThrow(/melt@1:2 is not KIND@RANK:STEP/)
    expect(Fault.parse(undefined)).toEqual([])
  })
})
