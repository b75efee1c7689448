// ForcedBalance (Megatron's benchmark-only moe_router_force_load_balancing): the logits are
// replaced by standard normals that are a function of each logits row's bits (the same rows give
// the same noise, in any order; a row that differs in one bit gets other noise), the gradient
// reaches the logits unchanged, and top-2 of 8 over the noise loads every expert within a few
// percent of the mean even when the router's own logits send every token to one expert. The
// benchmark's skewed variant (force_biased) adds a per-expert bias of N(0, |std|) to the noise,
// drawn once per layer or per micro-batch, which loads the experts it favours.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ForcedBalance from "../../src/moe/ForcedBalance.js"
import * as Router from "../../src/moe/Router.js"
import * as RoutingMap from "../../src/moe/RoutingMap.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { uniform } from "../tensor/gradcheck.js"

const seed = fc.integer({ min: 1, max: 2 ** 30 })

describe("ForcedBalance", () => {
  test("the noise of a row depends on that row only, bit for bit", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 40 }), fc.integer({ min: 1, max: 16 }), seed, (tokens, experts, s) => {
        const logits = Float64Array.from(Tensor.toArray(uniform([tokens, experts], s)))
        const noise = ForcedBalance.noiseOf(logits, tokens, experts)
        // Reversed rows: the reversed noise.
        const reversed = new Float64Array(tokens * experts)
        for (let r = 0; r < tokens; r++) reversed.set(logits.subarray((tokens - 1 - r) * experts, (tokens - r) * experts), r * experts)
        const noiseReversed = ForcedBalance.noiseOf(reversed, tokens, experts)
        for (let r = 0; r < tokens; r++) for (let e = 0; e < experts; e++) expect(noiseReversed[r * experts + e]).toBe(noise[(tokens - 1 - r) * experts + e])
        // One element of row 0 moved by one float32 ulp: row 0's noise changes, no other row's.
        const nudged = Float32Array.from(logits)
        nudged[0] = new Float32Array([(nudged[0] as number) * (1 + 2 ** -22) + 2 ** -40])[0] as number
        if (nudged[0] === logits[0]) return
        const noiseNudged = ForcedBalance.noiseOf(nudged, tokens, experts)
        expect(Array.from(noiseNudged.subarray(0, experts))).not.toEqual(Array.from(noise.subarray(0, experts)))
        expect(Array.from(noiseNudged.subarray(experts))).toEqual(Array.from(noise.subarray(experts)))
      }),
      { numRuns: 60 },
    )
  })

  test("the forward is the noise in the logits' dtype; the gradient passes straight through", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 12 }), seed, fc.constantFrom("float32" as const, "float64" as const), (tokens, experts, s, dtype) => {
        const tape = Tape.make()
        const base = uniform([tokens, experts], s)
        const logits = tape.parameter(dtype === "float64" ? base : Tensor.fromArray(Float32Array.from(Tensor.toArray(base)), [tokens, experts]))
        const forced = ForcedBalance.forceLoadBalancing(logits)
        expect(forced.dtype).toBe(logits.dtype)
        const expected = ForcedBalance.noiseOf(logits.readHost(), tokens, experts)
        const rounded = dtype === "float32" ? Float32Array.from(expected) : expected
        expect(Array.from(Tensor.toArray(forced))).toEqual(Array.from(rounded))
        // The upstream gradient in the output's dtype, as a backward hands it.
        const upstream = Tensor.fromArray(Tensor.toArray(uniform([tokens, experts], s + 1)), [tokens, experts], { dtype })
        tape.backward(forced, { gradient: upstream })
        expect(Tensor.toArray(logits.grad as Tensor.Tensor)).toEqual(Tensor.toArray(upstream))
      }),
      { numRuns: 40 },
    )
  })

  test("standard normals: mean near 0, variance near 1", () => {
    const tokens = 4096
    const experts = 8
    const noise = ForcedBalance.noiseOf(Float64Array.from(Tensor.toArray(uniform([tokens, experts], 7))), tokens, experts)
    const mean = noise.reduce((a, b) => a + b, 0) / noise.length
    const variance = noise.reduce((a, b) => a + (b - mean) ** 2, 0) / noise.length
    expect(Math.abs(mean)).toBeLessThan(0.03)
    expect(Math.abs(variance - 1)).toBeLessThan(0.05)
  })

  test("top-2 of 8 over the noise balances tokens whose own logits all pick one expert", () => {
    fc.assert(
      fc.property(seed, (s) => {
        const tokens = 4096
        const experts = 8
        // Every row: expert 0 far ahead, the rest differing in their last bits only.
        const jitter = Tensor.toArray(uniform([tokens, experts], s, 0, 1e-6))
        const collapsed = Float32Array.from(jitter, (v, i) => (i % experts === 0 ? 10 : 0) + v)
        const logits = Tensor.fromArray(collapsed, [tokens, experts])
        const loads = (l: Tensor.Tensor) => {
          const map = Router.routing(l, { topk: 2, scoreFunction: "softmax" }).routingMap
          return Array.from({ length: experts }, (_, e) => {
            let n = 0
            for (let t = 0; t < tokens; t++) if (RoutingMap.has(map, t, e)) n++
            return n
          })
        }
        const mean = (tokens * 2) / experts
        expect(Math.max(...loads(logits))).toBe(tokens)
        const balanced = loads(ForcedBalance.forceLoadBalancing(logits))
        expect(Math.max(...balanced) / mean).toBeLessThan(1.15)
        expect(Math.min(...balanced) / mean).toBeGreaterThan(0.85)
      }),
      { numRuns: 10 },
    )
  })

  test("force-biased: the noise plus the bias on every row, the gradient straight through", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 12 }), seed, fc.double({ min: -3, max: 3, noNaN: true }), (tokens, experts, s, std) => {
        fc.pre(std !== 0)
        const tape = Tape.make()
        const logits = tape.parameter(uniform([tokens, experts], s))
        const bias = ForcedBalance.biasOf(std, s % 7, experts, s)
        const forced = ForcedBalance.forceBiased(logits, bias)
        const noise = ForcedBalance.noiseOf(logits.readHost(), tokens, experts)
        expect(Array.from(Tensor.toArray(forced))).toEqual(Array.from(noise, (v, i) => v + (bias[i % experts] as number)))
        const upstream = uniform([tokens, experts], s + 1)
        tape.backward(forced, { gradient: upstream })
        expect(Tensor.toArray(logits.grad as Tensor.Tensor)).toEqual(Tensor.toArray(upstream))
      }),
      { numRuns: 40 },
    )
  })

  test("force-biased's bias: N(0, |std|), once per layer for std < 0, per micro-batch for std > 0", () => {
    const experts = 16
    expect(Array.from(ForcedBalance.biasOf(-2, 3, experts, 100))).toEqual(Array.from(ForcedBalance.biasOf(-2, 3, experts, 200)))
    expect(Array.from(ForcedBalance.biasOf(-2, 3, experts, 100))).not.toEqual(Array.from(ForcedBalance.biasOf(-2, 4, experts, 100)))
    expect(Array.from(ForcedBalance.biasOf(2, 3, experts, 100))).toEqual(Array.from(ForcedBalance.biasOf(2, 3, experts, 100)))
    expect(Array.from(ForcedBalance.biasOf(2, 3, experts, 100))).not.toEqual(Array.from(ForcedBalance.biasOf(2, 3, experts, 101)))
    // Over many layers and micro-batches: mean 0, standard deviation |std|.
    const values = Array.from({ length: 400 }, (_, i) => Array.from(ForcedBalance.biasOf(1.5, i, experts, i * 8))).flat()
    const mean = values.reduce((a, b) => a + b, 0) / values.length
    const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length)
    expect(Math.abs(mean)).toBeLessThan(0.06)
    expect(Math.abs(sd / 1.5 - 1)).toBeLessThan(0.05)
  })

  test("a large forced bias skews the loads toward the experts it favours", () => {
    const tokens = 4096
    const experts = 8
    const logits = uniform([tokens, experts], 5)
    const bias = ForcedBalance.biasOf(-3, 0, experts, undefined)
    const map = Router.routing(ForcedBalance.forceBiased(logits, bias), { topk: 1, scoreFunction: "softmax", preSoftmax: true }).routingMap
    const loads = RoutingMap.tokensPerExpert(map)
    const favoured = bias.indexOf(Math.max(...bias))
    expect(loads.indexOf(Math.max(...loads))).toBe(favoured)
    expect(Math.max(...loads) / (tokens / experts)).toBeGreaterThan(2)
  })
})
