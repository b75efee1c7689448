/**
 * ModelEqualsOneRank: the property `pleat verify` proves of the built-in model, for a whole model
 * of the user's (a train.ModelDefinition, or the built-in one): under random valid mappings that
 * fit the model, a few training steps in lockstep with one rank give the same loss, gradient
 * norm, every parameter's gradient and every parameter after the optimizer step (Lockstep: both
 * runs start each step from the same parameters and data; the update is checked against the
 * one-rank optimizer's on the parallel run's gradients). fast-check shrinks a failure to a
 * small mapping; the error names it, the step and the quantity that differs.
 */
import * as Effect from "effect/Effect"
import fc from "fast-check"
import type * as ChooseBackend from "../runtime/ChooseBackend.js"
import type * as DType from "../tensor/DType.js"
import * as Lockstep from "../train/Lockstep.js"
import type * as ModelConfig from "../train/ModelConfig.js"
import type * as ModelDefinition from "../train/ModelDefinition.js"
import * as Optimizer from "../train/Optimizer.js"
import * as Mappings from "./Mappings.js"
import * as Runs from "./Runs.js"

/**
 * How to run the check (fast-check runs and seed: RunOptions; 5 runs by default).
 * @category models
 */
export interface Options extends Runs.RunOptions {
  /** The model (default: the built-in one). */
  readonly definition?: ModelDefinition.Ref | undefined
  readonly model: ModelConfig.ModelConfig
  readonly batch: ModelConfig.BatchConfig
  /** Mappings to try (default: up to 8 ranks); only those the model and batch fit are used. */
  readonly mappings?: fc.Arbitrary<Mappings.MappingArgs> | undefined
  /** Steps compared per mapping (default 2). */
  readonly steps?: number | undefined
  /** Where the parallel run's ranks run (default local). */
  readonly backend?: ChooseBackend.Name | undefined
  /** float64 by default (then differences are rounding: the default tolerance is 1e-9, relative). */
  readonly dtype?: DType.DType | undefined
  readonly tolerance?: number | undefined
}

/**
 * Checks the model under mappings drawn from `options.mappings`; resolves when every mapping
 * agrees with one rank, rejects with fast-check's report naming the first (shrunk) one that does not.
 * @category constructors
 */
export const check = (options: Options): Promise<void> => {
  const tolerance = options.tolerance ?? 1e-9
  const steps = options.steps ?? 2
  const fits = Mappings.fitsModel(options.model, options.batch)
  const mappings = (options.mappings ?? Mappings.mappings({ maxWorld: 8 })).filter((m) => fits(Mappings.toConfig(m)))
  return fc.assert(
    fc.asyncProperty(mappings, fc.integer({ min: 1, max: 1_000_000 }), async (mapping, seed) => {
      const setup = {
        parallel: Mappings.toConfig(mapping),
        model: options.model,
        batch: options.batch,
        seed,
        dtype: options.dtype ?? "float64",
        optimizer: Optimizer.defaults(steps),
        auxLossCoeff: 0.01,
        ...(options.definition === undefined ? {} : { definition: options.definition }),
      }
      const compared = await Effect.runPromise(Lockstep.run(setup, { steps, ...(options.backend === undefined ? {} : { backend: options.backend }) }))
      for (const k of compared) {
        const worst = [
          ["loss", k.loss.error],
          ["gradient norm", k.gradNorm.error],
          [`gradient of ${k.gradient.name}`, k.gradient.error],
          [`${k.parameter.name} after the update`, k.parameter.error],
        ] as const
        for (const [what, error] of worst)
          if (!(error <= tolerance)) throw new Error(`${Mappings.describe(mapping)}, seed ${seed}: step ${k.step + 1}: ${what} differs from one rank by ${error} (relative)`)
      }
    }),
    Runs.parameters(options, 5),
  )
}
