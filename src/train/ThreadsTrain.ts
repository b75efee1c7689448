/**
 * ThreadsTrain: training on the threads backend, every rank in its own worker thread.
 *
 * Workers cannot receive closures, so each rank runs this module's `rankProgram`: it builds its
 * RankTrainer from the (structured-cloned) setup, resumes from a checkpoint if asked, runs every
 * step and returns its step reports; the driver (Train.runThreads) turns them into the same
 * step summaries as the local backend. Checkpoints: the driver opens the temporary directory,
 * every rank writes its shards, the driver commits the manifest.
 */
import * as Effect from "effect/Effect"
import * as Checkpoint from "./Checkpoint.js"
import * as RankTrainer from "./RankTrainer.js"

/**
 * What each rank gets.
 * @category models
 */
export interface ThreadsArgs {
  readonly setup: Omit<RankTrainer.TrainSetup, "span">
  readonly first: number
  readonly steps: number
  readonly resume: string | undefined
  readonly save: string | undefined
}

/**
 * One rank's whole training run.
 * @category constructors
 */
export const rankProgram = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const a = args as ThreadsArgs
    const trainer = RankTrainer.make(a.setup, rank)
    if (a.resume !== undefined) Checkpoint.loadInto(a.resume, trainer.params, trainer.moments)
    const reports: Array<RankTrainer.StepReport> = []
    for (let k = a.first; k < a.steps; k++) reports.push(yield* trainer.step(k))
    if (a.save !== undefined) Checkpoint.writeRank(a.save, rank, trainer.params, trainer.moments)
    return reports
  })
