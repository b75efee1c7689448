// Interrupting a training job (what the CLI does on SIGINT/SIGTERM) stops every rank promptly
// on every backend; on threads no worker thread is left; a checkpoint being saved is either
// completed or left as the previous one, and no unpublished step directory is left behind.
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import fc from "fast-check"
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { afterAll, describe, expect, test } from "vitest"
import type * as ChooseBackend from "../../src/runtime/ChooseBackend.js"
import * as ThreadsJob from "../../src/runtime/ThreadsJob.js"
import * as Checkpoint from "../../src/train/Checkpoint.js"
import * as Train from "../../src/train/Train.js"
import { smallJob } from "./arbitraries.js"

const steps = 200
const setup = smallJob(steps)

/** Starts a long job, interrupts it once `after` steps are published; how it ended. */
const interruptAfter = async (backend: ChooseBackend.Name, after: number, extra: Partial<Train.RunOptions> = {}) => {
  const published: Array<number> = []
  let reached: () => void = () => undefined
  const enough = new Promise<void>((resolve) => (reached = resolve))
  const fiber = Effect.runFork(
    Train.run(setup, {
      steps,
      backend,
      ...extra,
      onStep: (s) => {
        published.push(s.step)
        if (published.length === after) reached()
      },
    }),
  )
  await enough
  const started = performance.now()
  const exit = await Effect.runPromise(Fiber.interrupt(fiber).pipe(Effect.andThen(Fiber.await(fiber))))
  const ms = performance.now() - started
  const count = published.length
  // Nothing of the job runs on: no more steps are published.
  await new Promise((resolve) => setTimeout(resolve, 300))
  return { exit, ms, count, later: published.length - count }
}

afterAll(() => ThreadsJob.shutdown())

describe("interrupting a training job", () => {
  for (const backend of ["local", "threads"] satisfies Array<ChooseBackend.Name>) {
    test(`on ${backend}: every rank stops within 5 s and nothing runs on`, async () => {
      await ThreadsJob.shutdown()
      const { exit, ms, count, later } = await interruptAfter(backend, 1)
      expect(exit._tag).toBe("Failure")
      expect(count).toBeLessThan(steps)
      expect(ms).toBeLessThan(5000)
      expect(later).toBe(0)
      expect(ThreadsJob.liveThreads()).toEqual([])
    }, 120_000)
  }

  test("on threads, a job interrupted before its save leaves the previous checkpoint loadable", async () => {
    const dir = path.join(mkdtempSync(path.join(tmpdir(), "pleat-interrupt-")), "ckpt")
    await Effect.runPromise(Train.run(setup, { steps: 1, backend: "threads", save: dir }))
    const { exit } = await interruptAfter("threads", 1, { resume: dir, save: dir })
    expect(exit._tag).toBe("Failure")
    expect(Checkpoint.manifest(dir).step).toBe(1)
    expect(existsSync(path.join(dir, "step-00000001", "rank-3.bin"))).toBe(true)
    expect(readdirSync(dir).sort()).toEqual(["latest", "pleat-checkpoint", "step-00000001"])
    // It still resumes.
    const resumed = await Effect.runPromise(Train.run(setup, { steps: 2, resume: dir }))
    expect(resumed.map((s) => s.step)).toEqual([1])
    expect(ThreadsJob.liveThreads()).toEqual([])
  }, 120_000)

  for (const backend of ["local", "threads"] satisfies Array<ChooseBackend.Name>) {
    test(`on ${backend}, interrupted at any moment while it trains and saves, a job leaves the previous checkpoint or the complete new one`, async () => {
      const root = mkdtempSync(path.join(tmpdir(), "pleat-interrupt-save-"))
      const pristine = path.join(root, "pristine")
      const dir = path.join(root, "ckpt")
      await Effect.runPromise(Train.run(setup, { steps: 1, save: pristine }))
      const reference = await Effect.runPromise(Train.run(setup, { steps: 4 }))
      // How long an uninterrupted resume-and-save takes here (from cold workers on threads).
      await ThreadsJob.shutdown()
      cpSync(pristine, dir, { recursive: true })
      const started = performance.now()
      await Effect.runPromise(Train.run(setup, { steps: 3, backend, resume: dir, save: dir }))
      const whole = performance.now() - started
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: 119 }), async (percent) => {
          rmSync(dir, { recursive: true, force: true })
          cpSync(pristine, dir, { recursive: true })
          const fiber = Effect.runFork(Train.run(setup, { steps: 3, backend, resume: dir, save: dir }))
          await new Promise((resolve) => setTimeout(resolve, (percent / 100) * whole))
          await Effect.runPromise(Fiber.interrupt(fiber))
          const step = Checkpoint.manifest(dir).step
          expect([1, 3]).toContain(step)
          // Nothing of an unpublished save is left (the default --keep 2 keeps step 1 beside 3).
          expect(readdirSync(dir).sort()).toEqual(["latest", "pleat-checkpoint", "step-00000001", ...(step === 3 ? ["step-00000003"] : [])])
          // Whichever it is, it is complete: resuming from it continues the reference run exactly.
          const resumed = await Effect.runPromise(Train.run(setup, { steps: 4, resume: dir }))
          expect(resumed.map((s) => s.loss)).toEqual(reference.slice(step).map((s) => s.loss))
          expect(ThreadsJob.liveThreads().length).toBeLessThanOrEqual(ThreadsJob.idleThreads().length)
        }),
        { numRuns: 4 },
      )
    }, 180_000)
  }
})
