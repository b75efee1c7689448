// RoPE: backward equals finite differences in float64; pair norms are preserved; position 0 is
// the identity; scores depend only on relative positions; a context-parallel chunk with its real
// positions matches the slice of the whole sequence; float32 agrees with float64.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import { rope } from "../../src/tensor/ops/Rope.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { dtypeAgreement } from "./dtypes.js"
import { gradcheck, uniform } from "./gradcheck.js"

const small = fc.integer({ min: 0, max: 3 })
const seed = fc.integer({ min: 1, max: 1_000_000 })
/** [B, S, heads, D] with D even. */
const shapeArb = fc.tuple(small, small, small, fc.integer({ min: 0, max: 3 })).map(([b, s, h, half]) => [b, s, h, 2 * half])
const thetaArb = fc.constantFrom(10000, 100, 2.5)

/** Positions for x: none, S of them, or B*S of them (any integers, negative included). */
const positionsFor = (shape: ReadonlyArray<number>, kind: number, s: number): Int32Array | undefined => {
  const [b, sl] = shape as [number, number]
  if (kind === 0) return undefined
  const n = kind === 1 ? sl : b * sl
  return Int32Array.from({ length: n }, (_, i) => ((i * 37 + s) % 200) - 20)
}

describe("rope", () => {
  test("backward matches finite differences", () => {
    fc.assert(
      fc.property(shapeArb, seed, thetaArb, fc.integer({ min: 0, max: 2 }), (shape, s, theta, kind) => {
        const positions = positionsFor(shape, kind, s)
        const r = gradcheck(([t]) => rope(t as Tensor.Tensor, { positions, theta }), [uniform(shape, s)])
        expect(r.maxRelativeError, r.worst).toBeLessThan(1e-6)
      }),
      { numRuns: 50 },
    )
  })

  test("every pair (i, i + D/2) keeps its norm, and position 0 is the identity", () => {
    fc.assert(
      fc.property(shapeArb, seed, thetaArb, fc.integer({ min: 0, max: 2 }), (shape, s, theta, kind) => {
        const x = uniform(shape, s)
        const y = rope(x, { positions: positionsFor(shape, kind, s), theta })
        const d = shape[3] as number
        const half = d / 2
        for (let base = 0; base < x.size; base += d) {
          for (let i = 0; i < half; i++) {
            const before = (x.data[base + i] as number) ** 2 + (x.data[base + i + half] as number) ** 2
            const after = (y.data[base + i] as number) ** 2 + (y.data[base + i + half] as number) ** 2
            expect(Math.abs(after - before)).toBeLessThan(1e-14)
          }
        }
        const zeros = new Int32Array(shape[1] as number)
        expect(Tensor.toArray(rope(x, { positions: zeros, theta }))).toEqual(Tensor.toArray(x))
      }),
      { numRuns: 40 },
    )
  })

  test("q . k after rotation depends only on the distance between their positions", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        seed,
        fc.integer({ min: -50, max: 50 }),
        fc.integer({ min: -50, max: 50 }),
        fc.integer({ min: -50, max: 50 }),
        (half, s, m, n, shift) => {
          const d = 2 * half
          const q = uniform([1, 1, 1, d], s)
          const k = uniform([1, 1, 1, d], s + 1)
          const score = (pm: number, pn: number) => {
            const a = rope(q, { positions: Int32Array.of(pm) })
            const b = rope(k, { positions: Int32Array.of(pn) })
            let sum = 0
            for (let i = 0; i < d; i++) sum += (a.data[i] as number) * (b.data[i] as number)
            return sum
          }
          expect(score(m + shift, n + shift)).toBeCloseTo(score(m, n), 12)
        },
      ),
      { numRuns: 40 },
    )
  })

  test("default positions are 0..S-1, and a chunk with its real positions equals the slice of the whole", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), small, fc.integer({ min: 1, max: 3 }), seed, fc.nat(), fc.nat(), (s, h, half, sd, a, c) => {
        const d = 2 * half
        const x = uniform([1, s, h, d], sd)
        const whole = rope(x)
        expect(Tensor.toArray(rope(x, { positions: Int32Array.from({ length: s }, (_, i) => i) }))).toEqual(Tensor.toArray(whole))
        const start = a % s
        const end = start + 1 + (c % (s - start))
        const row = h * d
        const chunk = Tensor.fromArray(x.data.subarray(start * row, end * row), [1, end - start, h, d], { dtype: "float64" })
        const positions = Int32Array.from({ length: end - start }, (_, i) => start + i)
        expect(Tensor.toArray(rope(chunk, { positions }))).toEqual(Array.from(whole.data.subarray(start * row, end * row)))
      }),
      { numRuns: 40 },
    )
  })

  test("float32 matches float64", () => {
    fc.assert(
      fc.property(shapeArb, seed, fc.integer({ min: 0, max: 2 }), (shape, s, kind) => {
        const positions = positionsFor(shape, kind, s)
        const r = dtypeAgreement(([t]) => rope(t as Tensor.Tensor, { positions }), [uniform(shape, s)])
        expect(r.forward, r.worst).toBeLessThan(1e-5)
        expect(r.backward, r.worst).toBeLessThan(1e-5)
      }),
      { numRuns: 30 },
    )
  })

  test("an odd head dim, a wrong rank or a wrong number of positions is a ShapeError", () => {
    expect(() => rope(Tensor.zeros([1, 2, 1, 3]))).toThrow("rope: the head dim D must be even, got 3 in [1, 2, 1, 3]")
    expect(() => rope(Tensor.zeros([2, 4]))).toThrow("rope: x must be [B, S, heads, D], got [2, 4]")
    expect(() => rope(Tensor.zeros([2, 3, 1, 2]), { positions: new Int32Array(4) })).toThrow("rope: 4 positions for x [2, 3, 1, 2]: needs S = 3 (shared by the batch) or B*S = 6")
  })
})
