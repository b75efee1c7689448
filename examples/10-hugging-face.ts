// Example 10: to Hugging Face and back. A model trained on 4 local ranks (attention tp 2 x pp 2,
// MoE ep 2) is saved, exported as a transformers Mixtral directory (config.json and
// model.safetensors: what `pleat export` writes; AutoModelForCausalLM.from_pretrained loads it),
// imported back as a checkpoint at step 0 (what `pleat import` writes: the same parameters, bit
// for bit) and trained on from there under another mapping.
//
//   npx tsx examples/10-hugging-face.ts
//
// Expected output (abridged):
//   trained 4 steps on 4 ranks
//   exported as mixtral: 64 tensors, files config.json, model.safetensors
//   imported: the same parameters bit for bit: true
//   fine-tuned from the import on 2 ranks: 2 steps
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import * as Effect from "effect/Effect"
import * as ParallelConfig from "../src/mapping/ParallelConfig.js"
import * as Checkpoint from "../src/train/Checkpoint.js"
import * as HfDirectory from "../src/train/HfDirectory.js"
import * as HfImport from "../src/train/HfImport.js"
import * as ModelConfig from "../src/train/ModelConfig.js"
import * as Optimizer from "../src/train/Optimizer.js"
import type * as RankTrainer from "../src/train/RankTrainer.js"
import * as Train from "../src/train/Train.js"

const scratch = mkdtempSync(path.join(tmpdir(), "pleat-example-hf-"))
const model: ModelConfig.ModelConfig = { ...ModelConfig.small, layers: 2, hidden: 16, seq: 8, vocab: 40, ropeTheta: 1e6, normEps: 1e-5 }
const setup: RankTrainer.TrainSetup = {
  parallel: ParallelConfig.make({ world: 4, tp: 2, cp: 1, pp: 2, ep: 2, etp: 1 }),
  model,
  batch: { microBatch: 1, globalBatch: 2 },
  seed: 1,
  dtype: "float32",
  optimizer: Optimizer.defaults(6),
  auxLossCoeff: 0.01,
}

// Train and save.
const saved = path.join(scratch, "ckpt")
await Effect.runPromise(Train.run(setup, { steps: 4, save: saved }))
console.log("trained 4 steps on 4 ranks")

// Export: a transformers model directory.
const exported = HfDirectory.write({ checkpoint: saved, out: path.join(scratch, "hf"), format: "auto", dtype: "float32", maxShardBytes: 5e9 })
console.log(`exported as ${exported.format}: ${exported.tensors} tensors, files ${exported.files.slice().sort().join(", ")}`)

// Import: back into a checkpoint at step 0.
const imported = HfImport.write({ modelDir: exported.out, out: path.join(scratch, "imported"), seed: setup.seed, dtype: "float32" })
const before = Checkpoint.values(saved).values
const after = Checkpoint.values(imported.out).values
const same = [...before].every(([name, t]) => {
  const u = after.get(name)
  return u !== undefined && u.data.length === t.data.length && u.data.every((v, i) => Object.is(v, t.data[i]))
})
console.log(`imported: the same parameters bit for bit: ${same && after.size === before.size}`)

// Fine-tune from the import under another mapping (the model it describes, the run's own batch).
const tuned = await Effect.runPromise(
  Train.run({ ...setup, model: imported.model, parallel: ParallelConfig.make({ world: 2, tp: 1, cp: 1, pp: 1, ep: 2, etp: 1 }) }, { steps: 2, resume: imported.out }),
)
console.log(`fine-tuned from the import on 2 ranks: ${tuned.length} steps`)
