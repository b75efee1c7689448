/**
 * LockstepProgram: the rank program of `pleat verify`'s parallel run, the same on every backend.
 *
 * Each rank builds its RankTrainer and reports, before its first step and after each step, a
 * Snapshot: every parameter shard it holds, as plain data (values, the step's synchronised
 * gradient, the AdamW moments), with the step's report. With the distributed optimizer a shard
 * reports its values, and each part the rank owns (a slice, DistributedSlices.ownedSlices)
 * its synchronised gradient and moments: over all ranks the parts cover every parameter once. The driver (Lockstep) gathers the
 * ranks' snapshots of a step into full tensors and runs the one-rank comparison from them, in
 * the driver's process, while the ranks go on: so the ranks may be fibers, worker threads or
 * MPI processes.
 */
import * as Effect from "effect/Effect"
import { RankEvents } from "../runtime/RankEvents.js"
import * as RankProgram from "../runtime/RankProgram.js"
import type * as DType from "../tensor/DType.js"
import * as DistributedSlices from "./DistributedSlices.js"
import * as BuiltinModels from "./BuiltinModels.js"
import * as ModelDefinition from "./ModelDefinition.js"
import * as RankTrainer from "./RankTrainer.js"

/**
 * One parameter shard of a rank, copied.
 * @category models
 */
export interface Holding {
  readonly name: string
  readonly slice: ReadonlyArray<[number, number]>
  /** Absent on a distributed optimizer's owned part (the whole shard reports the values). */
  readonly value: DType.Storage | undefined
  /** Absent on a shard whose gradient only partly is synchronised (distributed optimizer). */
  readonly grad: DType.Storage | undefined
  readonly m: Float32Array | undefined
  readonly v: Float32Array | undefined
}

/**
 * What a rank reports: its shards before its first step (step -1) or after step `step`.
 * @category models
 */
export interface Snapshot {
  readonly step: number
  readonly report: RankTrainer.StepReport | undefined
  readonly holdings: ReadonlyArray<Holding>
}

/**
 * The run as data.
 * @category models
 */
export interface LockstepArgs {
  readonly setup: Omit<RankTrainer.TrainSetup, "span">
  readonly steps: number
  /**
   * The driver's PLEAT_FAULT_SKIP_SYNC (a test-only planted bug, RankParams), carried to ranks
   * whose environment is not the driver's (a pooled worker thread keeps the one it started with).
   */
  readonly skipSync: string | undefined
}

/**
 * Copies of every shard a trainer holds.
 * @category constructors
 */
export const holdingsOf = (trainer: ReturnType<typeof RankTrainer.make>): Array<Holding> => {
  const { distributed } = trainer
  const whole = [...trainer.params].map(([name, held]): Holding => {
    const moments = trainer.moments.get(name)
    // A bucketed shard's gradient is synchronised only on the part the rank owns.
    const synchronised = distributed === undefined || moments !== undefined
    return { name, slice: held.slice, value: held.value.data.slice(), grad: synchronised ? held.grad.slice() : undefined, m: moments?.m.slice(), v: moments?.v.slice() }
  })
  if (distributed === undefined) return whole
  const parts = DistributedSlices.ownedSlices(distributed).map(
    (o): Holding => ({ name: o.name, slice: o.slice, value: undefined, grad: o.grad.slice(), m: o.m.slice(), v: o.v.slice() }),
  )
  return [...whole, ...parts]
}

/**
 * One rank's parallel run.
 * @category constructors
 */
export const program = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const a = args as LockstepArgs
    if (a.skipSync === undefined) delete process.env.PLEAT_FAULT_SKIP_SYNC
    else process.env.PLEAT_FAULT_SKIP_SYNC = a.skipSync
    const events = yield* RankEvents
    const definition = yield* Effect.promise(() => ModelDefinition.load(a.setup.definition ?? BuiltinModels.defaultRef))
    const trainer = RankTrainer.make(a.setup, rank, [], definition)
    events.report({ step: -1, report: undefined, holdings: holdingsOf(trainer) } satisfies Snapshot)
    for (let k = 0; k < a.steps; k++) {
      const report = yield* trainer.step(k)
      yield* trainer.settle
      trainer.gradientsToHost()
      events.report({ step: k, report, holdings: holdingsOf(trainer) } satisfies Snapshot)
    }
  })

/**
 * The program as data.
 * @category constructors
 */
export const of = (args: LockstepArgs): RankProgram.Ref<LockstepArgs> => RankProgram.make(import.meta.url, "program", args)
