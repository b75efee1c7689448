// What stays in device memory on the simulated device: the element-wise ops with the broadcasts
// the kernels take (equal shapes, a suffix such as a bias, one value a row such as the experts'
// probs), their gradients (the sums that undo a broadcast) and scale give the host's bits and
// never download; strided broadcasts read the host copy and are still the host's bits. A
// collective of a group of one is its input's values on the device, forward and backward, with
// no round trip through the host; a group of one on the host, and a group of two on the device,
// still meet the communicator. A transpose is a copy on the device (no download either way).
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as VocabParallel from "../../src/attention/VocabParallel.js"
import * as Differentiable from "../../src/comm/Differentiable.js"
import * as Group from "../../src/comm/Group.js"
import * as Job from "../../src/runtime/Job.js"
import * as Device from "../../src/tensor/Device.js"
import * as Place from "../../src/tensor/device/Place.js"
import { simulated } from "../../src/tensor/device/SimulatedRuntime.js"
import * as Bf16Round from "../../src/tensor/kernels/Bf16Round.js"
import type * as DType from "../../src/tensor/DType.js"
import { add, div, mul, scale, sub } from "../../src/tensor/ops/Elementwise.js"
import { matmul } from "../../src/tensor/ops/Matmul.js"
import { sum, sumAll } from "../../src/tensor/ops/Reduce.js"
import { concat, reshape, split, transpose } from "../../src/tensor/ops/Shape.js"
import { to } from "../../src/tensor/ops/Transfer.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"

const sim = Device.sim(0)
const runtime = simulated(0)

const values = (n: number, seed: number, away = 0): Array<number> => {
  let s = seed
  return Array.from({ length: n }, () => {
    const v = ((s = (s * 48271) % 2147483647) / 2147483647) * 2 - 1
    return away > 0 && Math.abs(v) < away ? v + Math.sign(v || 1) * away : v
  })
}
const bits = (t: Tensor.Tensor | undefined): Array<number> => (t === undefined ? [] : Array.from(t.readHost()))
/** A scalar that weighs every element differently, summed on the host (so every gradient element differs). */
const weighted = (y: Tensor.Tensor, seed: number): Tensor.Tensor =>
  sumAll(to(matmul(reshape(y, [1, y.size]), reshape(Tensor.fromArray(values(y.size, seed), [y.size, 1], { dtype: y.dtype, device: y.device }), [y.size, 1])), Device.cpu))

/** What a test's run reports of one device. */
interface Run {
  readonly shape?: ReadonlyArray<number>
  readonly bits: ReadonlyArray<ReadonlyArray<number | string>>
  readonly resident: boolean
  readonly forwardDownloads: number
}

/**
 * `run` on the host and on sim: the same shape and bits, sim's result resident, and (unless
 * `downloads` is false) no download in sim's forward; sim's run, for the caller's further checks.
 */
const expectHostsOnSim = <R extends Run>(run: (device: Device.Device) => R, downloads = true): R => {
  const host = run(Device.cpu)
  const dev = run(sim)
  expect(dev.shape).toEqual(host.shape)
  expect(dev.bits).toEqual(host.bits)
  expect(dev.resident).toBe(true)
  if (downloads) expect(dev.forwardDownloads).toBe(0)
  return dev
}

const ops = { add, sub, mul, div } as const
type OpName = keyof typeof ops

/** Shapes of b against a = [rows, width]: each broadcast the kernels take, and a strided one ([1, width] on [rows, width, 1]'s transpose is general). */
const broadcasts = ["same", "suffix", "rows", "general"] as const
const bShapeOf = (kind: (typeof broadcasts)[number], rows: number, width: number): { a: Array<number>; b: Array<number> } =>
  kind === "same"
    ? { a: [rows, width], b: [rows, width] }
    : kind === "suffix"
      ? { a: [rows, width], b: [width] }
      : kind === "rows"
        ? { a: [rows, width], b: [rows, 1] }
        : { a: [rows, 1, width], b: [1, 3, 1] }

describe("what stays on the simulated device", () => {
  test("add, sub, mul, div with each broadcast, and scale: the host's bits forward and backward; the kernels' broadcasts never download", () => {
    fc.assert(
      fc.property(
        fc.constantFrom<OpName>("add", "sub", "mul", "div"),
        fc.constantFrom(...broadcasts),
        fc.integer({ min: 1, max: 90 }),
        fc.integer({ min: 1, max: 70 }),
        fc.constantFrom<DType.DType>("float32", "float64"),
        fc.integer({ min: 1, max: 100_000 }),
        fc.double({ min: -3, max: 3, noNaN: true }),
        (name, kind, rows, width, dtype, seed, s) => {
          const shapes = bShapeOf(kind, rows, width)
          const run = (device: Device.Device) => {
            const tape = Tape.make()
            const a = Tensor.fromArray(values(Tensor.sizeOf(shapes.a), seed), shapes.a, { dtype, tape, requiresGrad: true })
            // Divisors away from 0.
            const b = Tensor.fromArray(values(Tensor.sizeOf(shapes.b), seed + 1, name === "div" ? 0.25 : 0), shapes.b, { dtype, tape, requiresGrad: true })
            const [aD, bD] = [to(a, device), to(b, device)] as const
            const before = runtime.transfers.downloads
            const y = scale(ops[name](aD, bD), s)
            const forwardDownloads = runtime.transfers.downloads - before
            const loss = weighted(y, seed + 2)
            const beforeBackward = runtime.transfers.downloads
            tape.backward(loss)
            // Counted before `bits` reads the values on the host.
            const backwardDownloads = runtime.transfers.downloads - beforeBackward
            return { resident: y.isResident, forwardDownloads, backwardDownloads, bits: [bits(y), bits(a.grad), bits(b.grad)] }
          }
          const dev = expectHostsOnSim(run, kind !== "general")
          if (kind !== "general") {
            // The gradients of a and b reach the host (to(), leaves on the host: one download, or one each); nothing else.
            expect(dev.backwardDownloads).toBeLessThanOrEqual(2)
          }
        },
      ),
      { numRuns: 120 },
    )
  })

  test("transpose of any two dims: the host's bits forward and backward, and no download either way", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 4 }),
        fc.nat(),
        fc.nat(),
        fc.constantFrom<DType.DType>("float32", "float64"),
        fc.integer({ min: 1, max: 100_000 }),
        (shape, i, j, dtype, seed) => {
          const [d0, d1] = [i % shape.length, j % shape.length]
          const run = (device: Device.Device) => {
            const tape = Tape.make()
            const a = Tensor.fromArray(values(Tensor.sizeOf(shape), seed), shape, { dtype, tape, requiresGrad: true })
            const aD = to(a, device)
            const before = runtime.transfers.downloads
            const y = transpose(aD, d0, d1)
            // The gradient comes from a product on the device, so the backward's transpose starts there too.
            const z = matmul(reshape(y, [1, y.size]), reshape(to(Tensor.fromArray(values(y.size, seed + 2), [y.size, 1], { dtype }), device), [y.size, 1]))
            const forwardDownloads = runtime.transfers.downloads - before
            const beforeBackward = runtime.transfers.downloads
            tape.backward(sumAll(to(z, Device.cpu)))
            const backwardDownloads = runtime.transfers.downloads - beforeBackward
            return { shape: y.shape, resident: y.isResident, forwardDownloads, backwardDownloads, bits: [bits(y), bits(a.grad)] }
          }
          const dev = expectHostsOnSim(run)
          // The loss's one element, and the leaf's gradient (a host leaf): nothing else.
          expect(dev.backwardDownloads).toBeLessThanOrEqual(2)
        },
      ),
      { numRuns: 80 },
    )
  })

  test("concat and split along any dim (full recompute's packing): the host's bits forward and backward, and no download either way", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 3 }),
        fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 3 }),
        fc.nat(),
        fc.constantFrom<DType.DType>("float32", "float64"),
        fc.integer({ min: 1, max: 100_000 }),
        (shape, widths, i, dtype, seed) => {
          const d = i % shape.length
          const run = (device: Device.Device) => {
            const tape = Tape.make()
            const leaves = widths.map((w, j) => {
              const s = shape.map((x, k) => (k === d ? w : x))
              return Tensor.fromArray(values(Tensor.sizeOf(s), seed + j), s, { dtype, tape, requiresGrad: true })
            })
            const onDevice = leaves.map((t) => to(t, device))
            const before = runtime.transfers.downloads
            const joined = concat(onDevice, d)
            const pieces = split(joined, widths, d)
            // Each piece weighed by a product on the device: the gradients start there.
            const z = pieces.map((p, j) =>
              matmul(reshape(p, [1, p.size]), reshape(to(Tensor.fromArray(values(p.size, seed + 9 + j), [p.size, 1], { dtype }), device), [p.size, 1])),
            )
            const forwardDownloads = runtime.transfers.downloads - before
            const beforeBackward = runtime.transfers.downloads
            tape.backward(sumAll(to(concat(z, 0), Device.cpu)))
            const backwardDownloads = runtime.transfers.downloads - beforeBackward
            return {
              resident: [joined, ...pieces].every((t) => t.size === 0 || t.isResident),
              forwardDownloads,
              backwardDownloads,
              bits: [bits(joined), ...pieces.map(bits), ...leaves.map((t) => bits(t.grad))],
            }
          }
          const dev = expectHostsOnSim(run)
          // The loss's values and each leaf's gradient (host leaves): nothing else.
          expect(dev.backwardDownloads).toBeLessThanOrEqual(1 + widths.length)
        },
      ),
      { numRuns: 80 },
    )
  })

  test("a sum over the last dim on the device (the combine's weight gradient): the host's bits forward and backward, a -0 kept, no download either way", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 3 }), fc.boolean(), fc.integer({ min: 1, max: 100_000 }), (shape, keepDim, seed) => {
        const run = (device: Device.Device) => {
          const tape = Tape.make()
          // Some exact zeros of both signs, so the gradient's -0 (1 * g) is tested too.
          const xs = values(Tensor.sizeOf(shape), seed).map((v, i) => (i % 5 === 0 ? (i % 2 === 0 ? 0 : -0) : v))
          const a = Tensor.fromArray(xs, shape, { dtype: "float32", tape, requiresGrad: true })
          const aD = to(a, device)
          const before = runtime.transfers.downloads
          const y = sum(aD, -1, keepDim)
          // An element-wise product (no GEMM's sum from +0): y's gradient is w, its -0s included.
          const w = to(
            Tensor.fromArray(
              values(y.size, seed + 3).map((v, i) => (i % 3 === 0 ? -0 : v)),
              y.shape,
              { dtype: "float32" },
            ),
            device,
          )
          const z = mul(y, w)
          const forwardDownloads = runtime.transfers.downloads - before
          tape.backward(sumAll(to(z, Device.cpu)))
          return { resident: y.isResident, shape: y.shape, forwardDownloads, bits: [bits(y), bits(a.grad)].map((b) => b.map((v) => (Object.is(v, -0) ? "-0" : v))) }
        }
        expectHostsOnSim(run)
      }),
      { numRuns: 80 },
    )
  })

  test("a tensor moved between two simulated devices goes device to device: its values, resident there, no download; the gradient back likewise", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: 100_000 }), (n, seed) => {
        const tape = Tape.make()
        const a = Tensor.fromArray(values(n, seed), [n], { tape, requiresGrad: true })
        const onFirst = to(a, Device.sim(0))
        const before = { ...runtime.transfers }
        const onSecond = to(onFirst, Device.sim(1))
        const y = mul(onSecond, to(Tensor.fromArray(values(n, seed + 1), [n]), Device.sim(1)))
        expect(runtime.transfers.downloads).toBe(before.downloads)
        expect(onSecond.isResident && Device.same(onSecond.device, Device.sim(1))).toBe(true)
        expect(bits(onSecond)).toEqual(bits(a))
        tape.backward(sumAll(to(y, Device.cpu)))
        expect(bits(a.grad)).toEqual(values(n, seed + 1).map((v) => Math.fround(v)))
      }),
      { numRuns: 40 },
    )
  })

  const lone = [
    ["allReduce", (g: Group.Group, t: Tensor.Tensor) => Differentiable.allReduce(g, t)],
    ["allGather", (g: Group.Group, t: Tensor.Tensor) => Differentiable.allGather(g, t)],
    ["reduceScatter", (g: Group.Group, t: Tensor.Tensor) => Differentiable.reduceScatter(g, t)],
    ["copyToGroup", (g: Group.Group, t: Tensor.Tensor) => Differentiable.copyToGroup(g, t)],
    ["broadcast", (g: Group.Group, t: Tensor.Tensor) => Differentiable.broadcast(g, t, 0)],
    ["allToAllV", (g: Group.Group, t: Tensor.Tensor) => Effect.map(Differentiable.allToAllV(g, t, [t.shape[0] as number]), (x) => x.tensor)],
    ["allGatherV", (g: Group.Group, t: Tensor.Tensor) => Effect.map(Differentiable.allGatherV(g, t), (x) => x.tensor)],
  ] as const

  test("a collective of a group of one: its input's values on the device forward and backward, no download; on the host, the same values", async () => {
    for (const [name, collective] of lone) {
      const run = (device: Device.Device) =>
        Job.runPromise({ world: 1, backend: "local" }, () =>
          Effect.gen(function* () {
            const tape = Tape.make()
            const x = Tensor.fromArray(values(24, 7), [6, 4], { tape, requiresGrad: true })
            const xD = to(x, device)
            const h = matmul(xD, Tensor.fromArray(values(16, 8), [4, 4], { device }))
            const before = runtime.transfers.downloads
            const y = yield* collective(Group.make("solo", [0]), h)
            const forwardDownloads = runtime.transfers.downloads - before
            const loss = weighted(mul(y, y), 9)
            const beforeBackward = runtime.transfers.downloads
            yield* tape.backwardEffect(loss)
            const backwardDownloads = runtime.transfers.downloads - beforeBackward
            return { resident: y.isResident, forwardDownloads, backwardDownloads, bits: [bits(y), bits(x.grad)] }
          }),
        )
      const [host] = await run(Device.cpu)
      const [dev] = await run(sim)
      expect({ name, bits: dev?.bits }).toEqual({ name, bits: host?.bits })
      expect({ name, resident: dev?.resident, forward: dev?.forwardDownloads, backward: dev?.backwardDownloads }).toEqual({ name, resident: true, forward: 0, backward: 1 })
    }
  })

  test("a bf16 tape on the device: outputs rounded there (the host's bits, no download); an op passing its input through rounds a copy, never the input", async () => {
    const run = (device: Device.Device) =>
      Job.runPromise({ world: 1, backend: "local" }, () =>
        Effect.gen(function* () {
          const tape = Tape.make({ precision: "bf16" })
          // fp32 values on the device (made in the tape's fp32 region, so not rounded).
          const x = tape.fullPrecision(() => to(Tensor.fromArray(values(24, 7), [6, 4], { tape, requiresGrad: true }), device))
          const w = to(Tensor.fromArray(values(16, 8), [4, 4]), device)
          const before = { x: bits(x), downloads: runtime.transfers.downloads }
          const y = yield* Differentiable.allReduce(Group.make("solo", [0]), x)
          const h = matmul(y, w)
          const downloads = runtime.transfers.downloads - before.downloads
          // x's values where they lie now (its device array on the device: a host copy read earlier would hide a change).
          const after = Array.from(Place.hostValues(x.values()))
          return { before: before.x, after, y: bits(y), h: bits(h), resident: y.isResident && h.isResident, downloads }
        }),
      )
    const [host] = await run(Device.cpu)
    const [dev] = await run(sim)
    expect(dev?.y).toEqual(host?.y)
    expect(dev?.h).toEqual(host?.h)
    expect({ resident: dev?.resident, downloads: dev?.downloads }).toEqual({ resident: true, downloads: 0 })
    // The pass-through result is the bf16 rounding of x; x itself kept its fp32 values.
    expect(dev?.after).toEqual(dev?.before)
    expect(Bf16Round.isExact(Float32Array.from(dev?.y ?? []))).toBe(true)
    expect(Bf16Round.isExact(Float32Array.from(dev?.before ?? []))).toBe(false)
  })

  test("the vocabulary-parallel cross-entropy of logits on the device: the host's loss and gradient bits, tp 1 and 2; only row statistics cross to the host", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 16, max: 80 }),
        fc.constantFrom(1, 2),
        fc.integer({ min: 1, max: 100_000 }),
        async (rows, cols, tp, seed) => {
          const vocab = cols * tp
          // Some rows ignored (-100), the rest anywhere in the vocabulary.
          const targets = Int32Array.from(values(rows, seed + 3), (v, i) => (i % 5 === 4 ? -100 : Math.floor(((v + 1) / 2) * vocab) % vocab))
          const run = (device: Device.Device) =>
            Job.runPromise({ world: tp, backend: "local" }, (rank) =>
              Effect.gen(function* () {
                const tape = Tape.make()
                // A leaf on the device: its gradient stays there.
                const x = Tensor.fromArray(values(rows * cols, seed + rank), [rows, cols], { tape, requiresGrad: true, device })
                const before = runtime.transfers.downloadedBytes
                const loss = yield* VocabParallel.crossEntropy(
                  x,
                  targets,
                  vocab,
                  Group.make(
                    "tp",
                    Array.from({ length: tp }, (_, i) => i),
                  ),
                  -100,
                )
                tape.backward(loss)
                // Read on the host after every member is done (the members share sim's counters).
                return { downloadedBytes: runtime.transfers.downloadedBytes - before, gradResident: x.grad?.isResident, loss, grad: x.grad }
              }),
            )
          const host = await run(Device.cpu)
          const dev = await run(sim)
          dev.forEach((r, i) => {
            expect([bits(r.loss), bits(r.grad)]).toEqual([bits(host[i]?.loss), bits(host[i]?.grad)])
            expect(r.gradResident).toBe(true)
            // Row statistics (float64 max and sum) and the picked target logits of every member
            // (the members share sim's counters, and their windows overlap): never the logits.
            expect(r.downloadedBytes).toBeLessThanOrEqual(tp * (rows * 20 + 8))
          })
        },
      ),
      { numRuns: 40 },
    )
  })

  test("a group of two on the device still meets the communicator: the sum of both members", async () => {
    const results = await Job.runPromise({ world: 2, backend: "local" }, (rank) =>
      Effect.gen(function* () {
        const x = to(Tensor.fromArray([rank + 1, 10 * (rank + 1)], [2]), sim)
        const y = yield* Differentiable.allReduce(Group.make("pair", [0, 1]), x)
        return { values: Array.from(y.readHost()), device: y.device }
      }),
    )
    for (const r of results) expect(r).toEqual({ values: [3, 30], device: sim })
  })
})
