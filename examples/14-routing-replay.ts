// Example 14: routing replay (Megatron-Core's router replay, as RL uses it to train on the
// routing its rollout saw). A run on 8 ranks records every MoE layer's routing, step by step, as
// NumPy .npy files; a run under another mapping and other weights replays it, and its own
// recording is the one it replayed. Then a routing written here (each token's experts fixed by
// its place, as a hash router would) drives a third run.
//
//   npx tsx examples/14-routing-replay.ts
//
// Expected output (abridged):
//   recorded 3 steps: step-00000001.npy holds [4, 128, 2] (MoE layers, global batch x seq, topk)
//   replayed on 4 ranks with other weights: the same routing: true
//   a fixed routing trains too, and every expert took its share: true
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import * as Effect from "effect/Effect"
import * as ParallelConfig from "../src/mapping/ParallelConfig.js"
import * as ModelConfig from "../src/train/ModelConfig.js"
import * as Npy from "../src/train/Npy.js"
import * as Optimizer from "../src/train/Optimizer.js"
import type * as RankTrainer from "../src/train/RankTrainer.js"
import * as Train from "../src/train/Train.js"

const steps = 3
const folder = (label: string) => mkdtempSync(path.join(tmpdir(), `pleat-example-${label}-`))
const setup: RankTrainer.TrainSetup = {
  parallel: ParallelConfig.make({ world: 8, tp: 2, cp: 2, pp: 2, ep: 2, etp: 1 }),
  model: ModelConfig.small,
  batch: { microBatch: 1, globalBatch: 8 },
  seed: 1,
  dtype: "float64",
  optimizer: Optimizer.defaults(steps),
  auxLossCoeff: 0.01,
}
const stepFile = (dir: string, step: number) => path.join(dir, `step-${String(step).padStart(8, "0")}.npy`)

// 1. Record.
const recorded = folder("recorded")
await Effect.runPromise(Train.run({ ...setup, routing: { record: recorded } }, { steps }))
const first = Npy.decodeIntegers(readFileSync(stepFile(recorded, 1)), "step 1")
console.log(`recorded ${steps} steps: step-00000001.npy holds [${first.shape.join(", ")}] (MoE layers, global batch x seq, topk)`)

// 2. Replay under another mapping, from other weights, recording again.
const again = folder("again")
const other = { ...setup, parallel: ParallelConfig.make({ world: 4, tp: 1, cp: 1, pp: 2, ep: 2, etp: 1 }), seed: 2 }
await Effect.runPromise(Train.run({ ...other, routing: { replay: recorded, record: again } }, { steps }))
const same = Array.from({ length: steps }, (_, k) => readFileSync(stepFile(recorded, k + 1)).equals(readFileSync(stepFile(again, k + 1)))).every((x) => x)
console.log(`replayed on 4 ranks with other weights: the same routing: ${same}`)

// 3. A routing of one's own: token t of layer l goes to experts (t + l) mod E and (t + l + 1) mod E.
const fixed = folder("fixed")
const [layers, tokens, topk] = first.shape as [number, number, number]
const experts = ModelConfig.small.experts
for (let step = 1; step <= steps; step++) {
  const data = Int32Array.from({ length: layers * tokens * topk }, (_, i) => {
    const [l, t, j] = [Math.floor(i / (tokens * topk)), Math.floor(i / topk) % tokens, i % topk]
    return (t + l + j) % experts
  })
  writeFileSync(stepFile(fixed, step), Npy.encodeInt32(data, [layers, tokens, topk]))
}
const fixedRun = await Effect.runPromise(Train.run({ ...other, routing: { replay: fixed } }, { steps }))
// Every expert gets 2 x 128 / 8 = 32 rows of each layer: perfect balance (imbalance 1).
const balanced = fixedRun.every((s) => s.imbalance.every((l) => Math.abs(l.value - 1) < 1e-12))
console.log(`a fixed routing trains too, and every expert took its share: ${balanced && fixedRun.every((s) => Number.isFinite(s.loss))}`)
