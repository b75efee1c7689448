// Router: probs and map equal a from-definition oracle for every score function, preSoftmax
// and group setting (ties to the lower index, bias only picks, scaling after normalization);
// probs gradients equal finite differences in float64 for every mode; the checks name the field.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as ConfigError from "../../src/errors/ConfigError.js"
import * as Router from "../../src/moe/Router.js"
import * as RoutingMap from "../../src/moe/RoutingMap.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { gradcheck, uniform } from "../tensor/gradcheck.js"
import { routingCase, seed } from "./arbitraries.js"
import { type OracleCase, route, softmax } from "./oracle.js"

const logitsOf = (c: OracleCase) => Tensor.fromArray(c.logits.flat(), [c.logits.length, c.numExperts], { dtype: "float64" })

const optionsOf = (c: OracleCase): Router.RouterOptions => ({
  topk: c.topk,
  scoreFunction: c.scoreFunction,
  preSoftmax: c.preSoftmax,
  numGroups: c.numGroups,
  groupTopk: c.groupTopk,
  scalingFactor: c.scalingFactor,
  expertBias: c.expertBias,
})

const close = (a: number, b: number, tol = 1e-12) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(a), Math.abs(b))

const configErrorOf = (f: () => unknown): ConfigError.ConfigError => {
  try {
    f()
  } catch (error) {
    if (ConfigError.isConfigError(error)) return error
    throw error
  }
  throw new Error("expected a ConfigError")
}

describe("Router.routing", () => {
  test("equals the from-definition oracle (every score function, preSoftmax, groups, bias, scaling)", () => {
    fc.assert(
      fc.property(routingCase(8, 8), (c) => {
        const r = Router.routing(logitsOf(c), optionsOf(c))
        const o = route(c)
        expect(RoutingMap.toNested(r.routingMap)).toEqual(o.map)
        const p = Array.from(r.probs.data)
        o.probs.flat().forEach((v, i) => expect(close(p[i] as number, v), `probs[${i}] ${p[i]} vs ${v}`).toBe(true))
        // Exactly K experts per token, probs exactly 0 off the map.
        expect(RoutingMap.expertsPerToken(r.routingMap).every((n) => n === c.topk)).toBe(true)
        p.forEach((v, i) => r.routingMap.mask[i] === 0 && expect(v).toBe(0))
      }),
      { numRuns: 400 },
    )
  })

  test("normalization: post-softmax sums to the scale, pre-softmax keeps the full-softmax values, sigmoid K=1 is not normalized", () => {
    fc.assert(
      fc.property(
        routingCase(5, 6).filter((c) => c.numGroups === null),
        (c) => {
          const r = Router.routing(logitsOf(c), optionsOf(c))
          const scale = c.scalingFactor !== null && c.scalingFactor !== 0 ? c.scalingFactor : 1
          c.logits.forEach((row, t) => {
            const p = Array.from(r.probs.data.subarray(t * c.numExperts, (t + 1) * c.numExperts))
            const sum = p.reduce((a, b) => a + b, 0)
            if (c.scoreFunction === "softmax" && !c.preSoftmax) expect(close(sum, scale)).toBe(true)
            if (c.scoreFunction === "softmax" && c.preSoftmax) {
              const s = softmax(row)
              p.forEach((v, j) => v !== 0 && expect(close(v, (s[j] as number) * scale)).toBe(true))
            }
            if (c.scoreFunction === "sigmoid" && c.topk === 1) {
              const j = p.findIndex((v) => v !== 0)
              if (j >= 0) expect(close(p[j] as number, scale / (1 + Math.exp(-(row[j] as number))))).toBe(true)
            }
          })
        },
      ),
      { numRuns: 200 },
    )
  })

  test("ties go to the lower expert and the lower group", () => {
    const equal = Tensor.fromArray(new Array(2 * 8).fill(0.5), [2, 8], { dtype: "float64" })
    for (const scoreFunction of ["softmax", "sigmoid"] as const) {
      for (const preSoftmax of [false, true]) {
        const r = Router.routing(equal, { topk: 3, scoreFunction, preSoftmax })
        expect(RoutingMap.toNested(r.routingMap)[0]).toEqual([1, 1, 1, 0, 0, 0, 0, 0])
        const g = Router.routing(equal, { topk: 3, scoreFunction, preSoftmax, numGroups: 4, groupTopk: 2 })
        expect(RoutingMap.toNested(g.routingMap)[1]).toEqual([1, 1, 1, 0, 0, 0, 0, 0])
      }
    }
  })

  test("group-limited: the best single expert loses when its group's top sum is smaller", () => {
    // Groups of 2: {9, -9} sums to 0 for K/groupTopk = 2, {1, 1} sums to 2 and wins.
    const logits = Tensor.fromArray([9, -9, 1, 1], [1, 4], { dtype: "float64" })
    const r = Router.routing(logits, { topk: 2, scoreFunction: "softmax", numGroups: 2, groupTopk: 1 })
    expect(RoutingMap.toNested(r.routingMap)).toEqual([[0, 0, 1, 1]])
  })

  test("expert bias changes the selection but never the probs values; it is ignored for softmax", () => {
    const logits = Tensor.fromArray([2, 1, 0, -1], [1, 4], { dtype: "float64" })
    const biased = Router.routing(logits, { topk: 1, scoreFunction: "sigmoid", expertBias: [0, 0, 0, 5] })
    expect(RoutingMap.toNested(biased.routingMap)).toEqual([[0, 0, 0, 1]])
    expect(biased.probs.data[3]).toBeCloseTo(1 / (1 + Math.exp(1)), 15)
    const soft = Router.routing(logits, { topk: 1, scoreFunction: "softmax", preSoftmax: true, expertBias: [0, 0, 0, 5] })
    expect(RoutingMap.toNested(soft.routingMap)).toEqual([[1, 0, 0, 0]])
  })

  test("probs are stored in the logits dtype", () => {
    const logits = Tensor.fromArray([0.3, -1, 2], [1, 3], { dtype: "float32" })
    expect(Router.routing(logits, { topk: 2, scoreFunction: "softmax" }).probs.dtype).toBe("float32")
  })
})

describe("sqrtsoftplus at the ends of float64", () => {
  test("logits far below 0 (softplus underflows) and far above give finite probs and gradients", () => {
    const logits = Tensor.fromArray([-800, -790, 3, 40, -1000, 750], [2, 3], { dtype: "float64" })
    for (const topk of [1, 2]) {
      const options: Router.RouterOptions = { topk, scoreFunction: "sqrtsoftplus" }
      const r = Router.routing(logits, options)
      expect(Array.from(r.probs.data).every(Number.isFinite)).toBe(true)
      // Token 1 (40, -1000, 750): sqrt(softplus(750)) = sqrt(750) leads; top-1 is not normalized.
      if (topk === 1) expect(r.probs.data[5]).toBeCloseTo(Math.sqrt(750), 12)
      const g = gradcheck(([l]) => Router.probsFor(l as Tensor.Tensor, Router.select(logits, options), options), [logits])
      expect(Number.isFinite(g.maxRelativeError), g.worst).toBe(true)
    }
  })
})

describe("Router gradients", () => {
  const modes = [
    { scoreFunction: "softmax" as const, preSoftmax: true },
    { scoreFunction: "softmax" as const, preSoftmax: false },
    { scoreFunction: "sigmoid" as const, preSoftmax: false },
    { scoreFunction: "sqrtsoftplus" as const, preSoftmax: false },
  ]

  test("probs backward matches finite differences for every mode, K and scaling", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 6 }),
        fc.nat(),
        fc.constantFrom(...modes),
        fc.constantFrom(null, 2.5, -0.5),
        seed,
        (t, e, kRaw, mode, scalingFactor, s) => {
          const options = { topk: (kRaw % e) + 1, ...mode, scalingFactor }
          const x = uniform([t, e], s, -3, 3)
          // Hold the selection of the unperturbed logits fixed (top-k is piecewise constant).
          const indices = Router.select(x, options)
          const r = gradcheck(([l]) => Router.probsFor(l as Tensor.Tensor, indices, options), [x])
          expect(r.maxRelativeError, r.worst).toBeLessThan(1e-6)
        },
      ),
      { numRuns: 80 },
    )
  })

  test("the aux scores backward matches finite differences", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 6 }),
        fc.constantFrom("softmax" as const, "sigmoid" as const, "sqrtsoftplus" as const),
        seed,
        (t, e, scoreFunction, s) => {
          const x = uniform([t, e], s, -3, 3)
          const r = gradcheck(([l]) => Router.routing(l as Tensor.Tensor, { topk: 1, scoreFunction }).scores, [x])
          expect(r.maxRelativeError, r.worst).toBeLessThan(1e-6)
        },
      ),
      { numRuns: 40 },
    )
  })
})

describe("Router.check", () => {
  const ok: Router.RouterOptions = { topk: 2, scoreFunction: "sigmoid" }
  const cases: Array<[number, Router.RouterOptions, string]> = [
    [0, ok, "numExperts"],
    [8, { ...ok, topk: 9 }, "topk"],
    [8, { ...ok, topk: 0 }, "topk"],
    [8, { ...ok, topk: 1.5 }, "topk"],
    [8, { ...ok, scoreFunction: "relu" as Router.ScoreFunction }, "scoreFunction"],
    [8, { ...ok, numGroups: 3, groupTopk: 1 }, "numGroups"],
    [8, { ...ok, numGroups: 4, groupTopk: 8 }, "groupTopk"],
    [8, { ...ok, numGroups: 4, groupTopk: 3 }, "groupTopk"],
    [8, { ...ok, topk: 3, numGroups: 4, groupTopk: 1 }, "groupTopk"],
    [8, { ...ok, numGroups: 4 }, "groupTopk"],
    [8, { ...ok, groupTopk: 2 }, "numGroups"],
    [8, { ...ok, expertBias: [0, 0] }, "expertBias"],
    [8, { ...ok, expertBias: [0, 0, 0, 0, 0, 0, 0, Number.NaN] }, "expertBias[7]"],
    [8, { ...ok, scalingFactor: Number.POSITIVE_INFINITY }, "scalingFactor"],
  ]
  test("every bad option is a ConfigError naming its field", () => {
    for (const [e, options, field] of cases) {
      const error = configErrorOf(() => Router.check(e, options))
      expect(error.field, JSON.stringify(options)).toBe(field)
      expect(error.message).toContain("fix: ")
    }
    expect(configErrorOf(() => Router.check(8, { ...ok, topk: 9 })).message).toBe("topk: 9 is larger than numExperts 8; fix: use topk between 1 and 8")
  })
})
