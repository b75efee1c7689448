// Elementwise, reduction and shape ops: backward equals finite differences in float64 on random
// shapes (dims of size 0 and 1 included), plus the structural identities of views.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Elementwise from "../../src/tensor/ops/Elementwise.js"
import * as Reduce from "../../src/tensor/ops/Reduce.js"
import * as Shape from "../../src/tensor/ops/Shape.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { gradcheck, uniform } from "./gradcheck.js"

const dim = fc.oneof(fc.constantFrom(0, 1), fc.integer({ min: 1, max: 4 }))
const shapeArb = fc.array(dim, { minLength: 1, maxLength: 3 })
const seed = fc.integer({ min: 1, max: 1_000_000 })
const tolerance = 1e-6

/** A shape b that broadcasts against a: a suffix of a, with some dims turned into 1. */
const broadcastPair = shapeArb.chain((a) =>
  fc.tuple(fc.integer({ min: 0, max: a.length }), fc.array(fc.boolean(), { minLength: a.length, maxLength: a.length })).map(([drop, ones]) => {
    const b = a.slice(drop).map((d, i) => (ones[i + drop] === true ? 1 : d))
    return { a, b: b.length === 0 ? [1] : b }
  }),
)

describe("elementwise ops", () => {
  test("add, sub, mul, div broadcast and their backward matches finite differences", () => {
    fc.assert(
      fc.property(broadcastPair, seed, fc.boolean(), ({ a, b }, s, swap) => {
        const [sa, sb] = swap ? [b, a] : [a, b]
        const x = uniform(sa, s)
        const y = uniform(sb, s + 1, 0.5, 2) // keep divisors away from 0
        for (const op of [Elementwise.add, Elementwise.sub, Elementwise.mul, Elementwise.div]) {
          const r = gradcheck(([p, q]) => op(p as Tensor.Tensor, q as Tensor.Tensor), [x, y])
          expect(r.maxRelativeError, `${op.name} ${r.worst}`).toBeLessThan(tolerance)
        }
      }),
      { numRuns: 60 },
    )
  })

  test("scale, exp, log, silu, sigmoid backward matches finite differences", () => {
    fc.assert(
      fc.property(shapeArb, seed, (shape, s) => {
        const x = uniform(shape, s, -3, 3)
        const pos = uniform(shape, s, 0.2, 3)
        const cases: Array<[string, (t: Tensor.Tensor) => Tensor.Tensor, Tensor.Tensor]> = [
          ["scale", (t) => Elementwise.scale(t, -1.7), x],
          ["exp", Elementwise.exp, x],
          ["log", Elementwise.log, pos],
          ["silu", Elementwise.silu, x],
          ["sigmoid", Elementwise.sigmoidOf, x],
        ]
        for (const [name, f, input] of cases) {
          const r = gradcheck(([t]) => f(t as Tensor.Tensor), [input])
          expect(r.maxRelativeError, `${name} ${r.worst}`).toBeLessThan(tolerance)
        }
      }),
      { numRuns: 60 },
    )
  })

  test("incompatible shapes name the op, both shapes and the dim", () => {
    const a = Tensor.zeros([2, 3])
    const b = Tensor.zeros([4])
    expect(() => Elementwise.add(a, b)).toThrow("add: cannot broadcast [2, 3] with [4]: dim -1 is 3 vs 4")
    expect(() => Elementwise.mul(a, Tensor.zeros([2, 3], { dtype: "float64" }))).toThrow("mul: dtypes differ")
  })
})

describe("reductions", () => {
  test("sum and mean over any dim (keepDim or not) match finite differences", () => {
    fc.assert(
      fc.property(
        shapeArb.filter((s) => s.every((d) => d > 0)),
        seed,
        fc.nat(),
        fc.boolean(),
        (shape, s, d, keep) => {
          const x = uniform(shape, s)
          const dimIndex = (d % shape.length) - (d % 2 === 0 ? 0 : shape.length)
          for (const op of [Reduce.sum, Reduce.mean]) {
            const r = gradcheck(([t]) => op(t as Tensor.Tensor, dimIndex, keep), [x])
            expect(r.maxRelativeError, `${op.name} ${r.worst}`).toBeLessThan(tolerance)
          }
          const r = gradcheck(([t]) => Reduce.sumAll(t as Tensor.Tensor), [x])
          expect(r.maxRelativeError).toBeLessThan(tolerance)
        },
      ),
      { numRuns: 60 },
    )
  })

  test("the sum over a dim of size 0 is 0 and its gradient is empty", () => {
    const tape = Tape.make()
    const x = tape.parameter(Tensor.zeros([3, 0], { dtype: "float64" }))
    const y = Reduce.sum(x, 1)
    expect(Tensor.toArray(y)).toEqual([0, 0, 0])
    tape.backward(Reduce.sumAll(y))
    expect(x.grad?.shape).toEqual([3, 0])
  })
})

describe("shape ops", () => {
  test("reshape and rows are views: no copy, and their gradients land in place", () => {
    const x = uniform([4, 3], 3)
    expect(Shape.reshape(x, [2, -1]).data).toBe(x.data)
    expect(Shape.rows(x, 1, 3).data.buffer).toBe(x.data.buffer)
    const r = gradcheck(([t]) => Shape.rows(Shape.reshape(t as Tensor.Tensor, [6, 2]), 2, 5), [x])
    expect(r.maxRelativeError).toBeLessThan(tolerance)
    expect(() => Shape.reshape(x, [5, -1])).toThrow("reshape: cannot view [4, 3] (12 elements) as [5, -1]")
  })

  test("transpose puts element [.., i, .., j, ..] at [.., j, .., i, ..] (short and long inner blocks)", () => {
    const dims = fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 4 })
    fc.assert(
      fc.property(dims, fc.constantFrom(1, 3, 16, 40), fc.nat(), fc.nat(), seed, (lead, inner, i, j, s) => {
        const shape = [...lead, inner]
        const x = uniform(shape, s)
        const d0 = i % shape.length
        const d1 = j % shape.length
        const y = Shape.transpose(x, d0, d1)
        const strides = (sh: ReadonlyArray<number>) => sh.map((_, k) => sh.slice(k + 1).reduce((p, d) => p * d, 1))
        const inStrides = strides(shape)
        const outStrides = strides(y.shape)
        expect(y.shape).toEqual(shape.map((d, k) => (k === d0 ? (shape[d1] as number) : k === d1 ? (shape[d0] as number) : d)))
        for (let flat = 0; flat < x.size; flat++) {
          const idx = inStrides.map((st, k) => Math.floor(flat / st) % (shape[k] as number))
          const swapped = idx.map((v, k) => (k === d0 ? (idx[d1] as number) : k === d1 ? (idx[d0] as number) : v))
          const at = swapped.reduce((acc, v, k) => acc + v * (outStrides[k] as number), 0)
          expect(Object.is(y.data[at], x.data[flat])).toBe(true)
        }
      }),
      { numRuns: 100 },
    )
  })

  test("transpose twice is the identity and transpose, concat, split match finite differences", () => {
    fc.assert(
      fc.property(shapeArb, seed, fc.nat(), fc.nat(), (shape, s, i, j) => {
        const x = uniform(shape, s)
        const d0 = i % shape.length
        const d1 = j % shape.length
        const back = Shape.transpose(Shape.transpose(x, d0, d1), d0, d1)
        expect(Tensor.toArray(back)).toEqual(Tensor.toArray(x))
        const r1 = gradcheck(([t]) => Shape.transpose(t as Tensor.Tensor, d0, d1), [x])
        expect(r1.maxRelativeError).toBeLessThan(tolerance)
        const y = uniform(
          shape.map((d, k) => (k === d0 ? d + 1 : d)),
          s + 3,
        )
        const r2 = gradcheck(([p, q]) => Shape.concat([p as Tensor.Tensor, q as Tensor.Tensor], d0), [x, y])
        expect(r2.maxRelativeError).toBeLessThan(tolerance)
        const n = shape[d0] as number
        const cut = Math.min(n, j % (n + 1))
        const parts = Shape.split(x, [cut, n - cut], d0)
        expect(Tensor.toArray(Shape.concat(parts, d0))).toEqual(Tensor.toArray(x))
        const r3 = gradcheck(([t]) => Shape.concat(Shape.split(t as Tensor.Tensor, [cut, n - cut], d0).reverse(), d0), [x])
        expect(r3.maxRelativeError).toBeLessThan(tolerance)
      }),
      { numRuns: 60 },
    )
  })
})

describe("tape", () => {
  test("gradients accumulate across backward passes; noGrad records nothing", () => {
    const tape = Tape.make()
    const w = tape.parameter(Tensor.fromArray([1, 2, 3], [3], { dtype: "float64" }))
    for (let step = 0; step < 3; step++) tape.backward(Reduce.sumAll(Elementwise.mul(w, w)))
    expect(Tensor.toArray(w.grad as Tensor.Tensor)).toEqual([6, 12, 18])
    const before = tape.length
    const y = tape.noGrad(() => Elementwise.exp(w))
    expect(y.requiresGrad).toBe(false)
    expect(tape.length).toBe(before)
  })

  test("two tapes never mix, and the non-finite guard names the op", () => {
    const a = Tape.make({ name: "rank 0" }).parameter(Tensor.zeros([2]))
    const b = Tape.make({ name: "rank 1" }).parameter(Tensor.zeros([2]))
    expect(() => Elementwise.add(a, b)).toThrow("add: inputs are recorded on two tapes (rank 0 and rank 1)")
    const guarded = Tape.make({ guardNonFinite: true })
    const x = guarded.parameter(Tensor.fromArray([1, 0], [2], { dtype: "float64" }))
    expect(() => Elementwise.log(x)).toThrow("log: produced -Infinity at flat index 1")
  })
})
