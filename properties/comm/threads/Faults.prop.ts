// Faults only the threads backend can have: a worker that exits, crashes or spins, a module that
// does not load, args or results that cannot be cloned, a job interrupted from outside. Each
// ends the job with an error naming the rank, and afterwards no thread of the job is alive
// (counted by the workers' exit events). The faults every backend shares are in ../Faults.prop.ts.
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { afterAll, describe, expect, test } from "vitest"
import type { RankFailed } from "../../../src/runtime/JobError.js"
import * as ThreadsJob from "../../../src/runtime/ThreadsJob.js"
import { failure as threadsFailure, type Scenario } from "../runOn.js"

// The timeout is long: each fault must end the job at once, long before any timeout (loose
// enough for a loaded 2-core machine).
const timeoutMs = 4000
const module = new URL("../scenarios.ts", import.meta.url)

const failure = (name: string, world = 4, args: Record<string, unknown> = {}) => threadsFailure("threads", name as Scenario, world, args, timeoutMs)

afterAll(() => ThreadsJob.shutdown())

describe("faults end a threads job with a diagnosis", () => {
  test("a worker that exits: the job fails with that rank; waiting ranks are closed", async () => {
    const { error, ms, live } = await failure("exits", 2)
    expect(error?.rank).toBe(1)
    expect(error?.message).toContain("the worker of rank 1 exited with code 7 before its program finished")
    expect(ms).toBeLessThan(timeoutMs)
    expect(live).toEqual([])
  })

  test("a worker that crashes with an uncaught exception: the job fails with that rank", async () => {
    const { error, ms, live } = await failure("crashes", 2)
    expect(error?.rank).toBe(1)
    expect(error?.message).toContain("rank 1 failed: uncaught in rank 1")
    expect(ms).toBeLessThan(timeoutMs)
    expect(live).toEqual([])
  })

  test("a rank stuck in a busy loop is terminated after the grace period", async () => {
    const { error, ms, live } = await failure("spins", 2)
    expect(error?.rank).toBe(0)
    expect(ms).toBeLessThan(timeoutMs)
    expect(live).toEqual([])
  })

  test("a missing export, a non-function export or a result that cannot be cloned fail the job", async () => {
    expect((await failure("nope", 1)).error?.message).toContain('has no function export "nope"')
    expect((await failure("notAFunction", 1)).error?.message).toContain('has no function export "notAFunction"')
    expect((await failure("unclonable", 1)).error?.message).toContain("cannot be sent to the main thread")
    const missing = await Effect.runPromise(Effect.exit(ThreadsJob.run({ world: 1, module: new URL("./missing.ts", import.meta.url), export: "x" })))
    expect(Exit.isFailure(missing) && String(missing.cause.reasons.map((r) => (r._tag === "Fail" ? r.error.message : ""))).includes("missing.ts")).toBe(true)
    expect(ThreadsJob.liveThreads()).toEqual([])
  })

  test("a module that never finishes loading fails the job after the start-up limit", async () => {
    const exit = await Effect.runPromise(Effect.exit(ThreadsJob.run({ world: 2, module: new URL("./hangs.ts", import.meta.url), export: "program", startTimeoutMs: 1500 })))
    const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
    expect((error as { error: RankFailed } | undefined)?.error.message).toMatch(/ranks 0,1 did not load .*hangs\.ts within 1500 ms/)
    expect(ThreadsJob.liveThreads()).toEqual([])
  })

  test("interrupting the job from outside stops every rank thread", async () => {
    await ThreadsJob.shutdown()
    const exit = await Effect.runPromise(Effect.exit(Effect.timeout(ThreadsJob.run({ world: 2, module, export: "waitsForever" }), 1500)))
    expect(Exit.isFailure(exit)).toBe(true)
    expect(ThreadsJob.liveThreads()).toEqual([])
  })

  test("args that cannot be cloned: the job does not start and leaves no thread", async () => {
    await ThreadsJob.shutdown()
    const exit = await Effect.runPromise(Effect.exit(ThreadsJob.run({ world: 2, module, export: "p2pFifo", args: { f: () => 1 } })))
    expect(Exit.isFailure(exit) && String(exit.cause.reasons[0]?._tag === "Die" ? exit.cause.reasons[0].defect : "")).toContain("structured-cloneable")
    expect(ThreadsJob.liveThreads()).toEqual([])
  })
})
