/**
 * Train: a supervised training job on any backend. Every rank runs the same rank program
 * (TrainProgram, the run as data) and reports each step as it completes; the driver gathers
 * the step's reports from all ranks into one summary, published at once (onStep), and writes
 * checkpoints the same way on every backend: it opens the checkpoint's temporary directory,
 * the ranks write their shards, and once every rank has finished it commits the manifest.
 * One failing rank ends the job naming it; interrupting the job stops every rank.
 */
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import type { Logger } from "pino"
import * as Result from "effect/Result"
import * as ConfigError from "../errors/ConfigError.js"
import * as Folding from "../mapping/Folding.js"
import * as Check from "../pipeline/Check.js"
import * as Schedule from "../pipeline/Schedule.js"
import * as Backend from "../runtime/Backend.js"
import * as ChooseBackend from "../runtime/ChooseBackend.js"
import type { RankFailed } from "../runtime/JobError.js"
import type * as Trace from "../runtime/Trace.js"
import * as Checkpoint from "./Checkpoint.js"
import * as ModelConfig from "./ModelConfig.js"
import type * as RankTrainer from "./RankTrainer.js"
import * as TrainProgram from "./TrainProgram.js"

/**
 * One step of the whole job.
 * @category models
 */
export interface StepSummary {
  readonly step: number
  readonly loss: number
  readonly gradNorm: number
  readonly lr: number
  readonly tokens: number
  /** Wall time of the step (the slowest rank's). */
  readonly seconds: number
  /** Per MoE layer: max over experts of rows / mean rows (1 is perfect balance). */
  readonly imbalance: ReadonlyArray<{ readonly layer: number; readonly value: number }>
  /** Per rank: forward, backward and waiting milliseconds. */
  readonly ranks: ReadonlyArray<Pick<RankTrainer.StepReport, "forwardMs" | "backwardMs" | "waitMs">>
}

/**
 * Options of a training run.
 * @category models
 */
export interface RunOptions {
  readonly steps: number
  /** Where the ranks run (default "local"; see ChooseBackend). */
  readonly backend?: ChooseBackend.Name
  readonly timeoutMs?: number
  /** The job's logger; each rank logs through a child of it, on every backend. */
  readonly log?: Logger
  /** Called as each step completes on every rank. */
  readonly onStep?: (summary: StepSummary) => void
  /** Records every rank's spans (forward, backward, collectives, idle). */
  readonly tracer?: Trace.Tracer
  /** Writes a checkpoint here after the last step (atomically). */
  readonly save?: string
  /** Starts from this checkpoint (saved under any mapping): its step, weights and moments. */
  readonly resume?: string
}

/** The summary of one step from every rank's report. */
const summarize = (step: number, reports: ReadonlyArray<RankTrainer.StepReport>, tokens: number, seconds: number): StepSummary => {
  const byLayer = new Map<number, Array<number>>()
  for (const r of reports) for (const e of r.expertRows) byLayer.set(e.layer, [...(byLayer.get(e.layer) ?? []), ...e.rows])
  const imbalance = [...byLayer]
    .sort((a, b) => a[0] - b[0])
    .map(([layer, rows]) => {
      const mean = rows.reduce((a, b) => a + b, 0) / Math.max(1, rows.length)
      return { layer, value: mean === 0 ? 1 : Math.max(...rows) / mean }
    })
  return {
    step,
    loss: reports.reduce((a, r) => a + r.loss, 0),
    gradNorm: reports[0]?.gradNorm ?? 0,
    lr: reports[0]?.lr ?? 0,
    tokens,
    seconds,
    imbalance,
    ranks: reports.map((r) => ({ forwardMs: r.forwardMs, backwardMs: r.backwardMs, waitMs: r.waitMs })),
  }
}

/**
 * Gathers the ranks' step events into summaries, in step order (a step is summarized once
 * every rank has reported it).
 */
const collector = (world: number, tokens: number, publish: (summary: StepSummary) => void) => {
  const pending = new Map<number, Array<TrainProgram.StepEvent>>()
  let next: number | undefined
  return (rank: number, value: unknown): void => {
    const event = value as TrainProgram.StepEvent
    next ??= event.step
    const got = pending.get(event.step) ?? []
    got[rank] = event
    pending.set(event.step, got)
    for (let ready = pending.get(next); ready !== undefined && ready.filter((e) => e !== undefined).length === world; ready = pending.get(next)) {
      pending.delete(next)
      publish(
        summarize(
          next,
          ready.map((e) => e.report),
          tokens,
          Math.max(...ready.map((e) => e.seconds)),
        ),
      )
      next++
    }
  }
}

/** The step a checkpoint resumes at; a missing, unreadable or other model's checkpoint is the user's error. */
const resumedStep = (dir: string, model: ModelConfig.ModelConfig): Effect.Effect<number, ConfigError.ConfigError> =>
  Effect.suspend(() => {
    try {
      return Effect.succeed(Checkpoint.manifestFor(dir, model).step)
    } catch (error) {
      return ConfigError.isConfigError(error) ? Effect.fail(error) : Effect.die(error)
    }
  })

/**
 * Trains for `steps` steps on the backend in context; returns every step's summary. The
 * model and the pipeline schedule are checked before any work (a mismatch throws here); a
 * checkpoint to resume from is checked before any rank starts (a ConfigError on `resume`).
 * @category constructors
 */
export const train = (setup: RankTrainer.TrainSetup, options: RunOptions): Effect.Effect<Array<StepSummary>, RankFailed | ConfigError.ConfigError, Backend.Backend> => {
  ModelConfig.check(setup.model, setup.batch, setup.parallel)
  // Before any step: prove the schedule every rank will run meets every send with its receive.
  const s = setup.parallel.sizes
  const schedule = Schedule.make({ pp: s.pp, vpp: setup.parallel.vpp, microBatches: ModelConfig.microBatches(setup.batch, s.dp) })
  const checked = Check.check(schedule)
  if (Result.isFailure(checked)) throw new Error(`pipeline schedule: ${Check.format(checked.failure)}`)
  const fold = Folding.make(setup.parallel)
  const world = setup.parallel.world
  const tokens = setup.batch.globalBatch * setup.model.seq
  // The span callback is a function, which cannot cross into workers: spans go through RankEvents.
  const { span: _span, ...plain } = setup
  return Effect.gen(function* () {
    const first = options.resume === undefined ? 0 : yield* resumedStep(options.resume, setup.model)
    const out: Array<StepSummary> = []
    const summaries = yield* Queue.unbounded<StepSummary>()
    const publish = (summary: StepSummary) =>
      Effect.sync(() => {
        out.push(summary)
        options.onStep?.(summary)
      })
    const job = Backend.run({
      world,
      program: TrainProgram.of({ setup: plain, first, steps: options.steps, resume: options.resume, save: options.save }),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      listener: {
        onReport: collector(world, tokens, (summary) => void Queue.offerUnsafe(summaries, summary)),
        ...(options.tracer === undefined ? {} : { tracer: options.tracer }),
        ...(options.log === undefined ? {} : { log: options.log }),
        place: (rank) => Folding.place(fold, rank),
      },
    })
    // Summaries are published on this fiber as they come; the job ends the publishing.
    const publishing = Effect.forever(Effect.flatMap(Queue.take(summaries), publish))
    if (options.save !== undefined) Checkpoint.begin(options.save)
    // Once every rank has written its shards, committing the checkpoint is not interrupted:
    // an interrupted job leaves either the new checkpoint or the previous one.
    return yield* Effect.uninterruptibleMask((restore) =>
      Effect.gen(function* () {
        yield* restore(Effect.raceFirst(job, publishing))
        for (const summary of yield* Queue.clear(summaries)) yield* publish(summary)
        if (options.save !== undefined) Checkpoint.commit(options.save, manifestOf(setup, Math.max(first, options.steps)))
        return out
      }),
    )
  })
}

/**
 * Trains for `steps` steps on `options.backend`; returns every step's summary.
 * @category constructors
 */
export const run = (setup: RankTrainer.TrainSetup, options: RunOptions): Effect.Effect<Array<StepSummary>, RankFailed | ConfigError.ConfigError | ChooseBackend.UnknownBackend> =>
  Effect.provide(train(setup, options), ChooseBackend.layer(options.backend ?? "local"))

/** The manifest of a checkpoint of this setup at `step`. */
const manifestOf = (setup: RankTrainer.TrainSetup, step: number): Checkpoint.Manifest => {
  const s = setup.parallel.sizes
  return {
    step,
    seed: setup.seed,
    dtype: setup.dtype,
    world: setup.parallel.world,
    mapping: { ...s, vpp: setup.parallel.vpp ?? null, order: setup.parallel.order.written.join("-") },
    model: setup.model,
    batch: setup.batch,
    ranks: setup.parallel.world,
  }
}
