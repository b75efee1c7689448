/**
 * Plan: choosing and validating a pipeline schedule, and the reference's counting formulas.
 *
 * The builders (OneFOneB.ts, Interleaved.ts) only turn a validated plan into actions; every rule
 * a user can break lives here, as a ConfigError naming the field. The checks and their order:
 *
 *   1. pp, microBatches, and vpp / microbatchGroupSize when given, are positive integers.
 *   2. vpp needs pp > 1 (as ParallelConfig rules; the reference would silently not pipeline).
 *   3. microbatchGroupSize without vpp is rejected (the reference silently ignores it).
 *   4. Interleaved: N > M or N < P is the reference's ValueError (semantics.md 3.4).
 *   5. Interleaved: 0 < M % N < P is the reference's RuntimeError (semantics.md 3.4).
 *
 * The schedule is picked as get_forward_backward_func does (semantics.md 3.1): pp = 1 -> no
 * pipelining; pp > 1 with vpp given (even vpp = 1) -> interleaved 1F1B; else 1F1B.
 */
import * as Result from "effect/Result"
import * as ConfigError from "../errors/ConfigError.js"
import type { Phases, ScheduleKind } from "./Action.js"

/**
 * What a user writes to pick a schedule.
 * @category models
 */
export interface ScheduleInput {
  readonly pp: number
  readonly vpp?: number | undefined
  readonly microBatches: number
  /** N, contiguous micro-batches per virtual stage (interleaved only; default pp). */
  readonly microbatchGroupSize?: number | undefined
  readonly forwardOnly?: boolean | undefined
}

/**
 * A validated choice of schedule.
 * @category models
 */
export interface Plan {
  readonly kind: ScheduleKind
  readonly pp: number
  readonly vpp: number
  readonly microBatches: number
  readonly microbatchGroupSize: number | undefined
  readonly forwardOnly: boolean
}

/**
 * One entry of the interleaved schedule table: virtual micro-batch k runs this forward.
 * @category models
 */
export interface Slot {
  readonly microBatch: number
  readonly chunk: number
}

/**
 * Validates the input and picks the schedule like the reference.
 * @category constructors
 */
export const validate = (input: ScheduleInput): Result.Result<Plan, ConfigError.ConfigError> =>
  Result.gen(function* () {
    const pp = yield* positive("pp", input.pp)
    const microBatches = yield* positive("microBatches", input.microBatches)
    const vpp = input.vpp === undefined ? undefined : yield* positive("vpp", input.vpp)
    const given = input.microbatchGroupSize
    const groupSize = given === undefined ? undefined : yield* positive("microbatchGroupSize", given)
    const forwardOnly = input.forwardOnly ?? false
    if (vpp !== undefined && pp <= 1) {
      return yield* Result.fail(ConfigError.make("vpp", vpp, `needs pipeline parallelism but pp is ${pp}`, "set pp to 2 or more, or leave out vpp"))
    }
    if (groupSize !== undefined && vpp === undefined) {
      return yield* Result.fail(
        ConfigError.make(
          "microbatchGroupSize",
          groupSize,
          "only applies to the interleaved schedule, which needs vpp",
          "set vpp (virtual pipeline stages per rank), or leave out microbatchGroupSize",
        ),
      )
    }
    if (pp === 1) return { kind: "noPipelining", pp, vpp: 1, microBatches, microbatchGroupSize: undefined, forwardOnly }
    if (vpp === undefined) return { kind: "oneFOneB", pp, vpp: 1, microBatches, microbatchGroupSize: undefined, forwardOnly }
    const n = groupSize ?? pp
    yield* checkGroupSize(pp, microBatches, n, groupSize !== undefined)
    return { kind: "interleaved", pp, vpp, microBatches, microbatchGroupSize: n, forwardOnly }
  })

/**
 * The reference's two interleaving conditions (semantics.md 3.4), with its wording (the two
 * pieces of the first message are joined with the space the reference forgot, 6.4).
 */
const checkGroupSize = (pp: number, m: number, n: number, nGiven: boolean): Result.Result<void, ConfigError.ConfigError> => {
  const reference = `the number of contiguous micro-batches in a virtual pipeline stage should range in [PP=${pp}, M=${m}]`
  if (n > m || n < pp) {
    if (!nGiven) {
      return Result.fail(
        ConfigError.make(
          "microBatches",
          m,
          `is smaller than pp = ${pp}, which the interleaved schedule needs (microbatchGroupSize defaults to pp): ${reference}`,
          `use at least ${pp} micro-batches, or leave out vpp for the non-interleaved schedule`,
        ),
      )
    }
    const fix =
      m < pp
        ? `use at least ${pp} micro-batches, or leave out vpp for the non-interleaved schedule`
        : `set microbatchGroupSize between ${pp} and ${m}, or leave it out (default pp = ${pp})`
    return Result.fail(ConfigError.make("microbatchGroupSize", n, `is outside [pp, microBatches] = [${pp}, ${m}]: ${reference}`, fix))
  }
  const r = m % n
  if (r > 0 && r < pp) {
    const above = n > pp ? `${m - r + pp} (remainder ${pp})` : `${m - r + n} (the next multiple)`
    const alternatives = `${m - r} (a multiple of ${n}) or ${above}`
    return Result.fail(
      ConfigError.make(
        "microBatches",
        m,
        `leaves the remainder ${r} when divided by microbatchGroupSize = ${n}: the remainder of M (the total micro-batches) divided by N ` +
          `(number of contiguous micro-batches in a virtual pipeline stage) should be 0, or larger than or equal to the ` +
          `pipeline-parallel size (${pp}), but it is ${r}; otherwise it introduces dependency bubbles in the pipeline and reduces throughput`,
        `set microBatches to ${alternatives}, or choose a microbatchGroupSize that leaves a remainder of 0 or at least ${pp}`,
      ),
    )
  }
  return Result.void
}

/**
 * Non-interleaved 1F1B counts of rank `rank` (semantics.md 3.3): W = min(P - r - 1, M),
 * S = M - W, C = W. Forward-only runs the same warmup and steady forwards and no cooldown.
 * @category formulas
 */
export const oneFOneBPhases = (pp: number, rank: number, microBatches: number, forwardOnly = false): Phases => {
  const warmup = Math.min(pp - rank - 1, microBatches)
  return { warmup, steady: microBatches - warmup, cooldown: forwardOnly ? 0 : warmup }
}

/**
 * Interleaved counts of rank `rank` in virtual micro-batches (get_pp_rank_microbatches,
 * semantics.md 3.4): W = (P - r - 1)*2 + (V - 1)*N capped at total = M*V (all of them when
 * forward-only), remaining = total - W steady steps, then the W outstanding backwards.
 * @category formulas
 */
export const interleavedPhases = (pp: number, vpp: number, rank: number, microBatches: number, groupSize: number, forwardOnly = false): Phases => {
  const total = microBatches * vpp
  const warmup = forwardOnly ? total : Math.min((pp - rank - 1) * 2 + (vpp - 1) * groupSize, total)
  return { warmup, steady: total - warmup, cooldown: forwardOnly ? 0 : warmup }
}

/**
 * The interleaved schedule table (get_schedule_table, semantics.md 3.4): groups of N micro-batches
 * [g, g+N), the last group running to M; within a group chunk is the outer loop and micro-batch
 * the inner one. Entry k is the forward of virtual micro-batch k; backward k runs the same
 * micro-batch on chunk V-1-chunk.
 * @category formulas
 */
export const scheduleTable = (microBatches: number, vpp: number, groupSize: number): ReadonlyArray<Slot> => {
  const table: Array<Slot> = []
  for (let g = 0; g < microBatches; g += groupSize) {
    const end = Math.min(g + groupSize, microBatches)
    for (let chunk = 0; chunk < vpp; chunk++) {
      for (let microBatch = g; microBatch < end; microBatch++) table.push({ microBatch, chunk })
    }
    if (end === microBatches) break
  }
  return table
}

/**
 * Validates or throws the ConfigError.
 * @category constructors
 */
export const make = (input: ScheduleInput): Plan => {
  const r = validate(input)
  if (Result.isFailure(r)) throw r.failure
  return r.success
}

const positive = (field: string, value: number): Result.Result<number, ConfigError.ConfigError> =>
  Number.isSafeInteger(value) && value >= 1 ? Result.succeed(value) : Result.fail(ConfigError.make(field, value, "is not a positive integer", `set ${field} to 1, 2, 3, ...`))
