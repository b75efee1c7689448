/**
 * train: the default training job (npm start's model and mapping) on the local backend.
 *
 *   tokens/s and achieved model FLOP/s against the FMA peak of one core measured in the same
 *   run (the local backend runs every rank on this thread, so one core is the ceiling); the
 *   threads backend's tokens/s against the peak of both cores;
 *   the pipeline bubble of its 1F1B schedule: the schedule's timeline simulated with the
 *   measured mean forward and backward times of a micro-batch chunk, against the theoretical
 *   (P - 1) / (V * M + P - 1). (On the local backend every rank shares one thread, so
 *   wall-clock idle time per rank would measure the thread sharing, not the schedule.)
 */
import * as Effect from "effect/Effect"
import * as Result from "effect/Result"
import * as TrainOptions from "../../src/cli/TrainOptions.js"
import * as Schedule from "../../src/pipeline/Schedule.js"
import * as Simulate from "../../src/pipeline/Simulate.js"
import * as Train from "../../src/train/Train.js"
import * as ThreadsJob from "../../src/runtime/ThreadsJob.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import { type BenchContext, type BenchRecord, record } from "../harness.js"
import { fmaPeak } from "../limits.js"

export default async function run(ctx: BenchContext): Promise<ReadonlyArray<BenchRecord>> {
  const resolved = TrainOptions.resolve(["--steps", "12"])
  if (resolved === "help") return []
  const { setup } = resolved
  const steps = 12
  const summaries = await Effect.runPromise(Train.run(setup, { steps }))
  // Skip the first steps (JIT warm-up).
  const measured = summaries.slice(4)
  const seconds = measured.reduce((a, s) => a + s.seconds, 0)
  const tokens = measured.reduce((a, s) => a + s.tokens, 0)
  const flops = TrainOptions.flopsPerStep(setup.model, setup.batch.globalBatch) * measured.length
  const peak = fmaPeak(1) * 1e9
  const flopsPerToken = flops / tokens
  const s = setup.parallel.sizes
  const vpp = setup.parallel.vpp ?? 1
  const microBatches = ModelConfig.microBatches(setup.batch, s.dp)
  const schedule = Schedule.make({ pp: s.pp, vpp: setup.parallel.vpp, microBatches })
  // Mean compute time of one chunk forward / backward over all ranks and measured steps.
  const ranks = measured.flatMap((x) => x.ranks)
  const computes = microBatches * vpp
  const forward = ranks.reduce((a, r) => a + r.forwardMs, 0) / (ranks.length * computes)
  const backward = ranks.reduce((a, r) => a + r.backwardMs, 0) / (ranks.length * computes)
  const timeline = Simulate.simulate(schedule, { forwardTime: forward, backwardTime: backward })
  const bubble = Result.isSuccess(timeline) ? timeline.success.bubble : Number.NaN
  ctx.log(`train: ${((seconds / measured.length) * 1e3).toFixed(0)} ms/step, forward ${forward.toFixed(1)} ms, backward ${backward.toFixed(1)} ms per chunk`)
  // Threads backend: the same per-step summaries (they stream from the workers), the same
  // warm-up steps skipped; worker start-up happens before the first step and is not counted.
  const threadsSummaries = (await Effect.runPromise(Train.run(setup, { steps, backend: "threads" }))).slice(4)
  const threadsSeconds = threadsSummaries.reduce((a, x) => a + x.seconds, 0) / threadsSummaries.length
  const threadsTokens = setup.batch.globalBatch * setup.model.seq
  const label = `default model (${setup.model.layers} layers, ${setup.model.experts} experts top-${setup.model.topk}), 8 ranks tp2 cp2 pp2 ep2, local`
  await ThreadsJob.shutdown()
  return [
    record(ctx, { case: label, metric: "throughput", value: tokens / seconds, unit: "tokens/s", limit: peak / flopsPerToken }),
    record(ctx, { case: label, metric: "model FLOP/s", value: flops / seconds / 1e9, unit: "GFLOP/s", limit: peak / 1e9 }),
    record(ctx, { case: label.replace("local", "threads"), metric: "throughput", value: threadsTokens / threadsSeconds, unit: "tokens/s", limit: (2 * peak) / flopsPerToken }),
    record(ctx, {
      case: `pipeline bubble, 1F1B P ${s.pp} M ${microBatches} (simulated with measured times)`,
      metric: "bubble",
      value: bubble,
      unit: "fraction",
      limit: Simulate.bubbleFraction(s.pp, vpp, microBatches),
    }),
  ]
}
