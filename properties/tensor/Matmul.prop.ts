// Matmul: 2-D and batched, transposed operands, shared operands; backward vs finite differences;
// transpose identities; and the gradcheck itself catches a wrong backward.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Autograd from "../../src/tensor/Autograd.js"
import * as DType from "../../src/tensor/DType.js"
import { matmul } from "../../src/tensor/ops/Matmul.js"
import * as Shape from "../../src/tensor/ops/Shape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { gradcheck, uniform } from "./gradcheck.js"

const small = fc.integer({ min: 0, max: 4 })
const seed = fc.integer({ min: 1, max: 1_000_000 })

const stored = (rows: number, cols: number, trans: boolean) => (trans ? [cols, rows] : [rows, cols])

/** Naive product of op(a) and op(b) for 2-D arrays, straight from the definition. */
const naive = (a: Tensor.Tensor, b: Tensor.Tensor, transA: boolean, transB: boolean, m: number, n: number, k: number) => {
  const out: Array<number> = []
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0
      for (let kk = 0; kk < k; kk++) {
        const av = a.data[transA ? kk * m + i : i * k + kk] as number
        const bv = b.data[transB ? j * k + kk : kk * n + j] as number
        s += av * bv
      }
      out.push(s)
    }
  return out
}

describe("matmul", () => {
  test("2-D with any transposes equals the definition, and backward matches finite differences", () => {
    fc.assert(
      fc.property(small, small, small, fc.boolean(), fc.boolean(), seed, (m, n, k, tA, tB, s) => {
        const a = uniform(stored(m, k, tA), s)
        const b = uniform(stored(k, n, tB), s + 1)
        const c = matmul(a, b, { transA: tA, transB: tB })
        expect(c.shape).toEqual([m, n])
        const expected = naive(a, b, tA, tB, m, n, k)
        Tensor.toArray(c).forEach((v, i) => expect(v).toBeCloseTo(expected[i] as number, 12))
        const r = gradcheck(([x, y]) => matmul(x as Tensor.Tensor, y as Tensor.Tensor, { transA: tA, transB: tB }), [a, b])
        expect(r.maxRelativeError, r.worst).toBeLessThan(1e-6)
      }),
      { numRuns: 80 },
    )
  })

  test("batched, with a shared operand on either side, matches finite differences", () => {
    fc.assert(
      fc.property(
        small,
        small,
        small,
        fc.integer({ min: 1, max: 3 }),
        fc.constantFrom("both", "sharedA", "sharedB"),
        fc.boolean(),
        fc.boolean(),
        seed,
        (m, n, k, batch, mode, tA, tB, s) => {
          const aShape = mode === "sharedA" ? stored(m, k, tA) : [batch, ...stored(m, k, tA)]
          const bShape = mode === "sharedB" ? stored(k, n, tB) : [batch, ...stored(k, n, tB)]
          const a = uniform(aShape, s)
          const b = uniform(bShape, s + 1)
          expect(matmul(a, b, { transA: tA, transB: tB }).shape).toEqual([batch, m, n])
          const r = gradcheck(([x, y]) => matmul(x as Tensor.Tensor, y as Tensor.Tensor, { transA: tA, transB: tB }), [a, b])
          expect(r.maxRelativeError, r.worst).toBeLessThan(1e-6)
        },
      ),
      { numRuns: 80 },
    )
  })

  test("transpose identities: (AB)^T = B^T A^T, and trans flags equal explicit transposes", () => {
    fc.assert(
      fc.property(small, small, small, seed, (m, n, k, s) => {
        const a = uniform([m, k], s)
        const b = uniform([k, n], s + 1)
        const left = Shape.transpose(matmul(a, b), 0, 1)
        const right = matmul(b, a, { transA: true, transB: true })
        Tensor.toArray(left).forEach((v, i) => expect(v).toBeCloseTo(Tensor.toArray(right)[i] as number, 12))
        const at = Shape.transpose(a, 0, 1)
        expect(Tensor.toArray(matmul(at, b, { transA: true }))).toEqual(Tensor.toArray(matmul(a, b)))
      }),
      { numRuns: 60 },
    )
  })

  test("shape errors name the op, both shapes and the dims", () => {
    expect(() => matmul(Tensor.zeros([2, 3]), Tensor.zeros([4, 5]))).toThrow("matmul: inner dims differ (3 vs 4): a [2, 3] x b [4, 5]")
    expect(() => matmul(Tensor.zeros([2, 2, 3]), Tensor.zeros([3, 3, 5]))).toThrow("batch dims differ ([2] vs [3])")
  })

  test("gradcheck catches a wrong backward (the harness can fail)", () => {
    // y = 2x with a backward that claims dy/dx = 3.
    const wrong = (x: Tensor.Tensor) => {
      const out = DType.allocate(x.dtype, x.size)
      for (let i = 0; i < x.size; i++) out[i] = 2 * (x.data[i] as number)
      return Autograd.result("wrong", [x], out, x.shape, (g) => {
        const d = DType.allocate(g.dtype, g.size)
        for (let i = 0; i < g.size; i++) d[i] = 3 * (g.data[i] as number)
        return [Tensor.fromStorage(d, g.shape)]
      })
    }
    const r = gradcheck(([x]) => wrong(x as Tensor.Tensor), [uniform([3], 1)])
    expect(r.maxRelativeError).toBeGreaterThan(0.1)
  })
})

describe("matmulEffect", () => {
  test("equals matmul exactly, inline below the async threshold and on the thread pool above it", async () => {
    const { Effect } = await import("effect")
    const { matmulEffect } = await import("../../src/tensor/ops/Matmul.js")
    for (const n of [8, 320]) {
      const a = Tensor.fromArray(
        Array.from({ length: n * n }, (_, i) => ((i * 7) % 13) / 13 - 0.5),
        [n, n],
      )
      const b = Tensor.fromArray(
        Array.from({ length: n * n }, (_, i) => ((i * 5) % 11) / 11 - 0.5),
        [n, n],
      )
      const viaEffect = await Effect.runPromise(matmulEffect(a, b, { transB: true }))
      expect(Tensor.toArray(viaEffect)).toEqual(Tensor.toArray(matmul(a, b, { transB: true })))
    }
  })
})
