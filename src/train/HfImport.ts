/**
 * HfImport: a Hugging Face Mixtral, Qwen2-MoE, Qwen3-MoE, dots1, DeepSeek-V3 or GPT-OSS model directory as a pleat checkpoint at step 0
 * (AdamW moments zero), which `pleat train --resume` trains on under any mapping: fine-tuning a
 * model from the Hub, or one `pleat export` wrote (export then import gives the parameters back
 * bit for bit).
 *
 * What is read: config.json (decoded with a Schema; the keys below, others ignored, and
 * transformers' defaults for those left out) and the weights of model.safetensors or of the
 * files model.safetensors.index.json names (F64, F32, F16 or BF16, widened exactly; FP8 blocks,
 * HfFp8, and GPT-OSS's MXFP4 experts, HfMxfp4, dequantized). The tensors
 * are placed by HfLayout, the table `pleat export` writes by, read backwards. Everything that
 * pleat's model cannot compute as transformers would is refused, naming the config key or the
 * tensor and the fix (exit 2): an activation other than silu, a head_dim other than hidden /
 * heads, a sliding window, RoPE scaling, non-zero q, k or v biases where qkv_bias is false, MoE
 * layers that are not K, K + N, K + 2N, ... (pleat's --dense-first K --moe-every N; Qwen2-MoE's
 * decoder_sparse_step N is K = N - 1), tensors of other shapes, missing or extra tensors.
 * Qwen2-MoE's biases (qkv_bias, true by transformers' default) become pleat's --qkv-bias.
 * DeepSeek-V3's rotary rows are read from DeepSeek's interleaved order (rope_interleave true,
 * transformers' default) or as they are (false) into pleat's rotate-half order; the layers past
 * num_hidden_layers (its multi-token-prediction modules, num_nextn_predict_layers) become pleat's
 * --mtp-num-layers where the directory holds them (their copies of the embedding and output layer
 * must equal the model's), and are left out otherwise, as transformers leaves them.
 *
 * The checkpoint is written as training writes one (CheckpointDirectory: step directory, rank
 * file, manifest last): a crash leaves none or the whole one.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs"
import path from "node:path"
import * as Result from "effect/Result"
import * as Schema from "effect/Schema"
import * as SchemaIssue from "effect/SchemaIssue"
import * as ConfigError from "../errors/ConfigError.js"
import * as ParallelConfig from "../mapping/ParallelConfig.js"
import * as DType from "../tensor/DType.js"
import * as Checkpoint from "./Checkpoint.js"
import * as CheckpointDirectory from "./CheckpointDirectory.js"
import * as HfConfig from "./HfConfig.js"
import * as HfFp8 from "./HfFp8.js"
import * as HfMxfp4 from "./HfMxfp4.js"
import * as HfDirectory from "./HfDirectory.js"
import * as HfLayout from "./HfLayout.js"
import * as Params from "./Params.js"
import * as ModelConfig from "./ModelConfig.js"
import * as Safetensors from "./Safetensors.js"

/**
 * A model directory read: its config and tensors.
 * @category models
 */
interface ModelDirectory {
  readonly config: HfConfig.HfConfig
  readonly tensors: ReadonlyMap<string, Safetensors.Read>
}

const unusable = (dir: string, reason: string, fix: string): ConfigError.ConfigError => ConfigError.make("--model-dir", dir, reason, fix)

const oneLine = (text: string): string => text.replace(/\s+/g, " ").trim()

/**
 * Reads config.json and every weight file of `dir`; a ConfigError on `--model-dir` naming the
 * file when one is missing or is not what it should be.
 * @category constructors
 */
const read = (dir: string): ModelDirectory => {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw unusable(dir, "is not a directory", "pass a Hugging Face model directory (config.json and safetensors weights)")
  const configFile = path.join(dir, "config.json")
  if (!existsSync(configFile)) throw unusable(dir, "has no config.json", "pass a Hugging Face model directory (config.json and safetensors weights)")
  let json: unknown
  try {
    json = JSON.parse(readFileSync(configFile, "utf8"))
  } catch (error) {
    throw unusable(dir, `has a config.json that is not JSON (${oneLine(error instanceof Error ? error.message : String(error))})`, "pass a model directory transformers wrote")
  }
  const decoded = Schema.decodeUnknownResult(HfConfig.HfConfig)(json)
  if (Result.isFailure(decoded)) {
    throw unusable(
      dir,
      `has a config.json pleat cannot read (${oneLine(SchemaIssue.makeFormatterDefault()(decoded.failure.issue))})`,
      "pass a Mixtral, Qwen2-MoE, Qwen3-MoE, dots1 or DeepSeek-V3 model directory",
    )
  }
  const index = path.join(dir, "model.safetensors.index.json")
  let files = ["model.safetensors"]
  if (existsSync(index)) {
    try {
      files = [...new Set(Object.values((JSON.parse(readFileSync(index, "utf8")) as { weight_map: Record<string, string> }).weight_map))]
    } catch {
      throw unusable(dir, "has a model.safetensors.index.json without a weight_map", "pass a model directory transformers wrote")
    }
  } else if (!existsSync(path.join(dir, "model.safetensors"))) {
    const others = readdirSync(dir).filter((f) => f.endsWith(".bin") || f.endsWith(".pt"))
    throw unusable(
      dir,
      `holds no safetensors weights${others.length > 0 ? ` (${others.join(", ")} are pickles, which pleat does not read)` : ""}`,
      "save the model with transformers' save_pretrained (safetensors, its default)",
    )
  }
  const tensors = new Map<string, Safetensors.Read>()
  for (const file of files) {
    if (!existsSync(path.join(dir, file))) throw unusable(dir, `lacks ${file}, which model.safetensors.index.json names`, "pass a complete model directory")
    let held: Map<string, Safetensors.Read>
    try {
      held = Safetensors.read(readFileSync(path.join(dir, file)))
    } catch (error) {
      throw unusable(
        dir,
        `has a ${file} that is not a safetensors file pleat reads: ${error instanceof Error ? error.message : String(error)}`,
        "pass a model directory transformers wrote",
      )
    }
    for (const [name, t] of held) tensors.set(name, t)
  }
  // FP8 checkpoints (the Hub's -FP8 releases): their weights dequantized by their block scales;
  // GPT-OSS's MXFP4 experts by theirs.
  const refuse = (reason: string, fix: string) => unusable(dir, reason, fix)
  const quantization = decoded.success.quantization_config
  const read = quantization?.quant_method === "mxfp4" ? HfMxfp4.dequantized(tensors, refuse) : HfFp8.dequantized(tensors, quantization, refuse)
  return { config: decoded.success, tensors: read }
}

/**
 * pleat's parameters, whole, by name (values in `dtype`), from the tensors of a model directory
 * laid out as `format`; a ConfigError on `--model-dir` naming a tensor that is missing, of
 * another shape, a non-zero bias pleat has not, or one pleat's model has no place for.
 * @category constructors
 */
const paramsOf = (
  m: ModelConfig.ModelConfig,
  format: HfLayout.Format,
  tensors: ReadonlyMap<string, Safetensors.Read>,
  dtype: DType.DType,
  dir: string,
  shapes: ReadonlyMap<string, ReadonlyArray<number>>,
  biases: Record<string, ReadonlyArray<number>>,
  ropeInterleave: boolean,
): Map<string, DType.Storage> => {
  const out = new Map<string, DType.Storage>()
  const placed = new Set<string>()
  const firstFrom = new Map<string, string>()
  const storage = (name: string): DType.Storage => {
    const there = out.get(name)
    if (there !== undefined) return there
    const shape = shapes.get(name) as ReadonlyArray<number>
    const made = DType.allocate(
      dtype,
      shape.reduce((p, x) => p * x, 1),
    )
    out.set(name, made)
    return made
  }
  for (const p of HfLayout.placements(m, format)) {
    const t = tensors.get(p.hf)
    placed.add(p.hf)
    if (p.kind === "zeros") {
      if (t?.values.some((v) => v !== 0) === true)
        throw unusable(dir, `has a non-zero ${p.hf}, a bias pleat's model has not`, "import a model without such biases (or with zero ones)")
      continue
    }
    if (t === undefined) throw unusable(dir, `lacks ${p.hf}`, "pass a complete model directory")
    if (p.kind === "gateUp") {
      // GPT-OSS's fused experts [E, H, 2F] (and their biases [E, 2F]): gate from the even columns, up from the odd.
      const gate = storage(p.gate)
      const shape = shapes.get(p.gate) as ReadonlyArray<number>
      const fused = [...shape.slice(0, -1), 2 * (shape[shape.length - 1] as number)]
      if (t.shape.join("x") !== fused.join("x"))
        throw unusable(
          dir,
          `has ${p.hf} of shape [${t.shape.join(", ")}], where config.json makes it [${fused.join(", ")}]`,
          "pass a model directory whose weights match its config.json",
        )
      const up = storage(p.up)
      for (let i = 0; i < gate.length; i++) {
        gate[i] = t.values[2 * i] as number
        up[i] = t.values[2 * i + 1] as number
      }
      continue
    }
    if (p.kind === "bias") {
      if (t.shape.join("x") !== String(p.size))
        throw unusable(dir, `has ${p.hf} of shape [${t.shape.join(", ")}], where config.json makes it [${p.size}]`, "pass a model directory whose weights match its config.json")
      // The layer's expert biases, as a checkpoint keeps them (the manifest's expertBias).
      biases[String(p.layer)] = [...t.values]
      continue
    }
    const pleatShape = shapes.get(p.pleat) as ReadonlyArray<number>
    const [rows, cols] = (p.kind === "expert" ? pleatShape.slice(1) : pleatShape) as [number, number]
    const expected = p.kind === "same" ? pleatShape : [cols, rows]
    if (t.shape.join("x") !== expected.join("x"))
      throw unusable(
        dir,
        `has ${p.hf} of shape [${t.shape.join(", ")}], where config.json makes it [${expected.join(", ")}]`,
        "pass a model directory whose weights match its config.json",
      )
    const into = storage(p.pleat)
    // DeepSeek-V3's interleaved rotary rows back into pleat's rotate-half order first.
    const hf = p.kind === "linear" && p.rope !== undefined && ropeInterleave ? HfLayout.interleaved(t.values, cols, rows, p.rope, false) : t.values
    const values = p.kind === "same" ? t.values : HfLayout.transposed(hf, 0, cols, rows)
    // A tensor a second time (the copies of the embedding and output layer in DeepSeek's
    // multi-token prediction layers): it must be what the first placed, which pleat shares.
    const first = p.kind === "expert" ? undefined : firstFrom.get(p.pleat)
    if (first !== undefined) {
      // Compared as stored (rounded to the checkpoint's dtype).
      const stored = DType.allocate(dtype, values.length)
      stored.set(values)
      if (stored.some((v, i) => v !== into[i]))
        throw unusable(dir, `holds ${p.hf} unlike ${first}, where pleat's model shares one ${p.pleat}`, `import a ${format} model whose copies of ${first} are the same`)
      continue
    }
    if (p.kind !== "expert") firstFrom.set(p.pleat, p.hf)
    into.set(values, p.kind === "expert" ? p.expert * rows * cols : 0)
  }
  const extra = [...tensors.keys()].filter(
    (name) =>
      !placed.has(name) &&
      !(name === "lm_head.weight" && m.untieEmbeddings !== true && sameAs(tensors, name, "model.embed_tokens.weight")) &&
      !(format === "deepseek-v3" && multiTokenPrediction(name, m.layers)),
  )
  if (extra.length > 0)
    throw unusable(
      dir,
      `holds ${extra.slice(0, 3).join(", ")}${extra.length > 3 ? ` and ${extra.length - 3} more` : ""}, which pleat's ${format} model has no place for`,
      `import a ${format} model as transformers writes it`,
    )
  return out
}

/**
 * Whether `name` is in a layer past the model's `layers`: DeepSeek-V3's multi-token-prediction
 * modules (num_nextn_predict_layers), which transformers does not load and pleat does not read.
 */
const multiTokenPrediction = (name: string, layers: number): boolean => {
  const layer = /^model\.layers\.(\d+)\./.exec(name)?.[1]
  return layer !== undefined && Number(layer) >= layers
}

/** Whether two tensors hold the same values (a tied lm_head written out). */
const sameAs = (tensors: ReadonlyMap<string, Safetensors.Read>, a: string, b: string): boolean => {
  const x = tensors.get(a)?.values
  const y = tensors.get(b)?.values
  return x !== undefined && y !== undefined && x.length === y.length && x.every((v, i) => v === y[i])
}

/**
 * What an import asks for.
 * @category models
 */
export interface Request {
  /** The Hugging Face model directory. */
  readonly modelDir: string
  /** The checkpoint directory to create (new or empty). */
  readonly out: string
  /** The seed the checkpoint records (a resume must train with it: it seeds the data). */
  readonly seed: number
  readonly dtype: DType.DType
}

/**
 * What an import wrote.
 * @category models
 */
export interface Written {
  readonly out: string
  readonly stepDir: string
  readonly format: HfLayout.Format
  readonly model: ModelConfig.ModelConfig
  /** Parameters (elements) in all. */
  readonly parameters: number
}

/**
 * Imports `request.modelDir` as a pleat checkpoint at step 0 in `request.out`; throws a
 * ConfigError (on `--model-dir` or `--out`) before writing anything when it cannot.
 * @category constructors
 */
export const write = (request: Request): Written => {
  const outProblem = HfDirectory.outProblem(request.out, "checkpoint")
  if (outProblem !== undefined) throw outProblem
  const dir = read(request.modelDir)
  const decoded = HfConfig.modelOf(dir.config, request.modelDir)
  const { format, ropeInterleave } = decoded
  // DeepSeek-V3's multi-token prediction layers, where the directory holds them (transformers' own saves have none).
  const mtp = format === "deepseek-v3" ? (dir.config.num_nextn_predict_layers ?? 0) : 0
  const model: ModelConfig.ModelConfig = mtp > 0 && dir.tensors.has(`model.layers.${decoded.model.layers}.eh_proj.weight`) ? { mtpLayers: mtp, ...decoded.model } : decoded.model
  if (model.heads % model.kvHeads !== 0)
    throw unusable(
      request.modelDir,
      `has num_key_value_heads ${model.kvHeads}, which does not divide num_attention_heads ${model.heads}`,
      "import a grouped-query model whose kv heads divide its heads",
    )
  const problem = ModelConfig.problemOf(model, { microBatch: 1, globalBatch: 1 }, ParallelConfig.make({ world: 1 }))
  if (problem !== undefined)
    throw unusable(
      request.modelDir,
      `describes a model pleat cannot build (${problem.field} ${String(problem.value)} ${problem.reason})`,
      "import a model whose config.json pleat's model can follow",
    )
  const specs = Params.specs(model)
  const biases: Record<string, ReadonlyArray<number>> = {}
  const values = paramsOf(model, format, dir.tensors, request.dtype, request.modelDir, new Map(specs.map((s) => [s.name, s.shape])), biases, ropeInterleave)
  const [stepDir] = CheckpointDirectory.prepare(request.out, [0]) as [string]
  const checksums = Checkpoint.writeShards(
    stepDir,
    0,
    specs.map((s) => {
      const value = values.get(s.name) as DType.Storage
      return { name: s.name, shape: s.shape, slice: s.shape.map((n): [number, number] => [0, n]), value, m: new Float32Array(value.length), v: new Float32Array(value.length) }
    }),
  )
  const manifest: Checkpoint.Manifest = {
    step: 0,
    seed: request.seed,
    dtype: request.dtype,
    world: 1,
    mapping: { tp: 1, cp: 1, dp: 1, pp: 1, etp: 1, ep: 1, edp: 1, vpp: null, order: "tp-cp-ep-dp-pp" },
    model: Checkpoint.modelRecord(model, 0),
    batch: { microBatch: 1, globalBatch: 1 },
    ranks: 1,
    checksums,
    // dots1's e_score_correction_bias: the expert biases --expert-bias trains on from here.
    ...(Object.keys(biases).length === 0 ? {} : { expertBias: biases }),
  }
  CheckpointDirectory.publish(stepDir, JSON.stringify(manifest, null, 2))
  return { out: request.out, stepDir, format, model, parameters: [...values.values()].reduce((n, v) => n + v.length, 0) }
}
