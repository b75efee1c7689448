// Example 12: the attention of recent MoE models, on folded ranks. GPT-OSS alternates sliding-window
// layers with full-context ones (--sliding-window W --window-attn-skip-freq 2) and gives every head
// a learnable softmax sink, a logit that takes probability and gives no value (--softmax-type
// learnable); and Megatron initializes its weights from N(0, F), the projections into the residual
// stream from N(0, F / sqrt(2 L)) (--init-method-std F). With 0.02 the first loss is about
// ln(vocab), as small logits give. The model trains on 8 local ranks folded as attention tp 2 x
// cp 2 x pp 2 and MoE ep 2 x edp 2 (the sinks split over tp with the heads), and the same steps
// on one rank agree; the sinks move away from 0 as the model learns to park attention on them.
// `pleat train --sliding-window 8 --window-attn-skip-freq 2 --softmax-type learnable
// --init-method-std 0.02` does the same from the command line.
//
//   npx tsx examples/12-attention-variants.ts
//
// Expected output (abridged):
//   layers 0 and 2 attend to the last 8 tokens, layers 1 and 3 to the whole context
//   first loss within 0.05 of ln 32: true
//   one rank, same steps: largest relative loss difference below 1e-9: true
//   every head's sink has moved from 0: true
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import * as Effect from "effect/Effect"
import * as ParallelConfig from "../src/mapping/ParallelConfig.js"
import * as ModelContext from "../src/model/ModelContext.js"
import * as Checkpoint from "../src/train/Checkpoint.js"
import * as ModelConfig from "../src/train/ModelConfig.js"
import * as Optimizer from "../src/train/Optimizer.js"
import type * as RankTrainer from "../src/train/RankTrainer.js"
import * as Train from "../src/train/Train.js"

const steps = 8
const model: ModelConfig.ModelConfig = { ...ModelConfig.small, seq: 32, slidingWindow: 8, windowAttnSkipFreq: 2, softmaxType: "learnable" }
const windowed = Array.from({ length: model.layers }, (_, l) => ModelContext.windowOf(model, l) !== undefined)
const which = (keep: boolean) => windowed.flatMap((w, l) => (w === keep ? [l] : [])).join(" and ")
console.log(`layers ${which(true)} attend to the last ${model.slidingWindow} tokens, layers ${which(false)} to the whole context`)

const setup: RankTrainer.TrainSetup = {
  parallel: ParallelConfig.make({ world: 8, tp: 2, cp: 2, pp: 2, ep: 2, etp: 1 }),
  model,
  batch: { microBatch: 1, globalBatch: 4 },
  seed: 1,
  initMethodStd: 0.02,
  dtype: "float64",
  optimizer: Optimizer.defaults(steps),
  auxLossCoeff: 0,
}
const folded = await Effect.runPromise(Train.run(setup, { steps, onStep: (x) => x.step === 0 && console.log(`step 1 loss ${x.loss.toFixed(3)}`) }))
console.log(`first loss within 0.05 of ln ${model.vocab}: ${Math.abs((folded[0]?.loss ?? 0) - Math.log(model.vocab)) < 0.05}`)

const saved = path.join(mkdtempSync(path.join(tmpdir(), "pleat-example-attention-")), "ckpt")
const single = await Effect.runPromise(Train.run({ ...setup, parallel: ParallelConfig.make({ world: 1 }) }, { steps, save: saved }))
const worst = folded.reduce((m, x, k) => Math.max(m, Math.abs(x.loss - (single[k]?.loss ?? 0)) / Math.abs(x.loss)), 0)
console.log(`one rank, same steps: largest relative loss difference below 1e-9: ${worst < 1e-9}`)
const sinks = Array.from(Checkpoint.values(saved).values.get("layers.0.sinks")?.data ?? [])
console.log(`every head's sink has moved from 0: ${sinks.length === model.heads && sinks.every((z) => z !== 0)}`)
