// The distributed optimizer's collectives overlap compute: a chunk's reduce-scatters are issued
// as soon as its last backward of the step has run (Interpreter `chunkDone`), and its
// all-gathers of updated values are awaited just before its first forward of the next step. So
// with an interleaved schedule (vpp 2) every rank's trace shows a gradient reduce-scatter issued
// before its last backward ends (the other chunk's backwards still to run) and an all-gather of
// step 1 still in flight after the first forward of step 2 ended; with one chunk per rank
// (vpp 1) neither can happen (the control: the checks can fail). The steps are unchanged:
// float64 losses equal the replicated optimizer's within 1e-12.
import * as Effect from "effect/Effect"
import { describe, expect, test } from "vitest"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as Trace from "../../src/runtime/Trace.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import type * as RankTrainer from "../../src/train/RankTrainer.js"
import * as Train from "../../src/train/Train.js"

const steps = 2
const parallel = ParallelConfig.make({ world: 4, tp: 1, cp: 1, pp: 2, vpp: 2, ep: 2, etp: 1 })
const oneChunk = ParallelConfig.make({ world: 4, tp: 1, cp: 1, pp: 2, ep: 2, etp: 1 })
const setup = (distributedOptimizer: boolean, on = parallel): RankTrainer.TrainSetup => ({
  parallel: on,
  model: { ...ModelConfig.small, hidden: 16, heads: 4, kvHeads: 2, ffn: 16, moeFfn: 8, seq: 8, vocab: 16, untieEmbeddings: true },
  batch: { microBatch: 1, globalBatch: 8 },
  seed: 9,
  dtype: "float64",
  optimizer: Optimizer.defaults(steps),
  auxLossCoeff: 0.01,
  distributedOptimizer,
})

/** Per rank: whether a gradient reduce-scatter was issued before the end of its last backward of step 1. */
const issuedDuringBackward = (tracer: Trace.Tracer): Array<boolean> =>
  Array.from({ length: parallel.world }, (_, rank) => {
    const mine = tracer.spans.filter((s) => s.rank === rank)
    const firstStep = mine.find((s) => s.category === "step" && s.name === "step 1") as Trace.Span
    const inStep = mine.filter((s) => s.start >= firstStep.start && s.end <= firstStep.end)
    const lastBackwardEnd = Math.max(...inStep.filter((s) => s.category === "compute" && s.name.startsWith("backward")).map((s) => s.end))
    return inStep.some((s) => s.category === "comm" && s.name.startsWith("reduceScatter") && s.start < lastBackwardEnd)
  })

/** Per rank: whether an all-gather issued in step 1 completed after the end of step 2's first forward. */
const gatheredDuringForward = (tracer: Trace.Tracer): Array<boolean> =>
  Array.from({ length: parallel.world }, (_, rank) => {
    const mine = tracer.spans.filter((s) => s.rank === rank)
    const [first, second] = ["step 1", "step 2"].map((name) => mine.find((s) => s.category === "step" && s.name === name) as Trace.Span) as [Trace.Span, Trace.Span]
    const forwards = mine.filter((s) => s.category === "compute" && s.name.startsWith("forward") && s.start >= second.start).sort((a, b) => a.start - b.start)
    const firstForwardEnd = (forwards[0] as Trace.Span).end
    return mine.some((s) => s.category === "comm" && s.name.startsWith("allGather") && s.start <= first.end && s.end > firstForwardEnd)
  })

describe("distributed optimizer overlap", () => {
  test("reduce-scatters travel during the other chunk's backwards, all-gathers during the next step's first forwards; the steps are unchanged", async () => {
    const tracer = new Trace.Tracer()
    const distributed = await Effect.runPromise(Train.run(setup(true), { steps, tracer }))
    expect(issuedDuringBackward(tracer)).toEqual([true, true, true, true])
    expect(gatheredDuringForward(tracer)).toEqual([true, true, true, true])
    const control = new Trace.Tracer()
    await Effect.runPromise(Train.run(setup(true, oneChunk), { steps, tracer: control }))
    expect(issuedDuringBackward(control)).toEqual([false, false, false, false])
    expect(gatheredDuringForward(control)).toEqual([false, false, false, false])
    const replicated = await Effect.runPromise(Train.run(setup(false), { steps }))
    distributed.forEach((s, i) => expect(Math.abs(s.loss - (replicated[i] as Train.StepSummary).loss)).toBeLessThan(1e-12 * Math.abs(s.loss)))
  }, 120_000)
})
