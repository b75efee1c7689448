// YaRN's RoPE: the pairs that turn fast over the pretraining length keep their frequency, the
// slow ones are divided by the factor, the ones between blend linearly (checked pair by pair
// from the rule as YaRN's paper states it, in turns rather than pleat's index formula); factor 1
// is plain RoPE; the attention factor scales every pair's norm and the backward is its transpose
// (finite differences); and the frequencies and factor equal transformers' own
// (`_compute_yarn_parameters`, run where a Python with transformers is found), with transformers'
// truncate on (the default) and off (GPT-OSS's). Llama 3's scaling likewise: kept, divided or
// blended pair by pair from its rule, and transformers' `_compute_llama3_parameters` where found.
// Linear scaling (position interpolation): every frequency divided by the factor, so position p s
// rotates as plain RoPE's p, and transformers' `_compute_linear_scaling_rope_parameters`.
import { spawnSync } from "node:child_process"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import { rope } from "../../src/tensor/ops/Rope.js"
import * as RopeScaling from "../../src/tensor/ops/RopeScaling.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { python, sayIfSkipped } from "../cli/transformersPython.js"
import { gradcheck, uniform } from "./gradcheck.js"

const yarnArb = fc.record({
  factor: fc.double({ min: 1, max: 64, noNaN: true }),
  originalMaxPositions: fc.integer({ min: 16, max: 65536 }),
  betaFast: fc.constantFrom(32, 16, 8),
  betaSlow: fc.constantFrom(1, 2, 0.5),
  mscale: fc.constantFrom(0, 1, 0.75),
  mscaleAllDim: fc.constantFrom(0, 1, 0.75),
  // transformers' truncate (GPT-OSS's false): the ramp's ends rounded out to whole pairs, or not.
  truncate: fc.constantFrom(undefined, false),
})
const dArb = fc.integer({ min: 1, max: 64 }).map((h) => 2 * h)
const thetaArb = fc.constantFrom(10000, 1e6, 500000)

/**
 * transformers' inverse frequencies and attention factor (ROPE_INIT_FUNCTIONS[type]) for each case
 * [x, d, theta], its rope_parameters beyond the type and base given by `keys` (Python dict entries
 * read from the case `x`).
 */
const transformersFrequencies = (type: string, keys: string, cases: ReadonlyArray<readonly [unknown, number, number]>): Array<{ inv: Array<number>; factor: number }> => {
  const script = `
import json, sys
from transformers import PretrainedConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
out = []
for x, d, theta in json.loads(sys.stdin.read()):
    c = PretrainedConfig()
    c.hidden_size = d; c.num_attention_heads = 1; c.head_dim = d; c.max_position_embeddings = x["originalMaxPositions"] * 2
    c.rope_parameters = {"rope_type": "${type}", "rope_theta": theta, ${keys}}
    inv, factor = ROPE_INIT_FUNCTIONS["${type}"](c, "cpu")
    out.append({"inv": inv.double().tolist(), "factor": factor})
print(json.dumps(out))
`
  const run = spawnSync(python as string, ["-c", script], { input: JSON.stringify(cases), encoding: "utf8" })
  expect(run.status, run.stderr).toBe(0)
  return JSON.parse(run.stdout.trim().split("\n").at(-1) as string) as Array<{ inv: Array<number>; factor: number }>
}

describe("YaRN frequencies", () => {
  test("each pair keeps, divides or blends its frequency by how often it turns over the pretraining length", () => {
    fc.assert(
      fc.property(yarnArb, dArb, thetaArb, (y, d, theta) => {
        const plain = RopeScaling.inverseFrequencies(d, theta)
        const scaled = RopeScaling.inverseFrequencies(d, theta, y)
        // Turns of pair i over L: L theta^(-2i/d) / (2 pi): at least beta_fast, kept; at most
        // beta_slow, divided by the factor (the blend's ends are the whole pairs where they cross,
        // or the crossings themselves without truncation).
        const turns = (i: number) => (y.originalMaxPositions * theta ** ((-2 * i) / d)) / (2 * Math.PI)
        for (let i = 0; i < d / 2; i++) {
          const p = plain[i] as number
          const s = scaled[i] as number
          expect(p).toBeCloseTo(theta ** ((-2 * i) / d), 12)
          // Pair 0 is never blended (the blend starts at pair 0 at the earliest).
          const fast = turns(i) >= y.betaFast || i === 0
          const slow = turns(i) <= y.betaSlow
          if (fast) expect(Math.abs(s - p), `pair ${i} turns ${turns(i)} times: kept`).toBeLessThanOrEqual(1e-12 * p)
          else if (slow) expect(Math.abs(s - p / y.factor), `pair ${i} turns ${turns(i)} times: divided`).toBeLessThanOrEqual(1e-12 * p)
          else if (y.factor > 1.001) {
            // Between: blended, strictly inside the two.
            expect(s, `pair ${i} turns ${turns(i)} times: blended`).toBeGreaterThan((p / y.factor) * (1 + 1e-9))
            expect(s, `pair ${i} turns ${turns(i)} times: blended`).toBeLessThan(p * (1 - 1e-9))
          }
          // Always between the two.
          expect(s).toBeGreaterThanOrEqual((p / y.factor) * (1 - 1e-12))
          expect(s).toBeLessThanOrEqual(p * (1 + 1e-12))
        }
        // Factor 1 is plain RoPE (to the rounding of the blend).
        RopeScaling.inverseFrequencies(d, theta, { ...y, factor: 1 }).forEach((v, i) =>
          expect(Math.abs(v - (plain[i] as number))).toBeLessThanOrEqual(1e-15 * (plain[i] as number)),
        )
      }),
      { numRuns: 200 },
    )
  })

  test("the attention factor and DeepSeek-V3's softmax factor follow m(s, k) = 1 + 0.1 k ln s", () => {
    const ds = { factor: 40, originalMaxPositions: 4096, betaFast: 32, betaSlow: 1, mscale: 1, mscaleAllDim: 1 }
    expect(RopeScaling.attentionFactor(ds)).toBe(1)
    expect(RopeScaling.softmaxScaleFactor(ds)).toBeCloseTo((1 + 0.1 * Math.log(40)) ** 2, 14)
    const qwen = { ...ds, factor: 4, mscale: 1, mscaleAllDim: 0 }
    expect(RopeScaling.attentionFactor(qwen)).toBeCloseTo(1 + 0.1 * Math.log(4), 14)
    expect(RopeScaling.softmaxScaleFactor(qwen)).toBe(1)
  })

  test("the rotation carries the attention factor on every pair, and its backward is the transpose", () => {
    fc.assert(
      fc.property(yarnArb, fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 1000 }), (y, half, seed) => {
        const shape = [2, 3, 2, 2 * half]
        const x = uniform(shape, seed)
        const m = RopeScaling.attentionFactor(y)
        const out = Tensor.toArray(rope(x, { scaling: y, theta: 10000 }))
        const xs = Tensor.toArray(x)
        for (let row = 0; row < 12; row++)
          for (let i = 0; i < half; i++) {
            const at = (k: number) => row * 2 * half + k
            const before = Math.hypot(xs[at(i)] as number, xs[at(i + half)] as number)
            const after = Math.hypot(out[at(i)] as number, out[at(i + half)] as number)
            expect(after).toBeCloseTo(m * before, 12)
          }
        const r = gradcheck(([t]) => rope(t as Tensor.Tensor, { scaling: y }), [x])
        expect(r.maxRelativeError, r.worst).toBeLessThan(1e-6)
      }),
      { numRuns: 30 },
    )
  })

  test("equal transformers' frequencies and attention factor", () => {
    sayIfSkipped("YaRN frequencies")
    if (python === undefined) return
    const cases = fc.sample(fc.tuple(yarnArb, dArb, thetaArb), { numRuns: 16, seed: 20261206 })
    // Both roundings among the cases.
    expect(new Set(cases.map(([y]) => y.truncate)).size).toBe(2)
    const theirs = transformersFrequencies(
      "yarn",
      `"factor": x["factor"], "original_max_position_embeddings": x["originalMaxPositions"], "beta_fast": x["betaFast"], "beta_slow": x["betaSlow"],
       "mscale": x["mscale"], "mscale_all_dim": x["mscaleAllDim"], "truncate": x.get("truncate", True)`,
      cases,
    )
    cases.forEach(([y, d, theta], k) => {
      const want = theirs[k] as { inv: Array<number>; factor: number }
      // transformers computes the frequencies in float32.
      Array.from(RopeScaling.inverseFrequencies(d, theta, y)).forEach((v, i) => expect(Math.abs(v - (want.inv[i] as number)) / v, `case ${k} pair ${i}`).toBeLessThan(1e-6))
      expect(RopeScaling.attentionFactor(y)).toBeCloseTo(want.factor, 12)
    })
  })
})

const llama3Arb = fc
  .record({
    factor: fc.double({ min: 1, max: 64, noNaN: true }),
    lowFreqFactor: fc.constantFrom(1, 0.5, 2),
    spread: fc.constantFrom(3, 1, 0.5, 6),
    originalMaxPositions: fc.integer({ min: 16, max: 65536 }),
  })
  .map(({ spread, ...l }): RopeScaling.Llama3 => ({ type: "llama3", ...l, highFreqFactor: l.lowFreqFactor + spread }))

describe("Llama 3's frequencies", () => {
  test("each pair keeps its frequency (wavelength under L / high), divides it by the factor (over L / low), or blends the two by L / wavelength", () => {
    fc.assert(
      fc.property(llama3Arb, dArb, thetaArb, (l, d, theta) => {
        const plain = RopeScaling.inverseFrequencies(d, theta)
        const scaled = RopeScaling.inverseFrequencies(d, theta, l)
        for (let i = 0; i < d / 2; i++) {
          const p = plain[i] as number
          const s = scaled[i] as number
          const wavelength = (2 * Math.PI) / p
          if (wavelength < l.originalMaxPositions / l.highFreqFactor) expect(s, `pair ${i}: kept`).toBe(p)
          else if (wavelength > l.originalMaxPositions / l.lowFreqFactor) expect(Math.abs(s - p / l.factor), `pair ${i}: divided`).toBeLessThanOrEqual(1e-15 * p)
          else {
            // The blend's weight on the kept frequency rises from 0 at L / low to 1 at L / high.
            const w = (l.originalMaxPositions / wavelength - l.lowFreqFactor) / (l.highFreqFactor - l.lowFreqFactor)
            expect(w).toBeGreaterThanOrEqual(-1e-12)
            expect(w).toBeLessThanOrEqual(1 + 1e-12)
            expect(Math.abs(s - (w * p + (1 - w) * (p / l.factor))), `pair ${i}: blended`).toBeLessThanOrEqual(1e-12 * p)
          }
        }
        // No attention factor; the softmax scale untouched.
        expect(RopeScaling.ropeFactorOf(l)).toBe(1)
        expect(RopeScaling.softmaxFactorOf(l)).toBe(1)
      }),
      { numRuns: 200 },
    )
  })

  test("equal transformers' frequencies", () => {
    sayIfSkipped("Llama 3 frequencies")
    if (python === undefined) return
    const cases = fc.sample(fc.tuple(llama3Arb, dArb, thetaArb), { numRuns: 16, seed: 20261207 })
    const theirs = transformersFrequencies(
      "llama3",
      `"factor": x["factor"], "low_freq_factor": x["lowFreqFactor"], "high_freq_factor": x["highFreqFactor"],
       "original_max_position_embeddings": x["originalMaxPositions"]`,
      cases,
    )
    cases.forEach(([l, d, theta], k) => {
      const want = theirs[k] as { inv: Array<number>; factor: number }
      Array.from(RopeScaling.inverseFrequencies(d, theta, l)).forEach((v, i) => expect(Math.abs(v - (want.inv[i] as number)) / v, `case ${k} pair ${i}`).toBeLessThan(1e-6))
      expect(want.factor).toBe(1)
    })
  })
})

describe("linear scaling (position interpolation)", () => {
  test("every pair turns s times slower: position p s rotates as plain RoPE's p; no attention factor", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), dArb, thetaArb, fc.integer({ min: 1, max: 1000 }), (s, d, theta, seed) => {
        const linear: RopeScaling.Linear = { type: "linear", factor: s }
        const plain = RopeScaling.inverseFrequencies(d, theta)
        RopeScaling.inverseFrequencies(d, theta, linear).forEach((f, i) => expect(f).toBe((plain[i] as number) / s))
        expect(RopeScaling.ropeFactorOf(linear)).toBe(1)
        expect(RopeScaling.softmaxFactorOf(linear)).toBe(1)
        const x = uniform([1, 4, 2, Math.min(d, 16)], seed)
        const stretched = Tensor.toArray(rope(x, { theta, scaling: linear, positions: Int32Array.from([0, 1, 2, 3], (p) => p * s) }))
        const base = Tensor.toArray(rope(x, { theta, positions: Int32Array.from([0, 1, 2, 3]) }))
        stretched.forEach((v, i) => expect(v).toBeCloseTo(base[i] as number, 10))
      }),
      { numRuns: 60 },
    )
  })

  test("equal transformers' frequencies", () => {
    sayIfSkipped("linear frequencies")
    if (python === undefined) return
    const cases = fc.sample(fc.tuple(fc.record({ factor: fc.double({ min: 0.5, max: 32, noNaN: true }), originalMaxPositions: fc.constant(64) }), dArb, thetaArb), {
      numRuns: 12,
      seed: 20261208,
    })
    const theirs = transformersFrequencies("linear", `"factor": x["factor"]`, cases)
    cases.forEach(([l, d, theta], k) => {
      const want = theirs[k] as { inv: Array<number>; factor: number }
      const linear: RopeScaling.Linear = { type: "linear", factor: l.factor }
      Array.from(RopeScaling.inverseFrequencies(d, theta, linear)).forEach((v, i) => expect(Math.abs(v - (want.inv[i] as number)) / v, `case ${k} pair ${i}`).toBeLessThan(1e-6))
      expect(want.factor).toBe(1)
    })
  })
})
