// Generators of pipeline configurations, and the reference's counting formulas written out again
// as the tests' oracle (semantics.md 3.3 and 3.4), independent of src/pipeline/Plan.ts.
import fc from "fast-check"
import * as Result from "effect/Result"
import type { Action } from "../../src/pipeline/Action.js"
import * as Schedule from "../../src/pipeline/Schedule.js"

export interface Config {
  readonly pp: number
  readonly vpp: number | undefined
  readonly microBatches: number
  readonly microbatchGroupSize: number | undefined
  readonly forwardOnly: boolean
}

/** Non-interleaved configurations, P in 1..8 (P = 1 is the no-pipelining schedule). */
export const plainConfig = (maxM = 24): fc.Arbitrary<Config> =>
  fc
    .record({ pp: fc.integer({ min: 1, max: 8 }), microBatches: fc.integer({ min: 1, max: maxM }), forwardOnly: fc.boolean() })
    .map((c) => ({ ...c, vpp: undefined, microbatchGroupSize: undefined }))

/**
 * Valid interleaved configurations: P in 2..8, V in 1..4, N in [P, P+3], M = groups*N + r with r
 * = 0 or r in [P, N) (the reference's two conditions), N left out (default P) half the time.
 */
export const interleavedConfig = (maxGroups = 4): fc.Arbitrary<Config> =>
  fc
    .record({
      pp: fc.integer({ min: 2, max: 8 }),
      vpp: fc.integer({ min: 1, max: 4 }),
      extra: fc.integer({ min: 0, max: 3 }),
      groups: fc.integer({ min: 1, max: maxGroups }),
      pick: fc.nat(),
      giveN: fc.boolean(),
      forwardOnly: fc.boolean(),
    })
    .map(({ pp, vpp, extra, groups, pick, giveN, forwardOnly }) => {
      const n = giveN ? pp + extra : pp
      const remainders = [0]
      for (let r = pp; r < n; r++) remainders.push(r)
      const r = remainders[pick % remainders.length] ?? 0
      return { pp, vpp, microBatches: groups * n + r, microbatchGroupSize: giveN ? n : undefined, forwardOnly }
    })

/** Any valid configuration. */
export const anyConfig: fc.Arbitrary<Config> = fc.oneof(plainConfig(), interleavedConfig())

export const build = (c: Config): Schedule.Schedule => {
  const r = Schedule.validate(c)
  if (Result.isFailure(r)) throw r.failure
  return r.success
}

/** Oracle: 1F1B warmup of rank r (semantics.md 3.3). */
export const oneFOneBWarmup = (pp: number, r: number, m: number): number => Math.min(pp - r - 1, m)

/** Oracle: interleaved warmup of rank r in virtual micro-batches (semantics.md 3.4). */
export const interleavedWarmup = (pp: number, v: number, r: number, m: number, n: number, forwardOnly: boolean): number =>
  forwardOnly ? m * v : Math.min((pp - r - 1) * 2 + (v - 1) * n, m * v)

/** The compute letters of a rank's list, e.g. "FFFBFB". */
export const letters = (actions: ReadonlyArray<Action>): string =>
  actions
    .filter((a) => a._tag === "forward" || a._tag === "backward")
    .map((a) => (a._tag === "forward" ? "F" : "B"))
    .join("")

/** A copy of a schedule with one rank's action list replaced. */
export const withRank = (s: Schedule.Schedule, pp: number, actions: ReadonlyArray<Action>): Schedule.Schedule => ({
  ...s,
  ranks: s.ranks.map((r, p) => (p === pp ? actions : r)),
})
