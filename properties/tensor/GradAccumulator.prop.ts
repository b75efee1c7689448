// Gradient accumulation fusion (tensor/GradAccumulator): a leaf bound to an accumulator ends a
// backward pass with exactly accumulator0 + the gradient the same leaf gets unbound in `.grad`,
// whatever uses it: plain, transposed and batched products (a weight shared by a batch takes
// one product over all rows), grouped expert products with empty segments, and an element-wise
// use next to the products (added by the tape, not by a product). Two passes (micro-batches)
// add twice. Small integers keep every sum exact in float32 and float64 alike, so the check is
// equality, on the native float32 kernels, the float64 reference kernels and a bf16 tape (the
// bf16 GEMM where the CPU has it); the bound leaf's `.grad` stays empty. A cleared accumulator
// (GradAccumulator.clear: zeros in meaning, its old values still in memory) ends with exactly
// the gradient, and one no gradient reached holds zeros once settled.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as DType from "../../src/tensor/DType.js"
import * as GradAccumulator from "../../src/tensor/GradAccumulator.js"
import { add, mul } from "../../src/tensor/ops/Elementwise.js"
import { groupedMatmul } from "../../src/tensor/ops/GroupedMatmul.js"
import { matmul } from "../../src/tensor/ops/Matmul.js"
import * as Reduce from "../../src/tensor/ops/Reduce.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"

interface Use {
  readonly transA: boolean
  readonly transB: boolean
  readonly batch: number
}

const caseArb = fc.record({
  d: fc.integer({ min: 1, max: 5 }),
  rows: fc.integer({ min: 1, max: 4 }),
  uses: fc.array(fc.record({ transA: fc.boolean(), transB: fc.boolean(), batch: fc.integer({ min: 1, max: 3 }) }), { minLength: 1, maxLength: 3 }),
  elementwise: fc.boolean(),
  segments: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 4 }),
  m: fc.integer({ min: 1, max: 4 }),
  seed: fc.nat(),
  precision: fc.constantFrom("fp32-native" as const, "fp64-reference" as const, "bf16" as const),
})

type Case = typeof caseArb extends fc.Arbitrary<infer C> ? C : never

/** Integers in [-3, 3] from a seed (exact in every dtype, bf16 included). */
const ints = (n: number, seed: number): Array<number> => Array.from({ length: n }, (_, i) => ((((seed + i * 7919) * 2654435761) >>> 0) % 7) - 3)

/** One backward pass over the case's graph; `bind` decides whether the weights accumulate. */
const pass = (c: Case, dtype: DType.DType, tape: Tape.Tape, w: Tensor.Tensor, g: Tensor.Tensor, salt: number): void => {
  const t = (shape: ReadonlyArray<number>, s: number) => Tensor.fromArray(ints(Tensor.sizeOf(shape), c.seed + s + salt), shape, { dtype })
  const terms: Array<Tensor.Tensor> = []
  c.uses.forEach((u: Use, i) => {
    const inner = u.transA ? [c.d, c.rows] : [c.rows, c.d]
    const a = t(u.batch > 1 ? [u.batch, ...inner] : inner, 100 * i)
    const y = matmul(a, w, { transA: u.transA, transB: u.transB })
    terms.push(Reduce.sumAll(mul(y, t(y.shape, 100 * i + 50))))
  })
  if (c.elementwise) terms.push(Reduce.sumAll(mul(w, t(w.shape, 999))))
  const n = c.segments.reduce((x, y) => x + y, 0)
  const routed = groupedMatmul(t([n, c.d], 777), g, c.segments)
  terms.push(Reduce.sumAll(mul(routed, t(routed.shape, 888))))
  tape.backward(terms.reduce((x, y) => add(x, y)))
}

const dtypeOf = (c: Case): DType.DType => (c.precision === "fp64-reference" ? "float64" : "float32")

/** The weights' gradients over `passes` passes, unbound (`.grad`) or bound (accumulators). */
const run = (c: Case, passes: number, bound: boolean, cleared = false) => {
  const dtype = dtypeOf(c)
  const tape = Tape.make({ precision: c.precision === "bf16" ? "bf16" : "fp32" })
  const wValue = Tensor.fromArray(ints(c.d * c.d, c.seed + 1), [c.d, c.d], { dtype })
  const gValue = Tensor.fromArray(ints(c.segments.length * c.d * c.m, c.seed + 2), [c.segments.length, c.d, c.m], { dtype })
  const start = (size: number, s: number) => {
    const acc = DType.allocate(dtype, size)
    acc.set(ints(size, c.seed + s))
    return acc
  }
  const wAcc = bound ? start(wValue.size, 3) : undefined
  const gAcc = bound ? start(gValue.size, 4) : undefined
  // A leaf no pass uses: its accumulator keeps its start, or holds zeros when cleared.
  const unusedAcc = bound ? start(c.d, 5) : undefined
  if (cleared) for (const acc of [wAcc, gAcc, unusedAcc]) if (acc !== undefined) GradAccumulator.clear(acc)
  const w = tape.parameter(wValue, wAcc)
  const g = tape.parameter(gValue, gAcc)
  tape.parameter(Tensor.fromArray(ints(c.d, c.seed + 6), [c.d], { dtype }), unusedAcc)
  for (let p = 0; p < passes; p++) pass(c, dtype, tape, w, g, 10_000 * p)
  if (cleared) for (const acc of [wAcc, gAcc, unusedAcc]) if (acc !== undefined) GradAccumulator.settle(acc)
  return { w, g, wAcc, gAcc, unusedAcc }
}

describe("gradient accumulators", () => {
  test("a bound leaf's accumulator gains exactly the gradient the unbound leaf gets", () => {
    fc.assert(
      fc.property(caseArb, fc.integer({ min: 1, max: 2 }), fc.boolean(), (c, passes, cleared) => {
        const plain = run(c, passes, false)
        const fused = run(c, passes, true, cleared)
        const expected = (grad: Tensor.Tensor | undefined, size: number, s: number) => {
          const start = cleared ? new Array<number>(size).fill(0) : ints(size, c.seed + s)
          return start.map((v, i) => v + (grad === undefined ? 0 : (grad.data[i] as number)))
        }
        // + 0: a stored -0 and an added +0 are the same gradient (toEqual tells them apart).
        const values = (acc: DType.Storage | undefined) => Array.from(acc ?? [], (v) => v + 0)
        expect(values(fused.wAcc)).toEqual(expected(plain.w.grad, plain.w.size, 3))
        expect(values(fused.gAcc)).toEqual(expected(plain.g.grad, plain.g.size, 4))
        expect(values(fused.unusedAcc)).toEqual(expected(undefined, c.d, 5))
        expect(fused.w.grad).toBeUndefined()
        expect(fused.g.grad).toBeUndefined()
      }),
      { numRuns: 120 },
    )
  })

  test("an accumulator of the wrong size or dtype is refused naming both", () => {
    const tape = Tape.make()
    const w = Tensor.zeros([2, 3])
    expect(() => tape.parameter(w, new Float32Array(5))).toThrow("an accumulator of 5 Float32Array for a float32 leaf of 6")
    expect(() => tape.parameter(w, new Float64Array(6))).toThrow("an accumulator of 6 Float64Array for a float32 leaf of 6")
  })
})
