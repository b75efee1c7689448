/**
 * Train: a supervised training job. Every rank is an actor holding its RankTrainer; the driver
 * asks all ranks for step k at once, gathers their reports and publishes one summary per step.
 * One failing rank ends the job naming it (ActorJob).
 */
import * as Effect from "effect/Effect"
import type { Logger } from "pino"
import * as Result from "effect/Result"
import * as Folding from "../mapping/Folding.js"
import * as Check from "../pipeline/Check.js"
import * as Schedule from "../pipeline/Schedule.js"
import * as Checkpoint from "./Checkpoint.js"
import * as ActorJob from "../runtime/ActorJob.js"
import * as ThreadsJob from "../runtime/ThreadsJob.js"
import type * as Job from "../runtime/Job.js"
import type * as Trace from "../runtime/Trace.js"
import * as ModelConfig from "./ModelConfig.js"
import * as RankTrainer from "./RankTrainer.js"

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
  readonly seconds: number
  /** Per MoE layer: max over experts of rows / mean rows (1 is perfect balance). */
  readonly imbalance: ReadonlyArray<{ readonly layer: number; readonly value: number }>
  /** Per rank: forward, backward and waiting milliseconds. */
  readonly ranks: ReadonlyArray<Pick<RankTrainer.StepReport, "forwardMs" | "backwardMs" | "waitMs">>
}

type Protocol = {
  Step: readonly [number, RankTrainer.StepReport]
  Save: readonly [string, void]
  Load: readonly [string, void]
}

/**
 * Options of a training run.
 * @category models
 */
export interface RunOptions {
  readonly steps: number
  readonly backend?: Job.JobOptions["backend"]
  readonly timeoutMs?: number
  readonly log?: Logger
  readonly onStep?: (summary: StepSummary) => void
  /** Records every rank's spans (forward, backward, collectives, idle). */
  readonly tracer?: Trace.Tracer
  /** Writes a checkpoint here after the last step (atomically). */
  readonly save?: string
  /** Starts from this checkpoint (saved under any mapping): its step, weights and moments. */
  readonly resume?: string
}

/** The summary of one step from every rank's report. */
export const summarize = (step: number, reports: ReadonlyArray<RankTrainer.StepReport>, tokens: number, seconds: number): StepSummary => {
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
 * Trains for `steps` steps; returns every step's summary.
 * @category constructors
 */
export const run = (setup: RankTrainer.TrainSetup, options: RunOptions) => {
  ModelConfig.check(setup.model, setup.batch, setup.parallel)
  // Before any step: prove the schedule every rank will run meets every send with its receive.
  const s = setup.parallel.sizes
  const schedule = Schedule.make({ pp: s.pp, vpp: setup.parallel.vpp, microBatches: ModelConfig.microBatches(setup.batch, s.dp) })
  const checked = Check.check(schedule)
  if (Result.isFailure(checked)) throw new Error(`pipeline schedule: ${Check.format(checked.failure)}`)
  const fold = Folding.make(setup.parallel)
  const tokens = setup.batch.globalBatch * setup.model.seq
  return ActorJob.run<Protocol, unknown, never, Array<StepSummary>, unknown>(
    {
      world: setup.parallel.world,
      ...(options.backend === undefined ? {} : { backend: options.backend }),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      ...(options.log === undefined ? {} : { log: options.log }),
      place: (rank) => Folding.place(fold, rank),
      ...(options.tracer === undefined ? {} : { wrap: (rank: number, comm: Parameters<Trace.Tracer["wrap"]>[1]) => (options.tracer as Trace.Tracer).wrap(rank, comm) }),
    },
    ({ rank }) => Effect.sync(() => {
      const tracer = options.tracer
      const trainer = RankTrainer.make(tracer === undefined ? setup : { ...setup, span: (span) => tracer.record(span) }, rank)
      return {
        Step: (k: number) => trainer.step(k),
        Save: (dir: string) => Effect.sync(() => Checkpoint.writeRank(dir, rank, trainer.params, trainer.moments)),
        Load: (dir: string) => Effect.sync(() => Checkpoint.loadInto(dir, trainer.params, trainer.moments)),
      }
    }),
    (refs) =>
      Effect.gen(function* () {
        const out: Array<StepSummary> = []
        let first = 0
        if (options.resume !== undefined) {
          const dir = options.resume
          first = Checkpoint.manifest(dir).step
          yield* Effect.forEach(refs, (ref) => ref.ask("Load", dir), { concurrency: "unbounded" })
        }
        for (let k = first; k < options.steps; k++) {
          const started = performance.now()
          const reports = yield* Effect.forEach(refs, (ref) => ref.ask("Step", k), { concurrency: "unbounded" })
          const summary = summarize(k, reports, tokens, (performance.now() - started) / 1000)
          options.onStep?.(summary)
          out.push(summary)
        }
        if (options.save !== undefined) {
          const dir = options.save
          Checkpoint.begin(dir)
          yield* Effect.forEach(refs, (ref) => ref.ask("Save", dir), { concurrency: "unbounded" })
          Checkpoint.commit(dir, manifestOf(setup, Math.max(first, options.steps)))
        }
        return out
      }),
  )
}

/**
 * Trains on the threads backend (every rank in a worker thread). Same results as `run`;
 * summaries arrive at the end (workers report when they finish).
 * @category constructors
 */
export const runThreads = (setup: RankTrainer.TrainSetup, options: Pick<RunOptions, "steps" | "timeoutMs" | "save" | "resume" | "onStep">) =>
  Effect.gen(function* () {
    ModelConfig.check(setup.model, setup.batch, setup.parallel)
    const first = options.resume === undefined ? 0 : Checkpoint.manifest(options.resume).step
    if (options.save !== undefined) Checkpoint.begin(options.save)
    // The span callback is a function, which cannot cross into the workers: leave it behind.
    const { span: _span, ...plain } = setup
    const here = import.meta.url
    const module = new URL(here.endsWith(".ts") ? "./ThreadsTrain.ts" : "./ThreadsTrain.js", here)
    const started = performance.now()
    const perRank = yield* ThreadsJob.run<Array<RankTrainer.StepReport>>({
      world: setup.parallel.world,
      module,
      export: "rankProgram",
      args: { setup: plain, first, steps: options.steps, resume: options.resume, save: options.save },
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    })
    const seconds = (performance.now() - started) / 1000
    const ran = Math.max(0, options.steps - first)
    const tokens = setup.batch.globalBatch * setup.model.seq
    const out: Array<StepSummary> = []
    for (let i = 0; i < ran; i++) {
      const summary = summarize(first + i, perRank.map((r) => r[i] as RankTrainer.StepReport), tokens, seconds / Math.max(1, ran))
      options.onStep?.(summary)
      out.push(summary)
    }
    if (options.save !== undefined) Checkpoint.commit(options.save, manifestOf(setup, Math.max(first, options.steps)))
    return out
  })

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
