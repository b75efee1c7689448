// Fault tests on the threads backend: a failing rank, a skipped collective, disagreeing ops, a
// rank that never arrives, a worker that exits or spins, bad arguments and bad modules. Each
// ends the job within the timeout with an error naming the rank and the group, and afterwards
// no thread of the job is alive (counted by the workers' exit events).
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { afterAll, describe, expect, test } from "vitest"
import type { CommError } from "../../../src/comm/CommError.js"
import type { RankFailed } from "../../../src/runtime/JobError.js"
import * as Job from "../../../src/runtime/Job.js"
import * as ThreadsJob from "../../../src/runtime/ThreadsJob.js"
import * as Scenarios from "./scenarios.js"

const timeoutMs = 300
const module = new URL("./scenarios.ts", import.meta.url)

/**
 * Runs a scenario that must fail on `world` ranks; returns the failure, how long the job took
 * and the live rank threads afterwards. A failed job's workers are terminated, so each run
 * first warms exactly `world` idle workers: the timings then measure the fault handling, not
 * thread start-up, and every live thread afterwards would be one of the job's.
 */
const failure = async (name: string, world = 4, args: Record<string, unknown> = {}) => {
  await ThreadsJob.shutdown()
  await ThreadsJob.runPromise({ world, module, export: "p2pFifo", args: { world, count: 1 } })
  expect(ThreadsJob.idleThreads()).toHaveLength(world)
  const started = performance.now()
  const exit = await Effect.runPromise(Effect.exit(ThreadsJob.run({ world, timeoutMs, module, export: name, args: { world, ...args } })))
  const ms = performance.now() - started
  if (Exit.isSuccess(exit)) throw new Error("the job was expected to fail")
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  return { error: (reason as { error: RankFailed } | undefined)?.error, ms, live: ThreadsJob.liveThreads() }
}

/** The same scenario's failure on the local backend (the programs are plain functions). */
const local = async (name: keyof typeof Scenarios, world = 4, args: Record<string, unknown> = {}) => {
  const program = Scenarios[name] as (rank: number, args: unknown) => Effect.Effect<unknown, unknown, never>
  const exit = await Effect.runPromise(Effect.exit(Job.run({ world, timeoutMs }, (rank) => program(rank, { world, ...args }))))
  const reason = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
  return (reason as { error: RankFailed } | undefined)?.error
}

// Which member reports first is a race on both backends (and with it the reporting rank, and
// BadInput for the culprit against Mismatch for the others); the rest of the diagnosis is not.
const diagnosis = (e: RankFailed | undefined) => {
  const error = e === undefined ? undefined : (Cause.squash(e.cause) as CommError)
  return error === undefined ? undefined : { group: error.group, op: error.op, seq: error.seq, ranks: error.ranks, detail: error.detail }
}

afterAll(() => ThreadsJob.shutdown())

describe("faults end a threads job with a diagnosis", () => {
  test("a rank that throws: the job fails with that rank at once; no thread is left", async () => {
    const { error, ms, live } = await failure("throws")
    expect(error?._tag).toBe("RankFailed")
    expect(error?.rank).toBe(2)
    expect(error?.message).toContain("rank 2 failed: boom in rank 2")
    expect(ms).toBeLessThan(timeoutMs)
    expect(live).toEqual([])
  })

  test("a rank that skips a collective: Mismatch at the next one, naming ranks and group", async () => {
    const { error, ms, live } = await failure("skips")
    // Which op the message leads with depends on who arrived first; the diagnosis does not.
    expect(error?.message).toMatch(/Mismatch: all(Reduce|Gather) #0 on ep#0 \[0,1,2,3\]/)
    expect(error?.message).toContain("rank 1 issued allGather")
    expect(error?.message).toMatch(/issued allReduce\(sum\) float64 \[1, 2\]/)
    expect(ms).toBeLessThan(timeoutMs)
    expect(live).toEqual([])
  })

  test("ranks that issue different sizes: Mismatch listing who issued what", async () => {
    const { error, live } = await failure("differentOps")
    expect(error?.message).toMatch(/ranks? [0-9,]+ issued allReduce\(sum\) float64 \[1, 2\]/)
    expect(error?.message).toMatch(/ranks? [0-9,]+ issued allReduce\(sum\) float64 \[3, 2\]/)
    expect(live).toEqual([])
  })

  test("a rank that never arrives: Timeout naming the missing rank, within the timeout", async () => {
    const { error, ms, live } = await failure("neverArrives")
    expect(error?.message).toContain("Timeout: allReduce #0 on ep#0 [0,1,2,3]")
    expect(error?.message).toContain("arrived: [0,1,2], never arrived: [3]")
    expect(diagnosis(error)).toEqual(diagnosis(await local("neverArrives")))
    expect(ms).toBeGreaterThanOrEqual(timeoutMs - 5)
    expect(ms).toBeLessThan(timeoutMs * 3)
    expect(live).toEqual([])
  })

  test("bad arguments of one rank fail every member at once", async () => {
    const { error, live } = await failure("badSplits")
    expect(error?.message).toContain("rank 0: sendSplits add up to 4 rows but the tensor has 2")
    expect(diagnosis(error)).toEqual(diagnosis(await local("badSplits")))
    expect(live).toEqual([])
  })

  test("a receive buffer of the wrong size fails the whole collective", async () => {
    const { error } = await failure("badReceiveBuffer")
    expect(error?.message).toContain("BadInput: allGather #0 on ep#0 [0,1,2,3]")
    expect(error?.message).toContain("rank 1: the receive buffer holds 6 float64 elements; the result needs 8 float64")
    expect(diagnosis(error)).toEqual(diagnosis(await local("badReceiveBuffer")))
  })

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

  test("ops still waiting when the job fails fail with Closed", async () => {
    const seen = new SharedArrayBuffer(4 * 4)
    const { error, live } = await failure("closedSeen", 4, { seen })
    expect(error?.rank).toBe(0)
    expect(Array.from(new Int32Array(seen))).toEqual([0, 1, 1, 1])
    expect(live).toEqual([])
  })

  test("nothing keeps running after the job fails", async () => {
    const ticks = new SharedArrayBuffer(4)
    const { error, live } = await failure("ticker", 2, { ticks })
    expect(error?.message).toContain("rank 0 failed: rank 0 gives up")
    const after = Atomics.load(new Int32Array(ticks), 0)
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(Atomics.load(new Int32Array(ticks), 0)).toBe(after)
    expect(after).toBeGreaterThan(0)
    expect(live).toEqual([])
  })

  test("a rank stuck in a busy loop is terminated after the grace period", async () => {
    const { error, ms, live } = await failure("spins", 2)
    expect(error?.rank).toBe(0)
    expect(ms).toBeLessThan(timeoutMs + 1000)
    expect(live).toEqual([])
  })

  test("a recv that nobody answers times out naming the peer", async () => {
    const { error } = await failure("recvNobody", 2)
    expect(error?.message).toContain("Timeout: recv #0 on p2p 1->0")
    expect(error?.message).toBe((await local("recvNobody", 2))?.message)
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
