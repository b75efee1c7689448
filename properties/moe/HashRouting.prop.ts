// Hash routing (DeepSeek-V4's hash layers, Megatron-Core's --moe-n-hash-layers): a token's
// experts are its id's row of the round-robin table, (id + k) mod E, K different experts; the
// probs are the router's scores at them: softmax's full softmax (not renormalized), an
// elementwise score divided by the K's sum (also for K = 1), times the scaling factor, as
// counted here from the definitions; their backward equals finite differences in float64.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as HashRouting from "../../src/moe/HashRouting.js"
import * as Router from "../../src/moe/Router.js"
import type * as Tensor from "../../src/tensor/Tensor.js"
import { gradcheck, uniform } from "../tensor/gradcheck.js"
import { seed } from "./arbitraries.js"

const score = { sigmoid: (x: number) => 1 / (1 + Math.exp(-x)), sqrtsoftplus: (x: number) => Math.sqrt(Math.log1p(Math.exp(x))) }

/** T tokens, E experts (up to `maxExperts`), K of them, a score function, a scaling and a seed. */
const routed = (maxExperts: number) =>
  fc
    .record({
      t: fc.integer({ min: 1, max: 4 }),
      e: fc.integer({ min: 1, max: maxExperts }),
      kRaw: fc.nat(),
      scoreFunction: fc.constantFrom("softmax" as const, "sigmoid" as const, "sqrtsoftplus" as const),
      scalingFactor: fc.constantFrom(null, 2.5, -0.5),
      s: seed,
    })
    .map(({ kRaw, ...c }) => ({ ...c, k: (kRaw % c.e) + 1 }))

describe("hash routing", () => {
  test("the table: K different experts a token, (id + k) mod E, each expert as often over E consecutive ids", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 16 }), fc.nat(), fc.array(fc.integer({ min: 0, max: 100_000 }), { minLength: 1, maxLength: 40 }), (e, kRaw, ids) => {
        const k = (kRaw % e) + 1
        const experts = HashRouting.experts(ids, e, k)
        ids.forEach((id, t) => {
          const row = Array.from(experts.subarray(t * k, (t + 1) * k))
          expect(row).toEqual(Array.from({ length: k }, (_, j) => (id + j) % e))
          expect(new Set(row).size).toBe(k)
        })
        const counts = new Array<number>(e).fill(0)
        for (const x of HashRouting.experts(
          Array.from({ length: e }, (_, i) => i + 7),
          e,
          k,
        ))
          counts[x] = (counts[x] as number) + 1
        expect(counts.every((c) => c === k)).toBe(true)
      }),
    )
  })

  test("the probs: the full softmax's, or the elementwise scores normalized over the K, times the scale", () => {
    fc.assert(
      fc.property(routed(8), fc.boolean(), ({ t, e, k, scoreFunction, scalingFactor, s }, preSoftmax) => {
        const logits = uniform([t, e], s, -4, 4)
        const ids = Array.from({ length: t }, (_, i) => (s + 13 * i) % 1000)
        const indices = HashRouting.experts(ids, e, k)
        // preSoftmax and the expert bias select; with the selection given they change nothing.
        const options: Router.RouterOptions = {
          topk: k,
          scoreFunction,
          scalingFactor,
          hashed: true,
          preSoftmax: preSoftmax && scoreFunction === "softmax",
          expertBias: new Array<number>(e).fill(0.3),
        }
        const r = Router.routing(logits, options, indices)
        const x = logits.data
        const scale = scalingFactor ?? 1
        for (let row = 0; row < t; row++) {
          const base = row * e
          const chosen = Array.from(indices.subarray(row * k, (row + 1) * k))
          let want: Array<number>
          if (scoreFunction === "softmax") {
            const values = Array.from({ length: e }, (_, i) => x[base + i] as number)
            const max = Math.max(...values)
            const sum = values.reduce((a, v) => a + Math.exp(v - max), 0)
            want = chosen.map((i) => Math.exp((values[i] as number) - max) / sum)
          } else {
            const raw = chosen.map((i) => score[scoreFunction](x[base + i] as number))
            const sum = raw.reduce((a, b) => a + b, 0)
            want = raw.map((v) => v / (sum + 1e-20))
          }
          chosen.forEach((i, j) => expect(r.probs.data[base + i] as number).toBeCloseTo((want[j] as number) * scale, 12))
          for (let i = 0; i < e; i++) if (!chosen.includes(i)) expect(r.probs.data[base + i]).toBe(0)
        }
        expect(Array.from(r.indices)).toEqual(Array.from(indices))
      }),
      { numRuns: 300 },
    )
  })

  test("the probs' backward equals finite differences (every score function, K = 1 included)", () => {
    fc.assert(
      fc.property(routed(6), ({ t, e, k, scoreFunction, scalingFactor, s }) => {
        const options: Router.RouterOptions = { topk: k, scoreFunction, scalingFactor, hashed: true }
        const indices = HashRouting.experts(
          Array.from({ length: t }, (_, i) => s + i),
          e,
          k,
        )
        const r = gradcheck(([l]) => Router.probsFor(l as Tensor.Tensor, indices, options), [uniform([t, e], s, -3, 3)])
        expect(r.maxRelativeError, r.worst).toBeLessThan(1e-6)
      }),
      { numRuns: 80 },
    )
  })
})
