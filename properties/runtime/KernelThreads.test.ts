// While a threads job runs, the native pool gives each worker its share of the cores (at least
// one thread), and the count from before comes back when the job ends, failed or not
// (src/runtime/threads/KernelThreads.ts).
import { availableParallelism } from "node:os"
import { afterAll, describe, expect, test } from "vitest"
import * as Cpu from "../../src/native/Cpu.js"
import * as ThreadsJob from "../../src/runtime/ThreadsJob.js"

const programs = new URL("./programs.ts", import.meta.url)
const poolPrograms = new URL("./poolPrograms.ts", import.meta.url)

const built = (() => {
  try {
    Cpu.threads()
    return true
  } catch {
    return false
  }
})()

afterAll(() => ThreadsJob.shutdown())

describe.runIf(built)("the kernels' pool during threads jobs", () => {
  test("each worker gets the cores per worker; the count comes back after the job, and after a failed one", async () => {
    const before = Cpu.threads()
    for (const [world, workers] of [
      [2, 2],
      [4, 2],
      [2, 1],
      [3, 3],
    ] as const) {
      const seen = await ThreadsJob.runPromise<number>({ world, workers, module: poolPrograms, export: "poolThreads", args: { world } })
      expect(seen).toEqual(new Array(world).fill(Math.max(1, Math.floor(availableParallelism() / workers))))
      expect(Cpu.threads()).toBe(before)
    }
    await expect(ThreadsJob.runPromise({ world: 2, workers: 2, module: programs, export: "oneFails", args: { world: 2, failing: 1 }, timeoutMs: 2000 })).rejects.toThrow()
    expect(Cpu.threads()).toBe(before)
  })
})
