// RMSNorm: backward (x and weight) equals finite differences in float64 on random shapes; the
// output equals the formula; with eps = 0 it is invariant to scaling x; float32 agrees with float64.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import { rmsNorm } from "../../src/tensor/ops/Norm.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { dtypeAgreement } from "./dtypes.js"
import { gradcheck, uniform } from "./gradcheck.js"

const dim = fc.oneof(fc.constantFrom(0, 1), fc.integer({ min: 1, max: 5 }))
const shapeArb = fc.array(dim, { minLength: 1, maxLength: 3 })
const seed = fc.integer({ min: 1, max: 1_000_000 })
const epsArb = fc.constantFrom(1e-6, 1e-2, 0.5)

const weightOf = (shape: ReadonlyArray<number>, s: number) => uniform([shape[shape.length - 1] as number], s, -2, 2)

/**
 * Values with 0.25 <= |x| <= 1. With H = 1 and a tiny eps, rmsNorm is x / sqrt(x^2 + eps), a
 * smoothed sign with a kink of width sqrt(eps) at 0 where finite differences lose their accuracy;
 * keeping |x| away from 0 tests the gradient, not the step size.
 */
const awayFromZero = (shape: ReadonlyArray<number>, s: number) => {
  const t = uniform(shape, s)
  for (let i = 0; i < t.size; i++) {
    const v = t.data[i] as number
    t.data[i] = Math.sign(v) * (0.25 + 0.75 * Math.abs(v))
  }
  return t
}

describe("rmsNorm", () => {
  test("backward for x and weight matches finite differences", () => {
    fc.assert(
      fc.property(shapeArb, seed, epsArb, (shape, s, eps) => {
        const x = awayFromZero(shape, s)
        const w = weightOf(shape, s + 1)
        const r = gradcheck(([a, b]) => rmsNorm(a as Tensor.Tensor, b as Tensor.Tensor, eps), [x, w])
        expect(r.maxRelativeError, r.worst).toBeLessThan(1e-6)
      }),
      { numRuns: 50 },
    )
  })

  test("equals x / sqrt(mean(x^2) + eps) * weight", () => {
    fc.assert(
      fc.property(shapeArb, seed, epsArb, (shape, s, eps) => {
        const x = uniform(shape, s, -3, 3)
        const w = weightOf(shape, s + 1)
        const y = rmsNorm(x, w, eps)
        const h = shape[shape.length - 1] as number
        for (let r = 0; h > 0 && r < x.size / h; r++) {
          let ss = 0
          for (let j = 0; j < h; j++) ss += (x.data[r * h + j] as number) ** 2
          const denominator = Math.sqrt(ss / h + eps)
          for (let j = 0; j < h; j++) {
            const expected = ((x.data[r * h + j] as number) / denominator) * (w.data[j] as number)
            expect(y.data[r * h + j]).toBeCloseTo(expected, 12)
          }
        }
      }),
      { numRuns: 40 },
    )
  })

  test("with eps = 0, scaling x by c > 0 does not change the output", () => {
    fc.assert(
      fc.property(
        shapeArb.filter((s) => s.every((d) => d > 0)),
        seed,
        fc.double({ min: 0.01, max: 100, noNaN: true }),
        (shape, s, c) => {
          const x = uniform(shape, s, 0.1, 1)
          const w = weightOf(shape, s + 1)
          const scaled = Tensor.fromArray(
            Tensor.toArray(x).map((v) => v * c),
            shape,
            { dtype: "float64" },
          )
          const a = rmsNorm(x, w, 0)
          const b = rmsNorm(scaled, w, 0)
          for (let i = 0; i < a.size; i++) expect(b.data[i]).toBeCloseTo(a.data[i] as number, 12)
        },
      ),
      { numRuns: 30 },
    )
  })

  test("float32 matches float64", () => {
    fc.assert(
      fc.property(shapeArb, seed, (shape, s) => {
        const r = dtypeAgreement(([a, b]) => rmsNorm(a as Tensor.Tensor, b as Tensor.Tensor, 1e-5), [uniform(shape, s), weightOf(shape, s + 1)])
        expect(r.forward, r.worst).toBeLessThan(1e-5)
        expect(r.backward, r.worst).toBeLessThan(1e-5)
      }),
      { numRuns: 40 },
    )
  })

  test("a weight that is not [H] is a ShapeError naming both shapes", () => {
    expect(() => rmsNorm(Tensor.zeros([2, 3]), Tensor.zeros([4]))).toThrow("rmsNorm: weight [4] must be [H] where x [2, 3] is [..., H]")
    expect(() => rmsNorm(Tensor.zeros([]), Tensor.zeros([1]))).toThrow("rmsNorm: weight [1]")
  })
})
