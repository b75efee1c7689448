/**
 * harness: what every bench suite shares. A suite measures something, measures the limit that
 * bounds it in the same run (bench/limits.ts), and returns records `value / limit`, so a
 * number is always read against this machine's own ceiling, not a data sheet.
 *
 * Two reference numbers, never mixed: `limit` is a ceiling (or, for a time, a floor) measured
 * in the same run (a memcpy of the same bytes, the FMA peak, the engine's own cheapest
 * collective); `target` is a number someone chose or derived on paper (an issue's budget, a
 * tuned threshold, a formula). A row without a measured ceiling has no limit and no ratio.
 *
 * Timing is tinybench's: `measure` runs one task for a time budget after a warmup and returns
 * the mean seconds per call. Calls shorter than a few microseconds are batched (several calls
 * per timed sample) so the timer's own cost does not inflate them.
 */
import { Bench } from "tinybench"

/**
 * One result line. `ratio = value / limit` (null without a limit); with `--json` it is printed
 * as one JSON object per line with exactly these keys in this order, absent numbers as null.
 * @category models
 */
export interface BenchRecord {
  /** Suite name, as given to `npm run bench -- SUITE`. */
  readonly suite: string
  /** What was measured, including its size ("axpy-f32 4MiB"). */
  readonly case: string
  /** Which quantity ("bandwidth", "throughput ..."). */
  readonly metric: string
  readonly value: number
  readonly unit: string
  /** The ceiling for `value` on this machine, measured in the same run, same unit; null if none. */
  readonly limit: number | null
  /** A chosen or derived reference (budget, tuned threshold, formula), same unit; null if none. */
  readonly target: number | null
  readonly ratio: number | null
}

/**
 * What the runner hands a suite.
 * @category models
 */
export interface BenchContext {
  readonly suite: string
  /** True when the output is JSON lines (suites never print to stdout themselves). */
  readonly json: boolean
  /** Progress messages; they go to stderr so stdout stays machine-readable. */
  readonly log: (message: string) => void
}

/**
 * A suite module's default export.
 * @category models
 */
export type Suite = (ctx: BenchContext) => Promise<ReadonlyArray<BenchRecord>>

/**
 * Options of `measure`.
 * @category configuration
 */
export interface MeasureOptions {
  /** Time budget of the timed phase, in ms (default 300). */
  readonly time?: number
  /** Time budget of the warmup, in ms (default 100). */
  readonly warmupTime?: number
  /** Calls of `fn` per timed sample (default 1); see `batchFor`. */
  readonly batch?: number
}

/**
 * Mean seconds per call of `fn`, timed by tinybench. Throws if the task fails.
 * @category constructors
 */
export const measure = async (name: string, fn: () => void, options: MeasureOptions = {}): Promise<number> => {
  const batch = Math.max(1, Math.floor(options.batch ?? 1))
  const bench = new Bench({ name, time: options.time ?? 300, warmupTime: options.warmupTime ?? 100, throws: true })
  bench.add(
    name,
    batch === 1
      ? fn
      : () => {
          for (let i = 0; i < batch; i++) fn()
        },
  )
  await bench.run()
  const result = bench.tasks[0]?.result
  if (result?.state !== "completed") throw new Error(`bench task ${name} did not complete (${result?.state ?? "missing"})`)
  return result.latency.mean / 1000 / batch
}

/**
 * Calls per sample for a call that moves `bytes`: enough that one sample moves about 1 MiB
 * (at tens of GB/s that is tens of microseconds, far above the timer's resolution).
 * @category configuration
 */
export const batchFor = (bytes: number): number => Math.max(1, Math.floor(2 ** 20 / Math.max(1, bytes)))

/**
 * GB/s (1e9 bytes per second) for `bytes` moved in `seconds`.
 * @category mapping
 */
export const gbPerSecond = (bytes: number, seconds: number): number => bytes / seconds / 1e9

/**
 * A record of this suite, with `ratio` computed and the keys in the documented order.
 * @category constructors
 */
export const record = (
  ctx: BenchContext,
  fields: {
    readonly case: string
    readonly metric: string
    readonly value: number
    readonly unit: string
    readonly limit?: number
    readonly target?: number
  },
): BenchRecord => ({
  suite: ctx.suite,
  case: fields.case,
  metric: fields.metric,
  value: fields.value,
  unit: fields.unit,
  limit: fields.limit ?? null,
  target: fields.target ?? null,
  ratio: fields.limit === undefined ? null : fields.value / fields.limit,
})

/**
 * One JSON line for a record, keys in the documented order whatever object it came from.
 * @category mapping
 */
export const toJsonLine = (r: BenchRecord): string =>
  JSON.stringify({ suite: r.suite, case: r.case, metric: r.metric, value: r.value, unit: r.unit, limit: r.limit, target: r.target, ratio: r.ratio })

/**
 * Mean wall-clock seconds of an asynchronous job over `repeats` runs after one warm-up run
 * (for whole jobs, which tinybench's per-call timing does not fit).
 * @category constructors
 */
export const wallSeconds = async (f: () => Promise<unknown>, repeats: number): Promise<number> => {
  await f()
  const started = performance.now()
  for (let i = 0; i < repeats; i++) await f()
  return (performance.now() - started) / 1000 / repeats
}

/**
 * `n` pseudo-random floats in [-0.05, 0.05) from `seed` (an LCG: the same values every run).
 * @category constructors
 */
export const filled = (n: number, seed: number): Float32Array => {
  const out = new Float32Array(n)
  let s = seed
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0
    out[i] = (s / 4294967296 - 0.5) * 0.1
  }
  return out
}
