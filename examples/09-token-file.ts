// Example 09: training on your own data. A text tokenized byte by byte (ids 0-255) is written as
// a token file, the format of nanoGPT's train.bin and Megatron's .bin (uint16 ids back to back),
// checked once (TokenFile.inspect: every id below the vocabulary, at least one sequence long), and
// trained on 4 local ranks folded as attention cp 2 x pp 2 and MoE ep 2 x edp 2; the same steps on
// one rank read the same windows and agree. Its sentences are documents packed back to back, each
// ended by a newline (id 10) as a tokenizer's end-of-document id: attention stays within each
// sentence, RoPE's positions restart with it, the position whose input is the newline is left out of
// the loss, and each loss is the mean over the step's kept tokens (Documents). `pleat train --data
// FILE --vocab N --eod-token 10 --reset-attention-mask --reset-position-ids --eod-mask-loss
// --calculate-per-token-loss` does the same from the command line.
//
//   npx tsx examples/09-token-file.ts
//
// Expected output (abridged):
//   token file: 4800 tokens, 149 windows of 33
//   step 1 loss 5.8
//   the loss fell below ln 256 - 1: true
//   one rank, same weights and windows: largest relative loss difference below 1e-9: true
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import * as Effect from "effect/Effect"
import * as ConfigError from "../src/errors/ConfigError.js"
import * as ParallelConfig from "../src/mapping/ParallelConfig.js"
import * as ModelConfig from "../src/train/ModelConfig.js"
import * as Optimizer from "../src/train/Optimizer.js"
import type * as RankTrainer from "../src/train/RankTrainer.js"
import * as TokenFile from "../src/train/TokenFile.js"
import * as Train from "../src/train/Train.js"

// A byte-level "tokenizer": the text's UTF-8 bytes are its ids.
const text = "the quick brown fox jumps over the lazy dog.\npack my box with five dozen liquor jugs.\n".repeat(60).slice(0, 4800)
const ids = new Uint16Array(Buffer.from(text, "utf8"))
const file = path.join(mkdtempSync(path.join(tmpdir(), "pleat-example-")), "train.bin")
writeFileSync(file, Buffer.from(ids.buffer))

const steps = 12
const model: ModelConfig.ModelConfig = { ...ModelConfig.small, vocab: 256, seq: 32, hidden: 32 }
const data = TokenFile.inspect(file, "uint16", model.seq, model.vocab)
if (ConfigError.isConfigError(data)) throw new Error(data.message)
console.log(`token file: ${data.tokens} tokens, ${TokenFile.windows(data, model.seq)} windows of ${model.seq + 1}`)

const setup: RankTrainer.TrainSetup = {
  parallel: ParallelConfig.make({ world: 4, tp: 1, cp: 2, pp: 2, ep: 2, etp: 1 }),
  model,
  batch: { microBatch: 1, globalBatch: 4 },
  seed: 1,
  dtype: "float64",
  optimizer: { ...Optimizer.defaults(steps), lr: 0.01 },
  auxLossCoeff: 0.01,
  data,
  documents: { eod: 10, resetAttentionMask: true, resetPositionIds: true, eodMaskLoss: true },
  perTokenLoss: true,
}
const run = await Effect.runPromise(Train.run(setup, { steps, onStep: (x) => x.step === 0 && console.log(`step 1 loss ${x.loss.toFixed(1)}`) }))
const last = run[run.length - 1]?.loss ?? Number.POSITIVE_INFINITY
console.log(`the loss fell below ln 256 - 1: ${last < Math.log(256) - 1}`)

const single = await Effect.runPromise(Train.run({ ...setup, parallel: ParallelConfig.make({ world: 1 }) }, { steps }))
const worst = run.reduce((m, x, k) => Math.max(m, Math.abs(x.loss - (single[k]?.loss ?? 0)) / Math.abs(x.loss)), 0)
console.log(`one rank, same weights and windows: largest relative loss difference below 1e-9: ${worst < 1e-9}`)
