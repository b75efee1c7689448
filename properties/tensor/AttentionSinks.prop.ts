// Attention with softmax sinks (AttentionSinks: one more logit per query head that takes
// probability and gives no value; Megatron's --softmax-type learnable and off-by-one, GPT-OSS's
// sinks): equals a naive reference that appends the sink to each row's scores, in float64 (causal,
// with documents, GQA, rows with no visible key); its backward for q, k, v and the sinks matches
// finite differences; the native float32 kernels agree with it, forward and backward.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import { addonIfBuilt } from "../../src/native/CpuAddon.js"
import { attention, type AttentionOptions } from "../../src/tensor/ops/Attention.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { gradcheck, uniform } from "./gradcheck.js"

interface Problem {
  readonly b: number
  readonly s: number
  readonly hkv: number
  readonly group: number
  readonly d: number
  readonly dv: number
  readonly options: AttentionOptions
  readonly seed: number
}

const problemArb: fc.Arbitrary<Problem> = fc
  .record({
    b: fc.integer({ min: 1, max: 2 }),
    s: fc.integer({ min: 1, max: 5 }),
    hkv: fc.integer({ min: 1, max: 2 }),
    group: fc.integer({ min: 1, max: 2 }),
    d: fc.integer({ min: 1, max: 3 }),
    dv: fc.integer({ min: 1, max: 3 }),
    mask: fc.constantFrom("causal", "documents", "late queries"),
    seed: fc.integer({ min: 1, max: 1_000_000 }),
  })
  .map(({ mask, ...p }) => ({
    ...p,
    options:
      mask === "causal"
        ? {}
        : mask === "documents"
          ? { queryFirstKeys: Int32Array.from({ length: p.s }, (_, i) => i - (i % 2)) }
          : // Query 0 sees no key (its position is before every key's): a row with the sink alone.
            { queryPositions: Int32Array.from({ length: p.s }, (_, i) => i), keyPositions: Int32Array.from({ length: p.s }, (_, j) => j + 1) },
  }))

const tensorsOf = (p: Problem) => [
  uniform([p.b, p.s, p.hkv * p.group, p.d], p.seed, -2, 2),
  uniform([p.b, p.s, p.hkv, p.d], p.seed + 1, -2, 2),
  uniform([p.b, p.s, p.hkv, p.dv], p.seed + 2),
  uniform([p.hkv * p.group], p.seed + 3, -2, 2),
]

/** The definition: each row's scores with the sink appended, softmax, the sink's share dropped. */
const naive = (q: Tensor.Tensor, k: Tensor.Tensor, v: Tensor.Tensor, sinks: Tensor.Tensor, options: AttentionOptions): Array<number> => {
  const [b, sq, hq, d] = q.shape as [number, number, number, number]
  const [, sk, hkv] = k.shape as [number, number, number]
  const dv = v.shape[3] as number
  const pos = (p: Int32Array | undefined, i: number) => (p === undefined ? i : (p[i] as number))
  const out = new Array<number>(b * sq * hq * dv).fill(0)
  for (let bi = 0; bi < b; bi++)
    for (let h = 0; h < hq; h++) {
      const kh = Math.floor(h / (hq / hkv))
      for (let i = 0; i < sq; i++) {
        const scores: Array<[number, number]> = []
        for (let j = 0; j < sk; j++) {
          const key = pos(options.keyPositions, j)
          const first = options.queryFirstKeys === undefined ? Number.NEGATIVE_INFINITY : (options.queryFirstKeys[i] as number)
          if (key > pos(options.queryPositions, i) || first > key) continue
          let dot = 0
          for (let e = 0; e < d; e++) dot += (q.data[((bi * sq + i) * hq + h) * d + e] as number) * (k.data[((bi * sk + j) * hkv + kh) * d + e] as number)
          scores.push([j, dot / Math.sqrt(d)])
        }
        const sink = sinks.data[h] as number
        const max = Math.max(sink, ...scores.map(([, x]) => x))
        const total = Math.exp(sink - max) + scores.reduce((a, [, x]) => a + Math.exp(x - max), 0)
        for (const [j, x] of scores)
          for (let e = 0; e < dv; e++) {
            const at = ((bi * sq + i) * hq + h) * dv + e
            out[at] = (out[at] as number) + (Math.exp(x - max) / total) * (v.data[((bi * sk + j) * hkv + kh) * dv + e] as number)
          }
      }
    }
  return out
}

const withSinks = (options: AttentionOptions) => (t: ReadonlyArray<Tensor.Tensor>) =>
  attention(t[0] as Tensor.Tensor, t[1] as Tensor.Tensor, t[2] as Tensor.Tensor, { ...options, sinks: t[3] as Tensor.Tensor })

const built = addonIfBuilt() !== undefined

describe("attention with softmax sinks", () => {
  test("equals the reference that appends each head's sink to its scores", () => {
    fc.assert(
      fc.property(problemArb, (p) => {
        const [q, k, v, sinks] = tensorsOf(p) as [Tensor.Tensor, Tensor.Tensor, Tensor.Tensor, Tensor.Tensor]
        const y = withSinks(p.options)([q, k, v, sinks])
        const expected = naive(q, k, v, sinks, p.options)
        y.data.forEach((x, i) => expect(Math.abs(x - (expected[i] as number))).toBeLessThan(1e-12))
        // The sinks take probability: where a row sees a key, without them it differs.
        const plain = attention(q, k, v, p.options)
        if (plain.data.some((x) => x !== 0)) expect(plain.data.some((x, i) => Math.abs(x - (y.data[i] as number)) > 1e-9)).toBe(true)
      }),
      { numRuns: 80 },
    )
  })

  test("backward for q, k, v and the sinks matches finite differences", () => {
    fc.assert(
      fc.property(problemArb, (p) => {
        const r = gradcheck(withSinks(p.options), tensorsOf(p))
        expect(r.maxRelativeError, r.worst).toBeLessThan(1e-6)
      }),
      { numRuns: 60 },
    )
  })

  test.runIf(built)("the native float32 kernels give the float64 values and gradients", () => {
    fc.assert(
      fc.property(problemArb, (p) => {
        const run = (dtype: "float32" | "float64") => {
          const tape = Tape.make()
          const inputs = tensorsOf(p).map((t) => tape.parameter(Tensor.fromArray(t.data, t.shape, { dtype })))
          const y = withSinks(p.options)(inputs)
          tape.backward(y, { gradient: Tensor.fromArray(uniform(y.shape, p.seed + 9).data, y.shape, { dtype }) })
          return [y, ...inputs.map((t) => t.grad as Tensor.Tensor)].map((t) => Array.from(t.data))
        }
        const [single, double] = [run("float32"), run("float64")]
        single.forEach((values, t) => values.forEach((x, i) => expect(Math.abs(x - ((double[t] as Array<number>)[i] as number))).toBeLessThan(2e-5)))
      }),
      { numRuns: 60 },
    )
  })
})
