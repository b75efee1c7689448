/**
 * Schedule: the public way to build pipeline schedules as data.
 *
 * `make` / `validate` pick the schedule as the reference's get_forward_backward_func does
 * (semantics.md 3.1); `noPipelining`, `oneFOneB` and `interleaved` build one kind directly. All
 * of them reject bad configurations with a ConfigError naming the field (see Plan.ts for the
 * rules), and every schedule they return passes Check.check.
 */
import * as Result from "effect/Result"
import type * as ConfigError from "../errors/ConfigError.js"
import type { Schedule } from "./Action.js"
import { buildInterleaved } from "./Interleaved.js"
import { buildNoPipelining, buildOneFOneB } from "./OneFOneB.js"
import * as Plan from "./Plan.js"

export type { Schedule } from "./Action.js"
export type { ScheduleInput } from "./Plan.js"

/**
 * Options shared by the direct builders.
 * @category models
 */
export interface Options {
  /** Forward passes only (evaluation): no backward actions, no gradient traffic. */
  readonly forwardOnly?: boolean | undefined
}

/**
 * Validates the input and builds the schedule the reference would run.
 * @category constructors
 */
export const validate = (input: Plan.ScheduleInput): Result.Result<Schedule, ConfigError.ConfigError> => Result.map(Plan.validate(input), build)

/**
 * Like validate, but throws the ConfigError.
 * @category constructors
 */
export const make = (input: Plan.ScheduleInput): Schedule => build(Plan.make(input))

/**
 * The schedule of a validated plan.
 * @category constructors
 */
const build = (plan: Plan.Plan): Schedule => {
  switch (plan.kind) {
    case "noPipelining":
      return buildNoPipelining(plan)
    case "oneFOneB":
      return buildOneFOneB(plan)
    case "interleaved":
      return buildInterleaved(plan)
  }
}

/**
 * No pipelining (pp = 1): forward then backward of each micro-batch in turn. Throws a
 * ConfigError when microBatches is not a positive integer.
 * @category constructors
 */
export const noPipelining = (microBatches: number, options?: Options): Schedule => make({ pp: 1, microBatches, forwardOnly: options?.forwardOnly })

/**
 * Non-interleaved 1F1B on `pp` ranks (pp = 1 gives the no-pipelining order). Throws a
 * ConfigError on bad input.
 * @category constructors
 */
export const oneFOneB = (pp: number, microBatches: number, options?: Options): Schedule => {
  const plan = Plan.make({ pp, microBatches, forwardOnly: options?.forwardOnly })
  return buildOneFOneB({
    kind: "oneFOneB",
    pp: plan.pp,
    vpp: plan.vpp,
    microBatches: plan.microBatches,
    microbatchGroupSize: plan.microbatchGroupSize,
    forwardOnly: plan.forwardOnly,
  })
}

/**
 * Interleaved 1F1B with `vpp` chunks per rank and N = microbatchGroupSize (default pp). Throws
 * a ConfigError when pp = 1 or the reference's N / M conditions fail.
 * @category constructors
 */
export const interleaved = (pp: number, vpp: number, microBatches: number, microbatchGroupSize?: number, options?: Options): Schedule =>
  make({ pp, vpp, microBatches, microbatchGroupSize, forwardOnly: options?.forwardOnly })
