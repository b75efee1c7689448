// Thin weight gradients wait on their accumulator (GradAccumulator's deferred products): over a
// step's micro-batches, a weight's gradient is one product over all their rows, run when the
// accumulator is settled, added into, or holds half its size in rows. Properties: after a settle
// the accumulator holds exactly that one product over the rows in backward order (bit for bit,
// and within float rounding of the per-micro-batch sums it replaces), on the host and on the
// simulated device alike; a gradient added into the accumulator runs the waiting products first
// (the order of additions kept); a clear drops products no one read; and the rows held never
// pass half of the accumulator's size.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Cpu from "../../src/native/Cpu.js"
import * as Device from "../../src/tensor/Device.js"
import { simulated } from "../../src/tensor/device/SimulatedRuntime.js"
import * as GradAccumulator from "../../src/tensor/GradAccumulator.js"
import { matmul } from "../../src/tensor/ops/Matmul.js"
import { to } from "../../src/tensor/ops/Transfer.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"

const values = (n: number, seed: number): Float32Array => {
  let s = seed
  return Float32Array.from({ length: n }, () => ((s = (s * 48271) % 2147483647) / 2147483647) * 2 - 1)
}

/** x_i [k_i, m] @ W [m, n] for each micro-batch, backward with g_i, W's gradient into `acc`. */
const accumulate = (w: Float32Array, m: number, n: number, rows: ReadonlyArray<number>, seed: number, device: Device.Device, acc: GradAccumulator.Accumulator) => {
  const xs: Array<Float32Array> = []
  const gs: Array<Float32Array> = []
  rows.forEach((k, i) => {
    const tape = Tape.make()
    const leaf = tape.parameter(to(Tensor.fromStorage(w, [m, n]), device), acc)
    const x = values(k * m, seed + 2 * i)
    const g = values(k * n, seed + 2 * i + 1)
    xs.push(x)
    gs.push(g)
    const y = matmul(to(Tensor.fromStorage(x, [k, m]), device), leaf)
    tape.backward(y, { gradient: to(Tensor.fromStorage(g, [k, n]), device) })
  })
  return { xs, gs }
}

const joined = (parts: ReadonlyArray<Float32Array>): Float32Array => {
  const out = new Float32Array(parts.reduce((p, q) => p + q.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}

const shapes = fc.record({
  m: fc.integer({ min: 32, max: 96 }),
  n: fc.integer({ min: 32, max: 96 }),
  rows: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 6 }),
  seed: fc.integer({ min: 1, max: 1e6 }),
  cleared: fc.boolean(),
})

describe("deferred weight gradients", () => {
  test("after a settle: one product over all the rows, bit for bit (host and sim), within rounding of the per-micro-batch sums", () => {
    fc.assert(
      fc.property(shapes, ({ m, n, rows, seed, cleared }) => {
        const total = rows.reduce((p, q) => p + q, 0)
        fc.pre(8 * 3 * (m + n) <= m * n && 2 * total * (m + n) < m * n)
        const w = values(m * n, seed + 99)
        const start = values(m * n, seed + 98)
        const host = Float32Array.from(start)
        if (cleared) GradAccumulator.clear(host)
        const { xs, gs } = accumulate(w, m, n, rows, seed, Device.cpu, host)
        // What waits is counted (RankMemory's activation peak), and gone once run.
        expect(GradAccumulator.heldBytes([host])).toBe(4 * total * (m + n))
        GradAccumulator.settle(host)
        expect(GradAccumulator.heldBytes([host])).toBe(0)
        // The one product: start (or nothing, cleared) + x^T g over the joined rows.
        const want = cleared ? new Float32Array(m * n) : Float32Array.from(start)
        Cpu.matmul({ a: joined(xs), b: joined(gs), out: want, batch: 1, m, n, k: total, transA: true, transB: false, strideA: 0, strideB: 0, accumulate: !cleared })
        expect(Array.from(host)).toEqual(Array.from(want))
        // The per-micro-batch sums it replaces, within rounding.
        const each = cleared ? new Float32Array(m * n) : Float32Array.from(start)
        xs.forEach((x, i) =>
          Cpu.matmul({ a: x, b: gs[i] as Float32Array, out: each, batch: 1, m, n, k: rows[i] as number, transA: true, transB: false, strideA: 0, strideB: 0, accumulate: true }),
        )
        each.forEach((v, i) => expect(Math.abs(v - (host[i] as number))).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(v))))
        // The simulated device defers the same way: the host's bits.
        const runtime = simulated(0)
        const dev = runtime.upload(start)
        if (cleared) GradAccumulator.clear(dev)
        accumulate(w, m, n, rows, seed, Device.sim(0), dev)
        GradAccumulator.settle(dev)
        const back = new Float32Array(m * n)
        runtime.download(dev, back)
        expect(Array.from(back)).toEqual(Array.from(host))
      }),
      { numRuns: 60 },
    )
  })

  test("an added gradient runs the waiting products first; a clear drops them; the rows held stay under half the accumulator", () => {
    fc.assert(
      fc.property(shapes, ({ m, n, rows, seed }) => {
        fc.pre(8 * 3 * (m + n) <= m * n)
        const w = values(m * n, seed + 5)
        const acc = new Float32Array(m * n)
        GradAccumulator.clear(acc)
        const { xs, gs } = accumulate(w, m, n, rows, seed, Device.cpu, acc)
        // Nothing has run while the rows held stay under half of out: the accumulator is still unwritten.
        const held = rows.reduce((p, q) => p + q, 0)
        if (2 * held * (m + n) < m * n) expect(acc.every((v) => v === 0)).toBe(true)
        const extra = values(m * n, seed + 7)
        GradAccumulator.addGradient(acc, Tensor.fromStorage(extra, [m, n]))
        const want = new Float32Array(m * n)
        Cpu.matmul({ a: joined(xs), b: joined(gs), out: want, batch: 1, m, n, k: held, transA: true, transB: false, strideA: 0, strideB: 0, accumulate: false })
        if (2 * held * (m + n) < m * n) expect(Array.from(acc)).toEqual(Array.from(want, (v, i) => Math.fround(v + (extra[i] as number))))
        // A new step's clear drops what is waiting: a settle then gives zeros.
        accumulate(w, m, n, rows, seed + 1, Device.cpu, acc)
        GradAccumulator.clear(acc)
        GradAccumulator.settle(acc)
        expect(acc.every((v) => v === 0)).toBe(true)
      }),
      { numRuns: 60 },
    )
  })
})

describe("training with deferred weight gradients", () => {
  test("a float32 pipeline whose q and o gradients defer (hidden 128, 8 tokens a micro-batch; pp 2, with and without vpp) trains as float64 does, within float32 rounding; on sim, the host's bits", async () => {
    const { Effect } = await import("effect")
    const ParallelConfig = await import("../../src/mapping/ParallelConfig.js")
    const ModelConfig = await import("../../src/train/ModelConfig.js")
    const Optimizer = await import("../../src/train/Optimizer.js")
    const Train = await import("../../src/train/Train.js")
    // 2 and 3 micro-batches: fewer rows than the flush at half the accumulator, so only the settle runs them.
    for (const [seed, microBatches, vpp] of [
      [3, 2, 2],
      [17, 3, undefined],
    ] as const) {
      const setup = (dtype: "float32" | "float64") => ({
        parallel: ParallelConfig.make({ world: 2, pp: 2, ...(vpp === undefined ? {} : { vpp }) }),
        model: { ...ModelConfig.small, layers: 4, hidden: 128, heads: 4, kvHeads: 2, ffn: 64, moeFfn: 16, experts: 4, seq: 8, vocab: 32, moeEvery: 2 },
        batch: { microBatch: 1, globalBatch: microBatches },
        seed,
        dtype,
        optimizer: Optimizer.defaults(3),
        auxLossCoeff: 0.01,
      })
      const f32 = await Effect.runPromise(Train.run(setup("float32"), { steps: 3 }))
      const f64 = await Effect.runPromise(Train.run(setup("float64"), { steps: 3 }))
      f32.forEach((s, i) => expect(Math.abs(s.loss - (f64[i]?.loss as number))).toBeLessThanOrEqual(1e-4 * Math.abs(s.loss)))
      f32.forEach((s, i) => expect(Math.abs(s.gradNorm - (f64[i]?.gradNorm as number))).toBeLessThanOrEqual(1e-3 * Math.abs(s.gradNorm)))
      const sim = await Effect.runPromise(Train.run({ ...setup("float32"), device: "sim" as const }, { steps: 3 }))
      expect(sim.map((s) => [s.loss, s.gradNorm])).toEqual(f32.map((s) => [s.loss, s.gradNorm]))
    }
  }, 120_000)
})
