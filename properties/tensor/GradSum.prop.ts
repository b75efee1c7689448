// Summing gradients without copying the first one (tensor/GradSum): on random expression graphs
// that reuse intermediate tensors (add hands one gradient tensor to both inputs, a reshape shares
// storage, so the same storage reaches several places), the tape's gradients equal central
// finite differences in float64, and a second backward pass over a fresh graph doubles every
// leaf's gradient exactly (small integer inputs keep every sum exact; accumulation in place
// never touches a gradient held elsewhere).
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import { add, mul, scale, sub } from "../../src/tensor/ops/Elementwise.js"
import * as Reduce from "../../src/tensor/ops/Reduce.js"
import { reshape } from "../../src/tensor/ops/Shape.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"

type Step = { readonly op: 0 | 1 | 2 | 3 | 4; readonly i: number; readonly j: number }

const stepArb = fc.record({ op: fc.constantFrom<Step["op"]>(0, 1, 2, 3, 4), i: fc.nat(), j: fc.nat() })
const caseArb = fc.record({
  leaves: fc.array(fc.array(fc.integer({ min: -3, max: 3 }), { minLength: 4, maxLength: 4 }), { minLength: 1, maxLength: 3 }),
  steps: fc.array(stepArb, { minLength: 1, maxLength: 8 }),
})

/** Evaluates the graph on `leaves` and returns the scalar loss (a sum over several reused nodes). */
const evaluate = (leaves: ReadonlyArray<Tensor.Tensor>, steps: ReadonlyArray<Step>): Tensor.Tensor => {
  const nodes: Array<Tensor.Tensor> = [...leaves]
  for (const s of steps) {
    const u = nodes[s.i % nodes.length] as Tensor.Tensor
    const v = nodes[s.j % nodes.length] as Tensor.Tensor
    nodes.push(s.op === 0 ? add(u, v) : s.op === 1 ? mul(u, scale(v, 0.5)) : s.op === 2 ? sub(u, v) : s.op === 3 ? reshape(reshape(u, [2, 2]), [4]) : add(u, u))
  }
  // The last node and every second node feed the loss, so gradients meet from several paths.
  return Reduce.sumAll(nodes.filter((_, k) => k % 2 === 1 || k === nodes.length - 1).reduce((acc, t) => add(acc, t)))
}

describe("gradient sums", () => {
  test("equal finite differences on graphs that reuse tensors, and accumulate over passes", () => {
    fc.assert(
      fc.property(caseArb, ({ leaves, steps }) => {
        const tape = Tape.make()
        const params = leaves.map((v) => tape.parameter(Tensor.fromArray(v, [4], { dtype: "float64" })))
        tape.backward(evaluate(params, steps))
        const gradOf = (p: Tensor.Tensor) => Array.from(p.grad?.data ?? new Float64Array(4))
        const grads = params.map(gradOf)
        const h = 1e-5
        leaves.forEach((v, a) => {
          v.forEach((_, k) => {
            const at = (d: number) =>
              evaluate(
                leaves.map((w, b) => Tensor.fromArray(b === a ? w.map((x, m) => (m === k ? x + d : x)) : w, [4], { dtype: "float64" })),
                steps,
              ).data[0] as number
            const numeric = (at(h) - at(-h)) / (2 * h)
            expect(Math.abs((grads[a]?.[k] as number) - numeric)).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(numeric)))
          })
        })
        tape.backward(evaluate(params, steps))
        params.forEach((p, a) => expect(gradOf(p)).toEqual((grads[a] as Array<number>).map((g) => g + g)))
      }),
      { numRuns: 300 },
    )
  })
})
