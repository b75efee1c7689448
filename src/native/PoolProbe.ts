/**
 * PoolProbe: which threads of the kernels' pool run a job's tasks (cuda/src/kernels/pool_probe.h).
 * The tasks sleep, so a probe needs no cores of its own: tests call it from several threads at
 * once and read how the pool spread its threads over them (properties/runtime/PoolSpread.test.ts).
 */
import { addon } from "./CpuAddon.js"

/**
 * What `probe` saw of one job.
 * @category models
 */
export interface PoolProbe {
  /** Distinct threads that ran a task, the caller's included. */
  readonly threads: number
  /** Tasks run (each once). */
  readonly runs: number
  /** The most of the job's tasks running at once. */
  readonly peak: number
}

/**
 * Runs `tasks` tasks (1..4096) of `micros` microseconds' sleep each (0..100000) on the kernels'
 * pool and says which threads ran them. Blocks the calling thread. Throws on a build without it.
 * @category diagnostics
 */
export const probe = (tasks: number, micros: number): PoolProbe => {
  const run = addon().poolProbe
  if (run === undefined) throw new Error("poolProbe: the native build predates it (run npm run build:native)")
  return run(tasks, micros)
}
