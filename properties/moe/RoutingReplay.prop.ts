// Routing replay at the MoE layer (MoeConfig.replayed, semantics.md 2.1.10 REPLAY_FORWARD): a
// replay of the router's own choice is the layer unreplayed, output and every gradient bit for
// bit; a replay of any other experts routes to exactly them, with the score function's probs at
// them (Router.probsFor), whatever the router's weights would have chosen.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as Group from "../../src/comm/Group.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as MoeLayer from "../../src/moe/MoeLayer.js"
import * as Router from "../../src/moe/Router.js"
import * as RoutingMap from "../../src/moe/RoutingMap.js"
import * as Job from "../../src/runtime/Job.js"
import * as Elementwise from "../../src/tensor/ops/Elementwise.js"
import { matmul } from "../../src/tensor/ops/Matmul.js"
import * as Reduce from "../../src/tensor/ops/Reduce.js"
import * as Tape from "../../src/tensor/Tape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { uniform } from "../tensor/gradcheck.js"

const h = 4
const ffn = 3

/** One rank's layer forward and backward with `replayed` (or none): output, gradients, what it routed. */
const layerOn = (numExperts: number, router: Router.RouterOptions, tokens: number, seed: number, replayed: Int32Array | undefined) =>
  Job.runPromise({ world: 1, timeoutMs: 10_000 }, (rank) =>
    Effect.gen(function* () {
      const config = ParallelConfig.make({ world: 1 })
      const groups = { ep: Group.ofFamily(config, "ep", rank), etp: Group.ofFamily(config, "etp", rank), etpEp: Group.ofFamily(config, "etp-ep", rank) }
      const t = Tape.make()
      const w = {
        router: t.parameter(uniform([h, numExperts], seed)),
        experts: {
          wGate: t.parameter(uniform([numExperts, h, ffn], seed + 1)),
          wUp: t.parameter(uniform([numExperts, h, ffn], seed + 2)),
          wDown: t.parameter(uniform([numExperts, ffn, h], seed + 3)),
        },
      }
      const x = t.parameter(uniform([tokens, h], seed + 4))
      const moe: MoeLayer.MoeConfig = { numExperts, router, auxLossCoeff: 0.01, ...(replayed === undefined ? {} : { replayed }) }
      const r = yield* MoeLayer.forward(x, w, moe, groups)
      yield* t.backwardEffect(Elementwise.add(Reduce.sumAll(Elementwise.mul(r.output, uniform([tokens, h], seed + 5))), r.loss))
      const grad = (u: Tensor.Tensor) => Array.from(Tensor.toArray(u.grad as Tensor.Tensor))
      const logits = matmul(Tensor.detachCopy(x), Tensor.detachCopy(w.router))
      return {
        output: Tensor.toArray(r.output),
        grads: [grad(x), grad(w.router), grad(w.experts.wGate), grad(w.experts.wUp), grad(w.experts.wDown)],
        indices: Array.from(r.routing.indices),
        map: r.routing.map,
        probs: Tensor.toArray(r.routing.probs),
        logits,
      }
    }),
  ).then((ranks) => ranks[0] as NonNullable<(typeof ranks)[0]>)

const setting = fc.record({
  numExperts: fc.integer({ min: 2, max: 6 }),
  topk: fc.integer({ min: 1, max: 3 }),
  tokens: fc.integer({ min: 0, max: 9 }),
  scoreFunction: fc.constantFrom("softmax" as const, "sigmoid" as const, "sqrtsoftplus" as const),
  preSoftmax: fc.boolean(),
  seed: fc.integer({ min: 1, max: 100_000 }),
  draw: fc.integer({ min: 0, max: 2 ** 30 }),
})

describe("routing replay at the MoE layer", () => {
  test("the router's own choice replayed is the layer unreplayed; any other choice is routed exactly", async () => {
    await fc.assert(
      fc.asyncProperty(setting, async (s) => {
        const topk = Math.min(s.topk, s.numExperts)
        const router: Router.RouterOptions = { topk, scoreFunction: s.scoreFunction, preSoftmax: s.preSoftmax }
        const free = await layerOn(s.numExperts, router, s.tokens, s.seed, undefined)
        const own = await layerOn(s.numExperts, router, s.tokens, s.seed, Int32Array.from(free.indices))
        expect(own.output).toEqual(free.output)
        expect(own.grads).toEqual(free.grads)
        // Other experts: each token's k distinct ones drawn from `draw`.
        let state = s.draw
        const next = () => {
          state = (Math.imul(state, 1103515245) + 12345) >>> 0
          return state
        }
        const other = new Int32Array(s.tokens * topk)
        for (let t = 0; t < s.tokens; t++) {
          const order = Array.from({ length: s.numExperts }, (_, e) => e).sort((a, b) => ((next() % 7) - 3) * (a - b))
          for (let j = 0; j < topk; j++) other[t * topk + j] = order[j] as number
        }
        const forced = await layerOn(s.numExperts, router, s.tokens, s.seed, other)
        expect(forced.indices).toEqual(Array.from(other))
        expect(RoutingMap.count(forced.map)).toBe(s.tokens * topk)
        expect(RoutingMap.count(RoutingMap.and(forced.map, RoutingMap.fromIndices(s.tokens, s.numExperts, other, topk)))).toBe(s.tokens * topk)
        expect(forced.probs).toEqual(Tensor.toArray(Router.probsFor(forced.logits, other, router)))
      }),
      { numRuns: 60 },
    )
  })
})
