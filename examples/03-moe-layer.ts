// Example 03: an MoE layer on 8 ranks. Attention runs TP2 x CP2 x DP2; the MoE layer folds the
// same 8 ranks into ETP1 x EP8 (one expert per rank). Each rank routes its own tokens (its
// slice of the sequence and batch), the all-to-all dispatcher moves them to their experts and
// back, and the result is compared with the same layer on one rank.
//
//   npx tsx examples/03-moe-layer.ts
//
// Expected output (abridged):
//   attention tp 2 x cp 2 x dp 2, moe etp 1 x ep 8 x edp 1 (8 experts, top-2)
//   tokens per expert: [42, 39, 45, 64, 44, 43, 47, 60]
//   load imbalance (max / mean): 1.333
//   (below 1e-12)
import * as Effect from "effect/Effect"
import * as Group from "../src/comm/Group.js"
import * as ParallelConfig from "../src/mapping/ParallelConfig.js"
import * as Experts from "../src/moe/Experts.js"
import * as MoeLayer from "../src/moe/MoeLayer.js"
import * as Permute from "../src/moe/Permute.js"
import * as Router from "../src/moe/Router.js"
import * as Job from "../src/runtime/Job.js"
import { matmul } from "../src/tensor/ops/Matmul.js"
import * as Shape from "../src/tensor/ops/Shape.js"
import * as Tensor from "../src/tensor/Tensor.js"

const world = 8
const config = ParallelConfig.make({ world, tp: 2, cp: 2, ep: 8, etp: 1 })
const s = config.sizes
const [hidden, ffn, experts, tokensPerRank] = [16, 32, 8, 24]
console.log(`attention tp ${s.tp} x cp ${s.cp} x dp ${s.dp}, moe etp ${s.etp} x ep ${s.ep} x edp ${s.edp} (${experts} experts, top-2)`)

// Deterministic weights and tokens (a small linear congruential stream).
let state = 42
const next = () => ((state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1
const tensor = (shape: Array<number>, scale = 1) =>
  Tensor.fromArray(
    Array.from({ length: Tensor.sizeOf(shape) }, () => next() * scale),
    shape,
    { dtype: "float64" },
  )
const router = tensor([hidden, experts])
const wGate = tensor([experts, hidden, ffn], 0.3)
const wUp = tensor([experts, hidden, ffn], 0.3)
const wDown = tensor([experts, ffn, hidden], 0.3)
const tokens = Array.from({ length: world }, () => tensor([tokensPerRank, hidden]))
const moe: MoeLayer.MoeConfig = { numExperts: experts, router: { topk: 2, scoreFunction: "softmax" } }

const results = await Job.runPromise({ world }, (rank) =>
  Effect.gen(function* () {
    const groups = { ep: Group.ofFamily(config, "ep", rank), etp: Group.ofFamily(config, "etp", rank), etpEp: Group.ofFamily(config, "etp-ep", rank) }
    const mine = { wGate: Shape.rows(wGate, rank, rank + 1), wUp: Shape.rows(wUp, rank, rank + 1), wDown: Shape.rows(wDown, rank, rank + 1) }
    const out = yield* MoeLayer.forward(tokens[rank] as Tensor.Tensor, { router, experts: mine }, moe, groups)
    return { output: out.output, rows: out.report.rowsPerLocalExpert[0] as number }
  }),
)

const perExpert = results.map((r) => r.rows)
const mean = perExpert.reduce((a, b) => a + b, 0) / experts
console.log(`tokens per expert: [${perExpert.join(", ")}]`)
console.log(`load imbalance (max / mean): ${(Math.max(...perExpert) / mean).toFixed(3)}`)

// The same layer on one rank: every token, every expert.
const all = Shape.concat(tokens, 0)
const routed = Router.routing(matmul(all, router), moe.router)
const p = Permute.permute(all, routed.routingMap, routed.probs)
const reference = Permute.unpermute(Experts.forward(p.permuted, p.permutedProbs as Tensor.Tensor, p.tokensPerExpert, { wGate, wUp, wDown }), p.sortedIndices, world * tokensPerRank)
const parallel = Tensor.toArray(
  Shape.concat(
    results.map((r) => r.output),
    0,
  ),
)
const error = Tensor.toArray(reference).reduce((m, v, i) => Math.max(m, Math.abs(v - (parallel[i] as number))), 0)
console.log(`max abs error against one rank: ${error.toExponential(3)} (${error < 1e-12 ? "below 1e-12" : "TOO LARGE"})`)
