// Cross-entropy: backward equals finite differences in float64 (both reductions, ignored rows
// included); the loss equals -mean(logSoftmax picked) over kept rows; ignored rows contribute
// nothing; all ignored gives 0 loss and 0 gradient; bad targets are ShapeErrors.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import { crossEntropy } from "../../src/tensor/ops/Loss.js"
import { logSoftmax } from "../../src/tensor/ops/Softmax.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { dtypeAgreement } from "./dtypes.js"
import { gradcheck, uniform } from "./gradcheck.js"

const seed = fc.integer({ min: 1, max: 1_000_000 })
const reductionArb = fc.constantFrom("mean", "sum") as fc.Arbitrary<"mean" | "sum">

/** N rows of V >= 1 logits and targets, some of them the ignore index. */
const problem = fc.tuple(fc.integer({ min: 0, max: 4 }), fc.integer({ min: 1, max: 5 }), fc.constantFrom(-100, -1, 0)).chain(([n, v, ignoreIndex]) =>
  fc.record({
    n: fc.constant(n),
    v: fc.constant(v),
    ignoreIndex: fc.constant(ignoreIndex),
    targets: fc.array(fc.oneof(fc.integer({ min: 0, max: v - 1 }), fc.constant(ignoreIndex)), { minLength: n, maxLength: n }).map((t) => Int32Array.from(t)),
  }),
)

describe("crossEntropy", () => {
  test("backward matches finite differences under both reductions", () => {
    fc.assert(
      fc.property(problem, seed, reductionArb, ({ n, v, ignoreIndex, targets }, s, reduction) => {
        const logits = uniform([n, v], s, -3, 3)
        const r = gradcheck(([t]) => crossEntropy(t as Tensor.Tensor, targets, { ignoreIndex, reduction }), [logits])
        expect(r.maxRelativeError, r.worst).toBeLessThan(1e-6)
      }),
      { numRuns: 60 },
    )
  })

  test("equals -mean (or -sum) of logSoftmax at the targets of kept rows", () => {
    fc.assert(
      fc.property(problem, seed, reductionArb, ({ n, v, ignoreIndex, targets }, s, reduction) => {
        const logits = uniform([n, v], s, -20, 20)
        const ls = logSoftmax(logits)
        let total = 0
        let count = 0
        for (let i = 0; i < n; i++) {
          const t = targets[i] as number
          if (t === ignoreIndex) continue
          total -= ls.data[i * v + t] as number
          count++
        }
        const expected = count === 0 ? 0 : reduction === "mean" ? total / count : total
        const loss = Tensor.item(crossEntropy(logits, targets, { ignoreIndex, reduction }))
        expect(Math.abs(loss - expected)).toBeLessThan(1e-12 * Math.max(1, Math.abs(expected)))
      }),
      { numRuns: 60 },
    )
  })

  test("ignored rows contribute nothing: their logits do not matter and their gradient is 0", () => {
    fc.assert(
      fc.property(problem, seed, ({ n, v, ignoreIndex, targets }, s) => {
        const logits = uniform([n, v], s)
        const other = Tensor.detachCopy(logits)
        for (let i = 0; i < n; i++) if (targets[i] === ignoreIndex) for (let j = 0; j < v; j++) other.data[i * v + j] = 100 * (j + 1)
        const options = { ignoreIndex }
        expect(Tensor.item(crossEntropy(other, targets, options))).toBe(Tensor.item(crossEntropy(logits, targets, options)))
        const tape = Tape.make()
        const p = tape.parameter(logits)
        tape.backward(crossEntropy(p, targets, options))
        for (let i = 0; i < n; i++) {
          const row = Array.from(p.grad?.data.subarray(i * v, (i + 1) * v) ?? [])
          if (targets[i] === ignoreIndex) expect(row).toEqual(new Array<number>(v).fill(0))
          else expect(Math.abs(row.reduce((a, b) => a + b, 0))).toBeLessThan(1e-12) // softmax - onehot sums to 0
        }
      }),
      { numRuns: 40 },
    )
  })

  test("all targets ignored (or no rows): loss 0 and gradient 0, not NaN", () => {
    for (const reduction of ["mean", "sum"] as const) {
      for (const n of [0, 3]) {
        const tape = Tape.make()
        const p = tape.parameter(uniform([n, 4], 5))
        const loss = crossEntropy(p, new Int32Array(n).fill(-100), { reduction })
        expect(loss.shape).toEqual([])
        expect(Tensor.item(loss)).toBe(0)
        tape.backward(loss)
        expect(Tensor.toArray(p.grad as Tensor.Tensor)).toEqual(new Array<number>(n * 4).fill(0))
      }
    }
  })

  test("large logits stay finite and float32 matches float64", () => {
    const big = Tensor.fromArray([1000, -1000, 0, 2000], [2, 2], { dtype: "float64" })
    expect(Tensor.item(crossEntropy(big, Int32Array.from([0, 0])))).toBe(1000) // (0 + 2000) / 2
    fc.assert(
      fc.property(problem, seed, reductionArb, ({ n, v, ignoreIndex, targets }, s, reduction) => {
        const r = dtypeAgreement(([t]) => crossEntropy(t as Tensor.Tensor, targets, { ignoreIndex, reduction }), [uniform([n, v], s, -5, 5)])
        expect(r.forward, r.worst).toBeLessThan(1e-5)
        expect(r.backward, r.worst).toBeLessThan(1e-5)
      }),
      { numRuns: 40 },
    )
  })

  test("bad targets and shapes are ShapeErrors naming the row", () => {
    const logits = Tensor.zeros([2, 3])
    expect(() => crossEntropy(logits, Int32Array.from([0, 3]))).toThrow("crossEntropy: target 3 of row 1 is outside [0, 3) and is not the ignore index -100")
    expect(() => crossEntropy(logits, Int32Array.from([-1, 0]))).toThrow("crossEntropy: target -1 of row 0")
    expect(() => crossEntropy(logits, Int32Array.from([0]))).toThrow("crossEntropy: 1 targets for logits [2, 3]")
    expect(() => crossEntropy(Tensor.zeros([3]), Int32Array.from([0]))).toThrow("crossEntropy: logits must be [N, V], got [3]")
  })
})
