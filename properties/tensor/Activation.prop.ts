// SwiGLU: backward equals finite differences in float64 on random shapes; the fused op equals
// silu(gate) * up composed from Elementwise ops (values and gradients); float32 agrees with float64.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import { swiglu } from "../../src/tensor/ops/Activation.js"
import * as Elementwise from "../../src/tensor/ops/Elementwise.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { dtypeAgreement } from "./dtypes.js"
import { gradcheck, uniform } from "./gradcheck.js"

const dim = fc.oneof(fc.constantFrom(0, 1), fc.integer({ min: 1, max: 4 }))
const shapeArb = fc.array(dim, { minLength: 0, maxLength: 3 })
const seed = fc.integer({ min: 1, max: 1_000_000 })

describe("swiglu", () => {
  test("backward for gate and up matches finite differences", () => {
    fc.assert(
      fc.property(shapeArb, seed, (shape, s) => {
        const r = gradcheck(([g, u]) => swiglu(g as Tensor.Tensor, u as Tensor.Tensor), [uniform(shape, s, -4, 4), uniform(shape, s + 1, -2, 2)])
        expect(r.maxRelativeError, r.worst).toBeLessThan(1e-6)
      }),
      { numRuns: 50 },
    )
  })

  test("equals silu(gate) * up, values and gradients", () => {
    fc.assert(
      fc.property(shapeArb, seed, (shape, s) => {
        const run = (f: (g: Tensor.Tensor, u: Tensor.Tensor) => Tensor.Tensor) => {
          const tape = Tape.make()
          const g = tape.parameter(uniform(shape, s, -6, 6))
          const u = tape.parameter(uniform(shape, s + 1))
          const y = f(g, u)
          tape.backward(y, { gradient: uniform(shape, s + 2) })
          return [y, g.grad, u.grad].map((t) => Tensor.toArray(t as Tensor.Tensor))
        }
        const fused = run(swiglu)
        const composed = run((g, u) => Elementwise.mul(Elementwise.silu(g), u))
        fused.forEach((values, i) => values.forEach((v, j) => expect(v).toBeCloseTo(composed[i]?.[j] as number, 13)))
      }),
      { numRuns: 40 },
    )
  })

  test("float32 matches float64", () => {
    fc.assert(
      fc.property(shapeArb, seed, (shape, s) => {
        const r = dtypeAgreement(([g, u]) => swiglu(g as Tensor.Tensor, u as Tensor.Tensor), [uniform(shape, s, -4, 4), uniform(shape, s + 1)])
        expect(r.forward, r.worst).toBeLessThan(1e-5)
        expect(r.backward, r.worst).toBeLessThan(1e-5)
      }),
      { numRuns: 30 },
    )
  })

  test("gate and up of different shapes are a ShapeError", () => {
    expect(() => swiglu(Tensor.zeros([2, 3]), Tensor.zeros([3]))).toThrow("swiglu: gate [2, 3] and up [3] must have the same shape")
  })
})
