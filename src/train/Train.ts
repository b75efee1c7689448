/**
 * Train: a supervised training job on any backend. Every rank runs the same rank program
 * (TrainProgram, the run as data) and reports each step as it completes; the driver gathers
 * the step's reports from all ranks into one summary, published at once (onStep), and writes
 * checkpoints the same way on every backend: before the job it plans a step directory for
 * each checkpoint (every `saveEvery` steps and after the last), the ranks write their shards
 * into it as they reach that step, and once every rank has, the driver publishes it (manifest,
 * then the `latest` pointer) and prunes to the newest `keep` (CheckpointDirectory). One
 * failing rank ends the job naming it; interrupting the job stops every rank, keeps the last
 * published checkpoint and removes the step directories it had not published. A failed rank's
 * RankFailed names the step it was running (counted from 1), from the steps it had reported.
 * A save that fails (the disk full, the directory removed or made read-only mid-run) goes to
 * its fallback directory, or is given up keeping the last published checkpoint; the run trains
 * on and reports it (onSaveFailed, SaveFallback), so a failed save never throws the run away.
 */
import path from "node:path"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Queue from "effect/Queue"
import type { Logger } from "pino"
import * as Result from "effect/Result"
import type * as ConfigError from "../errors/ConfigError.js"
import * as Families from "../mapping/Families.js"
import * as Folding from "../mapping/Folding.js"
import type * as MoeStats from "../model/MoeStats.js"
import * as Check from "../pipeline/Check.js"
import * as Schedule from "../pipeline/Schedule.js"
import * as Backend from "../runtime/Backend.js"
import * as ChooseBackend from "../runtime/ChooseBackend.js"
import { RankFailed } from "../runtime/JobError.js"
import type * as Trace from "../runtime/Trace.js"
import * as StableWeights from "../tensor/StableWeights.js"
import * as Checkpoint from "./Checkpoint.js"
import * as CheckpointCheck from "./CheckpointCheck.js"
import * as CheckpointVerified from "./CheckpointVerified.js"
import * as CheckpointDirectory from "./CheckpointDirectory.js"
import * as HeldOut from "./HeldOut.js"
import * as MemoryFloor from "./MemoryFloor.js"
import * as DistributedOptimizer from "./DistributedOptimizer.js"
import type * as ExpertOverload from "./ExpertOverload.js"
import * as Fault from "./Fault.js"
import * as ModelConfig from "./ModelConfig.js"
import type * as RankTrainer from "./RankTrainer.js"
import * as SaveFallback from "./SaveFallback.js"
import * as RoutingRecording from "./RoutingRecording.js"
import * as SaveLock from "./SaveLock.js"
import * as StepCollector from "./StepCollector.js"
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
  /** Per MoE layer: the busiest EP rank's rows over its EP group's mean, over the groups and micro-batches (ExpertOverload). */
  readonly overload: ReadonlyArray<ExpertOverload.LayerOverload>
  /** Per MoE layer: its aux and z losses (mean over the micro-batches, no coefficients) and dropped pairs. */
  readonly moe: ReadonlyArray<MoeStats.LayerStep>
  /** Per rank: forward, backward and waiting milliseconds, the bytes of its optimizer state and its memory, and on a device the bytes copied between host and device, the copies the JS thread blocked on, and the device's memory. */
  readonly ranks: ReadonlyArray<
    Pick<RankTrainer.StepReport, "forwardMs" | "backwardMs" | "waitMs" | "optimizerStateBytes" | "memory" | "hostDeviceBytes" | "hostWaits" | "deviceMemory">
  >
}

/**
 * Options of a training run.
 * @category models
 */
export interface RunOptions {
  readonly steps: number
  /** Where the ranks run (default "local"; see ChooseBackend). */
  readonly backend?: ChooseBackend.Name
  /** threads backends: the most worker threads (default one per rank up to the cores). */
  readonly workers?: number
  readonly timeoutMs?: number
  /** The job's logger; each rank logs through a child of it, on every backend. */
  readonly log?: Logger
  /** Called once the run's checks passed (the checkpoint to resume, the save directory), as its ranks start. */
  readonly onStart?: () => void
  /** Called as each step completes on every rank. */
  readonly onStep?: (summary: StepSummary) => void
  /**
   * Whether the run returns every step's summary (default true). Each costs about 100 + 100 x
   * world bytes for the whole run, 1.5 MB per 1,000 steps of the default 8-rank job: a long
   * run that reads them through onStep passes false and gets an empty array, holding none.
   */
  readonly retainSummaries?: boolean
  /** Records every rank's spans (forward, backward, collectives, idle). */
  readonly tracer?: Trace.Tracer
  /** Writes checkpoints into this directory (after the last step, and every `saveEvery`). */
  readonly save?: string
  /** Also writes a checkpoint every this many steps (default: only after the last). */
  readonly saveEvery?: number
  /** How many complete checkpoints the save directory keeps, the newest (default 2). */
  readonly keep?: number
  /** Called once each checkpoint is published (after its step's onStep), with its step and step directory. */
  readonly onSave?: (step: number, stepDir: string) => void
  /**
   * Called when a save could not be published where planned (before onSave of its fallback, if
   * it went there). Without it, the failure is logged at error level on `log`.
   */
  readonly onSaveFailed?: (failure: SaveFallback.SaveFailure) => void
  /** Starts from this checkpoint (saved under any mapping): its step, weights and moments. */
  readonly resume?: string
  /** With `setup.evaluation`: evaluates every this many steps (default: only after the last). */
  readonly evalEvery?: number
  /** Called with each evaluation (after its step's onStep). */
  readonly onEval?: (summary: HeldOut.EvalSummary) => void
}

/** The steps (steps done) to save (or evaluate) at: every `every` after `first`, and the last. */
const periodicSteps = (first: number, steps: number, every: number | undefined): Array<number> => {
  if (steps <= first) return []
  const periodic = every === undefined ? [] : Array.from({ length: Math.ceil(steps / every) }, (_, i) => (i + 1) * every).filter((s) => s > first && s < steps)
  return [...periodic, steps]
}

/** What the driver's fiber hands on, in order: a step's summary, a published checkpoint, or a failed save. */
type Published =
  | { readonly _tag: "Step"; readonly summary: StepSummary }
  | { readonly _tag: "Saved"; readonly step: number; readonly dir: string }
  | { readonly _tag: "SaveFailed"; readonly failure: SaveFallback.SaveFailure }
  | { readonly _tag: "Evaluated"; readonly summary: HeldOut.EvalSummary }
  | { readonly _tag: "RecordFailed"; readonly error: unknown }

/** The newest intact checkpoint in `dir`, if any (never throws: `dir` may be gone). */
const intactIn = (dir: string | undefined): { readonly step: number; readonly dir: string } | undefined => {
  if (dir === undefined) return undefined
  try {
    const stepDir = CheckpointDirectory.locate(dir)
    return stepDir === undefined ? undefined : { step: Checkpoint.manifest(stepDir).step, dir: stepDir }
  } catch {
    return undefined
  }
}

/**
 * Publishes each planned checkpoint once every rank has written its shards (SaveFallback: where
 * planned, else in the fallback, else nowhere), then prunes its directory; `hand` passes what
 * happened to the driver's fiber. Nothing here throws: it runs inside a rank's report.
 */
const publisher = (setup: RankTrainer.TrainSetup, options: RunOptions, planned: Array<SaveFallback.Plan>, hand: (item: Published) => void) => {
  const world = setup.parallel.world
  const arrived = new Map<number, Array<TrainProgram.SavedEvent>>()
  let last: { readonly step: number; readonly dir: string } | undefined
  const prune = (root: string, spare: ReadonlyArray<string>): void => {
    try {
      CheckpointDirectory.prune(root, options.keep ?? 2, spare)
    } catch (error) {
      // The checkpoint is published; only older ones stay past --keep.
      options.log?.warn({ dir: root, cause: SaveFallback.describe(error) }, "could not prune old checkpoints")
    }
  }
  return (event: TrainProgram.SavedEvent): void => {
    const got = [...(arrived.get(event.saved) ?? []), event]
    arrived.set(event.saved, got)
    const at = planned.findIndex((p) => p.step === event.saved)
    const plan = planned[at]
    if (got.length < world || plan === undefined || options.save === undefined) return
    planned.splice(at, 1)
    arrived.delete(event.saved)
    const checksums: Record<string, string> = Object.assign({}, ...got.map((e) => e.checksums))
    // Ranks of one pipeline stage hold the same biases and betas: any of them gives its layers'.
    const byLayer = (key: "expertBias" | "quantileBeta") => {
      const held = got.filter((e) => e[key] !== undefined)
      return held.length === 0 ? {} : { [key]: Object.assign({}, ...held.map((e) => e[key])) }
    }
    // once a job: a checkpoint's manifest
    const manifest = { ...manifestOf(setup, plan.step), checksums, ...byLayer("expertBias"), ...byLayer("quantileBeta") }
    const outcome = SaveFallback.publish(plan, got, JSON.stringify(manifest, null, 2))
    const failure = { step: plan.step, planned: plan.dir, fallback: plan.fallback }
    if (outcome._tag === "Lost") {
      const latest = last ?? intactIn(options.save) ?? intactIn(options.resume)
      // once a job: a failed save's report
      return hand({ _tag: "SaveFailed", failure: { ...failure, reason: outcome.reason, fallbackReason: outcome.fallbackReason, latest } })
    }
    const home = outcome._tag === "Planned" ? plan.dir : plan.fallback
    last = { step: plan.step, dir: home }
    if (outcome._tag === "Planned") {
      prune(
        options.save,
        planned.map((p) => p.dir),
      )
    } else {
      prune(
        path.dirname(plan.fallback),
        planned.map((p) => p.fallback),
      )
      // once a job: a failed save's report
      hand({ _tag: "SaveFailed", failure: { ...failure, reason: outcome.reason, fallbackReason: undefined, latest: last } })
    }
    hand({ _tag: "Saved", step: plan.step, dir: home })
  }
}

/**
 * Trains for `steps` steps on the backend in context; returns every step's summary. The
 * model and the pipeline schedule are checked before any work (a mismatch throws here); a
 * checkpoint to resume from, and the directory to save into, are checked before any rank
 * starts (a ConfigError on `resume` or `save`).
 * @category constructors
 */
export const train = (setup: RankTrainer.TrainSetup, options: RunOptions): Effect.Effect<Array<StepSummary>, RankFailed | ConfigError.ConfigError, Backend.Backend> => {
  ModelConfig.check(setup.model, setup.batch, setup.parallel)
  const instances = DistributedOptimizer.instancesProblem(setup)
  if (instances !== undefined) throw instances
  // Before any step: prove the schedule every rank will run meets every send with its receive.
  const s = setup.parallel.sizes
  const schedule = Schedule.make({ pp: s.pp, vpp: setup.parallel.vpp, microBatches: ModelConfig.microBatches(setup.batch, s.dp) })
  const checked = Check.check(schedule)
  if (Result.isFailure(checked)) throw new Error(`pipeline schedule: ${Check.format(checked.failure)}`)
  return Effect.gen(function* () {
    const first = options.resume === undefined ? 0 : yield* CheckpointCheck.resumedStep(options.resume, setup)
    yield* RoutingRecording.prepare(setup, first, options.steps)
    // Never into what pleat did not write, nor where another run is saving (SaveLock).
    const lock = options.save === undefined ? undefined : yield* SaveLock.take(options.save)
    return yield* Effect.ensuring(
      saving(setup, options, first),
      Effect.sync(() => lock?.release()),
    )
  })
}

/** Train's job from step `first`, with the save directory (if any) checked and locked. */
const saving = (setup: RankTrainer.TrainSetup, options: RunOptions, first: number): Effect.Effect<Array<StepSummary>, RankFailed | ConfigError.ConfigError, Backend.Backend> => {
  const fold = Folding.make(setup.parallel)
  const world = setup.parallel.world
  const tokens = setup.batch.globalBatch * setup.model.seq
  // The span callback is a function, which cannot cross into workers: spans go through RankEvents.
  const { span: _span, ...plain } = setup
  return Effect.gen(function* () {
    const steps = periodicSteps(first, options.steps, options.saveEvery)
    const fallbackRoot = options.save === undefined ? "" : SaveFallback.directoryFor(options.save)
    const planned: Array<SaveFallback.Plan> =
      options.save === undefined || steps.length === 0
        ? []
        : CheckpointDirectory.prepare(options.save, steps).map((dir, i) => ({ step: steps[i] as number, dir, fallback: path.join(fallbackRoot, path.basename(dir)) }))
    const saves = [...planned]
    const published = yield* Queue.unbounded<Published>()
    const saved = publisher(setup, options, planned, (item) => void Queue.offerUnsafe(published, item))
    const out: Array<StepSummary> = []
    const publish = (item: Published) =>
      Effect.sync(() => {
        // A failed recording ends the run (`streaming`, or after the job: `recordFailed`).
        if (item._tag === "RecordFailed") return
        if (item._tag === "Saved") return options.onSave?.(item.step, item.dir)
        if (item._tag === "Evaluated") return options.onEval?.(item.summary)
        if (item._tag === "SaveFailed") {
          if (options.onSaveFailed !== undefined) return options.onSaveFailed(item.failure)
          return options.log?.error({ step: item.failure.step }, SaveFallback.explain(item.failure))
        }
        if (options.retainSummaries !== false) out.push(item.summary)
        options.onStep?.(item.summary)
      })
    // Steps each rank has reported done, so a failure names the step the rank was running.
    const done = new Array<number>(world).fill(first)
    // Routing recording (--routing-record): each step's file once every rank has routed it; a failure ends the run.
    const record = RoutingRecording.recorder(setup)
    let recordFailed: unknown
    const collect = StepCollector.collector(
      world,
      tokens,
      Families.family(setup.parallel, "ep"),
      (summary, reports) => {
        const error = record?.(summary.step, reports)
        if (error !== undefined) recordFailed ??= error
        Queue.offerUnsafe(published, error === undefined ? { _tag: "Step", summary } : { _tag: "RecordFailed", error })
      },
      saved,
    )
    const evaluated = HeldOut.collector(world, (summary) => void Queue.offerUnsafe(published, { _tag: "Evaluated", summary }))
    // Nothing left to train: the resumed checkpoint itself is evaluated (at its step).
    const evaluations = setup.evaluation === undefined ? [] : first >= options.steps ? [first] : periodicSteps(first, options.steps, options.evalEvery)
    options.onStart?.()
    const running = Backend.run({
      world,
      program: TrainProgram.of({
        setup: plain,
        first,
        steps: options.steps,
        resume: options.resume,
        verified: options.resume === undefined ? [] : CheckpointVerified.keys(),
        saves,
        faults: Fault.fromEnvironment(),
        evaluations,
      }),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      listener: {
        onReport: (rank, value) => {
          if (HeldOut.isEvalEvent(value)) return evaluated(value)
          if (typeof value === "object" && value !== null && !("saved" in value)) done[rank] = (value as TrainProgram.StepEvent).step + 1
          collect(rank, value)
        },
        ...(options.tracer === undefined ? {} : { tracer: options.tracer }),
        ...(options.log === undefined ? {} : { log: options.log }),
        place: (rank) => Folding.place(fold, rank),
      },
    })
    const job = Effect.mapError(running, (failed) =>
      failed.step === undefined && (done[failed.rank] ?? first) < options.steps
        ? new RankFailed({ rank: failed.rank, cause: failed.cause, step: (done[failed.rank] ?? first) + 1 })
        : failed,
    )
    // Summaries and checkpoints are handed on on this fiber as they come; the job ends the
    // streaming, and what is left is handed on however the job ended (an interrupted job's
    // caller learns which checkpoint it published last).
    const streaming = Effect.forever(Effect.flatMap(Queue.take(published), (item) => (item._tag === "RecordFailed" ? RoutingRecording.failure(item.error) : publish(item))))
    const rest = Effect.flatMap(Queue.clear(published), (items) => Effect.forEach(items, publish, { discard: true }))
    // The weights' packed panels go with the run (StableWeights; another run's only rebuild theirs).
    const finished = Effect.ensuring(
      Effect.uninterruptibleMask((restore) => Effect.as(Effect.ensuring(restore(Effect.raceFirst(job, streaming)), rest), out)),
      Effect.sync(StableWeights.clear),
    ).pipe(Effect.flatMap((summaries) => (recordFailed === undefined ? Effect.succeed(summaries) : RoutingRecording.failure(recordFailed))))
    // A stopped job leaves the checkpoints it published and nothing of those it had not (as
    // far as their directories can still be reached).
    const abandon = () => {
      try {
        CheckpointDirectory.abandon(planned.flatMap((p) => [p.dir, p.fallback]))
      } catch {
        // An unreachable directory keeps its partial step directory, which no load reads.
      }
    }
    return yield* Effect.onExit(finished, (exit) => Effect.sync(() => (Exit.isSuccess(exit) ? undefined : abandon())))
  })
}

/**
 * Trains for `steps` steps on `options.backend`; returns every step's summary.
 * @category constructors
 */
export const run = (setup: RankTrainer.TrainSetup, options: RunOptions): Effect.Effect<Array<StepSummary>, RankFailed | ConfigError.ConfigError | ChooseBackend.UnknownBackend> =>
  Effect.suspend(() => {
    // What no rank can do without, against one buffer and this machine (MemoryFloor).
    const floor = MemoryFloor.problem(setup, options.backend ?? "local")
    if (floor !== undefined) return Effect.fail(floor)
    return Effect.provide(train(setup, options), ChooseBackend.layer(options.backend ?? "local", options.workers === undefined ? {} : { workers: options.workers }))
  })

/** The manifest of a checkpoint of this setup at `step`, but for its files' checksums. */
const manifestOf = (setup: RankTrainer.TrainSetup, step: number): Omit<Checkpoint.Manifest, "checksums"> => {
  const s = setup.parallel.sizes
  return {
    step,
    seed: setup.seed,
    dtype: setup.dtype,
    world: setup.parallel.world,
    // once a job: the run record's mapping
    mapping: { ...s, vpp: setup.parallel.vpp ?? null, order: setup.parallel.order.written.join("-") },
    model: Checkpoint.modelRecord(setup.model, setup.auxLossCoeff),
    batch: setup.batch,
    ranks: setup.parallel.world,
  }
}
