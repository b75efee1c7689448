/**
 * Schedules: fast-check arbitraries of valid pipeline schedules (no pipelining, 1F1B,
 * interleaved 1F1B), built by the public Schedule constructors, so every one passes Check.
 */
import * as Result from "effect/Result"
import fc from "fast-check"
import type * as Plan from "../pipeline/Plan.js"
import * as Schedule from "../pipeline/Schedule.js"

/**
 * A schedule and the input it was built from.
 * @category models
 */
export interface ScheduleCase {
  readonly input: Plan.ScheduleInput
  readonly schedule: Schedule.Schedule
}

/**
 * Valid schedules with pp up to `maxPp`, vpp up to `maxVpp` and up to `maxMicroBatches`
 * micro-batches (inputs Schedule.validate rejects are skipped).
 * @category constructors
 */
export const schedules = (maxPp = 4, maxVpp = 3, maxMicroBatches = 8): fc.Arbitrary<ScheduleCase> =>
  fc
    .record({
      pp: fc.integer({ min: 1, max: maxPp }),
      vpp: fc.integer({ min: 1, max: maxVpp }),
      microBatches: fc.integer({ min: 1, max: maxMicroBatches }),
      forwardOnly: fc.boolean(),
    })
    .map(({ pp, vpp, microBatches, forwardOnly }) => ({ pp, ...(pp > 1 && vpp > 1 ? { vpp } : {}), microBatches, forwardOnly }))
    .map((input) => ({ input, result: Schedule.validate(input) }))
    .filter((c) => Result.isSuccess(c.result))
    .map((c) => ({ input: c.input, schedule: (c.result as Result.Success<Schedule.Schedule, never>).success }))
