// The gated MLP activation with Megatron-Core's options (GatedActivation: quick-GELU's slope, the
// linear half's offset, the clamp): equals GPT-OSS's activation as transformers writes it
// (gate.clamp(max=limit), up.clamp(-limit, limit), gate * sigmoid(gate * alpha) * (up + 1)) and
// its general form, in float64; float32 results are that float64 value of the same inputs rounded
// once (within one float32 ulp on the native kernels, whose exponential may differ in its last
// float64 bit), forward and backward, at sizes the kernels split over their pool and with tails,
// on each ISA's kernel (AVX-512, AVX2, scalar);
// its backward matches finite differences, and a clamped element passes no gradient; the plain
// options are SwiGLU's kernels, bit for bit.
import fc from "fast-check"
import { afterAll, describe, expect, test } from "vitest"
import * as Cpu from "../../src/native/Cpu.js"
import * as CpuOptional from "../../src/native/CpuOptional.js"
import { swiglu } from "../../src/tensor/ops/Activation.js"
import * as GatedActivation from "../../src/tensor/ops/GatedActivation.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { isas, unpin } from "../native/tensorCases.js"
import { gradcheck, uniform } from "./gradcheck.js"

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x))

/** GPT-OSS's activation as transformers' GptOssExperts computes it, elementwise, for any alpha, offset and limit. */
const reference = (gate: number, up: number, glu: GatedActivation.Glu): number => {
  const limit = glu.limit ?? Number.POSITIVE_INFINITY
  const g = Math.min(gate, limit)
  const u = up > limit ? limit : Math.max(up, -limit)
  return g * sigmoid(g * glu.alpha) * (u + glu.offset)
}

/** Float32 values apart, in units of the last place (0 for equal values, both NaN included). */
const ulps = (a: number, b: number): number => {
  if (Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b))) return 0
  const bits = new Int32Array(new Float32Array([a, b]).buffer)
  const key = (k: number) => ((bits[k] as number) < 0 ? -2147483648 - (bits[k] as number) : (bits[k] as number))
  return Math.abs(key(0) - key(1))
}

const gluArb: fc.Arbitrary<GatedActivation.Glu> = fc.record({
  alpha: fc.constantFrom(1, GatedActivation.quickGeluAlpha, 0.5),
  offset: fc.constantFrom(0, 1, -0.25),
  limit: fc.constantFrom(undefined, 7, 0.8),
})

const problemArb = fc.record({ rows: fc.integer({ min: 1, max: 4 }), cols: fc.integer({ min: 1, max: 6 }), seed: fc.integer({ min: 1, max: 1_000_000 }), glu: gluArb })

describe("GatedActivation", () => {
  afterAll(unpin)
  test("equals GPT-OSS's activation in float64, and float32 is that value rounded once", () => {
    fc.assert(
      fc.property(problemArb, ({ rows, cols, seed, glu }) => {
        const gate = uniform([rows, cols], seed, -3, 3)
        const up = uniform([rows, cols], seed + 1, -3, 3)
        const out = GatedActivation.gated(gate, up, glu)
        const gate32 = Tensor.fromStorage(Float32Array.from(gate.data), gate.shape)
        const up32 = Tensor.fromStorage(Float32Array.from(up.data), up.shape)
        const out32 = GatedActivation.gated(gate32, up32, glu)
        // The same float32 values in float64 storage: what the float32 path computes before its one rounding.
        const widened = GatedActivation.gated(Tensor.fromStorage(Float64Array.from(gate32.data), gate.shape), Tensor.fromStorage(Float64Array.from(up32.data), up.shape), glu)
        for (let i = 0; i < gate.size; i++) {
          const want = reference(gate.data[i] as number, up.data[i] as number, glu)
          expect(Math.abs((out.data[i] as number) - want)).toBeLessThanOrEqual(1e-15 * Math.max(1, Math.abs(want)))
          // The float32 path: the float64 value of the float32 inputs, rounded to float32 once.
          if (!GatedActivation.isPlain(glu)) expect(ulps(out32.data[i] as number, Math.fround(widened.data[i] as number))).toBeLessThanOrEqual(1)
        }
      }),
      { numRuns: 200 },
    )
  })

  test.each(isas)("float32 forward and backward are the float64 values rounded once, at the kernels' sizes (pool splits, tails): %s", (isa) => {
    Cpu.setIsa(isa)
    if (CpuOptional.gatedActivationKernels() === undefined) console.log("GatedActivation: the native kernels are not built; the float32 loops are checked")
    let exact = 0
    let all = 0
    fc.assert(
      // The plain options are SwiGLU's kernels, whose forward computes in float32 (its own tests bound it).
      fc.property(
        fc.integer({ min: 1, max: 70_000 }),
        fc.integer({ min: 1, max: 1_000_000 }),
        gluArb.filter((g) => !GatedActivation.isPlain(g)),
        (n, seed, glu) => {
          const wide = (t: Tensor.Tensor) => Tensor.fromStorage(Float64Array.from(t.data), t.shape)
          const narrow = (t: Tensor.Tensor) => Tensor.fromStorage(Float32Array.from(t.data), t.shape)
          const [gate, up, dy] = [uniform([n], seed, -9, 9), uniform([n], seed + 1, -9, 9), uniform([n], seed + 2)].map(narrow) as [Tensor.Tensor, Tensor.Tensor, Tensor.Tensor]
          const run = (g: Tensor.Tensor, u: Tensor.Tensor, d: Tensor.Tensor) => {
            const tape = Tape.make({ name: "glu" })
            const [pg, pu] = [tape.parameter(g), tape.parameter(u)]
            const out = GatedActivation.gated(pg, pu, glu)
            tape.backward(out, { gradient: d })
            return [out.data, pg.grad?.data, pu.grad?.data] as const
          }
          const got = run(gate, up, dy)
          const want = run(wide(gate), wide(up), wide(dy))
          let worst = { ulps: 0, at: "" }
          for (let k = 0; k < 3; k++)
            for (let i = 0; i < n; i++) {
              const d = ulps((got[k] as ArrayLike<number>)[i] as number, Math.fround((want[k] as ArrayLike<number>)[i] as number))
              if (d > worst.ulps) worst = { ulps: d, at: `output ${k} element ${i}` }
              if (d === 0) exact++
              all++
            }
          expect(worst.ulps, worst.at).toBeLessThanOrEqual(1)
        },
      ),
      { numRuns: 8 },
    )
    // One float32 ulp apart only where the exponential's last bit decides a rounding: rare.
    expect(exact / all).toBeGreaterThan(0.999)
  })

  test("its backward matches finite differences, for gate and up", () => {
    fc.assert(
      fc.property(problemArb, ({ rows, cols, seed, glu }) => {
        const inputs = [uniform([rows, cols], seed, -3, 3), uniform([rows, cols], seed + 1, -3, 3)]
        const r = gradcheck(([g, u]) => GatedActivation.gated(g as Tensor.Tensor, u as Tensor.Tensor, glu), inputs, { seed })
        expect(r.maxRelativeError, r.worst).toBeLessThan(1e-6)
      }),
      { numRuns: 100 },
    )
  })

  test("a clamped element passes no gradient, an element inside the clamp passes its own", () => {
    const glu: GatedActivation.Glu = { alpha: GatedActivation.quickGeluAlpha, offset: 1, limit: 1 }
    const tape = Tape.make({ name: "clamp" })
    // gate: above the limit, at it, below it; up: below -limit, inside, above.
    const gate = tape.parameter(Tensor.fromStorage(Float64Array.of(2, 1, 0.5), [3]))
    const up = tape.parameter(Tensor.fromStorage(Float64Array.of(-3, 0.5, 4), [3]))
    tape.backward(GatedActivation.gated(gate, up, glu), { gradient: Tensor.fromStorage(Float64Array.of(1, 1, 1), [3]) })
    const dGate = Array.from(gate.grad?.data ?? [])
    const dUp = Array.from(up.grad?.data ?? [])
    expect(dGate[0]).toBe(0)
    expect(dGate[1]).not.toBe(0)
    expect(dGate[2]).not.toBe(0)
    expect(dUp[0]).toBe(0)
    expect(dUp[1]).not.toBe(0)
    expect(dUp[2]).toBe(0)
    // Element 0 computes from the clamped values: gate 1, up -1, so its output is 0 (up + offset = 0).
    expect(GatedActivation.gated(Tensor.fromStorage(Float64Array.of(2), [1]), Tensor.fromStorage(Float64Array.of(-3), [1]), glu).data[0]).toBe(0)
  })

  test("the plain options are SwiGLU's kernels, bit for bit", () => {
    const gate = Tensor.fromStorage(Float32Array.from(uniform([3, 5], 11, -4, 4).data), [3, 5])
    const up = Tensor.fromStorage(Float32Array.from(uniform([3, 5], 12, -4, 4).data), [3, 5])
    const want = swiglu(gate, up).data
    expect(GatedActivation.gated(gate, up, { alpha: 1, offset: 0 }).data).toEqual(want)
    expect(GatedActivation.gated(gate, up, undefined).data).toEqual(want)
    expect(GatedActivation.isPlain({ alpha: 1, offset: 0, limit: 7 })).toBe(false)
  })
})
