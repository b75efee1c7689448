// Multi-latent attention on one rank equals an independent reading of its math (plain loops in
// float64 over the header's formulas: latents, their RMSNorms, the up projections, rotate-half
// RoPE on the rotary parts with the key's shared by every head, causal softmax at scale
// 1/sqrt(dn + dr); under YaRN its frequencies, attention factor and DeepSeek-V3's softmax
// factor), with and without a query latent, for random widths; every weight's gradient
// equals central finite differences of that reading. Its parallel forms (tp, cp, pp) are checked
// against one rank through whole models (properties/cli/LatentAttention.test.ts, pleat verify).
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as LatentAttention from "../../src/attention/LatentAttention.js"
import * as Group from "../../src/comm/Group.js"
import * as TensorLayout from "../../src/dataflow/TensorLayout.js"
import * as Job from "../../src/runtime/Job.js"
import * as Elementwise from "../../src/tensor/ops/Elementwise.js"
import * as Reduce from "../../src/tensor/ops/Reduce.js"
import * as RopeScaling from "../../src/tensor/ops/RopeScaling.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { relativeError, uniform } from "../tensor/gradcheck.js"

interface Case {
  readonly batch: number
  readonly seq: number
  readonly hidden: number
  readonly heads: number
  readonly sizes: LatentAttention.LatentSizes
  /** YaRN (its frequencies are RopeScaling's, checked in properties/tensor/RopeScaling.prop.ts). */
  readonly yarn: RopeScaling.Yarn | undefined
  readonly seed: number
}

const eps = 1e-6
const theta = 10000

type Weights = Record<string, Array<number>>

/** The weights' shapes ([in, out], as pleat holds them). */
const shapes = (c: Case): Record<string, [number, number] | [number]> => {
  const { qLoraRank: ql, kvLoraRank: kl, qkHeadDim: dn, qkPosEmbHeadDim: dr, vHeadDim: dv } = c.sizes
  const h = c.hidden
  return {
    ...(ql > 0 ? { wqA: [h, ql], qANorm: [ql], wqB: [ql, c.heads * (dn + dr)] } : { wq: [h, c.heads * (dn + dr)] }),
    wkvA: [h, kl + dr],
    kvANorm: [kl],
    wkvB: [kl, c.heads * (dn + dv)],
    wo: [c.heads * dv, h],
  } as Record<string, [number, number] | [number]>
}

/** Row vector times [in, out] matrix. */
const times = (v: ReadonlyArray<number>, w: ReadonlyArray<number>, out: number): Array<number> =>
  Array.from({ length: out }, (_, j) => v.reduce((s, x, i) => s + x * (w[i * out + j] as number), 0))

const rms = (v: ReadonlyArray<number>, g: ReadonlyArray<number>): Array<number> => {
  const r = 1 / Math.sqrt(v.reduce((s, x) => s + x * x, 0) / v.length + eps)
  return v.map((x, i) => x * r * (g[i] as number))
}

/** Rotate-half RoPE of one vector at `pos` (with YaRN: its frequencies, the rotation scaled by its attention factor). */
const rope = (v: ReadonlyArray<number>, pos: number, yarn: RopeScaling.Yarn | undefined): Array<number> => {
  const half = v.length / 2
  const out = [...v]
  const frequencies = RopeScaling.inverseFrequencies(v.length, theta, yarn)
  const m = yarn === undefined ? 1 : RopeScaling.attentionFactor(yarn)
  for (let i = 0; i < half; i++) {
    const angle = pos * (frequencies[i] as number)
    const [a, b] = [v[i] as number, v[i + half] as number]
    out[i] = m * (a * Math.cos(angle) - b * Math.sin(angle))
    out[i + half] = m * (b * Math.cos(angle) + a * Math.sin(angle))
  }
  return out
}

/** The reading: x rows [B*S, H] (batch-major) -> output rows [B*S, H]. */
const reference = (c: Case, x: ReadonlyArray<number>, w: Weights): Array<number> => {
  const { qLoraRank: ql, kvLoraRank: kl, qkHeadDim: dn, qkPosEmbHeadDim: dr, vHeadDim: dv } = c.sizes
  const h = c.hidden
  const tokens = Array.from({ length: c.batch * c.seq }, (_, t) => {
    const row = x.slice(t * h, (t + 1) * h)
    const pos = t % c.seq
    const cq = ql > 0 ? rms(times(row, w.wqA as Array<number>, ql), w.qANorm as Array<number>) : row
    const q = times(cq, (ql > 0 ? w.wqB : w.wq) as Array<number>, c.heads * (dn + dr))
    const kvA = times(row, w.wkvA as Array<number>, kl + dr)
    const kv = times(rms(kvA.slice(0, kl), w.kvANorm as Array<number>), w.wkvB as Array<number>, c.heads * (dn + dv))
    const keyRope = rope(kvA.slice(kl), pos, c.yarn)
    const heads = Array.from({ length: c.heads }, (_, n) => {
      const qh = q.slice(n * (dn + dr), (n + 1) * (dn + dr))
      const kvh = kv.slice(n * (dn + dv), (n + 1) * (dn + dv))
      return { q: [...qh.slice(0, dn), ...rope(qh.slice(dn), pos, c.yarn)], k: [...kvh.slice(0, dn), ...keyRope], v: kvh.slice(dn) }
    })
    return heads
  })
  const out: Array<number> = []
  for (let t = 0; t < c.batch * c.seq; t++) {
    const first = t - (t % c.seq)
    const attended: Array<number> = []
    for (let n = 0; n < c.heads; n++) {
      const q = (tokens[t] as Array<{ q: Array<number>; k: Array<number>; v: Array<number> }>)[n]?.q as Array<number>
      const scores: Array<number> = []
      for (let j = first; j <= t; j++) {
        const k = (tokens[j] as Array<{ k: Array<number> }>)[n]?.k as Array<number>
        // DeepSeek-V3's softmax scale under YaRN: times m(s, mscaleAllDim)^2.
        const yarnScale = c.yarn === undefined || c.yarn.mscaleAllDim === 0 ? 1 : (1 + 0.1 * c.yarn.mscaleAllDim * Math.log(c.yarn.factor)) ** 2
        scores.push((yarnScale * q.reduce((s, a, i) => s + a * (k[i] as number), 0)) / Math.sqrt(dn + dr))
      }
      const top = Math.max(...scores)
      const e = scores.map((s) => Math.exp(s - top))
      const sum = e.reduce((a, b) => a + b, 0)
      for (let i = 0; i < dv; i++) {
        let acc = 0
        for (let j = first; j <= t; j++) acc += ((e[j - first] as number) / sum) * ((tokens[j] as Array<{ v: Array<number> }>)[n]?.v[i] as number)
        attended.push(acc)
      }
    }
    out.push(...times(attended, w.wo as Array<number>, h))
  }
  return out
}

/** pleat's layer on one rank: its output and every weight's gradient of sum(out * r). */
const pleat = (c: Case, x: ReadonlyArray<number>, w: Weights, r: ReadonlyArray<number>) =>
  Job.runPromise({ world: 1 }, () =>
    Effect.gen(function* () {
      const tape = Tape.make()
      const p = Object.fromEntries(
        Object.entries(shapes(c)).map(([name, shape]) => [name, tape.parameter(Tensor.fromArray(w[name] as Array<number>, shape, { dtype: "float64" }))]),
      )
      const rows = c.batch * c.seq
      const one = Group.make("one", [0])
      const base = { batch: c.batch, seq: c.seq, heads: c.heads, kvHeads: c.heads, headDim: 0, tp: one, cp: one, sequenceParallel: false, ropeScaling: c.yarn }
      const config = LatentAttention.configOf(base, c.sizes)
      LatentAttention.check(config)
      const query = "wq" in p ? { wq: p.wq as Tensor.Tensor } : { wqA: p.wqA as Tensor.Tensor, qANorm: p.qANorm as Tensor.Tensor, wqB: p.wqB as Tensor.Tensor }
      const weights = { query, wkvA: p.wkvA as Tensor.Tensor, kvANorm: p.kvANorm as Tensor.Tensor, wkvB: p.wkvB as Tensor.Tensor, wo: p.wo as Tensor.Tensor, eps }
      const layout = TensorLayout.make([TensorLayout.dim("tokens", rows), TensorLayout.dim("hidden", c.hidden)])
      const input = TensorLayout.attach(Tensor.fromArray([...x], [rows, c.hidden], { dtype: "float64" }), layout)
      const out = yield* LatentAttention.forwardLaid(input, weights, config, 0)
      yield* tape.backwardEffect(Reduce.sumAll(Elementwise.mul(out.tensor, Tensor.fromArray([...r], [rows, c.hidden], { dtype: "float64" }))))
      return { out: Tensor.toArray(out.tensor), grads: Object.fromEntries(Object.entries(p).map(([name, t]) => [name, Tensor.toArray(t.grad as Tensor.Tensor)])) }
    }),
  ).then((results) => results[0] as { out: Array<number>; grads: Record<string, Array<number>> })

const cases: fc.Arbitrary<Case> = fc.record({
  batch: fc.integer({ min: 1, max: 2 }),
  seq: fc.integer({ min: 1, max: 5 }),
  hidden: fc.integer({ min: 2, max: 5 }),
  heads: fc.integer({ min: 1, max: 3 }),
  sizes: fc.record({
    qLoraRank: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 5 })),
    kvLoraRank: fc.integer({ min: 1, max: 5 }),
    qkHeadDim: fc.integer({ min: 1, max: 4 }),
    qkPosEmbHeadDim: fc.constantFrom(2, 4),
    vHeadDim: fc.integer({ min: 1, max: 4 }),
  }),
  yarn: fc.option(
    fc.record({
      factor: fc.double({ min: 1, max: 40, noNaN: true }),
      originalMaxPositions: fc.integer({ min: 1, max: 8 }),
      betaFast: fc.constant(32),
      betaSlow: fc.constant(1),
      mscale: fc.constantFrom(0, 1),
      mscaleAllDim: fc.constantFrom(0, 1),
    }),
    { nil: undefined },
  ),
  seed: fc.integer({ min: 1, max: 100_000 }),
})

describe("multi-latent attention on one rank", () => {
  test("equals the reading of its math, forward, and its gradients equal finite differences", async () => {
    await fc.assert(
      fc.asyncProperty(cases, async (c) => {
        const rows = c.batch * c.seq
        const x = Tensor.toArray(uniform([rows, c.hidden], c.seed))
        const r = Tensor.toArray(uniform([rows, c.hidden], c.seed + 1))
        // Norm weights around 1, projections in [-1, 1).
        const w: Weights = Object.fromEntries(
          Object.entries(shapes(c)).map(([name, shape], i) => [
            name,
            Tensor.toArray(uniform(shape, c.seed + 10 + i, name.endsWith("Norm") ? 0.5 : -1, name.endsWith("Norm") ? 1.5 : 1)),
          ]),
        )
        const got = await pleat(c, x, w, r)
        const want = reference(c, x, w)
        got.out.forEach((v, i) => expect(Math.abs(v - (want[i] as number)), `output ${i}: ${v} vs ${want[i]}`).toBeLessThan(1e-12 * Math.max(1, Math.abs(want[i] as number))))
        const loss = (weights: Weights) => reference(c, x, weights).reduce((s, v, i) => s + v * (r[i] as number), 0)
        const step = 1e-5
        for (const [name, values] of Object.entries(w)) {
          // Up to 6 entries of each weight (all of a small one), spread over it.
          const picks = Array.from(new Set(Array.from({ length: Math.min(6, values.length) }, (_, k) => Math.floor((k * values.length) / Math.min(6, values.length)))))
          for (const j of picks) {
            const nudged = (by: number) => ({ ...w, [name]: values.map((v, k) => (k === j ? v + by : v)) })
            const numeric = (loss(nudged(step)) - loss(nudged(-step))) / (2 * step)
            const analytic = got.grads[name]?.[j] as number
            expect(relativeError(analytic, numeric), `d loss / d ${name}[${j}]: ${analytic} vs ${numeric}`).toBeLessThan(1e-6)
          }
        }
      }),
      { numRuns: 25, seed: 20261205 },
    )
  })

  test("widths that cannot be are refused, naming the flag", () => {
    const base = { qLoraRank: 0, kvLoraRank: 4, qkHeadDim: 4, qkPosEmbHeadDim: 2, vHeadDim: 4 }
    expect(LatentAttention.problemOf(base)).toBeUndefined()
    expect(LatentAttention.problemOf({ ...base, qkPosEmbHeadDim: 3 })).toMatchObject({ field: "qkPosEmbHeadDim", fix: expect.stringContaining("--qk-pos-emb-head-dim") })
    expect(LatentAttention.problemOf({ ...base, kvLoraRank: 0 })).toMatchObject({ field: "kvLoraRank", fix: expect.stringContaining("--kv-lora-rank") })
    expect(LatentAttention.problemOf({ ...base, qLoraRank: -1 })).toMatchObject({ field: "qLoraRank" })
    expect(LatentAttention.problemOf({ ...base, vHeadDim: 1.5 })).toMatchObject({ field: "vHeadDim", fix: expect.stringContaining("--v-head-dim") })
  })
})
