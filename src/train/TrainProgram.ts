/**
 * TrainProgram: the rank program of a training job, the same on every backend.
 *
 * Its args are the run as data (the setup without its span callback, the steps to run, where
 * to resume from and where to save), so they cross into workers. Each rank builds its
 * RankTrainer, loads its slice of the checkpoint when resuming, runs its steps and reports
 * each one to the driver as it completes (a StepEvent), recording spans when the job is
 * traced. When saving, it writes its shards into the checkpoint's temporary directory at the
 * end; the driver opened that directory and commits the manifest (Train).
 */
import * as Effect from "effect/Effect"
import { RankEvents } from "../runtime/RankEvents.js"
import * as RankProgram from "../runtime/RankProgram.js"
import * as Checkpoint from "./Checkpoint.js"
import * as RankTrainer from "./RankTrainer.js"

/**
 * The run as data.
 * @category models
 */
export interface TrainArgs {
  readonly setup: Omit<RankTrainer.TrainSetup, "span">
  /** The first step to run (the resumed checkpoint's step, or 0). */
  readonly first: number
  /** Runs steps first..steps-1. */
  readonly steps: number
  readonly resume: string | undefined
  readonly save: string | undefined
}

/**
 * What a rank reports after each step.
 * @category models
 */
export interface StepEvent {
  readonly step: number
  /** The rank's wall time of the step. */
  readonly seconds: number
  readonly report: RankTrainer.StepReport
}

/**
 * One rank's training run.
 * @category constructors
 */
export const program = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const a = args as TrainArgs
    const events = yield* RankEvents
    const trainer = RankTrainer.make(events.tracing ? { ...a.setup, span: events.span } : a.setup, rank)
    if (a.resume !== undefined) Checkpoint.loadInto(a.resume, trainer.params, trainer.moments)
    for (let k = a.first; k < a.steps; k++) {
      const started = performance.now()
      const report = yield* trainer.step(k)
      events.report({ step: k, seconds: (performance.now() - started) / 1000, report } satisfies StepEvent)
    }
    if (a.save !== undefined) Checkpoint.writeRank(a.save, rank, trainer.params, trainer.moments)
  })

/**
 * The training program as data.
 * @category constructors
 */
export const of = (args: TrainArgs): RankProgram.Ref<TrainArgs> => RankProgram.make(import.meta.url, "program", args)
