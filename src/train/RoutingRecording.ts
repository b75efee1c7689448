/**
 * RoutingRecording: the driver's side of routing replay and recording (RoutingFiles). Before any
 * rank starts it checks the replay directory's files for every step the run will train and
 * readies the recording directory; as each step completes on every rank, it writes the step's
 * file from the ranks' reports. A recording that cannot be written stops the run (a recording
 * with steps missing would replay nothing for them).
 */
import * as path from "node:path"
import * as Effect from "effect/Effect"
import * as ConfigError from "../errors/ConfigError.js"
import * as RoutingFiles from "./RoutingFiles.js"
import type * as StepReport from "./StepReport.js"
import type * as TrainSetup from "./TrainSetup.js"

/**
 * Checks replay and readies recording for steps first+1..steps (nothing without either).
 * @category guards
 */
export const prepare = (setup: TrainSetup.TrainSetup, first: number, steps: number): Effect.Effect<void, ConfigError.ConfigError> =>
  Effect.suspend(() => {
    const r = setup.routing
    if (r?.replay === undefined && r?.record === undefined) return Effect.void
    try {
      const manifest = RoutingFiles.manifestOf(setup.model, setup.batch.globalBatch)
      if (r.replay !== undefined && r.record !== undefined && samePlace(r.replay, r.record)) {
        throw ConfigError.make("routing-record", r.record, "is the directory --routing-replay reads", "record into another directory")
      }
      if (r.replay !== undefined && setup.model.moe?.quantileBalancing === true) {
        throw ConfigError.make("routing-replay", r.replay, "and --quantile-balancing both choose the experts", "drop one of them")
      }
      if (r.replay !== undefined) RoutingFiles.checkReplay(r.replay, manifest, first, steps)
      if (r.record !== undefined) RoutingFiles.prepareRecord(r.record, manifest)
      return Effect.void
    } catch (error) {
      return ConfigError.isConfigError(error) ? Effect.fail(error) : Effect.die(error)
    }
  })

/** Whether two paths name one directory (resolved from the working directory). */
const samePlace = (a: string, b: string): boolean => path.resolve(a) === path.resolve(b)

/**
 * What writes each completed step's routing (undefined without recording): it returns the
 * failure, if any, instead of throwing (it runs inside a rank's report).
 * @category constructors
 */
export const recorder = (setup: TrainSetup.TrainSetup): ((step: number, reports: ReadonlyArray<StepReport.StepReport>) => unknown) | undefined => {
  const dir = setup.routing?.record
  if (dir === undefined) return undefined
  const manifest = RoutingFiles.manifestOf(setup.model, setup.batch.globalBatch)
  return (step, reports) => {
    try {
      // Steps count from 0 in the reports, from 1 in the files.
      RoutingFiles.recordStep(
        dir,
        manifest,
        step + 1,
        reports.flatMap((r) => r.routing ?? []),
      )
      return undefined
    } catch (error) {
      return error
    }
  }
}

/**
 * The run's failure for what `recorder` returned: a ConfigError fails it, anything else is a defect.
 * @category mapping
 */
export const failure = (error: unknown): Effect.Effect<never, ConfigError.ConfigError> => (ConfigError.isConfigError(error) ? Effect.fail(error) : Effect.die(error))
