/**
 * TrainProgram: the rank program of a training job, the same on every backend.
 *
 * Its args are the run as data (the setup without its span callback, the steps to run, where
 * to resume from and where to save), so they cross into workers. Each rank builds its
 * RankTrainer, loads its slice of the checkpoint when resuming (its part of it, with the
 * distributed optimizer), runs its steps and reports
 * each one to the driver as it completes (a StepEvent), recording spans when the job is
 * traced. At each step the driver planned a checkpoint for (periodic ones and the last), it
 * writes its shards into the step directory the driver chose and reports them (a SavedEvent,
 * with their checksums); once every rank has, the driver publishes the manifest (Train). A
 * rank that cannot write there writes into the save's fallback, or reports that it wrote
 * nowhere, and trains on (SaveFallback): a failed save never ends the run.
 */
import * as Effect from "effect/Effect"
import { RankEvents } from "../runtime/RankEvents.js"
import * as RankProgram from "../runtime/RankProgram.js"
import * as MoeRunState from "../moe/MoeRunState.js"
import * as BuiltinModels from "./BuiltinModels.js"
import * as Checkpoint from "./Checkpoint.js"
import * as DistributedSlices from "./DistributedSlices.js"
import type * as HeldOut from "./HeldOut.js"
import type * as Fault from "./Fault.js"
import * as ModelDefinition from "./ModelDefinition.js"
import * as CheckpointVerified from "./CheckpointVerified.js"
import * as Optimizer from "./Optimizer.js"
import * as ProcessGpu from "../runtime/ProcessGpu.js"
import * as RankTrainer from "./RankTrainer.js"
import * as RankParams from "./RankParams.js"
import * as SaveFallback from "./SaveFallback.js"

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
  /** The checkpoint files the driver checked (CheckpointVerified's keys): a rank in another isolate or process does not hash them again. */
  readonly verified?: ReadonlyArray<string>
  /** The checkpoints to write: after `step` steps, into the step directory `dir` (else `fallback`). */
  readonly saves: ReadonlyArray<SaveFallback.Plan>
  /** Test-only injected faults (Fault.ts); empty in a real run. */
  readonly faults: ReadonlyArray<Fault.Fault>
  /** The steps (steps done) after which to evaluate on the held-out data (with `setup.evaluation`); `first` alone: the loaded checkpoint, nothing to train. */
  readonly evaluations?: ReadonlyArray<number> | undefined
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
 * What a rank reports once its shards of a checkpoint are written and flushed (or could not
 * be): where they went, with their checksums.
 * @category models
 */
export interface SavedEvent extends SaveFallback.RankWrite {
  /** The checkpoint's step (steps done). */
  readonly saved: number
  /** With --expert-bias: the biases of the MoE layers this rank runs, by layer (MoeRunState). */
  readonly expertBias?: Record<string, ReadonlyArray<number>>
  /** With --quantile-balancing: the betas of the MoE layers this rank runs, by layer (MoeRunState). */
  readonly quantileBeta?: Record<string, ReadonlyArray<number>>
}

/**
 * One rank's training run.
 * @category constructors
 */
export const program = (rank: number, args: unknown) =>
  Effect.gen(function* () {
    const a = args as TrainArgs
    const events = yield* RankEvents
    const definition = yield* Effect.promise(() => ModelDefinition.load(a.setup.definition ?? BuiltinModels.defaultRef))
    // On GPUs: this process's GPU, by the launcher's local rank, before any device memory.
    if (a.setup.device === "cuda") ProcessGpu.select()
    // A resume's values come from the checkpoint: none drawn from the seed.
    // once a job: a rank's setup
    const trainer = RankTrainer.make(events.tracing ? { ...a.setup, span: events.span } : a.setup, rank, a.faults, definition, a.resume === undefined ? "seed" : "given")
    if (a.resume !== undefined) {
      CheckpointVerified.trust(a.verified ?? [])
      const { distributed } = trainer
      // The distributed optimizer loads its shards' whole moments, then keeps its parts of them.
      const moments = distributed === undefined ? trainer.moments : Optimizer.moments(trainer.params)
      Checkpoint.loadInto(a.resume, trainer.params, moments)
      if (distributed !== undefined) DistributedSlices.adopt(distributed, moments)
      const manifest = Checkpoint.manifest(a.resume)
      MoeRunState.restoreBiases(trainer.moeState, manifest.expertBias ?? {})
      MoeRunState.restoreQuantileBetas(trainer.moeState, manifest.quantileBeta ?? {})
    }
    // A checkpoint evaluated as it was loaded (a resume with nothing left to train).
    if (trainer.evaluate !== undefined && a.evaluations?.includes(a.first) === true) events.report({ evaluated: a.first, ...(yield* trainer.evaluate) } satisfies HeldOut.EvalEvent)
    for (let k = a.first; k < a.steps; k++) {
      const started = performance.now()
      const report = yield* trainer.step(k)
      events.report({ step: k, seconds: (performance.now() - started) / 1000, report } satisfies StepEvent)
      // Lets the driver hand the step on now: on the local backend the ranks resume one another
      // without passing through the scheduler's queue, and the driver's fiber (progress, logs,
      // onStep) fell hundreds of steps behind, holding every summary in between.
      yield* Effect.yieldNow
      if (trainer.evaluate !== undefined && a.evaluations?.includes(k + 1) === true) events.report({ evaluated: k + 1, ...(yield* trainer.evaluate) } satisfies HeldOut.EvalEvent)
      const save = a.saves.find((s) => s.step === k + 1)
      if (save === undefined) continue
      // The shards and moments as the step left them (a device optimizer's come to the host).
      yield* trainer.settle
      const { distributed } = trainer
      const written = SaveFallback.writeRank(save, (stepDir) =>
        distributed === undefined
          ? Checkpoint.writeRank(stepDir, rank, trainer.params, trainer.moments, RankParams.syncGroups(a.setup.parallel, rank))
          : Checkpoint.writeShards(stepDir, rank, DistributedSlices.savedSlices(distributed, trainer.params)),
      )
      const moe = a.setup.model.moe
      const biases = moe?.expertBias === true ? { expertBias: MoeRunState.savedBiases(trainer.moeState) } : {}
      const betas = moe?.quantileBalancing === true ? { quantileBeta: MoeRunState.savedQuantileBetas(trainer.moeState) } : {}
      events.report({ saved: save.step, ...written, ...biases, ...betas } satisfies SavedEvent)
    }
    // Nothing of the last step left in flight when the rank ends.
    yield* trainer.settle
  })

/**
 * The training program as data.
 * @category constructors
 */
export const of = (args: TrainArgs): RankProgram.Ref<TrainArgs> => RankProgram.make(import.meta.url, "program", args)
