// Softmax and logSoftmax: backward equals finite differences in float64 on random shapes (dims of
// size 0 and 1 included); rows sum to 1; logSoftmax = log(softmax); large logits stay finite;
// float32 agrees with float64.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import { logSoftmax, softmax } from "../../src/tensor/ops/Softmax.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { dtypeAgreement } from "./dtypes.js"
import { gradcheck, uniform } from "./gradcheck.js"

const dim = fc.oneof(fc.constantFrom(0, 1), fc.integer({ min: 1, max: 5 }))
const shapeArb = fc.array(dim, { minLength: 1, maxLength: 3 })
const seed = fc.integer({ min: 1, max: 1_000_000 })

describe("softmax and logSoftmax", () => {
  test("backward matches finite differences", () => {
    fc.assert(
      fc.property(shapeArb, seed, fc.constantFrom(1, 4), (shape, s, spread) => {
        const x = uniform(shape, s, -spread, spread)
        for (const op of [softmax, logSoftmax]) {
          const r = gradcheck(([t]) => op(t as Tensor.Tensor), [x])
          expect(r.maxRelativeError, `${op.name} ${r.worst}`).toBeLessThan(1e-6)
        }
      }),
      { numRuns: 50 },
    )
  })

  test("rows sum to 1 and logSoftmax equals log(softmax), even for large logits", () => {
    fc.assert(
      fc.property(shapeArb, seed, fc.constantFrom(1, 30, 300), (shape, s, spread) => {
        const x = uniform(shape, s, -spread, spread)
        const y = softmax(x)
        const ly = logSoftmax(x)
        const cols = shape[shape.length - 1] as number
        for (let r = 0; cols > 0 && r < x.size / cols; r++) {
          let sum = 0
          for (let j = 0; j < cols; j++) sum += y.data[r * cols + j] as number
          expect(Math.abs(sum - 1)).toBeLessThan(1e-12)
        }
        for (let i = 0; i < x.size; i++) {
          const p = y.data[i] as number
          const lp = ly.data[i] as number
          expect(Number.isFinite(lp)).toBe(true)
          // Where softmax underflows, log(softmax) is -Infinity but logSoftmax stays exact.
          if (p > 1e-300) expect(Math.abs(Math.log(p) - lp)).toBeLessThan(1e-12 * Math.max(1, Math.abs(lp)))
        }
      }),
      { numRuns: 60 },
    )
  })

  test("max subtraction: huge equal logits give a uniform row, not NaN", () => {
    const x = Tensor.fromArray([1000, 1000, -1000, 1e300, 0, -1e300], [2, 3], { dtype: "float64" })
    expect(Tensor.toArray(softmax(x))).toEqual([0.5, 0.5, 0, 1, 0, 0])
    expect(Tensor.toArray(logSoftmax(x)).slice(0, 2)).toEqual([Math.log(0.5), Math.log(0.5)])
  })

  test("float32 matches float64", () => {
    fc.assert(
      fc.property(shapeArb, seed, (shape, s) => {
        const x = uniform(shape, s, -4, 4)
        for (const op of [softmax, logSoftmax]) {
          const r = dtypeAgreement(([t]) => op(t as Tensor.Tensor), [x])
          expect(r.forward, `${op.name} ${r.worst}`).toBeLessThan(1e-5)
          expect(r.backward, `${op.name} ${r.worst}`).toBeLessThan(1e-5)
        }
      }),
      { numRuns: 40 },
    )
  })

  test("a tensor of rank 0 is a ShapeError", () => {
    expect(() => softmax(Tensor.zeros([]))).toThrow("softmax: needs at least 1 dim")
  })
})
