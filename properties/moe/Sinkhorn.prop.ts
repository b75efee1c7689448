// Sinkhorn routing (semantics.md 2.1.8): the balancing equals the reference's iteration written
// out from its definition, bit for bit; every expert's column of the result holds 1/E (up to the
// reference's epsilon over the column's mass) and every token's row about 1/T; in training the router selects the top-k of the balanced logits (a router
// that prefers one expert still spreads its tokens), in evaluation the top-k of the activation
// (exactly pre-softmax routing for top-k > 1, sigmoid top-1 routing for top-1); the probs'
// gradient equals finite differences; an exp that overflows is refused, and a balancing that
// does not converge stops after Sinkhorn.maxIterations updates.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Router from "../../src/moe/Router.js"
import * as RoutingMap from "../../src/moe/RoutingMap.js"
import * as Sinkhorn from "../../src/moe/Sinkhorn.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import * as TensorError from "../../src/tensor/TensorError.js"
import { gradcheck, uniform } from "../tensor/gradcheck.js"
import { logit, matrix, seed } from "./arbitraries.js"

/** The reference's loop as semantics.md writes it, on nested arrays. */
const reference = (logits: ReadonlyArray<ReadonlyArray<number>>): Array<Array<number>> => {
  const c = logits.map((row) => row.map(Math.exp))
  const rows = c.length
  const cols = c[0]?.length ?? 0
  let d0 = new Array<number>(rows).fill(1)
  let d1 = new Array<number>(cols).fill(1)
  let error = 1e9
  let previous = d1
  let updates = 0
  while (error > 1e-4 && updates < Sinkhorn.maxIterations) {
    d0 = c.map((row) => 1 / rows / (row.reduce((s, v, e) => s + (d1[e] as number) * v, 0) + 1e-8))
    d1 = d1.map((_, e) => 1 / cols / (c.reduce((s, row, t) => s + (d0[t] as number) * (row[e] as number), 0) + 1e-8))
    error = d1.reduce((s, v, e) => s + Math.abs((previous[e] as number) - v), 0) / cols
    previous = d1
    updates++
  }
  return c.map((row, t) => row.map((v, e) => (d1[e] as number) * v * (d0[t] as number)))
}

const tensorOf = (m: ReadonlyArray<ReadonlyArray<number>>, cols: number) => Tensor.fromArray(m.flat(), [m.length, cols], { dtype: "float64" })

/** Top-k of a row, ties to the lower index. */
const topkOf = (row: ReadonlyArray<number>, k: number): Array<number> =>
  row
    .map((v, e) => [v, e] as const)
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, k)
    .map(([, e]) => e)

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x))
const softmax = (row: ReadonlyArray<number>) => {
  const m = Math.max(...row)
  const ex = row.map((v) => Math.exp(v - m))
  const s = ex.reduce((a, b) => a + b, 0)
  return ex.map((v) => v / s)
}

/** A case: T tokens (1-12), E experts (1-8), K, logits with many ties. */
const sinkhornCase = fc
  .record({ t: fc.integer({ min: 1, max: 12 }), e: fc.integer({ min: 1, max: 8 }), kRaw: fc.nat() })
  .chain(({ t, e, kRaw }) => fc.record({ e: fc.constant(e), k: fc.constant((kRaw % e) + 1), logits: matrix(t, e, logit) }))

describe("Sinkhorn.balance", () => {
  test("equals the reference's iteration from its definition, bit for bit", () => {
    fc.assert(
      fc.property(sinkhornCase, ({ e, logits }) => {
        const got = Sinkhorn.balance(logits.flat(), logits.length, e).balanced
        expect(Array.from(got)).toEqual(reference(logits).flat())
      }),
      { numRuns: 300 },
    )
  })

  test("every expert's column holds 1/E and every token's row about 1/T", () => {
    fc.assert(
      fc.property(sinkhornCase, ({ e, logits }) => {
        const t = logits.length
        const { balanced } = Sinkhorn.balance(logits.flat(), t, e)
        for (let j = 0; j < e; j++) {
          let s = 0
          for (let r = 0; r < t; r++) s += balanced[r * e + j] as number
          expect(Math.abs(s * e - 1)).toBeLessThan(5e-3)
        }
        for (let r = 0; r < t; r++) {
          const s = balanced.subarray(r * e, (r + 1) * e).reduce((a, b) => a + b, 0)
          expect(Math.abs(s * t - 1)).toBeLessThan(1e-2)
        }
      }),
      { numRuns: 300 },
    )
  })

  test("an exp that overflows float64 (or a NaN logit) is refused at its entry", () => {
    for (const bad of [710, Number.NaN, Number.POSITIVE_INFINITY]) {
      const logits = [0, 1, 2, bad, 0, 0]
      let thrown: unknown
      try {
        Sinkhorn.balance(logits, 3, 2)
      } catch (error) {
        thrown = error
      }
      expect(thrown).toBeInstanceOf(TensorError.NonFiniteError)
      expect((thrown as TensorError.NonFiniteError).index).toBe(3)
      expect((thrown as TensorError.NonFiniteError).message).toMatch(/^sinkhorn/)
    }
  })

  test("logits hundreds apart stop after maxIterations updates (where the reference would not stop), with a finite result", () => {
    let s = 7
    const next = () => {
      s = (s * 48271) % 2147483647
      return s / 2147483647
    }
    const logits = Array.from({ length: 64 * 8 }, () => (next() - 0.5) * 300)
    const r = Sinkhorn.balance(logits, 64, 8)
    expect(r.iterations).toBe(Sinkhorn.maxIterations)
    expect(r.balanced.every(Number.isFinite)).toBe(true)
    // Moderate logits converge within a few updates.
    expect(
      Sinkhorn.balance(
        logits.map((v) => v / 100),
        64,
        8,
      ).iterations,
    ).toBeLessThan(10)
  })
})

describe("Router with Sinkhorn routing", () => {
  test("training selects the top-k of the balanced logits; its probs are the activation there, not renormalized", () => {
    fc.assert(
      fc.property(sinkhornCase, ({ e, k, logits }) => {
        const r = Router.routing(tensorOf(logits, e), { topk: k, scoreFunction: "softmax", sinkhorn: "training" })
        const balanced = reference(logits)
        const probs = Array.from(r.probs.data)
        logits.forEach((row, t) => {
          const chosen = topkOf(balanced[t] as Array<number>, k)
          expect(RoutingMap.toNested(r.routingMap)[t]?.flatMap((on, j) => (on ? [j] : []))).toEqual([...chosen].sort((a, b) => a - b))
          const act = k === 1 ? row.map(sigmoid) : softmax(row)
          for (let j = 0; j < e; j++) {
            const want = chosen.includes(j) ? (act[j] as number) : 0
            expect(Math.abs((probs[t * e + j] as number) - want)).toBeLessThanOrEqual(1e-12)
          }
        })
      }),
      { numRuns: 300 },
    )
  })

  test("evaluation is pre-softmax routing for top-k > 1 and sigmoid routing for top-1, exactly", () => {
    fc.assert(
      fc.property(sinkhornCase, ({ e, k, logits }) => {
        const x = tensorOf(logits, e)
        const r = Router.routing(x, { topk: k, scoreFunction: "softmax", sinkhorn: "evaluation" })
        const plain = Router.routing(x, k === 1 ? { topk: 1, scoreFunction: "sigmoid" } : { topk: k, scoreFunction: "softmax", preSoftmax: true })
        expect(Array.from(r.indices)).toEqual(Array.from(plain.indices))
        expect(Array.from(r.probs.data)).toEqual(Array.from(plain.probs.data))
      }),
      { numRuns: 300 },
    )
  })

  test("a router that prefers one expert still spreads its tokens over all of them in training", () => {
    let s = 11
    const next = () => {
      s = (s * 48271) % 2147483647
      return s / 2147483647
    }
    // 64 tokens, 4 experts, expert 0's logit 3 higher: plain top-1 sends every token there.
    const logits = Array.from({ length: 64 * 4 }, (_, i) => next() - 0.5 + (i % 4 === 0 ? 3 : 0))
    const x = Tensor.fromArray(logits, [64, 4], { dtype: "float64" })
    const load = (o: Router.RouterOptions) => RoutingMap.tokensPerExpert(Router.routing(x, o).routingMap)
    expect(Array.from(load({ topk: 1, scoreFunction: "sigmoid" }))).toEqual([64, 0, 0, 0])
    expect(Array.from(load({ topk: 1, scoreFunction: "softmax", sinkhorn: "evaluation" }))).toEqual([64, 0, 0, 0])
    const balanced = Array.from(load({ topk: 1, scoreFunction: "softmax", sinkhorn: "training" }))
    expect(
      balanced.every((n) => n >= 12 && n <= 20),
      `${balanced}`,
    ).toBe(true)
  })

  test("the probs' backward matches finite differences (top-1 and top-k)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 6 }), fc.nat(), seed, (t, e, kRaw, s) => {
        const options: Router.RouterOptions = { topk: (kRaw % e) + 1, scoreFunction: "softmax", sinkhorn: "training" }
        const x = uniform([t, e], s, -3, 3)
        const indices = Router.select(x, options)
        const r = gradcheck(([l]) => Router.probsFor(l as Tensor.Tensor, indices, options), [x])
        expect(r.maxRelativeError, r.worst).toBeLessThan(1e-6)
      }),
      { numRuns: 80 },
    )
  })
})
