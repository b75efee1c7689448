// Example 05: a full training run from TypeScript: the small Mixtral-like model on 8 local
// ranks folded as attention tp 2 x cp 2 x pp 2 and MoE ep 2 x edp 2, then the same steps on
// one rank to show that the parallel run computes what one rank would.
//
//   npx tsx examples/05-train.ts
//
// Expected output (abridged):
//   8 ranks: attention tp 2 x cp 2 x dp 1 x pp 2, moe etp 1 x ep 2 x edp 2
//   step 1 loss 3.6229
//   the loss fell: true
//   one rank, same weights and data: largest relative loss difference below 1e-9: true
import * as Effect from "effect/Effect"
import * as ParallelConfig from "../src/mapping/ParallelConfig.js"
import * as ModelConfig from "../src/train/ModelConfig.js"
import * as Optimizer from "../src/train/Optimizer.js"
import type * as RankTrainer from "../src/train/RankTrainer.js"
import * as Train from "../src/train/Train.js"

const steps = 8
const parallel = ParallelConfig.make({ world: 8, tp: 2, cp: 2, pp: 2, ep: 2, etp: 1 })
const s = parallel.sizes
console.log(`8 ranks: attention tp ${s.tp} x cp ${s.cp} x dp ${s.dp} x pp ${s.pp}, moe etp ${s.etp} x ep ${s.ep} x edp ${s.edp}`)

const setup: RankTrainer.TrainSetup = {
  parallel,
  model: ModelConfig.small,
  batch: { microBatch: 1, globalBatch: 8 },
  seed: 1,
  dtype: "float64",
  optimizer: Optimizer.defaults(steps),
  auxLossCoeff: 0.01,
}
const run = await Effect.runPromise(Train.run(setup, { steps, onStep: (x) => console.log(`step ${x.step + 1} loss ${x.loss.toFixed(4)}`) }))
const first = run[0]?.loss ?? 0
const last = run[run.length - 1]?.loss ?? 0
console.log(`the loss fell: ${last < first - 0.5}`)

const single = await Effect.runPromise(Train.run({ ...setup, parallel: ParallelConfig.make({ world: 1 }) }, { steps }))
const worst = run.reduce((m, x, k) => Math.max(m, Math.abs(x.loss - (single[k]?.loss ?? 0)) / Math.abs(x.loss)), 0)
console.log(`one rank, same weights and data: largest relative loss difference below 1e-9: ${worst < 1e-9}`)
