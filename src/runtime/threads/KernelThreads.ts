/**
 * KernelThreads: which threads the native kernels' pool uses while threads jobs run. The pool is
 * one per process, shared by every worker thread; since the thirty-sixth session it runs every
 * caller's job at once, its threads spread over them (cuda/src/kernels/thread_pool.h: before,
 * one job ran at a time and a second caller ran its tasks alone, so on 16 cores one rank of two
 * computed on 15 threads and the other on 1). With two workers on two cores, one worker's product
 * once took the pool's second thread while the other worker computed on its own: three busy
 * threads on two cores. Sixth session: the pool got the cores per worker (one here), so each
 * worker computed on its own core (tp 2 etp 2 on 2 workers 408-417 -> 466-483 tokens/s, Zen 4).
 * But a worker that waits for its peers (ep 2 at init: one rank holds the experts most tokens
 * choose) then left its core idle. Now the pool keeps every core and counts the job's workers
 * but one as busy: that many pool threads step aside between tasks (Cpu.poolAddBusy), and a
 * worker sleeping on its bell gives its core back to the pool meanwhile (ThreadComm), so the rank
 * still computing gets it. The count before is back once the last job has ended.
 */
import { availableParallelism } from "node:os"
import * as Cpu from "../../native/Cpu.js"

let active = 0
let before: number | undefined

/** The threads a job on `workers` workers counts as busy: all its workers but the caller's. */
const busyOf = (workers: number): number => Math.max(0, workers - 1)

/**
 * A job on `workers` worker threads starts: the pool keeps every core, and counts all workers but
 * one as holding a core (Cpu.poolAddBusy; a worker sleeping on its bell gives its core back:
 * comm/threads/ThreadComm.ts).
 * @category combinators
 */
export const enter = (workers: number): void => {
  try {
    if (active === 0) {
      before = Cpu.threads()
      // No job runs: whatever an ended job's threads left in the count is stale.
      Cpu.poolAddBusy(-Cpu.poolAddBusy(0))
    }
    active++
    Cpu.setThreads(availableParallelism())
    Cpu.poolAddBusy(busyOf(workers))
  } catch {
    // No CPU addon: the kernels run in TypeScript, on the calling thread.
  }
}

/**
 * A job on `workers` worker threads has ended: its workers leave the count; the last one gives
 * the pool its count back.
 * @category combinators
 */
export const leave = (workers: number): void => {
  if (active === 0) return
  active--
  try {
    Cpu.poolAddBusy(-busyOf(workers))
    if (active > 0 || before === undefined) return
    Cpu.setThreads(before)
  } catch {
    // As in enter.
  }
  if (active === 0) before = undefined
}
