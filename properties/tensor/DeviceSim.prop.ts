// Tensors on a device, on the simulated one (sim: separate host buffers behind the device
// interface, the host's kernels): every op with a device path gives the host's bits forward and
// backward, keeps its output in device memory (no download until something reads it on the host),
// and the copies between host and device stay coherent (a value written on the host is what the
// next device op reads). Training on sim equals training on the host, step for step, bit for bit.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as Device from "../../src/tensor/Device.js"
import { simulated } from "../../src/tensor/device/SimulatedRuntime.js"
import type * as DType from "../../src/tensor/DType.js"
import { swiglu } from "../../src/tensor/ops/Activation.js"
import * as Attention from "../../src/tensor/ops/Attention.js"
import { add } from "../../src/tensor/ops/Elementwise.js"
import * as Gather from "../../src/tensor/ops/Gather.js"
import { matmul } from "../../src/tensor/ops/Matmul.js"
import { rmsNorm } from "../../src/tensor/ops/Norm.js"
import * as Rope from "../../src/tensor/ops/Rope.js"
import { sumAll } from "../../src/tensor/ops/Reduce.js"
import { reshape } from "../../src/tensor/ops/Shape.js"
import { to } from "../../src/tensor/ops/Transfer.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import * as ModelConfig from "../../src/train/ModelConfig.js"
import * as Optimizer from "../../src/train/Optimizer.js"
import type * as RankTrainer from "../../src/train/RankTrainer.js"
import * as Train from "../../src/train/Train.js"
import { mappings } from "../train/arbitraries.js"

const sim = Device.sim(0)
const runtime = simulated(0)

const values = (n: number, seed: number): Array<number> => {
  let s = seed
  return Array.from({ length: n }, () => ((s = (s * 48271) % 2147483647) / 2147483647) * 2 - 1)
}

const bits = (t: Tensor.Tensor | undefined): Array<number> => (t === undefined ? [] : Array.from(t.readHost()))

/** `run` on the host and on sim: the device run's `bits` (values and gradients) equal the host's; returns the device run. */
const onHostAndSim = <R extends { readonly bits: ReadonlyArray<Array<number>> }>(run: (device: Device.Device) => R): R => {
  const host = run(Device.cpu)
  const dev = run(sim)
  expect(dev.bits).toEqual(host.bits)
  return dev
}

const dims = fc.record({
  batch: fc.integer({ min: 1, max: 3 }),
  m: fc.integer({ min: 1, max: 9 }),
  n: fc.integer({ min: 1, max: 9 }),
  k: fc.integer({ min: 1, max: 9 }),
  transA: fc.boolean(),
  transB: fc.boolean(),
  sharedB: fc.boolean(),
  dtype: fc.constantFrom<DType.DType>("float32", "float64"),
  seed: fc.integer({ min: 1, max: 100_000 }),
})

describe("tensors on the simulated device", () => {
  test("matmul: the host's bits forward and backward; the output stays in device memory", () => {
    fc.assert(
      fc.property(dims, (d) => {
        const aShape = d.batch > 1 ? [d.batch, d.transA ? d.k : d.m, d.transA ? d.m : d.k] : [d.transA ? d.k : d.m, d.transA ? d.m : d.k]
        const bCore = d.transB ? [d.n, d.k] : [d.k, d.n]
        const bShape = d.sharedB || d.batch === 1 ? bCore : [d.batch, ...bCore]
        const run = (device: Device.Device) => {
          const tape = Tape.make()
          const a = Tensor.fromArray(values(Tensor.sizeOf(aShape), d.seed), aShape, { dtype: d.dtype, tape, requiresGrad: true })
          const b = Tensor.fromArray(values(Tensor.sizeOf(bShape), d.seed + 1), bShape, { dtype: d.dtype, tape, requiresGrad: true })
          const before = { ...runtime.transfers }
          const y = matmul(to(a, device), to(b, device), { transA: d.transA, transB: d.transB })
          const forwardDownloads = runtime.transfers.downloads - before.downloads
          const w = Tensor.fromArray(values(y.size, d.seed + 2), y.shape, { dtype: d.dtype, device })
          tape.backward(sumAll(to(matmulWeighted(y, w), Device.cpu)))
          return { bits: [bits(y), bits(a.grad), bits(b.grad)], resident: y.isResident, device: y.device, forwardDownloads }
        }
        const dev = onHostAndSim(run)
        expect(dev.device).toEqual(sim)
        expect(dev.resident).toBe(true)
        expect(dev.forwardDownloads).toBe(0)
      }),
      { numRuns: 60 },
    )
  })

  test("a chain of device ops (embedding, RMSNorm, matmul, SwiGLU, residual add): the host's bits, forward and every gradient", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 2, max: 7 }),
        fc.constantFrom<DType.DType>("float32", "float64"),
        fc.integer({ min: 1, max: 100_000 }),
        (tokens, hidden, vocab, dtype, seed) => {
          const ids = Int32Array.from(values(tokens, seed + 9).map((v) => Math.floor(((v + 1) / 2) * vocab) % vocab))
          const run = (device: Device.Device) => {
            const tape = Tape.make()
            const leaf = (shape: Array<number>, s: number) => Tensor.fromArray(values(Tensor.sizeOf(shape), s), shape, { dtype, tape, requiresGrad: true })
            const table = leaf([vocab, hidden], seed)
            const norm = leaf([hidden], seed + 1)
            const gate = leaf([hidden, hidden], seed + 2)
            const up = leaf([hidden, hidden], seed + 3)
            const [tableD, normD, gateD, upD] = [table, norm, gate, up].map((t) => to(t, device)) as [Tensor.Tensor, Tensor.Tensor, Tensor.Tensor, Tensor.Tensor]
            const x = Gather.embedding(tableD, ids)
            const h = rmsNorm(x, normD)
            const y = add(x, swiglu(matmul(h, gateD), matmul(h, upD)))
            const flat = reshape(y, [tokens * hidden])
            const loss = sumAll(to(matmulWeighted(flat, Tensor.fromArray(values(flat.size, seed + 5), flat.shape, { dtype, device })), Device.cpu))
            tape.backward(loss)
            return { bits: [bits(y), bits(loss), ...[table, norm, gate, up].map((t) => bits(t.grad))], resident: [x, h, y, flat].map((t) => t.isResident) }
          }
          expect(onHostAndSim(run).resident).toEqual([true, true, true, true])
        },
      ),
      { numRuns: 40 },
    )
  })

  test("attention (causal GQA, float32): the host's bits forward and backward; out stays in device memory", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 }),
        fc.integer({ min: 1, max: 6 }),
        fc.constantFrom([2, 1], [2, 2], [4, 2]),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 100_000 }),
        (b, s, [hq, hkv], d, seed) => {
          const run = (device: Device.Device) => {
            const tape = Tape.make()
            const leaf = (shape: Array<number>, k: number) => Tensor.fromArray(values(Tensor.sizeOf(shape), seed + k), shape, { tape, requiresGrad: true })
            const q = leaf([b, s, hq as number, d], 0)
            const k = leaf([b, s, hkv as number, d], 1)
            const v = leaf([b, s, hkv as number, d], 2)
            const out = Attention.attention(to(q, device), to(k, device), to(v, device))
            tape.backward(sumAll(to(matmulWeighted(out, Tensor.fromArray(values(out.size, seed + 3), out.shape, { device })), Device.cpu)))
            return { bits: [bits(out), ...[q, k, v].map((t) => bits(t.grad))], resident: out.isResident }
          }
          expect(onHostAndSim(run).resident).toBe(true)
        },
      ),
      { numRuns: 30 },
    )
  })

  test("RoPE: the host's bits forward and backward, with and without positions; the output stays in device memory", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 4 }),
        fc.constantFrom<DType.DType>("float32", "float64"),
        fc.boolean(),
        fc.integer({ min: 1, max: 100_000 }),
        (b, s, heads, half, dtype, positioned, seed) => {
          const d = 2 * half
          const positions = positioned ? Int32Array.from({ length: b * s }, (_, i) => (i * 7 + seed) % 11) : undefined
          const run = (device: Device.Device) => {
            const tape = Tape.make()
            const x = Tensor.fromArray(values(b * s * heads * d, seed), [b, s, heads, d], { dtype, tape, requiresGrad: true })
            const y = Rope.rope(to(x, device), { positions })
            tape.backward(sumAll(to(matmulWeighted(y, Tensor.fromArray(values(y.size, seed + 1), y.shape, { dtype, device })), Device.cpu)))
            return { bits: [bits(y), bits(x.grad)], resident: y.isResident }
          }
          expect(onHostAndSim(run).resident).toBe(true)
        },
      ),
      { numRuns: 30 },
    )
  })

  test("host and device copies stay coherent: a value written through data reaches the next device op; readHost keeps the device copy", () => {
    const t = to(Tensor.fromArray([1, 2, 3, 4], [2, 2]), sim)
    expect(t.isResident).toBe(true)
    const before = runtime.transfers.downloads
    expect(Array.from(t.readHost())).toEqual([1, 2, 3, 4])
    expect(runtime.transfers.downloads).toBe(before + 1)
    expect(t.isResident).toBe(true)
    t.data[0] = 10
    expect(t.isResident).toBe(false)
    const eye = to(Tensor.fromArray([1, 0, 0, 1], [2, 2]), sim)
    expect(Array.from(matmul(t, eye).readHost())).toEqual([10, 2, 3, 4])
  })

  test("ops refuse inputs on two devices, naming the op and both devices", () => {
    const a = Tensor.fromArray([1, 2, 3, 4], [2, 2])
    const b = to(a, sim)
    expect(() => matmul(a, b)).toThrow(/matmul.*cpu.*sim:0/)
    expect(() => swiglu(b, to(a, Device.sim(1)))).toThrow(/swiglu.*sim:0.*sim:1/)
  })

  test("to: a tensor already there is itself; the gradient goes back to where the input lives", () => {
    const tape = Tape.make()
    const a = Tensor.fromArray([1, 2, 3], [3], { tape, requiresGrad: true })
    const onDevice = to(a, sim)
    expect(to(onDevice, sim)).toBe(onDevice)
    expect(onDevice.device).toEqual(sim)
    tape.backward(sumAll(to(onDevice, Device.cpu)))
    expect(a.grad?.device).toEqual(Device.cpu)
    expect(bits(a.grad)).toEqual([1, 1, 1])
  })

  test("pleat train's step on sim equals the host's bit for bit (losses and gradient norms), random folded mappings, with and without the distributed optimizer", async () => {
    await fc.assert(
      fc.asyncProperty(
        mappings({ minWorld: 1, maxWorld: 4, folded: true }),
        fc.integer({ min: 1, max: 1000 }),
        fc.constantFrom<DType.DType>("float32", "float64"),
        fc.boolean(),
        async (m, seed, dtype, distributedOptimizer) => {
          const validated = ParallelConfig.validate({ world: m.world, tp: m.tp, cp: m.cp, pp: m.pp, ep: m.ep, etp: m.etp, vpp: m.pp > 1 ? m.vpp : undefined, order: m.order })
          fc.pre(validated._tag === "Success")
          if (validated._tag !== "Success") return
          const steps = 2
          const setup: RankTrainer.TrainSetup = {
            parallel: validated.success,
            model: { ...ModelConfig.small, layers: 4, hidden: 16, heads: 4, kvHeads: 2, ffn: 16, moeFfn: 8, experts: 4, seq: 8, vocab: 16, moeEvery: 2 },
            batch: { microBatch: 1, globalBatch: m.dp * (m.pp > 1 ? 2 * m.pp : 2) },
            seed,
            dtype,
            optimizer: Optimizer.defaults(steps),
            auxLossCoeff: 0.01,
            distributedOptimizer,
          }
          const host = await Effect.runPromise(Train.run(setup, { steps, backend: "local" }))
          const uploads = runtime.transfers.uploads
          const dev = await Effect.runPromise(Train.run({ ...setup, device: "sim" }, { steps, backend: "local" }))
          expect(dev.map((s) => s.loss)).toEqual(host.map((s) => s.loss))
          expect(dev.map((s) => s.gradNorm)).toEqual(host.map((s) => s.gradNorm))
          expect(runtime.transfers.uploads, "rank 0 never used its device").toBeGreaterThan(uploads)
        },
      ),
      { numRuns: 8 },
    )
  })
})

/** sum(y * w) as a product (so the chain's last op is a device op too): y flattened times w. */
const matmulWeighted = (y: Tensor.Tensor, w: Tensor.Tensor): Tensor.Tensor => matmul(reshape(y, [1, y.size]), reshape(w, [y.size, 1]))
