// Aux losses and z-loss: aux_loss equals E * sum_e f_e * P_e over the 2.2.5 scores; per-rank
// losses with reduced counts add up to the global loss; the sequence loss is the mean of the
// per-sequence losses; the global loss uses the running mean of the counts; z-loss equals its
// formula; T = 0 gives 0; gradients equal finite differences in float64.
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as AuxLoss from "../../src/moe/AuxLoss.js"
import * as RoutingMap from "../../src/moe/RoutingMap.js"
import { rows } from "../../src/tensor/ops/Shape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { gradcheck, uniform } from "../tensor/gradcheck.js"
import { logit, matrix, seed } from "./arbitraries.js"
import { auxLoss, ranked, sigmoid, softmax, zLoss } from "./oracle.js"

const close = (a: number, b: number, tol = 1e-12) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(a), Math.abs(b))
const fn = fc.constantFrom("softmax" as const, "sigmoid" as const)

/** T, E, K and logits [T][E]. */
const problem = (maxT = 8) =>
  fc
    .record({ t: fc.integer({ min: 0, max: maxT }), e: fc.integer({ min: 1, max: 8 }), kRaw: fc.nat() })
    .chain(({ t, e, kRaw }) => fc.record({ t: fc.constant(t), e: fc.constant(e), k: fc.constant((kRaw % e) + 1), logits: matrix(t, e, logit) }))

const tensorOf = (m: Array<Array<number>>, e: number) => Tensor.fromArray(m.flat(), [m.length, e], { dtype: "float64" })

describe("routingScoresForAuxLoss and auxLoss", () => {
  test("scores are softmax or normalized sigmoid over all E; the map is their plain top-k", () => {
    fc.assert(
      fc.property(problem(), fn, ({ e, k, logits }, f) => {
        const { scores, routingMap } = AuxLoss.routingScoresForAuxLoss(tensorOf(logits, e), k, f)
        logits.forEach((row, t) => {
          const s = f === "softmax" ? softmax(row) : row.map(sigmoid).map((v, _, all) => v / (all.reduce((a, b) => a + b, 0) + 1e-20))
          s.forEach((v, j) => expect(close(scores.data[t * e + j] as number, v)).toBe(true))
          const top = new Set(ranked(s).slice(0, k))
          row.forEach((_, j) => expect(RoutingMap.has(routingMap, t, j)).toBe(top.has(j)))
        })
      }),
      { numRuns: 150 },
    )
  })

  test("aux_loss = E * sum_e f_e * P_e (coefficient scales it; T = 0 gives 0)", () => {
    fc.assert(
      fc.property(problem(), fn, fc.constantFrom(1, 0.01, 3), ({ e, k, logits }, f, coeff) => {
        const { scores, routingMap } = AuxLoss.routingScoresForAuxLoss(tensorOf(logits, e), k, f)
        const loss = Tensor.item(AuxLoss.auxLoss(scores, routingMap, { topk: k, coeff }))
        expect(close(loss, coeff * auxLoss(logits, k, e, f))).toBe(true)
      }),
      { numRuns: 200 },
    )
  })

  test("per-rank losses with the group's reduced counts add up to the loss over all tokens", () => {
    fc.assert(
      fc.property(problem(4), fc.integer({ min: 1, max: 4 }), fn, ({ t, e, k, logits }, ranks, f) => {
        // `ranks` shards of T tokens each: the rank r holds rows [r*T, (r+1)*T) of the whole.
        const all = [...Array(ranks).keys()].flatMap((r) => logits.map((row) => row.map((v) => v + r / 7)))
        const whole = AuxLoss.routingScoresForAuxLoss(tensorOf(all, e), k, f)
        const total = Tensor.item(AuxLoss.auxLoss(whole.scores, whole.routingMap, { topk: k, coeff: 1 }))
        const reduced = RoutingMap.tokensPerExpert(whole.routingMap)
        let sum = 0
        for (let r = 0; r < ranks; r++) {
          const local = rows(whole.scores, r * t, (r + 1) * t)
          sum += Tensor.item(AuxLoss.auxLoss(local, whole.routingMap, { topk: k, coeff: 1, tokensPerExpert: reduced, groupSize: ranks }))
        }
        expect(close(sum, total)).toBe(true)
      }),
      { numRuns: 100 },
    )
  })

  test("seq_aux_loss is the mean over the B sequences of each sequence's aux_loss", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 6 }), fc.nat(), fn, seed, (s, b, e, kRaw, f, sd) => {
        const k = (kRaw % e) + 1
        const x = uniform([s * b, e], sd, -2, 2)
        const { scores, routingMap } = AuxLoss.routingScoresForAuxLoss(x, k, f)
        const seq = Tensor.item(AuxLoss.seqAuxLoss(scores, routingMap, { topk: k, coeff: 1, batch: b }))
        // Sequence b holds the tokens s * B + b.
        let mean = 0
        for (let bi = 0; bi < b; bi++) {
          const tokens = [...Array(s).keys()].map((si) => si * b + bi)
          const logits = tokens.map((tok) => Array.from(x.data.subarray(tok * e, (tok + 1) * e)))
          mean += auxLoss(logits, k, e, f) / b
        }
        expect(close(seq, mean)).toBe(true)
      }),
      { numRuns: 150 },
    )
  })

  test("global_aux_loss uses the running mean of the counts over the micro-batches", () => {
    fc.assert(
      fc.property(problem(), fn, fc.array(fc.array(fc.nat({ max: 9 }), { minLength: 8, maxLength: 8 }), { maxLength: 3 }), ({ t, e, k, logits }, f, earlier) => {
        const { scores, routingMap } = AuxLoss.routingScoresForAuxLoss(tensorOf(logits, e), k, f)
        const now = RoutingMap.tokensPerExpert(routingMap)
        let counts = AuxLoss.emptyGlobalCounts(e)
        for (const c of earlier) counts = AuxLoss.addGlobalCounts(counts, c.slice(0, e))
        counts = AuxLoss.addGlobalCounts(counts, now)
        const mean = now.map((c, j) => (earlier.reduce((a, m) => a + (m[j] as number), 0) + c) / (earlier.length + 1))
        const expected = Tensor.item(AuxLoss.switchLoadBalancingLoss(scores, mean, t, k, e, 1))
        expect(close(Tensor.item(AuxLoss.globalAuxLoss(scores, routingMap, { topk: k, coeff: 1, counts })), expected)).toBe(true)
        // One micro-batch: the global loss is the micro-batch loss.
        const one = Tensor.item(AuxLoss.globalAuxLoss(scores, routingMap, { topk: k, coeff: 1 }))
        expect(close(one, Tensor.item(AuxLoss.auxLoss(scores, routingMap, { topk: k, coeff: 1 })))).toBe(true)
      }),
      { numRuns: 100 },
    )
  })
})

describe("zLoss", () => {
  test("= coeff / groupSize * mean_t logsumexp^2, stable for large logits, 0 without tokens", () => {
    fc.assert(
      fc.property(problem(), fc.constantFrom(1, 1e-3), fc.integer({ min: 1, max: 4 }), fc.constantFrom(0, 300), ({ e, logits }, coeff, g, shift) => {
        const shifted = logits.map((row) => row.map((v) => v + shift))
        const z = Tensor.item(AuxLoss.zLoss(tensorOf(shifted, e), coeff, g))
        expect(close(z, (coeff / g) * zLoss(shifted))).toBe(true)
      }),
      { numRuns: 150 },
    )
  })
})

describe("aux loss gradients", () => {
  test("z-loss, aux_loss and seq_aux_loss backward match finite differences", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 6 }), fc.nat(), fn, seed, (t, e, kRaw, f, s) => {
        const k = (kRaw % e) + 1
        const x = uniform([2 * t, e], s, -2, 2)
        const z = gradcheck(([l]) => AuxLoss.zLoss(l as Tensor.Tensor, 0.5, 2), [x])
        expect(z.maxRelativeError, z.worst).toBeLessThan(1e-6)
        // The counts are constants: keep the map of the unperturbed logits.
        const map = AuxLoss.routingScoresForAuxLoss(x, k, f).routingMap
        const aux = gradcheck(([l]) => AuxLoss.auxLoss(AuxLoss.routingScoresForAuxLoss(l as Tensor.Tensor, k, f).scores, map, { topk: k, coeff: 2 }), [x])
        expect(aux.maxRelativeError, aux.worst).toBeLessThan(1e-6)
        const seq = gradcheck(([l]) => AuxLoss.seqAuxLoss(AuxLoss.routingScoresForAuxLoss(l as Tensor.Tensor, k, f).scores, map, { topk: k, coeff: 1, batch: 2 }), [x])
        expect(seq.maxRelativeError, seq.worst).toBeLessThan(1e-6)
      }),
      { numRuns: 50 },
    )
  })
})
