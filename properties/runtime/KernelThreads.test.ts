// While a threads job runs, the native pool keeps every core and counts the job's workers but one
// as busy (less those sleeping on their bell, which lend their core); the pool's count from
// before comes back when the job ends, failed or not, and the busy count settles at 0
// (src/runtime/threads/KernelThreads.ts). A thread's lending is balanced (Doorbell's ThreadSide).
// And a product's bits do not depend on how many pool threads step aside for busy threads.
import { availableParallelism } from "node:os"
import { afterAll, describe, expect, test } from "vitest"
import { ThreadSide } from "../../src/comm/threads/Doorbell.js"
import * as Cpu from "../../src/native/Cpu.js"
import { addonIfBuilt } from "../../src/native/CpuAddon.js"
import * as ThreadsJob from "../../src/runtime/ThreadsJob.js"

const programs = new URL("./programs.ts", import.meta.url)
const poolPrograms = new URL("./poolPrograms.ts", import.meta.url)

const built = addonIfBuilt() !== undefined

afterAll(() => ThreadsJob.shutdown())

describe("a thread lends its core while it waits on its bell", () => {
  test("lend and reclaim pair up: a second lend or reclaim does nothing, and a job's end reclaims a pending lend", () => {
    const side = new ThreadSide()
    const told: Array<boolean> = []
    side.lend()
    side.asleep = (sleeping) => told.push(sleeping)
    side.lend()
    side.lend()
    side.reclaim()
    side.reclaim()
    side.lend()
    side.reclaim()
    expect(told).toEqual([true, false, true, false])
  })
})

describe.runIf(built)("the kernels' pool during threads jobs", () => {
  test("each worker sees every core; the pool's count comes back after the job, and after a failed one; the busy count settles at 0", async () => {
    const before = Cpu.threads()
    // The busy count is a hint that threads change as they wake: it settles once they have.
    const settled = async () => {
      for (let i = 0; i < 100 && Cpu.poolAddBusy(0) !== 0; i++) await new Promise((r) => setTimeout(r, 20))
      return Cpu.poolAddBusy(0)
    }
    for (const [world, workers] of [
      [2, 2],
      [4, 2],
      [2, 1],
      [3, 3],
    ] as const) {
      const seen = await ThreadsJob.runPromise<{ threads: number; busy: number }>({ world, workers, module: poolPrograms, export: "poolThreads", args: { world } })
      expect(seen.map((s) => s.threads)).toEqual(new Array(world).fill(availableParallelism()))
      expect(Cpu.threads()).toBe(before)
      expect(await settled()).toBe(0)
    }
    await expect(ThreadsJob.runPromise({ world: 2, workers: 2, module: programs, export: "oneFails", args: { world: 2, failing: 1 }, timeoutMs: 2000 })).rejects.toThrow()
    expect(Cpu.threads()).toBe(before)
    // A worker stopped while it slept cannot give its core back: the next job starts from 0.
    await ThreadsJob.runPromise({ world: 2, workers: 2, module: poolPrograms, export: "poolThreads", args: { world: 2 } })
    expect(await settled()).toBe(0)
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
