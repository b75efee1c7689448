// Dropping: the kept / padded map equals a simple oracle for both policies (ties to the lower
// token, "position" written as "first routed tokens, then first unrouted"); column counts are
// min(C, routed) without padding (at most that for "probs" with probs <= 0) and min(C, T) with it; probs are zero off the final map; the
// dropped probs keep their gradient; an unknown policy is a ConfigError.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ConfigError from "../../src/errors/ConfigError.js"
import * as Capacity from "../../src/moe/Capacity.js"
import * as Dropping from "../../src/moe/Dropping.js"
import * as Router from "../../src/moe/Router.js"
import * as RoutingMap from "../../src/moe/RoutingMap.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { gradcheck, uniform } from "../tensor/gradcheck.js"
import { routingCase, seed } from "./arbitraries.js"
import { drop, route } from "./oracle.js"

/** A map and probs that are 0 off it, drawn from few values (ties), negative ones included. */
const mapAndProbs = fc
  .record({ t: fc.integer({ min: 0, max: 8 }), e: fc.integer({ min: 1, max: 5 }) })
  .chain(({ t, e }) =>
    fc.record({
      e: fc.constant(e),
      routed: fc.array(fc.array(fc.boolean(), { minLength: e, maxLength: e }), { minLength: t, maxLength: t }),
      values: fc.array(fc.array(fc.constantFrom(0.5, 0.25, 0.125, 1, 0, -0.5), { minLength: e, maxLength: e }), { minLength: t, maxLength: t }),
      topk: fc.integer({ min: 1, max: e }),
      capacityFactor: fc.constantFrom(0, 0.3, 0.5, 1, 1.5, 3, 10),
      dropPolicy: fc.constantFrom("probs" as const, "position" as const),
      padToCapacity: fc.boolean(),
    }),
  )
  .map(({ routed, values, ...rest }) => ({
    ...rest,
    map: routed.map((row) => row.map((b) => (b ? 1 : 0))),
    probs: values.map((row, t) => row.map((v, j) => (routed[t]?.[j] === true ? v : 0))),
  }))

const run = (probs: Array<Array<number>>, map: Array<Array<number>>, e: number, options: Dropping.DroppingOptions) =>
  Dropping.applyTokenDropping(Tensor.fromArray(probs.flat(), [probs.length, e], { dtype: "float64" }), RoutingMap.make(map.length, e, map.flat()), options)

describe("applyTokenDropping", () => {
  test("equals the oracle on maps full of ties, both policies, with and without padding", () => {
    fc.assert(
      fc.property(mapAndProbs, ({ e, map, probs, ...options }) => {
        const r = run(probs, map, e, options)
        const o = drop(probs, map, e, options)
        expect(RoutingMap.toNested(r.routingMap)).toEqual(o.map)
        expect(Array.from(r.probs.data)).toEqual(o.probs.flat())
      }),
      { numRuns: 400 },
    )
  })

  test("equals the oracle after real routing", () => {
    fc.assert(
      fc.property(
        routingCase(8, 6).filter((c) => !Capacity.isDropless(c.capacityFactor)),
        (c) => {
          const logits = Tensor.fromArray(c.logits.flat(), [c.logits.length, c.numExperts], { dtype: "float64" })
          const routed = Router.routing(logits, { ...c })
          const options = { topk: c.topk, capacityFactor: c.capacityFactor as number, dropPolicy: c.dropPolicy, padToCapacity: c.padToCapacity }
          const r = Dropping.applyTokenDropping(routed.probs, routed.routingMap, options)
          const o = route(c)
          expect(RoutingMap.toNested(r.routingMap)).toEqual(
            drop(
              Array.from({ length: c.logits.length }, (_, t) => Array.from(routed.probs.data.subarray(t * c.numExperts, (t + 1) * c.numExperts))),
              o.map,
              c.numExperts,
              options,
            ).map,
          )
        },
      ),
      { numRuns: 200 },
    )
  })

  test("column counts: min(C, routed) without padding, min(C, T) with it; the map only shrinks without padding", () => {
    fc.assert(
      fc.property(mapAndProbs, ({ e, map, probs, ...options }) => {
        const t = map.length
        const r = run(probs, map, e, options)
        const c = Capacity.routerCapacity(t, options.topk, e, options.capacityFactor)
        expect(r.capacity).toBe(c)
        const before = RoutingMap.tokensPerExpert(RoutingMap.make(t, e, map.flat()))
        const after = RoutingMap.tokensPerExpert(r.routingMap)
        // "probs" ranks by value over all tokens: a routed prob <= 0 may lose to unrouted zeros.
        const positive = probs.flat().every((v, i) => map.flat()[i] === 0 || v > 0)
        after.forEach((n, j) => {
          if (options.padToCapacity) expect(n).toBe(Math.min(c, t))
          else if (options.dropPolicy === "position" || positive) expect(n).toBe(Math.min(c, before[j] as number))
          else expect(n).toBeLessThanOrEqual(Math.min(c, before[j] as number))
        })
        if (!options.padToCapacity) r.routingMap.mask.forEach((v, i) => v === 1 && expect(map.flat()[i]).toBe(1))
        Array.from(r.probs.data).forEach((v, i) => r.routingMap.mask[i] === 0 && expect(v).toBe(0))
      }),
      { numRuns: 300 },
    )
  })

  test("examples: ties keep the lower token; position keeps the earliest; padding fills with the lowest unrouted tokens at prob 0", () => {
    const probs = [
      [0.5, 0],
      [0.5, 0],
      [0.9, 0],
      [0, 0.2],
    ]
    const map = [
      [1, 0],
      [1, 0],
      [1, 0],
      [0, 1],
    ]
    // T=4, K=1, E=2, factor 0.5: C = ceil(4/2*0.5) = 1.
    const base = { topk: 1, capacityFactor: 0.5, padToCapacity: false }
    expect(RoutingMap.toNested(run(probs, map, 2, { ...base, dropPolicy: "probs" }).routingMap)).toEqual([
      [0, 0],
      [0, 0],
      [1, 0],
      [0, 1],
    ])
    expect(RoutingMap.toNested(run(probs, map, 2, { ...base, dropPolicy: "position" }).routingMap)).toEqual([
      [1, 0],
      [0, 0],
      [0, 0],
      [0, 1],
    ])
    const tie = [
      [0.5, 0],
      [0.5, 0],
      [0.5, 0],
      [0, 0.2],
    ]
    expect(RoutingMap.toNested(run(tie, map, 2, { ...base, dropPolicy: "probs" }).routingMap)).toEqual([
      [1, 0],
      [0, 0],
      [0, 0],
      [0, 1],
    ])
    // factor 1: C = 2; expert 1 has one routed token (t3) and is padded with t0.
    const padded = run(probs, map, 2, { topk: 1, capacityFactor: 1, dropPolicy: "probs", padToCapacity: true })
    expect(RoutingMap.toNested(padded.routingMap)).toEqual([
      [1, 1],
      [0, 0],
      [1, 0],
      [0, 1],
    ])
    expect(Array.from(padded.probs.data)).toEqual([0.5, 0, 0, 0, 0.9, 0, 0, 0.2])
    // C > T with padding: every expert gets all T tokens.
    const all = run(probs, map, 2, { topk: 1, capacityFactor: 10, dropPolicy: "position", padToCapacity: true })
    expect(RoutingMap.tokensPerExpert(all.routingMap)).toEqual([4, 4])
  })

  test("the dropped probs keep their gradient (position policy: a fixed mask)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 2, max: 5 }), fc.boolean(), seed, (t, e, pad, s) => {
        const options = { topk: 2, scoreFunction: "softmax" as const }
        const x = uniform([t, e], s, -2, 2)
        const indices = Router.select(x, options)
        const map = RoutingMap.fromIndices(t, e, indices, 2)
        const drop = { topk: 2, capacityFactor: 0.5, dropPolicy: "position" as const, padToCapacity: pad }
        const r = gradcheck(([l]) => Dropping.applyTokenDropping(Router.probsFor(l as Tensor.Tensor, indices, options), map, drop).probs, [x])
        expect(r.maxRelativeError, r.worst).toBeLessThan(1e-6)
      }),
      { numRuns: 40 },
    )
  })

  test("an unknown policy is a ConfigError naming dropPolicy", () => {
    const bad = { topk: 1, capacityFactor: 1, dropPolicy: "random" as Dropping.DropPolicy, padToCapacity: false }
    let error: unknown
    try {
      run([[1]], [[1]], 1, bad)
    } catch (e) {
      error = e
    }
    expect(ConfigError.isConfigError(error)).toBe(true)
    expect((error as ConfigError.ConfigError).field).toBe("dropPolicy")
  })
})
