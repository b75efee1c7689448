// Shared experts: the MoE layer with a shared SwiGLU MLP on the attention TP group (sequence
// parallel) equals the routed reference plus the dense MLP on every token, forward and input
// gradient.
import * as Effect from "effect/Effect"
import fc from "fast-check"
import { describe, expect, test } from "vitest"
import * as DenseMlp from "../../src/dataflow/DenseMlp.js"
import * as ParallelLinear from "../../src/dataflow/ParallelLinear.js"
import * as Group from "../../src/comm/Group.js"
import * as Folding from "../../src/mapping/Folding.js"
import * as ParallelConfig from "../../src/mapping/ParallelConfig.js"
import * as MoeLayer from "../../src/moe/MoeLayer.js"
import * as Job from "../../src/runtime/Job.js"
import { add } from "../../src/tensor/ops/Elementwise.js"
import * as Shape from "../../src/tensor/ops/Shape.js"
import * as Tensor from "../../src/tensor/Tensor.js"
import { uniform } from "../tensor/gradcheck.js"
import { referenceMoe } from "./reference.js"

describe("shared experts", () => {
  test("routed output plus the shared MLP, on TP with sequence parallelism", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(1, 2), fc.constantFrom(1, 2, 4), fc.integer({ min: 1, max: 1000 }), async (tp, ep, seed) => {
        const world = Math.max(tp, ep)
        fc.pre(world % tp === 0 && world % ep === 0)
        const config = ParallelConfig.make({ world, tp, ep, etp: 1 })
        const fold = Folding.make(config)
        const h = 3
        const numExperts = 2 * ep
        const full = {
          router: uniform([h, numExperts], seed),
          wGate: uniform([numExperts, h, 2], seed + 1),
          wUp: uniform([numExperts, h, 2], seed + 2),
          wDown: uniform([numExperts, 2, h], seed + 3),
        }
        const shared = { wGate: uniform([h, 2 * tp], seed + 4), wUp: uniform([h, 2 * tp], seed + 5), wDown: uniform([2 * tp, h], seed + 6) }
        const xs = Array.from({ length: world }, (_, r) => uniform([2, h], seed + 10 + r))
        const moe: MoeLayer.MoeConfig = { numExperts, router: { topk: 2, scoreFunction: "softmax" } }
        const routed = Tensor.toArray(referenceMoe(xs, full, moe))
        const one = Group.make("one", [0])
        const dense = await Job.runPromise({ world: 1 }, () => DenseMlp.forward(Shape.concat(xs, 0), shared, { tp: one, sequenceParallel: false }))
        const expected = Tensor.toArray(add(Tensor.fromArray(routed, [routed.length / h, h], { dtype: "float64" }), dense[0] as Tensor.Tensor))
        const outs = await Job.runPromise({ world }, (rank) =>
          Effect.gen(function* () {
            const p = Folding.place(fold, rank)
            const groups = { ep: Group.ofFamily(config, "ep", rank), etp: Group.ofFamily(config, "etp", rank), etpEp: Group.ofFamily(config, "etp-ep", rank) }
            const per = numExperts / ep
            const w = {
              router: full.router,
              experts: {
                wGate: Shape.rows(full.wGate, p.ep * per, (p.ep + 1) * per),
                wUp: Shape.rows(full.wUp, p.ep * per, (p.ep + 1) * per),
                wDown: Shape.rows(full.wDown, p.ep * per, (p.ep + 1) * per),
              },
              shared: {
                wGate: ParallelLinear.columnShard(shared.wGate, p.tp, tp),
                wUp: ParallelLinear.columnShard(shared.wUp, p.tp, tp),
                wDown: ParallelLinear.rowShard(shared.wDown, p.tp, tp),
              },
            }
            const r = yield* MoeLayer.forward(xs[rank] as Tensor.Tensor, w, { ...moe, shared: { tp: Group.ofFamily(config, "tp", rank), sequenceParallel: tp > 1 } }, groups)
            return Tensor.toArray(r.output)
          }),
        )
        outs.flat().forEach((v, i) => expect(v).toBeCloseTo(expected[i] as number, 10))
      }),
      { numRuns: 20 },
    )
  })
})
