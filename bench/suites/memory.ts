/**
 * memory: does a long training run hold its memory flat once warmed up?
 *
 * Trains a small job (2 layers, hidden 16, 2 ranks pp 2, the local backend) for `steps` steps
 * in this process, as `pleat train` does (summaries streamed through onStep, none kept), and
 * every `every` steps runs a full garbage collection and samples the process's resident set
 * size and the V8 heap in use. Each growth row is the least-squares slope of the samples after
 * warm-up (the first `warmup` steps), per 1,000 steps; the target is 0. No limit: nothing
 * measured bounds a growth. The resident set moves in steps of 10 to 30 MiB when V8 resizes
 * its heap or the allocator returns pages, so its slope swings from run to run; the heap row
 * (objects the run holds, plus compiled code) is the sharper one.
 *
 * It is the bench row of issue 11 item 5. The 2,000-step figure of the default model comes
 * from `node scripts/rss-check.mjs`, which samples a `pleat train` process from outside
 * (7 minutes and more); this suite takes 1.5 to 3 minutes (1,200 steps, more when the machine
 * is shared).
 */
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import * as Effect from "effect/Effect"
import * as TrainOptions from "../../dist/cli/TrainOptions.js"
import * as Train from "../../dist/train/Train.js"
import { type BenchContext, type BenchRecord, record } from "../harness.js"

const steps = 1200
const warmup = 300
const every = 20
const flags = ["--world", "2", "--tp", "1", "--cp", "1", "--pp", "2", "--ep", "1", "--layers", "2", "--hidden", "16", "--seq", "8", "--global-batch", "4"]

/** A full garbage collection, also when node runs without --expose-gc. */
const collect = (): (() => void) => {
  setFlagsFromString("--expose-gc")
  return runInNewContext("gc") as () => void
}

/** The least-squares slope of `y` against `x`, per 1,000 of `x`. */
const growthPer1000 = (samples: ReadonlyArray<{ readonly step: number; readonly value: number }>): number => {
  const n = samples.length
  const mx = samples.reduce((a, s) => a + s.step, 0) / n
  const my = samples.reduce((a, s) => a + s.value, 0) / n
  const sxy = samples.reduce((a, s) => a + (s.step - mx) * (s.value - my), 0)
  const sxx = samples.reduce((a, s) => a + (s.step - mx) ** 2, 0)
  return (sxy / sxx) * 1000
}

const mib = (bytes: number) => bytes / 2 ** 20

export default async function run(ctx: BenchContext): Promise<ReadonlyArray<BenchRecord>> {
  const resolved = TrainOptions.resolve([...flags, "--steps", String(steps)])
  if (resolved === "help") return []
  const gc = collect()
  const rss: Array<{ step: number; value: number }> = []
  const heap: Array<{ step: number; value: number }> = []
  const started = performance.now()
  await Effect.runPromise(
    Train.run(resolved.setup, {
      steps,
      retainSummaries: false,
      onStep: (summary) => {
        const step = summary.step + 1
        if (step % every !== 0) return
        // After a full collection: what the run holds, not how much garbage it has made.
        gc()
        const m = process.memoryUsage()
        heap.push({ step, value: mib(m.heapUsed) })
        rss.push({ step, value: mib(m.rss) })
        if (step % 100 === 0) ctx.log(`memory: step ${step}: heap ${mib(m.heapUsed).toFixed(2)} MiB, rss ${mib(m.rss).toFixed(1)} MiB`)
      },
    }),
  )
  ctx.log(`memory: ${steps} steps in ${((performance.now() - started) / 1000).toFixed(1)} s`)
  const warm = <A extends { readonly step: number }>(samples: ReadonlyArray<A>) => samples.filter((s) => s.step > warmup)
  const job = `2 layers hidden 16, 2 ranks pp2, local, steps ${warmup + 1}-${steps}`
  const at = (samples: ReadonlyArray<{ readonly value: number }>, i: number) => samples[i < 0 ? samples.length + i : i]?.value ?? Number.NaN
  return [
    record(ctx, { case: job, metric: "resident memory growth", value: growthPer1000(warm(rss)), unit: "MiB/1k steps", target: 0 }),
    record(ctx, { case: job, metric: "V8 heap growth (after GC)", value: growthPer1000(warm(heap)), unit: "MiB/1k steps", target: 0 }),
    record(ctx, { case: job, metric: "resident memory after warm-up", value: at(warm(rss), 0), unit: "MiB" }),
    record(ctx, { case: job, metric: "resident memory at the end", value: at(rss, -1), unit: "MiB" }),
  ]
}
