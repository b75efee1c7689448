/**
 * ExportCommand: `pleat export`, a checkpoint (saved under any mapping) as a Hugging Face model
 * directory that transformers loads (HfExport, HfDirectory).
 *
 * Output: one line saying what was written (`--json`: one JSON object with the same facts).
 * Everything that cannot work is refused before any file is written (exit 2, one line naming
 * the flag, the value and the fix): a missing flag, an unknown --format or --dtype, a size that
 * does not parse, a directory that holds no usable checkpoint, an --out that cannot be written
 * (under a file, a read-only folder or a pseudo-file system such as /proc), is a file or a
 * directory with files in it, a model no architecture of transformers that pleat writes holds.
 */
import * as ConfigError from "../errors/ConfigError.js"
import * as HfDirectory from "../train/HfDirectory.js"
import * as HfExport from "../train/HfExport.js"
import * as HfLayout from "../train/HfLayout.js"
import * as ExitCode from "./ExitCode.js"
import * as Flags from "./Flags.js"
import type { Io } from "./Io.js"
import * as OutputPath from "./OutputPath.js"
import * as WriteFailure from "./WriteFailure.js"
import * as ByteSize from "../tensor/ByteSize.js"

/**
 * The flags of `pleat export`.
 * @category configuration
 */
const flags: Readonly<Record<string, Flags.FlagSpec>> = {
  checkpoint: {
    kind: "string",
    placeholder: "DIR",
    help: "the checkpoint to export: a directory written by pleat train --save (its latest complete step), saved under any mapping (required)",
  },
  out: { kind: "string", placeholder: "DIR", help: "the model directory to create (a new path or an empty directory) (required)" },
  format: { kind: "string", placeholder: "F", help: `the transformers architecture: auto (the first that holds the model), ${HfLayout.formats.join(" or ")} (default auto)` },
  dtype: { kind: "string", placeholder: "T", help: `the weights' element type: ${HfExport.dtypes.join(", ")} (default float32; bfloat16 rounds to nearest, ties to even)` },
  "max-shard-size": {
    kind: "string",
    placeholder: "SIZE",
    help: "the most bytes of weights in one file, e.g. 5GB, 500MB, 2GiB or a byte count (default 5GB); larger models get model-0000i-of-0000n files and an index",
  },
  json: { kind: "boolean", help: "print one JSON object (out, format, dtype, step, tensors, weightBytes, files)" },
  help: { kind: "boolean", help: "show this help" },
}

/**
 * The usage text of `pleat export`.
 * @category configuration
 */
const usage = `usage: pleat export --checkpoint DIR --out DIR [--format auto|mixtral|qwen2-moe|qwen3-moe|dots1|deepseek-v3|gpt-oss|glm4-moe|deepseek-v2|olmoe] [--dtype float32|bfloat16|float64]

Writes a checkpoint as a Hugging Face model directory: config.json and the weights in
safetensors files, which transformers' AutoModelForCausalLM.from_pretrained(DIR) loads and runs
as pleat's model (the same logits: tested against transformers). mixtral holds every-layer-MoE
models without shared experts (pleat's default); qwen2-moe holds shared experts with their gate
and dense layers (--moe-every, --dense-first); qwen3-moe holds q/k norms (--qk-norm) without
shared experts, and dense layers; dots1 holds sigmoid routing with --expert-bias (its biases as
e_score_correction_bias), groups where topk / --group-topk is 2, --scaling-factor, ungated shared
experts and --qk-norm (DeepSeek-V3's router on Qwen3's attention); deepseek-v3 holds dots1's
router and shared experts with --multi-latent-attention (--norm-eps 1e-6; rotary rows written
interleaved, rope_interleave true, as DeepSeek's checkpoints); gpt-oss holds softmax sinks
(--softmax-type learnable), a window on every other layer (--window-attn-skip-freq) and GPT-OSS's
expert activation (--quick-geglu --glu-linear-offset 1 --activation-func-clamp-value 7), its
biases from --add-bias-linear and --router-bias, zeros where the model has none (--model
gpt-oss-20b exports); glm4-moe (GLM-4.5) holds dots1's router and shared experts with
grouped-query attention, its q/k/v biases (--qkv-bias) and q/k norms (--qk-norm) optional and
partial RoPE (--rotary-percent; GLM-4.5's 0.5); the other formats refuse those biases;
deepseek-v2 holds --multi-latent-attention with softmax routing whose top-k is weighted as it is
(--pre-softmax), --scaling-factor, groups where --group-topk is more than half the top-k, and
ungated shared experts; olmoe holds --qk-norm --qk-norm-over-heads with every layer MoE and
no shared experts. A --head-dim of its own is
written as head_dim. The first three and gpt-oss route with softmax; sigmoid routing, expert bias, group-
limited routing and probs scaling have no transformers architecture with pleat's attention and
are refused. Token dropping is for training: transformers runs the experts dropless. No
tokenizer is written: add the one your token files were made with.

The directory is written beside OUT and renamed into place once every file is flushed: a
crash never leaves a partial OUT.

${Flags.usage(flags)}
exit status: 0 written, 2 input that cannot work (one line names the flag, the value and the fix),
             1 the file system failed while writing (one line; nothing is left at --out)
`

const choice = <T extends string>(field: string, value: string | undefined, options: ReadonlyArray<T>, fallback: T): T => {
  if (value === undefined) return fallback
  if ((options as ReadonlyArray<string>).includes(value)) return value as T
  throw ConfigError.make(field, value, "is not allowed", `use one of ${options.join(", ")}`)
}

const required = (field: string, value: string | undefined, fix: string): string => {
  if (value === undefined) throw ConfigError.make(field, undefined, "is required", fix)
  return value
}

const size = (bytes: number): string => (bytes >= 1e9 ? `${(bytes / 1e9).toFixed(2)} GB` : bytes >= 1e6 ? `${(bytes / 1e6).toFixed(1)} MB` : `${(bytes / 1e3).toFixed(1)} kB`)

/**
 * Runs `pleat export` with its arguments (after the word `export`); returns the exit status.
 * @category constructors
 */
export const run = (argv: ReadonlyArray<string>, io: Io): number => {
  const f = Flags.parse(argv, flags)
  if (Flags.bool(f, "help")) {
    io.stdout(usage)
    return ExitCode.ok
  }
  const request: HfDirectory.Request = {
    checkpoint: required("--checkpoint", Flags.string(f, "checkpoint"), "pass --checkpoint DIR, a directory written by pleat train --save"),
    out: required("--out", Flags.string(f, "out"), "pass --out DIR, a new path or an empty directory for the model"),
    format: choice("--format", Flags.string(f, "format"), ["auto", ...HfLayout.formats], "auto"),
    dtype: choice("--dtype", Flags.string(f, "dtype"), HfExport.dtypes, "float32"),
    maxShardBytes: ByteSize.parse("--max-shard-size", Flags.string(f, "max-shard-size") ?? "5GB"),
  }
  // Where the directory goes must be a writable folder of a real file system (not /proc, ...).
  const place = OutputPath.placeProblem("--out", request.out, "folder")
  if (place !== undefined) throw place
  let written: HfDirectory.Written
  try {
    written = HfDirectory.write(request)
  } catch (error) {
    const failure = WriteFailure.describe(error)
    if (failure === undefined) throw error
    io.stderr(`pleat export: the file system failed: ${failure}; nothing was published at ${request.out} (its partial directory was removed)\n`)
    return ExitCode.failure
  }
  if (Flags.bool(f, "json")) {
    io.stdout(`${JSON.stringify(written)}\n`)
    return ExitCode.ok
  }
  io.stdout(
    `pleat export: step ${written.step} of ${request.checkpoint} as ${written.format} (${written.dtype}, ${written.tensors} tensors, ${size(written.weightBytes)} in ${written.files.filter((n) => n.endsWith(".safetensors")).length} safetensors file${written.files.length > 2 ? "s" : ""}) into ${written.out}\n` +
      `load it with: AutoModelForCausalLM.from_pretrained("${written.out}")\n`,
  )
  return ExitCode.ok
}
