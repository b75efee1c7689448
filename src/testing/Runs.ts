/**
 * Runs: the fast-check parameters every check of pleat/testing takes: how many cases, which seed
 * (to replay a failure), and the failing case's own error in the report.
 */
import type fc from "fast-check"

/**
 * What a caller may set.
 * @category models
 */
export interface RunOptions {
  readonly numRuns?: number | undefined
  readonly seed?: number | undefined
}

/**
 * fast-check's parameters for `options`, `defaultRuns` cases unless it says otherwise.
 * @category constructors
 */
export const parameters = <T>(options: RunOptions, defaultRuns: number): fc.Parameters<T> => ({
  numRuns: options.numRuns ?? defaultRuns,
  includeErrorInReport: true,
  ...(options.seed === undefined ? {} : { seed: options.seed }),
})
