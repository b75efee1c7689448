// `pleat train --precision bf16`: mixed precision over fp32 master weights.
//
// - It learns: the default model and mapping (8 ranks, local backend) trained for 100 steps in
//   bf16 ends below half of ln(vocab) (measured: 0.28 against ln(32) / 2 = 1.73; the fp32 run
//   starts at 3.62).
// - Its first-step loss equals the fp32 run's within a bf16 tolerance: the first step runs
//   from the same fp32 initial weights, so the loss differs only by the rounding of the
//   weights and activations to bf16 (unit roundoff 2^-8 = 3.9e-3 per rounding). Measured over
//   seeds 1..12 of the default model: relative difference 3.9e-5 to 3.8e-4 in the loss, 1e-4
//   to 4.9e-3 in the gradient norm. The bounds are 2e-3 relative for the loss (five times the
//   worst measured, half a bf16 unit roundoff) and 2e-2 for the gradient norm (four times),
//   and the losses must differ (a run that skipped the rounding gives the fp32 loss exactly).
// - In a bf16 training step every non-scalar forward output that a tape records outside its
//   fp32 region is a bf16 value, the fp32 region (the router) really holds non-bf16 values,
//   and an fp32 step rounds nothing.
// - The setup travels as data: bf16 on the threads backend gives the local backend's losses
//   bit for bit on 2 ranks (tp 2, ep 2); on MPI processes (2 ranks, tp 2; skipped without mpirun or the
//   MPI addon) the local losses too (a sum of two terms has one order), which differ from the
//   fp32 run's (so bf16 did reach the processes).
import * as Effect from "effect/Effect"
import { afterAll, describe, expect, test } from "vitest"
import { missing, mpirun } from "../comm/mpi/mpirun.js"
import { local, losses } from "./mpiKit.js"
import * as TrainOptions from "../../src/cli/TrainOptions.js"
import * as ThreadsJob from "../../src/runtime/ThreadsJob.js"
import type { Node } from "../../src/tensor/Tape.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Bf16Round from "../../src/tensor/kernels/Bf16Round.js"
import type * as RankTrainer from "../../src/train/RankTrainer.js"
import * as Train from "../../src/train/Train.js"
import { pleatMain as main } from "../support/pleatProcess.js"

/** The setup `pleat train` builds from these flags. */
const setupOf = (argv: ReadonlyArray<string>): RankTrainer.TrainSetup => {
  const r = TrainOptions.resolve(argv)
  if (r === "help") throw new Error("unexpected help")
  return r.setup
}

const relative = (a: number, b: number) => Math.abs(a - b) / Math.abs(b)

/** A 2-rank mapping: tp 2, ep 2 (the default one has 8 ranks). */
const twoRanks = ["--world", "2", "--tp", "2", "--cp", "1", "--pp", "1", "--ep", "2"]

afterAll(() => ThreadsJob.shutdown())

describe("--precision bf16", () => {
  test("the default model learns in 100 steps, and its first-step loss is the fp32 run's within 2e-3", async () => {
    const bf16 = setupOf(["--precision", "bf16", "--steps", "100"])
    const fp32 = setupOf(["--steps", "100"])
    expect(bf16.precision).toBe("bf16")
    expect(bf16.dtype).toBe("float32")
    const first32 = (await Effect.runPromise(Train.run(fp32, { steps: 1 })))[0] as Train.StepSummary
    const run = await Effect.runPromise(Train.run(bf16, { steps: 100 }))
    const first16 = run[0] as Train.StepSummary
    const last = run[run.length - 1] as Train.StepSummary
    expect(run.length).toBe(100)
    expect(last.loss, `final loss ${last.loss}`).toBeLessThan(Math.log(bf16.model.vocab) / 2)
    expect(relative(first16.loss, first32.loss), `first-step loss ${first16.loss} (bf16) vs ${first32.loss} (fp32)`).toBeLessThan(2e-3)
    expect(first16.loss).not.toBe(first32.loss)
    expect(relative(first16.gradNorm, first32.gradNorm), `first-step gradient norm ${first16.gradNorm} (bf16) vs ${first32.gradNorm} (fp32)`).toBeLessThan(2e-2)
  }, 120_000)

  test("every recorded non-scalar activation outside the fp32 region is a bf16 value; the router's region is not rounded; fp32 rounds nothing", async () => {
    const original = Tape.Tape.prototype.record
    const seen: Array<{ op: string; precision: string; rounded: boolean; rank: number; exact: boolean }> = []
    Tape.Tape.prototype.record = function (this: Tape.Tape, node: Node) {
      const data = node.output.data
      seen.push({ op: node.op, precision: this.precision, rounded: this.roundsToBf16, rank: node.output.rank, exact: data instanceof Float32Array && Bf16Round.isExact(data) })
      original.call(this, node)
    }
    try {
      await Effect.runPromise(Train.run(setupOf(["--precision", "bf16", "--steps", "1"]), { steps: 1 }))
      const bf16 = seen.splice(0)
      await Effect.runPromise(Train.run(setupOf(["--steps", "1"]), { steps: 1 }))
      const fp32 = seen.splice(0)
      expect(bf16.length).toBeGreaterThan(100)
      expect(bf16.every((s) => s.precision === "bf16")).toBe(true)
      const rounded = bf16.filter((s) => s.rounded && s.rank > 0)
      const wrong = rounded.filter((s) => !s.exact).map((s) => s.op)
      expect(wrong, `ops whose outputs are not bf16: ${[...new Set(wrong)].join(", ")}`).toEqual([])
      // The router runs in the fp32 region: its matmul (the logits) and routing are there, not bf16.
      const region = bf16.filter((s) => !s.rounded)
      expect(region.some((s) => s.op === "matmul" && !s.exact)).toBe(true)
      expect(rounded.length).toBeGreaterThan(region.length)
      // The same step in fp32: never rounded, and its activations are not bf16 values.
      expect(fp32.every((s) => s.precision === "fp32" && !s.rounded)).toBe(true)
      expect(fp32.filter((s) => s.rank > 0 && !s.exact).length).toBeGreaterThan(rounded.length / 2)
    } finally {
      Tape.Tape.prototype.record = original
    }
  }, 60_000)

  test("on the threads backend: the local backend's losses, bit for bit (2 ranks, tp 2, ep 2)", async () => {
    const setup = setupOf(["--precision", "bf16", ...twoRanks, "--steps", "2"])
    expect(setup.parallel.world).toBe(2)
    const local = await Effect.runPromise(Train.run(setup, { steps: 2, backend: "local" }))
    const threads = await Effect.runPromise(Train.run(setup, { steps: 2, backend: "threads" }))
    expect(threads.map((s) => s.loss)).toEqual(local.map((s) => s.loss))
    expect(threads.map((s) => s.gradNorm)).toEqual(local.map((s) => s.gradNorm))
  }, 60_000)
})

const why = missing()

describe.skipIf(why !== undefined)("--precision bf16 on MPI processes", () => {
  test("2 processes (tp 2) train as one process does", async () => {
    const argv = ["--precision", "bf16", ...twoRanks, "--layers", "2", "--steps", "2", "--log", "json", "--seed", "5"]
    const run = await mpirun(2, [main, "train", ...argv], 120_000)
    expect(run.code, run.stderr).toBe(0)
    const got = losses(run.stdout)
    const want = await local(argv)
    expect(got).toHaveLength(2)
    const fp32 = await local(argv.slice(2))
    // A sum of two is the same in any order: bit for bit, and not the fp32 run's losses.
    expect(got).toEqual(want)
    got.forEach((x, i) => expect(x).not.toBe(fp32[i]))
  }, 180_000)
})
