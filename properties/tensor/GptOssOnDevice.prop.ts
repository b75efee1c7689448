// GPT-OSS's two ops on the simulated device (the host's kernels behind the device interface, so a
// device path that reads a stale copy, forgets its device or drops a gradient shows): the gated
// activation with Megatron-Core's options (quick-GELU, the linear offset, the clamp) and
// attention with softmax sinks (learnable, with a gradient, and fixed) give the host's bits
// forward and backward, their results stay on the device, and the forward downloads nothing.
// The CUDA kernels behind the same interface are checked against the host by their twins
// (properties/native/gatedSinksTwins.ts: emulated here, on the GPU by scripts/device-check).
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Device from "../../src/tensor/Device.js"
import { simulated } from "../../src/tensor/device/SimulatedRuntime.js"
import type * as DType from "../../src/tensor/DType.js"
import { attention } from "../../src/tensor/ops/Attention.js"
import { gated, quickGeluAlpha } from "../../src/tensor/ops/GatedActivation.js"
import { matmul } from "../../src/tensor/ops/Matmul.js"
import { sumAll } from "../../src/tensor/ops/Reduce.js"
import { reshape } from "../../src/tensor/ops/Shape.js"
import { to } from "../../src/tensor/ops/Transfer.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"

const sim = Device.sim(0)
const runtime = simulated(0)

const values = (n: number, seed: number, spread = 1): Array<number> => {
  let s = seed
  return Array.from({ length: n }, () => ((s = (s * 48271) % 2147483647) / 2147483647 - 0.5) * 2 * spread)
}
const bits = (t: Tensor.Tensor | undefined): Array<number> => (t === undefined ? [] : Array.from(t.readHost()))

/** A scalar weighing every element of y differently (the product on y's device, the sum on the host). */
const weighted = (y: Tensor.Tensor, seed: number): Tensor.Tensor =>
  sumAll(to(matmul(reshape(y, [1, y.size]), Tensor.fromArray(values(y.size, seed), [y.size, 1], { dtype: y.dtype, device: y.device })), Device.cpu))

interface Run {
  readonly bits: ReadonlyArray<ReadonlyArray<number>>
  readonly resident: boolean
  readonly forwardDownloads: number
}

/** `run` on the host and on sim: the same bits, sim's output resident and its forward without a download. */
const expectHostsOnSim = (run: (device: Device.Device) => Run) => {
  const host = run(Device.cpu)
  const dev = run(sim)
  expect(dev.bits).toEqual(host.bits)
  expect(dev.resident).toBe(true)
  expect(dev.forwardDownloads).toBe(0)
}

describe("GPT-OSS's ops on the simulated device", () => {
  test("the gated activation (quick-GELU, offset, clamp, each alone or together): the host's bits forward and backward, resident, no download", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }),
        fc.constantFrom<DType.DType>("float32", "float64"),
        fc.boolean(),
        fc.constantFrom(0, 1, -0.5),
        fc.constantFrom(undefined, 0.5, 7),
        fc.integer({ min: 1, max: 100_000 }),
        (n, dtype, quick, offset, limit, seed) => {
          const glu = { alpha: quick ? quickGeluAlpha : 1, offset, limit }
          const run = (device: Device.Device): Run => {
            const tape = Tape.make()
            // Values to +-3, past a clamp of 0.5 often.
            const gate = Tensor.fromArray(values(n, seed, 3), [n], { dtype, tape, requiresGrad: true })
            const up = Tensor.fromArray(values(n, seed + 1, 3), [n], { dtype, tape, requiresGrad: true })
            const [g, u] = [to(gate, device), to(up, device)]
            const before = runtime.transfers.downloads
            const y = gated(g, u, glu)
            const forwardDownloads = runtime.transfers.downloads - before
            tape.backward(weighted(y, seed + 2))
            return { resident: y.isResident, forwardDownloads, bits: [bits(y), bits(gate.grad), bits(up.grad)] }
          }
          expectHostsOnSim(run)
        },
      ),
      { numRuns: 80 },
    )
  })

  test("attention with learnable and fixed sinks (float32, GQA, rows with no visible key): the host's bits for out and every gradient, the sinks' included", () => {
    fc.assert(
      fc.property(
        fc.record({
          b: fc.integer({ min: 1, max: 2 }),
          s: fc.integer({ min: 1, max: 9 }),
          hkv: fc.integer({ min: 1, max: 2 }),
          group: fc.integer({ min: 1, max: 3 }),
          d: fc.integer({ min: 1, max: 8 }),
          dv: fc.integer({ min: 1, max: 8 }),
          learnable: fc.boolean(),
          late: fc.boolean(),
          seed: fc.integer({ min: 1, max: 100_000 }),
        }),
        ({ b, s, hkv, group, d, dv, learnable, late, seed }) => {
          const hq = hkv * group
          // Late queries: query 0 sees no key, its row is the sink alone.
          const positions = late ? { queryPositions: Int32Array.from({ length: s }, (_, i) => i), keyPositions: Int32Array.from({ length: s }, (_, j) => j + 1) } : {}
          const run = (device: Device.Device): Run => {
            const tape = Tape.make()
            const make = (shape: Array<number>, k: number, spread = 1) => Tensor.fromArray(values(Tensor.sizeOf(shape), seed + k, spread), shape, { tape, requiresGrad: true })
            const [q, k, v] = [make([b, s, hq, d], 0, 2), make([b, s, hkv, d], 1, 2), make([b, s, hkv, dv], 2)]
            const sinks = learnable ? make([hq], 3, 2) : Tensor.zeros([hq])
            const operands = [q, k, v, sinks].map((t) => to(t, device)) as [Tensor.Tensor, Tensor.Tensor, Tensor.Tensor, Tensor.Tensor]
            const before = runtime.transfers.downloads
            const y = attention(operands[0], operands[1], operands[2], { sinks: operands[3], ...positions })
            const forwardDownloads = runtime.transfers.downloads - before
            tape.backward(weighted(y, seed + 4))
            return { resident: y.isResident, forwardDownloads, bits: [bits(y), bits(q.grad), bits(k.grad), bits(v.grad), bits(sinks.grad)] }
          }
          expectHostsOnSim(run)
          if (learnable && !(late && s === 1)) {
            // The sinks' gradient reached the leaf (not zeros: a row that sees a key weighs in).
            const grads = run(sim).bits[4] as ReadonlyArray<number>
            expect(grads).toHaveLength(hq)
            expect(grads.some((x) => x !== 0)).toBe(true)
          }
        },
      ),
      { numRuns: 80 },
    )
  })
})
