/**
 * Lockstep: proof, one step at a time, that a mapping computes what one rank computes.
 *
 * Each step k the parallel run (every rank of the mapping, on any backend: fibers of this
 * process, worker threads or MPI processes, on the host or a device; LockstepProgram) trains from its parameters P_k
 * and AdamW moments, and reports every shard it holds after the step. The one-rank run is then given those same P_k and
 * moments (the shards gathered into full tensors by Params.assemble, cut again for one rank by
 * Params.slice) and trains step k too, on the same data. The two are compared on the step's
 * loss, its gradient norm and every parameter's gradient (the full tensor, after
 * synchronisation); then both go on from the parallel run's
 * P_{k+1} (the one-rank run in the driver's process, on the host, while the ranks go on). So each step's difference is that step's rounding alone: it does not compound over
 * steps (two free-running trajectories drift apart by step 40 even in float64), and one
 * tolerance holds for any number of steps. A parallel run with the distributed optimizer reports,
 * of its sharded state, the parts each rank owns (LockstepProgram): gathered, they are whole
 * moments and synchronised gradients again; the one-rank run uses the replicated optimizer.
 *
 * Every parameter after the optimizer step is compared with the one-rank optimizer's update of
 * P_k and its moments on the parallel run's own synchronised gradients, clipped by the parallel
 * run's norm (referenceUpdate). The gradients are judged on their own; the update then isolates
 * the parallel run's optimizer (its shards, replicas, distributed state, device), which must
 * agree to rounding. Updating from each run's own gradient would instead judge AdamW's
 * amplification: its first update lr * g / (|g| + eps) turns a rounding difference of a
 * gradient element near eps into a difference of order lr (a CI run found 3.3e-3 on a 16 x 8
 * wv, tp 2 pp 2 dp 2, seed 398, g -4.3e-8 against -1.9e-8, every gradient within 6e-7).
 *
 * Differences are relative: numbers |a - b| / max(|a|, |b|), a parameter's tensors ||a - b|| /
 * max(||a||, ||b||) in the 2-norm (0 when both are 0), where a is every shard the parallel
 * ranks hold (replicas included) and b the same slices of the one-rank run's tensor. A missing
 * gradient synchronisation leaves a parameter's gradient a partial sum: an error of order 1 on
 * that parameter, named.
 *
 * Tolerances: about ten times the worst error measured over random folded mappings of all
 * five dims (with vpp) and random seeds (float32 on the native kernels, AVX-512; float64 on
 * the TypeScript ones):
 *                 measured worst                          tolerance
 *                 float32             float64             float32   float64
 *   loss          3.1e-7              1.2e-15             3e-6      1e-14
 *   grad norm     1.1e-6              2.0e-14             1e-5      3e-13
 *   gradient      9.0e-6              5.0e-14             1e-4      1e-12
 *   parameter     0                   0                   1e-6      1e-14
 * from runs of 100 steps of the default model (5 float32, 3 float64, the default mapping among
 * them; errors grow as the loss falls and gradients cancel: 6e-7 on gradients over the first 4
 * steps, 9e-6 by step 100), 225 (float32) and 95 (float64) random small models over 4 steps,
 * and 400 more (float32) over the first step. The parameters after the update were measured
 * over 80 (float32) and 40 (float64) random small models of 4 steps, with and without the
 * distributed optimizer: equal bit for bit on the host, whatever the backend (every optimizer
 * updates through AdamwInto). Their bound leaves room for a device's AdamW, whose float32
 * arithmetic may differ from the host's by an ulp or a few. A missing synchronisation is an
 * error of order 1e-1 to 1.
 */
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as ParallelConfig from "../mapping/ParallelConfig.js"
import * as Backend from "../runtime/Backend.js"
import * as ChooseBackend from "../runtime/ChooseBackend.js"
import * as Job from "../runtime/Job.js"
import type { RankFailed } from "../runtime/JobError.js"
import * as StableWeights from "../tensor/StableWeights.js"
import type * as DType from "../tensor/DType.js"
import type * as Tensor from "../tensor/Tensor.js"
import * as LockstepProgram from "./LockstepProgram.js"
import * as LrSchedule from "./LrSchedule.js"
import * as ModelConfig from "./ModelConfig.js"
import * as Params from "./Params.js"
import type * as RankParams from "./RankParams.js"
import * as BuiltinModels from "./BuiltinModels.js"
import * as ModelDefinition from "./ModelDefinition.js"
import * as Optimizer from "./Optimizer.js"
import * as RankTrainer from "./RankTrainer.js"

/**
 * The largest relative difference accepted, of each kind.
 * @category models
 */
export interface Tolerance {
  readonly loss: number
  readonly gradNorm: number
  readonly gradient: number
  readonly parameter: number
}

/**
 * The tolerances of a dtype (see the file header for the measurements behind them).
 * @category configuration
 */
export const tolerance = (dtype: DType.DType): Tolerance =>
  dtype === "float64" ? { loss: 1e-14, gradNorm: 3e-13, gradient: 1e-12, parameter: 1e-14 } : { loss: 3e-6, gradNorm: 1e-5, gradient: 1e-4, parameter: 1e-6 }

/**
 * A number as each run computed it, and their relative difference.
 * @category models
 */
export interface Compared {
  readonly parallel: number
  readonly oneRank: number
  readonly error: number
}

/**
 * The parameter with the largest relative difference, and that difference.
 * @category models
 */
export interface WorstParameter {
  readonly name: string
  readonly error: number
}

/**
 * One step of both runs, compared.
 * @category models
 */
export interface StepComparison {
  readonly step: number
  readonly loss: Compared
  readonly gradNorm: Compared
  /** Each parameter's synchronised gradient (full tensor). */
  readonly gradient: WorstParameter
  /** Each parameter after the optimizer step, against the one-rank optimizer's update on the parallel run's gradients. */
  readonly parameter: WorstParameter
}

/**
 * Options of a lockstep verification.
 * @category models
 */
export interface Options {
  readonly steps: number
  /** Where the parallel run's ranks run (default "local"). */
  readonly backend?: ChooseBackend.Name
  /** threads backends: the most worker threads (default one per rank up to the cores). */
  readonly workers?: number
  readonly timeoutMs?: number
  /** Called as each step has been compared. */
  readonly onStep?: (comparison: StepComparison) => void
}

/**
 * Relative difference of two numbers.
 * @category mapping
 */
const relative = (a: number, b: number): number => (a === b ? 0 : Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b)))

const compared = (parallel: number, oneRank: number): Compared => ({ parallel, oneRank, error: relative(parallel, oneRank) })

/** What is gathered of a parameter: its value, its gradient, or a moment. */
type Part = "value" | "grad" | "m" | "v"

/** Every rank's shards of one step, by parameter name. */
type Shards = ReadonlyArray<ReadonlyArray<LockstepProgram.Holding>>

const shardsOf = (ranks: Shards, name: string): Array<LockstepProgram.Holding> => ranks.flatMap((holdings) => holdings.filter((h) => h.name === name))

/** One parameter's full tensor, gathered from every rank that holds a shard of it. */
const gather = (ranks: Shards, spec: Params.ParamSpec, part: Part, dtype: DType.DType): Tensor.Tensor =>
  Params.assemble(
    spec.shape,
    part === "m" || part === "v" ? "float32" : dtype,
    shardsOf(ranks, spec.name).flatMap((h) => {
      const values = h[part]
      return values === undefined ? [] : [{ slice: h.slice, values }]
    }),
  )

/**
 * Every shard of a parameter on every rank of the parallel run (replicas included) against
 * the same slice of the one-rank run's full tensor: ||a - b|| / max(||a||, ||b||) over all of
 * them together, so a replica that went its own way counts as much as a wrong gather.
 */
const shardsAgainst = (ranks: Shards, spec: Params.ParamSpec, part: "value" | "grad", full: Tensor.Tensor): number => {
  let diff = 0
  let mine = 0
  let theirs = 0
  for (const held of shardsOf(ranks, spec.name)) {
    const a = part === "value" ? held.value : held.grad
    if (a === undefined) continue
    const b = Params.slice(full, held.slice).data
    for (let i = 0; i < a.length; i++) {
      const x = a[i] as number
      const y = b[i] as number
      diff += (x - y) ** 2
      mine += x * x
      theirs += y * y
    }
  }
  return diff === 0 ? 0 : Math.sqrt(diff / Math.max(mine, theirs))
}

/** The worst of each parameter's relative difference. */
const worstOf = (specs: ReadonlyArray<Params.ParamSpec>, error: (spec: Params.ParamSpec) => number): WorstParameter =>
  specs.reduce<WorstParameter>(
    (worst, spec) => {
      const e = error(spec)
      return !Number.isNaN(worst.error) && (e > worst.error || Number.isNaN(e)) ? { name: spec.name, error: e } : worst
    },
    { name: specs[0]?.name ?? "", error: 0 },
  )

/** The one-rank trainer's parameters and moments set to the parallel run's `at` (every rank's shards, gathered). */
/** A step's starting values and moments, by parameter, as the one-rank trainer holds them. */
type StartingPoint = ReadonlyArray<{
  readonly held: RankParams.Held
  readonly moments: Optimizer.Moments | undefined
  readonly value: DType.Storage
  readonly m: DType.Storage
  readonly v: DType.Storage
}>

/** The parallel run's shards `at`, gathered once into the one-rank trainer's slices. */
const startingPoint = (one: ReturnType<typeof RankTrainer.make>, specs: ReadonlyArray<Params.ParamSpec>, at: Shards, dtype: DType.DType): StartingPoint =>
  specs.map((spec) => {
    const held = one.params.get(spec.name) as RankParams.Held
    const cut = (part: "value" | "m" | "v") => Params.slice(gather(at, spec, part, dtype), held.slice).data
    return { held, moments: one.moments.get(spec.name), value: cut("value"), m: cut("m"), v: cut("v") }
  })

/** The one-rank trainer's parameters and moments set to `point`. */
const startFrom = (point: StartingPoint): void => {
  for (const p of point) {
    p.held.value.data.set(p.value)
    p.moments?.m.set(p.m)
    p.moments?.v.set(p.v)
  }
}

/**
 * The reference for the parameters after step `k`: the one-rank run's optimizer (the replicated
 * AdamW on the host), from the step's starting parameters and moments, applied to the parallel
 * run's synchronised gradients with the parallel run's clipping (its gradient norm). The
 * gradients themselves are compared on their own; this isolates the parallel run's optimizer
 * (its shards, replicas, distributed state, device), which must then agree to rounding. Returns
 * the one-rank run's holdings after that update.
 */
const referenceUpdate = (
  one: ReturnType<typeof RankTrainer.make>,
  specs: ReadonlyArray<Params.ParamSpec>,
  before: StartingPoint,
  after: Shards,
  setup: RankTrainer.TrainSetup,
  k: number,
  gradNorm: number,
): Array<LockstepProgram.Holding> => {
  startFrom(before)
  for (const spec of specs) {
    const held = one.params.get(spec.name) as RankParams.Held
    held.grad.set(Params.slice(gather(after, spec, "grad", setup.dtype), held.slice).data)
  }
  Optimizer.step(setup.optimizer, one.params, one.moments, k + 1, LrSchedule.learningRate(setup.optimizer, k), Optimizer.clipScale(setup.optimizer, gradNorm))
  return LockstepProgram.holdingsOf(one)
}

/**
 * Trains `options.steps` steps under `setup`'s mapping and, from the same parameters each
 * step, on one rank; returns every step's comparison (see the file header).
 * @category constructors
 */
export const run = (setup: RankTrainer.TrainSetup, options: Options): Effect.Effect<Array<StepComparison>, RankFailed | ChooseBackend.UnknownBackend> =>
  Effect.gen(function* () {
    ModelConfig.check(setup.model, setup.batch, setup.parallel)
    const world = setup.parallel.world
    const definition = yield* Effect.promise(() => ModelDefinition.load(setup.definition ?? BuiltinModels.defaultRef))
    const specs = definition.params(setup.model)
    // The reference is the replicated optimizer on one host rank without recompute (the parallel
    // run may shard its state, recompute, or compute on a device, whose optimizer keeps its own
    // copy of the weights: a reference there would not start each step from the parallel run's).
    const { device: _device, ...onHost } = setup
    // once a job: the reference trainer's setup
    const one = RankTrainer.make({ ...onHost, parallel: ParallelConfig.make({ world: 1 }), distributedOptimizer: false, recompute: "none" }, 0, [], definition, "given")
    // Each step's snapshots, once every rank has reported it (ranks report in step order, so
    // steps complete in order).
    // Ends with undefined once the parallel run has ended, so a step that never completed is a
    // failure, never a wait.
    const complete = yield* Queue.unbounded<Array<LockstepProgram.Snapshot> | undefined>()
    const arriving = new Map<number, Array<LockstepProgram.Snapshot>>()
    const onReport = (rank: number, value: unknown) => {
      const snapshot = value as LockstepProgram.Snapshot
      const got = arriving.get(snapshot.step) ?? []
      got[rank] = snapshot
      arriving.set(snapshot.step, got)
      if (got.filter((x) => x !== undefined).length < world) return
      arriving.delete(snapshot.step)
      Queue.offerUnsafe(complete, got)
    }
    const { span: _span, ...plain } = setup
    const parallel = Backend.run({
      world,
      program: LockstepProgram.of({ setup: plain, steps: options.steps, skipSync: process.env.PLEAT_FAULT_SKIP_SYNC }),
      listener: { onReport },
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    })
    const compare = Effect.gen(function* () {
      const out: Array<StepComparison> = []
      const next = Effect.flatMap(Queue.take(complete), (got) =>
        got === undefined ? Effect.die(new Error("the parallel run ended before every rank reported every step")) : Effect.succeed(got),
      )
      let before = (yield* next).map((s) => s.holdings)
      for (let k = 0; k < options.steps; k++) {
        const after = yield* next
        // The one-rank run starts this step where the parallel run did: values and moments.
        const point = startingPoint(one, specs, before, setup.dtype)
        startFrom(point)
        const [single] = yield* Job.run({ world: 1 }, () => one.step(k))
        const mine = [LockstepProgram.holdingsOf(one)]
        const ranks = after.map((s) => s.holdings)
        const reports = after.map((s) => s.report as RankTrainer.StepReport)
        const updated = [referenceUpdate(one, specs, point, ranks, setup, k, reports[0]?.gradNorm ?? Number.NaN)]
        const comparison: StepComparison = {
          step: k,
          loss: compared(
            reports.reduce((a, r) => a + r.loss, 0),
            single?.loss ?? Number.NaN,
          ),
          gradNorm: compared(reports[0]?.gradNorm ?? Number.NaN, single?.gradNorm ?? Number.NaN),
          gradient: worstOf(specs, (spec) => shardsAgainst(ranks, spec, "grad", gather(mine, spec, "grad", setup.dtype))),
          parameter: worstOf(specs, (spec) => shardsAgainst(ranks, spec, "value", gather(updated, spec, "value", setup.dtype))),
        }
        out.push(comparison)
        options.onStep?.(comparison)
        before = ranks
      }
      return out
    })
    const ended = Effect.ensuring(
      parallel,
      Effect.sync(() => Queue.offerUnsafe(complete, undefined)),
    )
    // The weights' packed panels go with the run, as after Train.run.
    const [, comparisons] = yield* Effect.ensuring(Effect.all([ended, compare], { concurrency: 2 }), Effect.sync(StableWeights.clear))
    return comparisons
  }).pipe(Effect.provide(ChooseBackend.layer(options.backend ?? "local", options.workers === undefined ? {} : { workers: options.workers })))

/**
 * The largest difference of one kind over the steps, with its step (and parameter).
 * @category models
 */
export interface Largest {
  readonly error: number
  readonly step: number
  readonly name?: string
}

/**
 * The verdict over every step: the largest difference of each kind and whether all are within
 * the dtype's tolerance.
 * @category models
 */
export interface Verdict {
  readonly tolerance: Tolerance
  readonly loss: Largest
  readonly gradNorm: Largest
  readonly gradient: Largest
  readonly parameter: Largest
  /** The kinds whose largest difference is over their tolerance (or NaN), worst first. */
  readonly failed: ReadonlyArray<keyof Tolerance>
}

const largest = (steps: ReadonlyArray<StepComparison>, of: (c: StepComparison) => { readonly error: number; readonly name?: string }): Largest => {
  let worst: Largest = { error: 0, step: 0 }
  steps.forEach((c, i) => {
    const x = of(c)
    // A NaN is the worst there is, and the first one stays.
    const worse = i === 0 || (Number.isNaN(x.error) && !Number.isNaN(worst.error)) || x.error > worst.error
    if (worse) worst = { error: x.error, step: c.step, ...(x.name === undefined ? {} : { name: x.name }) }
  })
  return worst
}

const kinds = ["gradient", "parameter", "loss", "gradNorm"] as const

/**
 * Judges the comparisons of a run in `dtype`.
 * @category constructors
 */
export const verdict = (steps: ReadonlyArray<StepComparison>, dtype: DType.DType): Verdict => {
  const limit = tolerance(dtype)
  const v = {
    tolerance: limit,
    loss: largest(steps, (c) => c.loss),
    gradNorm: largest(steps, (c) => c.gradNorm),
    gradient: largest(steps, (c) => c.gradient),
    parameter: largest(steps, (c) => c.parameter),
  }
  // NaN compares false: a NaN anywhere is a failure. A missing synchronisation shows first in
  // the gradient, then in the parameter it updates: the first failed kind names the culprit.
  const failed = kinds.filter((k) => !(v[k].error <= limit[k]))
  // once a job: a verified step's verdict
  return { ...v, failed }
}
