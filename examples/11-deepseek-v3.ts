// Example 11: DeepSeek-V3 as its card describes it, shrunk to a CPU. The deepseek-v3 preset
// (multi-latent attention, 256 fine-grained experts top-8 with a shared expert, sigmoid routing
// with expert biases and 8 groups keeping 4, three leading dense layers at full size) scaled by
// 64, with one multi-token prediction layer and YaRN, trains on 8 local ranks folded as
// attention tp 2 x cp 2 x pp 2 and MoE ep 2 x edp 2; then it goes out as a transformers
// DeepseekV3 directory (its MTP layer as DeepSeek's checkpoints hold it) and back, bit for bit.
//
//   npx tsx examples/11-deepseek-v3.ts
//
// Expected output (abridged):
//   deepseek-v3 / 64: 2 layers + 1 MTP, 256 experts top-8, MLA q 24 / kv 8, 6,227,520 parameters
//   step 1: loss 8.5252 (mtp_loss 7.7397)
//   step 6: loss 6.1421 (mtp_loss 6.7182)
//   exported as deepseek-v3: 1585 tensors; imported back bit for bit: true
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import * as Effect from "effect/Effect"
import * as ParallelConfig from "../src/mapping/ParallelConfig.js"
import * as Checkpoint from "../src/train/Checkpoint.js"
import * as HfDirectory from "../src/train/HfDirectory.js"
import * as HfImport from "../src/train/HfImport.js"
import * as ModelPresets from "../src/train/ModelPresets.js"
import * as Optimizer from "../src/train/Optimizer.js"
import * as Params from "../src/train/Params.js"
import type * as RankTrainer from "../src/train/RankTrainer.js"
import * as Train from "../src/train/Train.js"

const scratch = mkdtempSync(path.join(tmpdir(), "pleat-example-deepseek-"))
const preset = ModelPresets.model("deepseek-v3", 64)
const model = {
  ...preset,
  mtpLayers: 1,
  // YaRN: 4x the context the frequencies were made for (DeepSeek-V3 itself: 40x over 4096).
  ropeScaling: { factor: 4, originalMaxPositions: preset.seq / 4, betaFast: 32, betaSlow: 1, mscale: 1, mscaleAllDim: 1 },
}
const parameters = Params.specs(model).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0)
const mla = model.mla as NonNullable<typeof model.mla>
console.log(
  `deepseek-v3 / 64: ${model.layers} layers + ${model.mtpLayers} MTP, ${model.experts} experts top-${model.topk}, MLA q ${mla.qLoraRank} / kv ${mla.kvLoraRank}, ${parameters.toLocaleString("en")} parameters`,
)

const setup: RankTrainer.TrainSetup = {
  parallel: ParallelConfig.make({ world: 8, tp: 2, cp: 2, pp: 2, ep: 2, etp: 1 }),
  model,
  batch: { microBatch: 1, globalBatch: 4 },
  seed: 1,
  dtype: "float32",
  optimizer: Optimizer.defaults(6),
  auxLossCoeff: 0,
}
const saved = path.join(scratch, "ckpt")
const steps = await Effect.runPromise(Train.run(setup, { steps: 6, save: saved }))
for (const s of [steps[0], steps.at(-1)]) {
  const mtp = s?.moe.find((l) => l.layer === model.layers)?.losses.mtp_loss ?? Number.NaN
  // Steps count from 0 in the summaries (the command line shows them from 1).
  console.log(`step ${(s?.step ?? 0) + 1}: loss ${s?.loss.toFixed(4)} (mtp_loss ${mtp.toFixed(4)})`)
}

// Out as transformers' DeepseekV3 (MLA, the MoE, YaRN, the MTP layer past the last) and back.
const exported = HfDirectory.write({ checkpoint: saved, out: path.join(scratch, "hf"), format: "deepseek-v3", dtype: "float32", maxShardBytes: 5e9 })
const imported = HfImport.write({ modelDir: exported.out, out: path.join(scratch, "imported"), seed: setup.seed, dtype: "float32" })
const before = Checkpoint.values(saved).values
const after = Checkpoint.values(imported.out).values
const same = after.size === before.size && [...before].every(([name, t]) => after.get(name)?.data.every((v, i) => Object.is(v, t.data[i])) === true)
console.log(`exported as ${exported.format}: ${exported.tensors} tensors; imported back bit for bit: ${same}`)
