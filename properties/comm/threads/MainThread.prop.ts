// The main thread is not on the data path of the threads backend: once a group's control block
// has been handed out, its collectives and the ranks' p2p messages complete while the main
// thread is blocked (a synchronous loop in the job's event listener), with the right results.
// Before issue 14 every collective and p2p message went through the main thread, so none could
// complete while it was blocked.
import { afterAll, describe, expect, test } from "vitest"
import * as ThreadsJob from "../../../src/runtime/ThreadsJob.js"

const module = new URL("./offMain.ts", import.meta.url)

afterAll(() => ThreadsJob.shutdown())

describe("the threads backend without the main thread", () => {
  for (const copy of [true, false]) {
    test(`collectives and p2p complete while the main thread is blocked (${copy ? "copying" : "zero-copy"})`, async () => {
      const world = 4
      const rounds = 40
      const blockMs = 3000
      const flags = new SharedArrayBuffer(4)
      const done = new SharedArrayBuffer(8 * world)
      let blockedUntil = 0
      const results = await ThreadsJob.runPromise<{ sum: number; moved: number; ring: number }>({
        world,
        module,
        export: "whileMainBlocked",
        copy,
        args: { world, rounds, flags, done },
        onEvent: () => {
          Atomics.store(new Int32Array(flags), 0, 1)
          const until = performance.now() + blockMs
          while (performance.now() < until) {
            // The main thread does nothing else meanwhile: no message of the job is handled.
          }
          blockedUntil = performance.timeOrigin + performance.now()
        },
      })
      const finished = Array.from(new Float64Array(done))
      for (const t of finished) {
        expect(t).toBeGreaterThan(0)
        expect(t).toBeLessThan(blockedUntil)
      }
      const sumOfRounds = Array.from({ length: rounds }, (_, i) => Array.from({ length: world }, (_, r) => r + i).reduce((a, b) => a + b, 0)).reduce((a, b) => a + b, 0)
      results.forEach((r, rank) => {
        expect(r.sum).toBe(sumOfRounds)
        expect(r.moved).toBe(rounds * (((rank + 1) % world) * 100 + rank))
        const prev = (rank + world - 1) % world
        expect(r.ring).toBe(Array.from({ length: rounds }, (_, i) => prev * 1000 + i).reduce((a, b) => a + b, 0))
      })
    }, 30_000)
  }
})
