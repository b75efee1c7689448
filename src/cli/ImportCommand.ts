/**
 * ImportCommand: `pleat import`, a Hugging Face Mixtral, Qwen2-MoE, Qwen3-MoE, dots1, DeepSeek-V3, GPT-OSS, GLM-4.5, DeepSeek-V2 or OLMoE model directory as a pleat
 * checkpoint at step 0 (HfImport), with a --config file of its model's settings beside it, so
 * that `pleat train --resume OUT --config OUT/model.json` fine-tunes it under any mapping.
 *
 * Output: one line saying what was written and one with the command that trains it (`--json`:
 * one JSON object). What cannot work is refused before anything is written (exit 2, one line
 * naming the flag or config key, the value and the fix).
 */
import path from "node:path"
import * as ConfigError from "../errors/ConfigError.js"
import * as Durable from "../train/CheckpointDurable.js"
import * as HfImport from "../train/HfImport.js"
import * as ExitCode from "./ExitCode.js"
import * as Flags from "./Flags.js"
import type { Io } from "./Io.js"
import * as OutputPath from "./OutputPath.js"
import * as WriteFailure from "./WriteFailure.js"
import * as PresetSettings from "./PresetSettings.js"
import { maxSeed } from "./SettingKinds.js"

/**
 * The flags of `pleat import`.
 * @category configuration
 */
const flags: Readonly<Record<string, Flags.FlagSpec>> = {
  "model-dir": { kind: "string", placeholder: "DIR", help: "the Hugging Face model directory: config.json and safetensors weights (required)" },
  out: { kind: "string", placeholder: "DIR", help: "the checkpoint directory to create (a new path or an empty directory) (required)" },
  seed: { kind: "int", placeholder: "N", min: 0, max: maxSeed, help: "the seed the checkpoint records, which training must use: it seeds the data (default 1, as pleat train's)" },
  dtype: { kind: "string", placeholder: "T", help: "the parameters' dtype: float32 or float64 (default float32, as pleat train's)" },
  experts: {
    kind: "int",
    placeholder: "E",
    min: 1,
    help: "upcycle a dense Llama, Mistral or Qwen3 model: every layer's MLP becomes E experts, each a copy of it, behind a router of pleat's initialization (none by default)",
  },
  topk: { kind: "int", placeholder: "K", min: 1, help: "with --experts: the experts each token goes to, its probs renormalized over them (default 2)" },
  granularity: {
    kind: "int",
    placeholder: "G",
    min: 1,
    help: "with --experts: cut each MLP into G experts of width intermediate_size / G, weights scaled by G^(1/3), a copy's G experts routed alike (Megatron's --moe-upcycling-granularity; default 1)",
  },
  json: { kind: "boolean", help: "print one JSON object (out, checkpoint, format, parameters, config, model)" },
  help: { kind: "boolean", help: "show this help" },
}

/**
 * The usage text of `pleat import`.
 * @category configuration
 */
const usage = `usage: pleat import --model-dir DIR --out DIR [--seed N] [--dtype float32|float64] [--experts E [--topk K] [--granularity G]]

Writes a Hugging Face Mixtral, Qwen2-MoE, Qwen3-MoE, dots1, DeepSeek-V3, GPT-OSS, GLM-4.5, DeepSeek-V2 or OLMoE model
(config.json and safetensors weights, as transformers' save_pretrained or pleat export write
them; FP8 and MXFP4 releases dequantized) as a pleat checkpoint at step 0 with AdamW moments
zero, and OUT/model.json: a --config file with the model's settings (sizes, RoPE
base, norm epsilon, router, seed, dtype). Train it under any mapping with

  pleat train --resume OUT --config OUT/model.json --world ... --steps N

Refused, naming the key: other architectures, activations other than silu, sliding windows in
some layers only (Mixtral's, every layer's, becomes --sliding-window), RoPE scaling other than
YaRN, non-zero q/k/v biases under qkv_bias false, MoE layers that are not K, K + N,
K + 2N, ... (mlp_only_layers and decoder_sparse_step become --dense-first K --moe-every N). The
checkpoint is published as training publishes one: a crash leaves none or the whole one.

With --experts E a dense Llama, Mistral or Qwen3 model is upcycled (Megatron-LM's
--moe-use-upcycling): read as a Mixtral (Llama, Mistral) or a Qwen3-MoE (Qwen3) whose every
layer holds E copies of its MLP, routed top-K with the probs renormalized, so that at step 0 it
computes what the dense model does; training sets the experts apart. --granularity G cuts each
MLP into G experts (Megatron-LM's virtual-group initialization: near the dense model, not equal).

${Flags.usage(flags)}
exit status: 0 written, 2 input that cannot work (one line names the flag, the value and the fix),
             1 the file system failed while writing (one line)
`

const required = (field: string, value: string | undefined, fix: string): string => {
  if (value === undefined) throw ConfigError.make(field, undefined, "is required", fix)
  return value
}

/** --experts, --topk and --granularity as the import's upcycling (none without --experts; the others alone refused). */
const upcycleOf = (f: Flags.ParsedFlags): { readonly upcycle?: HfImport.Request["upcycle"] } => {
  const experts = Flags.int(f, "experts")
  const topk = Flags.int(f, "topk")
  const granularity = Flags.int(f, "granularity")
  if (experts === undefined) {
    for (const [flag, value, what] of [
      ["--topk", topk, "routes"],
      ["--granularity", granularity, "cuts"],
    ] as const)
      if (value !== undefined)
        throw ConfigError.make(flag, value, `${what} the experts --experts makes, and there is none`, `add --experts E to upcycle a dense model, or drop ${flag}`)
    return {}
  }
  return { upcycle: { experts, topk: topk ?? 2, granularity: granularity ?? 1 } }
}

/** What an upcycling import made of the dense model, for the line it prints ("" for none). */
const upcycledText = (u: HfImport.Request["upcycle"]): string =>
  u === undefined ? "" : `, upcycled from a dense model: ${u.experts} experts top-${u.topk}${u.granularity === 1 ? "" : `, granularity ${u.granularity}`}`

/**
 * Runs `pleat import` with its arguments (after the word `import`); returns the exit status.
 * @category constructors
 */
export const run = (argv: ReadonlyArray<string>, io: Io): number => {
  const f = Flags.parse(argv, flags)
  if (Flags.bool(f, "help")) {
    io.stdout(usage)
    return ExitCode.ok
  }
  const dtype = Flags.string(f, "dtype") ?? "float32"
  if (dtype !== "float32" && dtype !== "float64") throw ConfigError.make("--dtype", dtype, "is not allowed", "use one of float32, float64")
  const request: HfImport.Request = {
    modelDir: required("--model-dir", Flags.string(f, "model-dir"), "pass --model-dir DIR, a Hugging Face model directory"),
    out: required("--out", Flags.string(f, "out"), "pass --out DIR, a new path or an empty directory for the checkpoint"),
    seed: Flags.int(f, "seed") ?? 1,
    dtype,
    ...upcycleOf(f),
  }
  const place = OutputPath.placeProblem("--out", request.out, "folder")
  if (place !== undefined) throw place
  let written: HfImport.Written
  // The model's settings as a --config file; seq is the run's to choose.
  let settings: Record<string, unknown>
  const configFile = path.join(request.out, "model.json")
  try {
    written = HfImport.write(request)
    const { seq: _seq, ...model } = PresetSettings.modelSettings(written.model, written.model.moe ?? {})
    settings = { ...model, seed: request.seed, dtype: request.dtype }
    Durable.replaceFile(configFile, `${JSON.stringify(settings, null, 2)}\n`)
  } catch (error) {
    const failure = WriteFailure.describe(error)
    if (failure === undefined) throw error
    io.stderr(`pleat import: the file system failed: ${failure}; ${request.out} holds no complete import (remove it before importing again)\n`)
    return ExitCode.failure
  }
  const command = `pleat train --resume ${request.out} --config ${configFile}`
  if (Flags.bool(f, "json")) {
    io.stdout(`${JSON.stringify({ out: request.out, checkpoint: written.stepDir, format: written.format, parameters: written.parameters, config: configFile, model: settings })}\n`)
    return ExitCode.ok
  }
  io.stdout(
    `pleat import: ${request.modelDir} (${written.format}${upcycledText(request.upcycle)}, ${written.parameters} parameters) as a pleat checkpoint at step 0 in ${request.out}, its settings in ${configFile}\n` +
      `train it with: ${command} [--world ... --tp ... --ep ...] --steps N\n`,
  )
  return ExitCode.ok
}
