// Example 13: a Megatron-LM argument list and GPT-OSS. The MODEL_ARGS of Megatron-LM's GPT-OSS
// example (examples/gptoss/02_train.sh), shrunk, run as `pleat train` takes them: Megatron-LM's
// names (--num-layers, --num-query-groups, --quick-geglu, --window-size 127,0, ...), the
// settings they leave unset at Megatron-LM's defaults (tp, pp, ep 1; world the fewest ranks that
// fit), the fusions and overlaps it lists taken without effect. The job is resolved as the
// command line resolves it (TrainOptions.resolve, what `pleat train` runs), trained, saved and
// written as a transformers GPT-OSS directory (`pleat export --format gpt-oss`), which
// `pleat import` reads back: the same parameters.
//
//   npx tsx examples/13-megatron-gpt-oss.ts
//
// Expected output (abridged):
//   --moe-grouped-gemm, --overlap-param-gather, --overlap-grad-reduce
//   resolved: 4 ranks, attention tp 1 x pp 2 x dp 2, moe ep 2; window 128 on layers 1, 3 (counting from 1)
//   trained 3 steps: loss
//   exported as gpt-oss: GptOssForCausalLM, layer_types sliding_attention, full_attention, sliding_attention, full_attention
//   imported: the same parameters bit for bit: true
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import * as Effect from "effect/Effect"
import * as Cli from "../src/cli/Cli.js"
import { memoryIo } from "../src/cli/Io.js"
import * as TrainOptions from "../src/cli/TrainOptions.js"
import * as ModelContext from "../src/model/ModelContext.js"
import * as Checkpoint from "../src/train/Checkpoint.js"
import * as Train from "../src/train/Train.js"

const scratch = mkdtempSync(path.join(tmpdir(), "pleat-example-gpt-oss-"))
const saved = path.join(scratch, "ckpt")

// Megatron-LM's GPT-OSS MODEL_ARGS (hidden 512, 64 heads of 8 query groups, 4 experts top-2)
// with the sizes cut for a CPU; the data is pleat's synthetic language (--mock-data).
const megatronArgs = [
  ...["--use-mcore-models", "--no-masked-softmax-fusion", "--transformer-impl", "transformer_engine", "--disable-bias-linear"],
  ...["--untie-embeddings-and-output-weights", "--no-rope-fusion", "--normalization", "RMSNorm", "--num-layers", "4"],
  ...["--hidden-size", "64", "--ffn-hidden-size", "128", "--num-attention-heads", "8", "--group-query-attention", "--num-query-groups", "2"],
  ...["--seq-length", "256", "--max-position-embeddings", "4096", "--position-embedding-type", "rope", "--rotary-base", "10000"],
  ...["--no-bias-dropout-fusion", "--quick-geglu", "--glu-linear-offset", "1.0", "--softmax-type", "learnable"],
  ...["--window-attn-skip-freq", "2", "--activation-func-clamp-value", "7.0", "--window-size", "127,0", "--attention-dropout", "0.0", "--hidden-dropout", "0.0"],
  ...["--num-experts", "4", "--moe-router-topk", "2", "--moe-router-load-balancing-type", "aux_loss", "--moe-aux-loss-coeff", "1e-3"],
  ...["--moe-grouped-gemm", "--moe-token-dispatcher-type", "alltoall", "--overlap-param-gather", "--overlap-grad-reduce"],
  ...["--moe-ffn-hidden-size", "64", "--moe-router-dtype", "fp32", "--moe-z-loss-coeff", "1e-3", "--moe-permute-fusion"],
  ...["--mock-data", "--tokenizer-type", "NullTokenizer", "--vocab-size", "256", "--micro-batch-size", "1", "--global-batch-size", "4"],
  ...["--lr", "1e-3", "--train-iters", "3", "--pipeline-model-parallel-size", "2", "--expert-model-parallel-size", "2", "--bf16"],
  ...["--save", saved],
]

const resolved = TrainOptions.resolve(megatronArgs)
if (resolved === "help") throw new Error("unreachable: no --help")
for (const notice of resolved.notices) console.log(notice)
const { setup } = resolved
const s = setup.parallel.sizes
const windowed = Array.from({ length: setup.model.layers }, (_, l) => l).filter((l) => ModelContext.windowOf(setup.model, l) !== undefined)
console.log(
  `resolved: ${setup.parallel.world} ranks, attention tp ${s.tp} x pp ${s.pp} x dp ${s.dp}, moe ep ${s.ep}; window ${setup.model.slidingWindow} on layers ${windowed.map((l) => l + 1).join(", ")} (counting from 1)`,
)

const summaries = await Effect.runPromise(Train.run(setup, { steps: resolved.steps, save: saved }))
console.log(`trained ${summaries.length} steps: loss ${summaries[0]?.loss.toFixed(3)} -> ${summaries.at(-1)?.loss.toFixed(3)}`)

/** Runs a pleat command in this process; its stdout. */
const pleat = async (argv: ReadonlyArray<string>): Promise<string> => {
  const io = memoryIo()
  const status = await Cli.run(argv, io)
  if (status !== 0) throw new Error(`pleat ${argv.join(" ")}: ${io.err}`)
  return io.out
}

const hf = path.join(scratch, "hf")
await pleat(["export", "--checkpoint", saved, "--out", hf, "--format", "gpt-oss"])
const config = JSON.parse(readFileSync(path.join(hf, "config.json"), "utf8")) as { architectures: Array<string>; layer_types: Array<string> }
console.log(`exported as gpt-oss: ${config.architectures.join(", ")}, layer_types ${config.layer_types.join(", ")}`)

const back = path.join(scratch, "imported")
await pleat(["import", "--model-dir", hf, "--out", back])
const original = Checkpoint.values(saved).values
const imported = Checkpoint.values(back).values
const same = [...original].every(([name, t]) => {
  const other = imported.get(name)?.data
  return other !== undefined && other.length === t.data.length && other.every((v, i) => v === t.data[i])
})
console.log(`imported: the same parameters bit for bit: ${same}`)
