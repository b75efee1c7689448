// Attention: equals a naive per-head reference (explicit loops) with causal, non-causal and
// offset masks; backward equals finite differences in float64; GQA with Hkv = 1 equals repeating
// k and v; rows with no visible key give zeros; a context-parallel chunk with real positions
// matches the slice of the whole sequence; float32 agrees with float64.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import { attention, type AttentionOptions } from "../../src/tensor/ops/Attention.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import type { AttentionSizes } from "./attentionSizes.js"
import { dtypeAgreement } from "./dtypes.js"
import { gradcheck, uniform } from "./gradcheck.js"

const seed = fc.integer({ min: 1, max: 1_000_000 })

interface Problem extends AttentionSizes {
  readonly options: AttentionOptions
}

/** Small shapes (dims of 0 and 1 included) and a mask: causal, non-causal, or with positions. */
const problemArb: fc.Arbitrary<Problem> = fc
  .record({
    b: fc.integer({ min: 0, max: 2 }),
    sq: fc.integer({ min: 0, max: 3 }),
    sk: fc.integer({ min: 0, max: 4 }),
    hkv: fc.integer({ min: 1, max: 2 }),
    group: fc.integer({ min: 1, max: 2 }),
    d: fc.integer({ min: 0, max: 3 }),
    dv: fc.integer({ min: 0, max: 3 }),
    mask: fc.constantFrom("causal", "full", "positions", "batchPositions", "documents"),
    cuts: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
    offset: fc.integer({ min: -2, max: 3 }),
    scale: fc.option(fc.double({ min: -2, max: 2, noNaN: true }), { nil: undefined }),
  })
  .map(({ mask, offset, scale, cuts, ...p }) => {
    const sk = mask === "causal" || mask === "documents" ? p.sq : p.sk
    const base = { ...p, sk }
    const options: AttentionOptions =
      mask === "causal"
        ? { scale }
        : mask === "full"
          ? { causal: false, scale }
          : mask === "documents"
            ? { scale, queryFirstKeys: documentStarts(p.b, p.sq, cuts) }
            : mask === "positions"
              ? { scale, queryPositions: Int32Array.from({ length: p.sq }, (_, i) => i + offset), keyPositions: Int32Array.from({ length: sk }, (_, j) => j) }
              : {
                  scale,
                  queryPositions: Int32Array.from({ length: p.b * p.sq }, (_, i) => (i % Math.max(p.sq, 1)) + offset + Math.floor(i / Math.max(p.sq, 1))),
                  keyPositions: Int32Array.from({ length: p.b * sk }, (_, j) => j % Math.max(sk, 1)),
                }
    return { ...base, options }
  })

/**
 * Each query's document start for sequences cut into documents where `cuts` says (a document
 * ends after position i of batch entry bi when cuts[(bi * sq + i) % 8]).
 */
const documentStarts = (b: number, sq: number, cuts: ReadonlyArray<boolean>): Int32Array => {
  const starts = new Int32Array(b * sq)
  for (let bi = 0; bi < b; bi++) {
    let start = 0
    for (let i = 0; i < sq; i++) {
      starts[bi * sq + i] = start
      if (cuts[(bi * sq + i) % cuts.length] === true) start = i + 1
    }
  }
  return starts
}

const inputs = (p: Problem, s: number) => [
  uniform([p.b, p.sq, p.hkv * p.group, p.d], s, -2, 2),
  uniform([p.b, p.sk, p.hkv, p.d], s + 1, -2, 2),
  uniform([p.b, p.sk, p.hkv, p.dv], s + 2),
]

/** The definition, one (batch, head, query) at a time, with an explicit mask. */
const naive = (q: Tensor.Tensor, k: Tensor.Tensor, v: Tensor.Tensor, options: AttentionOptions): Array<number> => {
  const [b, sq, hq, d] = q.shape as [number, number, number, number]
  const [, sk, hkv] = k.shape as [number, number, number]
  const dv = v.shape[3] as number
  const scale = options.scale ?? (d > 0 ? 1 / Math.sqrt(d) : 1)
  const pos = (p: Int32Array | undefined, bi: number, i: number, n: number) => (p === undefined ? i : p.length === n ? (p[i] as number) : (p[bi * n + i] as number))
  const out = new Array<number>(b * sq * hq * dv).fill(0)
  for (let bi = 0; bi < b; bi++)
    for (let h = 0; h < hq; h++) {
      const kh = Math.floor(h / (hq / hkv))
      for (let i = 0; i < sq; i++) {
        const scores: Array<[number, number]> = []
        for (let j = 0; j < sk; j++) {
          const key = pos(options.keyPositions, bi, j, sk)
          const first = options.queryFirstKeys === undefined ? Number.NEGATIVE_INFINITY : pos(options.queryFirstKeys, bi, i, sq)
          const seen = options.causal === false || (key <= pos(options.queryPositions, bi, i, sq) && first <= key)
          if (!seen) continue
          let sdot = 0
          for (let e = 0; e < d; e++) sdot += (q.data[((bi * sq + i) * hq + h) * d + e] as number) * (k.data[((bi * sk + j) * hkv + kh) * d + e] as number)
          scores.push([j, scale * sdot])
        }
        if (scores.length === 0) continue
        const max = Math.max(...scores.map(([, x]) => x))
        const weights = scores.map(([j, x]) => [j, Math.exp(x - max)] as const)
        const total = weights.reduce((a, [, w]) => a + w, 0)
        for (const [j, w] of weights)
          for (let e = 0; e < dv; e++) {
            const at = ((bi * sq + i) * hq + h) * dv + e
            out[at] = (out[at] as number) + (w / total) * (v.data[((bi * sk + j) * hkv + kh) * dv + e] as number)
          }
      }
    }
  return out
}

const close = (actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number) => {
  expect(actual.length).toBe(expected.length)
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i] as number
    const e = expected[i] as number
    expect(Math.abs(a - e), `element ${i}: ${a} vs ${e}`).toBeLessThanOrEqual(tolerance * Math.max(1, Math.abs(e)))
  }
}

describe("attention", () => {
  test("equals the naive per-head reference", () => {
    fc.assert(
      fc.property(problemArb, seed, (p, s) => {
        const [q, k, v] = inputs(p, s) as [Tensor.Tensor, Tensor.Tensor, Tensor.Tensor]
        const y = attention(q, k, v, p.options)
        expect(y.shape).toEqual([p.b, p.sq, p.hkv * p.group, p.dv])
        close(y.data, naive(q, k, v, p.options), 1e-12)
      }),
      { numRuns: 60 },
    )
  })

  test("backward for q, k and v matches finite differences", () => {
    fc.assert(
      fc.property(problemArb, seed, (p, s) => {
        const r = gradcheck(([q, k, v]) => attention(q as Tensor.Tensor, k as Tensor.Tensor, v as Tensor.Tensor, p.options), inputs(p, s))
        expect(r.maxRelativeError, r.worst).toBeLessThan(1e-6)
      }),
      { numRuns: 50 },
    )
  })

  test("GQA with one kv head equals multi-head attention on repeated k and v (values and gradients)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), seed, (b, s, hq, d, sd) => {
        const q = uniform([b, s, hq, d], sd)
        const k = uniform([b, s, 1, d], sd + 1)
        const v = uniform([b, s, 1, d], sd + 2)
        const repeat = (t: Tensor.Tensor) =>
          Tensor.fromArray(
            Array.from(t.data).flatMap((_, i) => (i % d === 0 ? Array.from({ length: hq }, () => Array.from(t.data.subarray(i, i + d))).flat() : [])),
            [b, s, hq, d],
            { dtype: "float64" },
          )
        const g = uniform([b, s, hq, d], sd + 3)
        const run = (kk: Tensor.Tensor, vv: Tensor.Tensor) => {
          const tape = Tape.make()
          const [pq, pk, pv] = [q, kk, vv].map((t) => tape.parameter(t)) as [Tensor.Tensor, Tensor.Tensor, Tensor.Tensor]
          const y = attention(pq, pk, pv)
          tape.backward(y, { gradient: g })
          return { y, dq: pq.grad as Tensor.Tensor, dk: pk.grad as Tensor.Tensor, dv: pv.grad as Tensor.Tensor }
        }
        const grouped = run(k, v)
        const repeated = run(repeat(k), repeat(v))
        close(grouped.y.data, repeated.y.data, 1e-12)
        close(grouped.dq.data, repeated.dq.data, 1e-12)
        // The shared kv head's gradient is the sum over the heads that read it.
        const sumHeads = (t: Tensor.Tensor) =>
          Array.from({ length: b * s * d }, (_, i) => {
            const token = Math.floor(i / d)
            let acc = 0
            for (let h = 0; h < hq; h++) acc += t.data[(token * hq + h) * d + (i % d)] as number
            return acc
          })
        close(grouped.dk.data, sumHeads(repeated.dk), 1e-12)
        close(grouped.dv.data, sumHeads(repeated.dv), 1e-12)
      }),
      { numRuns: 30 },
    )
  })

  test("a query that sees no key outputs zeros and gets zero gradient", () => {
    const tape = Tape.make()
    const q = tape.parameter(uniform([1, 2, 1, 2], 1))
    const k = tape.parameter(uniform([1, 2, 1, 2], 2))
    const v = tape.parameter(uniform([1, 2, 1, 2], 3))
    // Query 0 sits at position 4, before every key (5 and 6); query 1 at 5 sees key 0.
    const y = attention(q, k, v, { queryPositions: Int32Array.of(4, 5), keyPositions: Int32Array.of(5, 6) })
    expect(Array.from(y.data.subarray(0, 2))).toEqual([0, 0])
    expect(Array.from(y.data.subarray(2, 4))).toEqual(Array.from(v.data.subarray(0, 2)))
    tape.backward(y, { gradient: Tensor.full([1, 2, 1, 2], 1, { dtype: "float64" }) })
    expect(Array.from(q.grad?.data ?? []).slice(0, 2)).toEqual([0, 0])
  })

  test("a context-parallel chunk attending to earlier keys with real positions equals the slice of the whole", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 3 }), seed, fc.nat(), fc.nat(), (s, h, d, sd, a, c) => {
        const q = uniform([1, s, h, d], sd)
        const k = uniform([1, s, h, d], sd + 1)
        const v = uniform([1, s, h, d], sd + 2)
        const whole = attention(q, k, v)
        const start = a % s
        const end = start + 1 + (c % (s - start))
        const row = h * d
        const part = (t: Tensor.Tensor, from: number, to: number) => Tensor.fromArray(t.data.subarray(from * row, to * row), [1, to - from, h, d], { dtype: "float64" })
        // The chunk holds queries start..end-1 and every key up to end-1 (its own and earlier ones).
        const y = attention(part(q, start, end), part(k, 0, end), part(v, 0, end), {
          queryPositions: Int32Array.from({ length: end - start }, (_, i) => start + i),
        })
        close(y.data, whole.data.subarray(start * row, end * row), 1e-13)
      }),
      { numRuns: 40 },
    )
  })

  test("float32 matches float64", () => {
    fc.assert(
      fc.property(problemArb, seed, (p, s) => {
        const r = dtypeAgreement(([q, k, v]) => attention(q as Tensor.Tensor, k as Tensor.Tensor, v as Tensor.Tensor, p.options), inputs(p, s))
        // Measured over 5,000 random problems: at most 1.04e-5 forward (a few hundred float32
        // ulps, from exp and the row sums); 3e-5 leaves room without hiding a float64-only bug,
        // which shows at 1e-3 and above. The backward has a tail: over 20,000 non-causal problems
        // (2026-12-02) p99.9 1.3e-5 but a maximum of 2.1e-4 (eight above 3e-5, one of which failed
        // a CI-like run): the softmax backward's difference dS = P (dP - rowsum(dP P)) cancels, and
        // a key's gradient can be small beside the terms whose float32 rounding it carries (it is
        // compared at its own input's largest gradient). 5e-4 stays below the bug level.
        expect(r.forward, r.worst).toBeLessThan(3e-5)
        expect(r.backward, r.worst).toBeLessThan(5e-4)
      }),
      { numRuns: 30 },
    )
  })

  test("shape errors name the op and the shapes", () => {
    const z = (shape: Array<number>) => Tensor.zeros(shape)
    expect(() => attention(z([1, 2, 3, 4]), z([1, 2, 2, 4]), z([1, 2, 2, 4]))).toThrow(
      "attention: query heads 3 must be a multiple of kv heads 2 (grouped-query attention): q [1, 2, 3, 4], k [1, 2, 2, 4], v [1, 2, 2, 4]",
    )
    expect(() => attention(z([1, 2, 2, 4]), z([1, 2, 2, 3]), z([1, 2, 2, 4]))).toThrow("attention: q and k head dims differ (4 vs 3)")
    expect(() => attention(z([1, 2, 2, 4]), z([2, 2, 2, 4]), z([2, 2, 2, 4]))).toThrow("attention: batch dims differ")
    expect(() => attention(z([1, 2, 2, 4]), z([1, 2, 2, 4]), z([1, 3, 2, 4]))).toThrow("attention: k and v need the same sequence and head dims")
    expect(() => attention(z([2, 4]), z([2, 4]), z([2, 4]))).toThrow("attention: q, k, v must be [B, S, heads, D]")
    expect(() => attention(z([1, 2, 1, 4]), z([1, 2, 1, 4]), z([1, 2, 1, 4]), { queryPositions: new Int32Array(3) })).toThrow(
      "attention: 3 query positions: needs S = 2 (shared by the batch) or B*S = 2",
    )
  })
})
