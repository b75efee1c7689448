/**
 * VerifyCommand: `pleat verify`, proves a mapping computes what one rank would.
 *
 * Runs N training steps under the mapping and on one rank, with the same initial weights and
 * data (weights come from the seed and parameter names, data from the seed and step), and
 * prints the largest relative difference of the per-step losses and gradient norms. Exit 0
 * only within the tolerance (float32 1e-4, float64 1e-9; dropless routing), else 1.
 */
import * as Effect from "effect/Effect"
import * as ParallelConfig from "../mapping/ParallelConfig.js"
import * as Train from "../train/Train.js"
import { Activity } from "./Activity.js"
import * as ExitCode from "./ExitCode.js"
import * as Flags from "./Flags.js"
import type { Io } from "./Io.js"
import * as RunConfig from "./RunConfig.js"
import * as TrainOptions from "./TrainOptions.js"

/**
 * The usage text of `pleat verify`.
 * @category configuration
 */
const usage = `usage: pleat verify [the flags of pleat train] [--steps N] [--dtype float32|float64]

Trains N steps (default ${RunConfig.defaults.steps}; use a few) under the mapping and on one rank from the same weights
and data; prints the largest relative difference of losses and gradient norms; exits 0 only
within tolerance (float32 1e-4, float64 1e-9). --save, --resume, --trace and --log are not used.

${Flags.usage(TrainOptions.flags)}
`

const relative = (a: number, b: number) => (a === b ? 0 : Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-30))

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
  const { setup, steps } = resolved
  const tolerance = setup.dtype === "float64" ? 1e-9 : 1e-4
  const single = { ...setup, parallel: ParallelConfig.make({ world: 1 }) }
  const parallelRun = Train.run(setup, { steps, backend: resolved.backend })
  return Effect.gen(function* () {
    const activity = yield* Activity
    activity.set(`while training ${steps} steps under the mapping and on one rank (nothing compared yet)`)
    const [parallel, one] = yield* Effect.all([parallelRun, Train.run(single, { steps })])
    let loss = 0
    let norm = 0
    parallel.forEach((s, k) => {
      const o = one[k] as Train.StepSummary
      loss = Math.max(loss, relative(s.loss, o.loss))
      norm = Math.max(norm, relative(s.gradNorm, o.gradNorm))
      io.stdout(`step ${k + 1}: loss ${s.loss.toPrecision(12)} vs ${o.loss.toPrecision(12)}, grad norm ${s.gradNorm.toPrecision(12)} vs ${o.gradNorm.toPrecision(12)}\n`)
    })
    const ok = loss <= tolerance && norm <= tolerance
    io.stdout(
      `largest relative difference: loss ${loss.toExponential(3)}, gradient norm ${norm.toExponential(3)} (tolerance ${tolerance.toExponential(0)} for ${setup.dtype}): ${ok ? "OK" : "MISMATCH"}\n`,
    )
    return ok ? ExitCode.ok : ExitCode.failure
  })
}
