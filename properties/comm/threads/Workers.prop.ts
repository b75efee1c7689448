// Ranks sharing worker threads (ThreadsJob's `workers`): any number of workers from 1 to the
// world gives the local backend's results, ranks sit in consecutive blocks, one per worker,
// and a worker that one of its ranks ends is charged to that rank.
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import fc from "fast-check"
import { afterAll, describe, expect, test } from "vitest"
import * as Backend from "../../../src/runtime/Backend.js"
import { RankFailed } from "../../../src/runtime/JobError.js"
import * as LocalBackend from "../../../src/runtime/LocalBackend.js"
import * as RankProgram from "../../../src/runtime/RankProgram.js"
import * as ThreadsJob from "../../../src/runtime/ThreadsJob.js"

const module = new URL("./workerPrograms.ts", import.meta.url)

interface Mixed {
  readonly seen: ReadonlyArray<ReadonlyArray<number>>
  readonly thread: number
}

const onLocal = (world: number, args: unknown) =>
  Effect.runPromise(Effect.provide(Backend.run<Mixed>({ world, program: RankProgram.make(module, "mixed", args) }), LocalBackend.layer()))

afterAll(() => ThreadsJob.shutdown())

describe("ranks sharing worker threads", () => {
  test("any number of workers gives the local backend's results, ranks in consecutive blocks", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .integer({ min: 1, max: 8 })
          .chain((world) => fc.record({ world: fc.constant(world), workers: fc.integer({ min: 1, max: world }), rounds: fc.integer({ min: 1, max: 3 }) })),
        fc.boolean(),
        async ({ world, workers, rounds }, copy) => {
          const args = { world, rounds }
          const got = await ThreadsJob.runPromise<Mixed>({ world, workers, copy, module, export: "mixed", args })
          const want = await onLocal(world, args)
          expect(got.map((r) => r.seen)).toEqual(want.map((r) => r.seen))
          // One thread per worker, hosting the ranks workerOf assigns to it.
          const threads = got.map((r) => r.thread)
          expect(new Set(threads).size).toBe(workers)
          for (let r = 0; r < world; r++) {
            for (let q = 0; q < world; q++) {
              expect(threads[r] === threads[q]).toBe(ThreadsJob.workerOf(r, world, workers) === ThreadsJob.workerOf(q, world, workers))
            }
          }
        },
      ),
      { numRuns: 8 },
    )
  }, 120_000)

  test("blocks are consecutive and as even as they can be", () => {
    for (let world = 1; world <= 16; world++) {
      for (let workers = 1; workers <= world; workers++) {
        const hosts = Array.from({ length: world }, (_, r) => ThreadsJob.workerOf(r, world, workers))
        const sizes = new Array<number>(workers).fill(0)
        for (const h of hosts) sizes[h] = (sizes[h] as number) + 1
        expect(hosts).toEqual([...hosts].sort((a, b) => a - b))
        expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1)
      }
    }
  })

  test("a rank that exits ends its worker: the job fails with that rank, naming the others it hosted", async () => {
    // No pooled worker from the tests before: afterwards every live thread would be the job's.
    await ThreadsJob.shutdown()
    const exit = await Effect.runPromise(Effect.exit(ThreadsJob.run({ world: 4, workers: 2, module, export: "exitsFrom", args: { world: 4, exiting: 3 }, timeoutMs: 4000 })))
    expect(Exit.isFailure(exit)).toBe(true)
    const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
    const failed = (error as { error: unknown } | undefined)?.error
    expect(failed).toBeInstanceOf(RankFailed)
    expect((failed as RankFailed).rank).toBe(3)
    expect((failed as RankFailed).message).toContain("the worker of rank 3 exited with code 9 before its program finished (the worker also hosted rank 2)")
    expect(ThreadsJob.liveThreads()).toEqual([])
  })

  test("a worker count outside 1..world is refused before any thread starts", async () => {
    for (const workers of [0, 5, 1.5]) {
      await expect(ThreadsJob.runPromise({ world: 4, workers, module, export: "mixed", args: { world: 4, rounds: 1 } })).rejects.toThrow(
        `workers must be an integer from 1 to the world (4), got ${workers}`,
      )
    }
  })
})
