// Dispatch then combine with identity experts gives every token back times the sum of its
// probs (times ETP: each etp member returns the whole row), for both dispatchers, which agree;
// group-reduced aux losses add up to the single-rank loss; the expert bias moves to balance.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import type * as Comm from "../../src/comm/Communicator.js"
import * as Group from "../../src/comm/Group.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as AllGatherDispatcher from "../../src/moe/AllGatherDispatcher.js"
import * as AllToAllDispatcher from "../../src/moe/AllToAllDispatcher.js"
import * as AuxLoss from "../../src/moe/AuxLoss.js"
import type * as Dispatcher from "../../src/moe/Dispatcher.js"
import * as ExpertBias from "../../src/moe/ExpertBias.js"
import * as MoeLayer from "../../src/moe/MoeLayer.js"
import * as Router from "../../src/moe/Router.js"
import * as RoutingMap from "../../src/moe/RoutingMap.js"
import * as Job from "../../src/runtime/Job.js"
import { matmul } from "../../src/tensor/ops/Matmul.js"
import * as Shape from "../../src/tensor/ops/Shape.js"
import { concat } from "../../src/tensor/ops/Shape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { factorized } from "../mapping/arbitraries.js"
import { isValid } from "../mapping/oracle.js"
import { uniform } from "../tensor/gradcheck.js"
import { identityExperts } from "./identityExperts.js"

const h = 3

describe("dispatchers", () => {
  test("identity experts: combine(dispatch(x)) = ETP * x * sum of probs, with the probs applied by the experts or the combine; both dispatchers agree", async () => {
    await fc.assert(
      fc.asyncProperty(
        factorized(8).filter((c) => isValid(c) && c.pp === 1),
        fc.constantFrom(1, 2),
        fc.integer({ min: 1, max: 3 }),
        fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 8, maxLength: 8 }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.constantFrom<Dispatcher.ProbsAt>("experts", "combine"),
        async (c, perExpert, k, tokens, seed, probsAt) => {
          const config = ParallelConfig.make({ world: c.world, tp: c.tp, cp: c.cp, pp: c.pp, ep: c.ep, etp: c.etp, order: c.order.join("-") })
          const numExperts = c.ep * perExpert
          const topk = Math.min(k, numExperts)
          const router = uniform([h, numExperts], seed)
          const run = (dispatcher: (input: Dispatcher.DispatchInput) => Effect.Effect<{ readonly output: Tensor.Tensor }, unknown, Comm.Communicator>) =>
            Job.runPromise({ world: c.world }, (rank) =>
              Effect.gen(function* () {
                const x = uniform([tokens[rank] as number, h], seed + rank)
                const routed = Router.routing(matmul(x, router), { topk, scoreFunction: "softmax" })
                const groups = { ep: Group.ofFamily(config, "ep", rank), etp: Group.ofFamily(config, "etp", rank), etpEp: Group.ofFamily(config, "etp-ep", rank) }
                const empty = Tensor.zeros([0, 0, 0], { dtype: "float64" })
                const { output } = yield* dispatcher({
                  tokens: x,
                  probs: routed.probs,
                  map: routed.routingMap,
                  numExperts,
                  experts: { wGate: empty, wUp: empty, wDown: empty },
                  groups,
                  compute: identityExperts,
                  probsAt,
                })
                const sums = Array.from({ length: tokens[rank] as number }, (_, t) =>
                  Tensor.toArray(routed.probs)
                    .slice(t * numExperts, (t + 1) * numExperts)
                    .reduce((a, b) => a + b, 0),
                )
                const expected = Tensor.toArray(x).map((v, i) => c.etp * v * (sums[Math.floor(i / h)] as number))
                return { got: Tensor.toArray(output), expected }
              }),
            )
          const a2a = await run(AllToAllDispatcher.run)
          const ag = await run(AllGatherDispatcher.run)
          a2a.forEach((r, rank) => {
            r.got.forEach((v, i) => expect(v).toBeCloseTo(r.expected[i] as number, 12))
            ;(ag[rank]?.got ?? []).forEach((v, i) => expect(v).toBeCloseTo(r.got[i] as number, 12))
          })
        },
      ),
      { numRuns: 40 },
    )
  })
})

describe("router losses and balancing across ranks", () => {
  test("aux losses reduced over tp-cp add up to the single-rank loss over all tokens", async () => {
    const world = 4
    const config = ParallelConfig.make({ world, tp: 2, cp: 2, ep: 4, etp: 1 })
    const router = uniform([h, 4], 5)
    const xs = Array.from({ length: world }, (_, r) => uniform([3, h], 40 + r))
    const moe: MoeLayer.MoeConfig = { numExperts: 4, router: { topk: 2, scoreFunction: "softmax" }, auxLossCoeff: 0.01 }
    const losses = await Job.runPromise({ world }, (rank) =>
      Effect.gen(function* () {
        const groups = { ep: Group.ofFamily(config, "ep", rank), etp: Group.ofFamily(config, "etp", rank), etpEp: Group.ofFamily(config, "etp-ep", rank) }
        const w = { router, experts: { wGate: uniform([1, h, 2], 1), wUp: uniform([1, h, 2], 2), wDown: uniform([1, 2, h], 3) } }
        const { loss } = yield* MoeLayer.forward(xs[rank] as Tensor.Tensor, w, { ...moe, tpCp: Group.ofFamily(config, "tp-cp", rank) }, groups)
        return Tensor.item(loss)
      }),
    )
    const all = concat(xs, 0)
    const routed = Router.routing(matmul(all, router), moe.router)
    const single = Tensor.item(AuxLoss.auxLoss(routed.scores, routed.auxRoutingMap, { topk: 2, coeff: 0.01 }))
    expect(losses.reduce((a, b) => a + b, 0)).toBeCloseTo(single, 12)
  })

  test("the expert bias moves every expert toward the mean count, the same on every rank", async () => {
    const counts = [
      [5, 1, 0, 2],
      [3, 1, 2, 2],
    ]
    const biases = await Job.runPromise({ world: 2 }, (rank) =>
      Effect.map(ExpertBias.update({ bias: [0, 0, 0, 0], counts: counts[rank] as Array<number> }, Group.world(2), 0.5), (s) => s),
    )
    // Summed counts [8, 2, 2, 4], mean 4: over, under, under, equal.
    for (const b of biases) {
      expect(b.bias).toEqual([-0.5, 0.5, 0.5, 0])
      expect(b.counts).toEqual([0, 0, 0, 0])
    }
  })
})

describe("seq_aux_loss across ranks", () => {
  test("the tp-cp ranks' shares add up to the single-rank sequence-level loss", async () => {
    const world = 4
    const config = ParallelConfig.make({ world, tp: 2, cp: 2, ep: 4, etp: 1 })
    const [batch, seq, e] = [2, 8, 4]
    const router = uniform([h, e], 9)
    // Token (b, s) of the micro-batch; rank r holds tokens 4r..4r+3 in b-major order.
    const all = uniform([batch * seq, h], 77)
    const moe: MoeLayer.MoeConfig = { numExperts: e, router: { topk: 2, scoreFunction: "softmax" }, auxLossCoeff: 0.1, auxLossType: "seq_aux_loss" }
    const shares = await Job.runPromise({ world }, (rank) =>
      Effect.gen(function* () {
        const rows = Array.from({ length: 4 }, (_, i) => 4 * rank + i)
        const x = Tensor.fromArray(
          rows.flatMap((r) => Tensor.toArray(all).slice(r * h, (r + 1) * h)),
          [4, h],
          { dtype: "float64" },
        )
        const groups = { ep: Group.ofFamily(config, "ep", rank), etp: Group.ofFamily(config, "etp", rank), etpEp: Group.ofFamily(config, "etp-ep", rank) }
        const w = { router, experts: { wGate: uniform([1, h, 2], 1), wUp: uniform([1, h, 2], 2), wDown: uniform([1, 2, h], 3) } }
        const sequences = { count: batch, ofRow: Int32Array.from(rows, (r) => Math.floor(r / seq)), length: seq }
        const { loss } = yield* MoeLayer.forward(x, w, { ...moe, tpCp: Group.ofFamily(config, "tp-cp", rank), sequences }, groups)
        return Tensor.item(loss)
      }),
    )
    // Single rank: tokens in the reference's s * B + b order.
    const order = Array.from({ length: batch * seq }, (_, t) => (t % batch) * seq + Math.floor(t / batch))
    const reordered = Tensor.fromArray(
      order.flatMap((r) => Tensor.toArray(all).slice(r * h, (r + 1) * h)),
      [batch * seq, h],
      { dtype: "float64" },
    )
    const routed = Router.routing(matmul(reordered, router), moe.router)
    const single = Tensor.item(AuxLoss.seqAuxLoss(routed.scores, routed.auxRoutingMap, { topk: 2, coeff: 0.1, batch }))
    expect(shares.reduce((a, b) => a + b, 0)).toBeCloseTo(single, 12)
  })
})

describe("global_aux_loss across ranks", () => {
  test("with running counts over tp-dp-cp and micro-batches, the shares add up to the single-rank loss", async () => {
    const world = 4
    const config = ParallelConfig.make({ world, tp: 2, cp: 1, ep: 4, etp: 1 })
    const e = 4
    const router = uniform([h, e], 19)
    const micro = [uniform([16, h], 31), uniform([16, h], 32)]
    const moe: MoeLayer.MoeConfig = { numExperts: e, router: { topk: 2, scoreFunction: "softmax" }, auxLossCoeff: 0.1, auxLossType: "global_aux_loss" }
    const shares = await Job.runPromise({ world }, (rank) =>
      Effect.gen(function* () {
        const groups = { ep: Group.ofFamily(config, "ep", rank), etp: Group.ofFamily(config, "etp", rank), etpEp: Group.ofFamily(config, "etp-ep", rank) }
        const w = { router, experts: { wGate: uniform([1, h, 2], 1), wUp: uniform([1, h, 2], 2), wDown: uniform([1, 2, h], 3) } }
        const state = { counts: AuxLoss.emptyGlobalCounts(e) }
        const out: Array<number> = []
        for (const batch of micro) {
          const x = Shape.rows(batch, 4 * rank, 4 * rank + 4)
          const { loss } = yield* MoeLayer.forward(x, w, { ...moe, global: { tpDpCp: Group.ofFamily(config, "tp-dp-cp", rank), state } }, groups)
          out.push(Tensor.item(loss))
        }
        return out
      }),
    )
    // Single rank: the same two micro-batches with its own running counts.
    let counts = AuxLoss.emptyGlobalCounts(e)
    micro.forEach((batch, i) => {
      const routed = Router.routing(matmul(batch, router), moe.router)
      counts = AuxLoss.addGlobalCounts(counts, RoutingMap.tokensPerExpert(routed.auxRoutingMap))
      const single = Tensor.item(AuxLoss.globalAuxLoss(routed.scores, routed.auxRoutingMap, { topk: 2, coeff: 0.1, counts }))
      expect(shares.reduce((a, s) => a + (s[i] as number), 0)).toBeCloseTo(single, 12)
    })
  })
})
