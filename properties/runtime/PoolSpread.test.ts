// The kernels' pool spreads its threads over the callers in kernels at once (cuda/src/kernels/
// thread_pool.cc): every caller's job gets pool threads, never more threads compute than the pool
// has less those held outside it, and every task runs once. The probe's tasks sleep, so these hold
// on any number of cores (PoolProbe.ts). Before the thirty-sixth session one job ran at a time
// and a second caller ran alone: of two ranks of a threads job on 16 cores, one computed on 15
// threads and the other on 1.
import { afterAll, describe, expect, test } from "vitest"
import * as Cpu from "../../src/native/Cpu.js"
import * as PoolProbe from "../../src/native/PoolProbe.js"
import * as ThreadsJob from "../../src/runtime/ThreadsJob.js"

const poolPrograms = new URL("./poolPrograms.ts", import.meta.url)

const built = (() => {
  try {
    PoolProbe.probe(1, 0)
    return true
  } catch {
    return false
  }
})()

afterAll(() => ThreadsJob.shutdown())

/** Runs `body` with the pool at `threads` threads, then puts the count before back. */
const withThreads = <A>(threads: number, body: () => A): A => {
  const before = Cpu.threads()
  Cpu.setThreads(threads)
  try {
    return body()
  } finally {
    Cpu.setThreads(before)
  }
}

describe.runIf(built)("the kernels' pool over callers at once", () => {
  test("one caller: its job runs on pool threads, each task once, at most the pool's threads at a time", () => {
    const seen = withThreads(4, () => PoolProbe.probe(40, 4000))
    expect(seen.runs).toBe(40)
    expect(seen.threads).toBeGreaterThanOrEqual(2)
    expect(seen.threads).toBeLessThanOrEqual(4)
    expect(seen.peak).toBeLessThanOrEqual(4)
  })

  test("threads held outside the pool: that many of its threads step aside", () => {
    for (const busy of [1, 2, 3]) {
      Cpu.poolAddBusy(busy)
      try {
        const seen = withThreads(4, () => PoolProbe.probe(16, 1000))
        expect(seen.runs).toBe(16)
        expect(seen.peak).toBeLessThanOrEqual(4 - busy)
      } finally {
        Cpu.poolAddBusy(-busy)
      }
    }
  })

  test("two ranks of a threads job in kernels at once: each rank's job gets pool threads", async () => {
    // 2 workers hold 2 of the pool's 6 threads (each a caller); the other 4 spread over both jobs.
    const seen = await ThreadsJob.runPromise<PoolProbe.PoolProbe>({
      world: 2,
      workers: 2,
      module: poolPrograms,
      export: "poolSpread",
      args: { world: 2, threads: 6, tasks: 48, micros: 4000 },
    })
    for (const job of seen) {
      expect(job.runs).toBe(48)
      expect(job.threads).toBeGreaterThanOrEqual(2)
      expect(job.peak).toBeLessThanOrEqual(6)
    }
  })
})
