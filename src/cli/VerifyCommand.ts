/**
 * VerifyCommand: `pleat verify`, proves a mapping computes what one rank would, step by step.
 *
 * Trains N steps under the mapping and, in lockstep, on one rank: each step the one-rank run
 * starts from the parallel run's parameters and moments (gathered to full tensors), so each
 * step's difference is that step's rounding alone (Lockstep.ts). Per step it compares the loss,
 * the gradient norm, every parameter's gradient and every parameter after the optimizer step;
 * exit 0 only when every relative difference is within the dtype's tolerance, else 1 naming
 * the worst parameter and step. The parallel run's ranks run on any backend (under mpirun: one
 * per process); the one-rank run and the comparison run in this process (rank 0's). What verify
 * cannot honour is refused before any work (exit 2, one line): one rank (a run compared with
 * itself), --save, --resume, --trace, a log level, bf16 (its rounding moves with the mapping).
 * Two trainings in lockstep take seconds to minutes: a progress bar on stderr counts the
 * compared steps (plain lines every tenth step on a pipe); stdout is untouched by it.
 */
import * as PipelineText from "./PipelineText.js"
import * as Effect from "effect/Effect"
import * as ConfigError from "../errors/ConfigError.js"
import * as MoeSettings from "../moe/MoeSettings.js"
import * as Lockstep from "../train/Lockstep.js"
import * as RoutingRecording from "../train/RoutingRecording.js"
import { Activity } from "./Activity.js"
import * as BadInput from "./BadInput.js"
import * as DefinitionFlag from "./DefinitionFlag.js"
import * as ExitCode from "./ExitCode.js"
import * as Flags from "./Flags.js"
import type { Io } from "./Io.js"
import * as Progress from "./Progress.js"
import * as RunConfig from "./RunConfig.js"
import * as TrainOptions from "./TrainOptions.js"

/** What verify cannot honour, each as the user's error (`argv` as typed). */
const refusals = (resolved: TrainOptions.Resolved, argv: ReadonlyArray<string>): Array<ConfigError.ConfigError> => {
  const out: Array<ConfigError.ConfigError> = []
  if (resolved.setup.parallel.world === 1) {
    out.push(ConfigError.make("--world", 1, "leaves nothing to verify (one rank compared with one rank)", "pass --world 2 or more with the mapping to check"))
  }
  const unused = (flag: string, value: string | undefined, why: string) => {
    if (value !== undefined) out.push(ConfigError.make(`--${flag}`, value, `is not used by pleat verify (${why})`, `drop --${flag} (pleat train takes it)`))
  }
  if (resolved.steps === 0) out.push(ConfigError.make("--steps", 0, "compares no step", "pass --steps 1 or more"))
  unused("save", resolved.save, "it keeps no training run")
  unused("resume", resolved.resume, "it starts both runs from the seed")
  unused("trace", resolved.trace, "it traces nothing")
  unused("routing-record", resolved.setup.routing?.record, "it keeps no training run")
  // Held-out data typed on the command line; a Megatron-LM --data-path's validation split (MegatronSplit) is simply not read.
  const heldOut = argv.some((a) => /^--(eval-data|valid-data-path)(=|$)/.test(a))
  unused("eval-data", heldOut ? resolved.setup.evaluation?.data.path : undefined, "it compares training steps")
  // Settings whose parallel run one rank cannot reproduce (which tokens drop, global_aux counts, forced balance's noise).
  const moe =
    resolved.setup.model.moe === undefined
      ? undefined
      : MoeSettings.oneRankProblem(resolved.setup.model.moe, resolved.setup.parallel.sizes, {
          dtype: resolved.setup.dtype,
          onGpu: resolved.setup.device === "cuda",
        })
  if (moe !== undefined) out.push(moe)
  // bf16 rounds every op output to 8 significant bits: a different summation order (any other
  // mapping) moves the rounding, so parallel and one rank differ far beyond the tolerances.
  if (resolved.setup.precision === "bf16")
    out.push(
      ConfigError.make(
        "--precision",
        "bf16",
        "rounds every op output to bfloat16, so any mapping differs from one rank by that rounding, beyond verify's tolerances",
        "verify the mapping with --precision fp32 (or --dtype float64); bf16 training is checked against fp32 by its tests",
      ),
    )
  if (resolved.logLevel !== "warn") out.push(ConfigError.make("--log-level", resolved.logLevel, "is not used by pleat verify (it runs no per-rank loggers)", "drop --log-level"))
  return out
}

const e = (x: number) => x.toExponential(1)

/**
 * A largest difference over the parameters (of their gradients or values: `what`) and where it
 * is: the parameter and the step, or, when every one agrees exactly, none named.
 */
const largestOf = (what: string, error: number, name: string | undefined, step?: number): string => {
  if (error === 0) return `0 (every ${what} equal${step === undefined ? "" : " at every step"})`
  const place = [name, step === undefined ? undefined : `step ${step + 1}`].filter((x) => x !== undefined)
  return `${e(error)} (${place.join(", ")})`
}

const stepLine = (c: Lockstep.StepComparison): string =>
  `step ${c.step + 1}: loss ${c.loss.parallel.toPrecision(9)} (parallel) vs ${c.loss.oneRank.toPrecision(9)} (one rank) ${e(c.loss.error)}; ` +
  `gradient norm ${e(c.gradNorm.error)}; gradient ${largestOf("gradient", c.gradient.error, c.gradient.name)}; parameter after update ${largestOf("parameter", c.parameter.error, c.parameter.name)}\n`

const words: Readonly<Record<keyof Lockstep.Tolerance, string>> = {
  loss: "loss",
  gradNorm: "gradient norm",
  gradient: "gradient of",
  parameter: "value after the optimizer step of",
}

/** The tolerances of a dtype, in words. */
const tolerances = (t: Lockstep.Tolerance): string => `loss ${e(t.loss)}, gradient norm ${e(t.gradNorm)}, gradients ${e(t.gradient)}, parameters ${e(t.parameter)}`

/** The first failed kind of difference of a verdict, in words, naming its parameter and step. */
const culprit = (v: Lockstep.Verdict): string => {
  const kind = v.failed[0] ?? "gradient"
  const l = v[kind]
  return `the ${words[kind]}${l.name === undefined || kind === "loss" || kind === "gradNorm" ? "" : ` ${l.name}`} at step ${l.step + 1} differs by ${e(l.error)} between the parallel run and the one-rank run (tolerance ${e(v.tolerance[kind])})`
}

/**
 * The usage text of `pleat verify`.
 * @category configuration
 */
const usage = `usage: pleat verify [the flags of pleat train] [--steps N] [--dtype float32|float64]

Trains N steps (default ${RunConfig.defaults.steps}) under the mapping and on one rank in lockstep: each step the
one-rank run starts from the parallel run's parameters and optimizer moments. Compares each
step's loss, gradient norm, every parameter's gradient (full tensor) and every parameter after
the optimizer step; exits 0 only if every relative difference is within tolerance (float32
${tolerances(Lockstep.tolerance("float32"))}; float64 ${tolerances(Lockstep.tolerance("float64"))}), else 1 naming the worst parameter and step. --log json prints one
JSON line per step and a verdict. The parallel run takes any --backend (under mpirun or
pleat launch: one rank per process). Refused (exit 2): --world 1 (a run compared with
itself), --save, --resume, --trace, --log-level other than warn (verify runs no per-rank loggers).

${Flags.usage(TrainOptions.flags)}
`

/**
 * Runs `pleat verify`: the status, or the job as an Effect resolving to it.
 * @category constructors
 */
export const run = (argv: ReadonlyArray<string>, io: Io): number | Effect.Effect<number, unknown, Activity> => {
  const resolved = TrainOptions.resolve(argv)
  if (resolved === "help") {
    io.stdout(usage)
    return ExitCode.ok
  }
  BadInput.throwIfAny(refusals(resolved, argv))
  const { setup, steps } = resolved
  const json = resolved.log === "json"
  const s = setup.parallel.sizes
  return Effect.gen(function* () {
    yield* DefinitionFlag.check(setup.definition, resolved.definitionText)
    const activity = yield* Activity
    // A replay's step files are checked before any rank starts, as pleat train checks them.
    yield* Effect.mapError(RoutingRecording.prepare(setup, 0, steps), resolved.explain)
    activity.set(`before step 1 of ${steps} was compared`)
    if (!json) {
      io.stdout(
        `pleat verify: parallel run (${setup.parallel.world} ranks: tp ${s.tp} x cp ${s.cp} x dp ${s.dp} x ${PipelineText.ppText(setup.parallel, setup.model.layers)}, etp ${s.etp} x ep ${s.ep} x edp ${s.edp}) ` +
          `vs one rank from the same parameters each step; ${setup.dtype}; relative differences per step\n`,
      )
    }
    const progress = Progress.make(steps, 0, Progress.toStderr(io))
    const compared = Lockstep.run(setup, {
      steps,
      backend: resolved.backend,
      ...(resolved.workers === undefined ? {} : { workers: resolved.workers }),
      onStep: (c) => {
        activity.set(`after step ${c.step + 1} of ${steps} was compared`)
        // The bar leaves the terminal's line to stdout's line, then comes back under it.
        progress.clear()
        io.stdout(json ? `${JSON.stringify({ step: c.step + 1, loss: c.loss, gradNorm: c.gradNorm, gradient: c.gradient, parameter: c.parameter })}\n` : stepLine(c))
        progress.update(c.step + 1, `compared | worst relative difference ${e(Math.max(c.loss.error, c.gradNorm.error, c.gradient.error, c.parameter.error))}`)
      },
    })
    // Erases the bar however the comparison ends: the verdict, or an interruption's line, follows.
    const comparisons = yield* Effect.ensuring(
      compared,
      Effect.sync(() => progress.clear()),
    )
    const v = Lockstep.verdict(comparisons, setup.dtype)
    const ok = v.failed.length === 0
    if (json) {
      const at = (l: Lockstep.Largest) => ({ ...l, step: l.step + 1 })
      io.stdout(
        `${JSON.stringify({ verdict: ok ? "OK" : "MISMATCH", failed: v.failed, dtype: setup.dtype, tolerance: v.tolerance, loss: at(v.loss), gradNorm: at(v.gradNorm), gradient: at(v.gradient), parameter: at(v.parameter) })}\n`,
      )
    } else {
      io.stdout(
        `largest relative differences over ${steps} steps: loss ${e(v.loss.error)} (step ${v.loss.step + 1}), gradient norm ${e(v.gradNorm.error)} (step ${v.gradNorm.step + 1}), ` +
          `gradient ${largestOf("gradient", v.gradient.error, v.gradient.name, v.gradient.step)}, parameter after update ${largestOf("parameter", v.parameter.error, v.parameter.name, v.parameter.step)}; ` +
          `tolerances for ${setup.dtype}: ${tolerances(v.tolerance)}: ${ok ? "OK" : `MISMATCH: ${culprit(v)}`}\n`,
      )
    }
    return ok ? ExitCode.ok : ExitCode.failure
  })
}
