/**
 * KernelThreads: how many threads the native kernels' pool uses while threads jobs run. The pool
 * is one per process, shared by every worker thread, and runs one job at a time (a second caller
 * runs its tasks alone, cuda/src/kernels/thread_pool.h); so with two workers on two cores, one
 * worker's product took the pool's second thread while the other worker computed on its own: three
 * busy threads on two cores. While a job runs, the pool gets the cores per worker (at least one),
 * so each worker computes on its own core; the count before is back once the last job has ended.
 * Measured (Zen 4, 2 cores, realistic MoE shape, medians of 4 steps, two runs each): tp 2 etp 2 on
 * 2 workers 408-417 -> 466-483 tokens/s (one rank: 443-497); ep 2 489-529 -> 507-521 (noise); the
 * default job on threads 868 -> 897.
 */
import { availableParallelism } from "node:os"
import * as Cpu from "../../native/Cpu.js"

let active = 0
let before: number | undefined

/**
 * A job on `workers` worker threads starts: the pool gets the cores per worker.
 * @category combinators
 */
export const enter = (workers: number): void => {
  try {
    if (active === 0) before = Cpu.threads()
    active++
    Cpu.setThreads(Math.max(1, Math.floor(availableParallelism() / workers)))
  } catch {
    // No CPU addon: the kernels run in TypeScript, on the calling thread.
  }
}

/**
 * A job has ended: the last one gives the pool its count back.
 * @category combinators
 */
export const leave = (): void => {
  if (active === 0) return
  active--
  if (active > 0 || before === undefined) return
  try {
    Cpu.setThreads(before)
  } catch {
    // As in enter.
  }
  before = undefined
}
