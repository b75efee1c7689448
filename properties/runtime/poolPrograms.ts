// A rank program for the kernels' pool property (KernelThreads.test.ts), in a module of its own:
// programs.ts's list of exports is part of what Backend.prop.ts checks.
import * as Effect from "effect/Effect"
import * as Comm from "../../src/comm/Communicator.js"
import * as Group from "../../src/comm/Group.js"
import * as Cpu from "../../src/native/Cpu.js"
import * as PoolProbe from "../../src/native/PoolProbe.js"

/**
 * The native kernels' pool size as this rank's worker sees it (after a barrier: every worker
 * started), and the threads it counts as busy outside the pool (Cpu.poolAddBusy(0)).
 */
export const poolThreads = (_rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { world } = args as { world: number }
    yield* Comm.barrier(Group.world(world))
    return { threads: Cpu.threads(), busy: Cpu.poolAddBusy(0) }
  })

/**
 * Every rank probes the kernels' pool at once (after a barrier), rank 0 having first set it to
 * `threads` threads: what each rank's job saw (PoolSpread.test.ts).
 */
export const poolSpread = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const { world, threads, tasks, micros } = args as { world: number; threads: number; tasks: number; micros: number }
    if (rank === 0) Cpu.setThreads(threads)
    yield* Comm.barrier(Group.world(world))
    return PoolProbe.probe(tasks, micros)
  })
