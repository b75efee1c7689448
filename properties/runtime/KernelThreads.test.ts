// While a threads job runs, the native pool keeps every core and counts the job's workers but one
// as busy (less those sleeping on their bell, which lend their core): between 0 and workers - 1
// as an awake rank reads it; the pool's count from before, and a busy count of 0, come back when
// the job ends, failed or not (src/runtime/threads/KernelThreads.ts). And a product's bits do not
// depend on how many pool threads step aside for busy threads.
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
  test("each worker sees every core and at most workers - 1 busy threads; the counts come back after the job, and after a failed one", async () => {
    const before = Cpu.threads()
    for (const [world, workers] of [
      [2, 2],
      [4, 2],
      [2, 1],
      [3, 3],
    ] as const) {
      const seen = await ThreadsJob.runPromise<{ threads: number; busy: number }>({ world, workers, module: poolPrograms, export: "poolThreads", args: { world } })
      expect(seen.map((s) => s.threads)).toEqual(new Array(world).fill(availableParallelism()))
      for (const s of seen) expect(s.busy >= 0 && s.busy <= workers - 1).toBe(true)
      expect([Cpu.threads(), Cpu.poolAddBusy(0)]).toEqual([before, 0])
    }
    await expect(ThreadsJob.runPromise({ world: 2, workers: 2, module: programs, export: "oneFails", args: { world: 2, failing: 1 }, timeoutMs: 2000 })).rejects.toThrow()
    expect([Cpu.threads(), Cpu.poolAddBusy(0)]).toEqual([before, 0])
  })

  test("a product gives the same bits whatever the busy count (pool threads stepping aside)", () => {
    const [m, k, n] = [192, 320, 260]
    const a = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i * 0.37))
    const b = Float32Array.from({ length: k * n }, (_, i) => Math.cos(i * 0.11))
    const product = () => {
      const out = new Float32Array(m * n)
      Cpu.matmul({ a, b, out, batch: 1, m, n, k, transA: false, transB: false, strideA: 0, strideB: 0, accumulate: false })
      return out
    }
    const free = product()
    for (const busy of [1, 4]) {
      Cpu.poolAddBusy(busy)
      try {
        expect(product()).toEqual(free)
      } finally {
        Cpu.poolAddBusy(-busy)
      }
    }
  })
})
