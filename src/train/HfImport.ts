/**
 * HfImport: a Hugging Face Mixtral or Qwen2-MoE model directory as a pleat checkpoint at step 0
 * (AdamW moments zero), which `pleat train --resume` trains on under any mapping: fine-tuning a
 * model from the Hub, or one `pleat export` wrote (export then import gives the parameters back
 * bit for bit).
 *
 * What is read: config.json (decoded with a Schema; the keys below, others ignored, and
 * transformers' defaults for those left out) and the weights of model.safetensors or of the
 * files model.safetensors.index.json names (F64, F32, F16 or BF16, widened exactly). The tensors
 * are placed by HfLayout, the table `pleat export` writes by, read backwards. Everything that
 * pleat's model cannot compute as transformers would is refused, naming the config key or the
 * tensor and the fix (exit 2): an activation other than silu, a head_dim other than hidden /
 * heads, a sliding window, RoPE scaling, non-zero q, k or v biases where qkv_bias is false, MoE
 * layers that are not K, K + N, K + 2N, ... (pleat's --dense-first K --moe-every N; Qwen2-MoE's
 * decoder_sparse_step N is K = N - 1), tensors of other shapes, missing or extra tensors.
 * Qwen2-MoE's biases (qkv_bias, true by transformers' default) become pleat's --qkv-bias.
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
import * as ModelContext from "../model/ModelContext.js"
import * as MoeSettings from "../moe/MoeSettings.js"
import * as ParallelConfig from "../mapping/ParallelConfig.js"
import * as DType from "../tensor/DType.js"
import * as Checkpoint from "./Checkpoint.js"
import * as CheckpointDirectory from "./CheckpointDirectory.js"
import * as HfDirectory from "./HfDirectory.js"
import * as HfLayout from "./HfLayout.js"
import * as Params from "./Params.js"
import * as ModelConfig from "./ModelConfig.js"
import * as Safetensors from "./Safetensors.js"

const count = Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(1))
const natural = Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0))
const positive = Schema.Number.check(Schema.isGreaterThan(0))

/** The keys of config.json that pleat reads. */
const HfConfig = Schema.Struct({
  model_type: Schema.String,
  vocab_size: count,
  hidden_size: count,
  num_hidden_layers: count,
  num_attention_heads: count,
  num_key_value_heads: Schema.optional(Schema.NullOr(count)),
  head_dim: Schema.optional(Schema.NullOr(count)),
  hidden_act: Schema.optional(Schema.String),
  intermediate_size: count,
  num_experts_per_tok: count,
  num_local_experts: Schema.optional(count),
  num_experts: Schema.optional(count),
  moe_intermediate_size: Schema.optional(count),
  shared_expert_intermediate_size: Schema.optional(natural),
  norm_topk_prob: Schema.optional(Schema.Boolean),
  decoder_sparse_step: Schema.optional(count),
  mlp_only_layers: Schema.optional(Schema.NullOr(Schema.Array(natural))),
  rms_norm_eps: Schema.optional(positive),
  rope_theta: Schema.optional(positive),
  rope_parameters: Schema.optional(Schema.NullOr(Schema.Struct({ rope_type: Schema.optional(Schema.String), rope_theta: Schema.optional(positive) }))),
  rope_scaling: Schema.optional(Schema.Unknown),
  tie_word_embeddings: Schema.optional(Schema.Boolean),
  sliding_window: Schema.optional(Schema.NullOr(Schema.Number)),
  use_sliding_window: Schema.optional(Schema.Boolean),
  router_aux_loss_coef: Schema.optional(Schema.Number),
  max_position_embeddings: Schema.optional(count),
  qkv_bias: Schema.optional(Schema.Boolean),
})
type HfConfig = typeof HfConfig.Type

/** transformers' defaults of the keys a config may leave out, by model_type. */
const defaults = {
  mixtral: { kvHeads: 8, normEps: 1e-5, ropeTheta: 1e6, tie: false, experts: 8, moeFfn: undefined, sharedFfn: undefined },
  qwen2_moe: { kvHeads: 16, normEps: 1e-6, ropeTheta: 10000, tie: false, experts: 60, moeFfn: 1408, sharedFfn: 5632 },
} as const

/**
 * A model directory read: its config and tensors.
 * @category models
 */
interface ModelDirectory {
  readonly config: HfConfig
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
  const decoded = Schema.decodeUnknownResult(HfConfig)(json)
  if (Result.isFailure(decoded)) {
    throw unusable(
      dir,
      `has a config.json pleat cannot read (${oneLine(SchemaIssue.makeFormatterDefault()(decoded.failure.issue))})`,
      "pass a Mixtral or Qwen2-MoE model directory",
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
  return { config: decoded.success, tensors }
}

/** The placement (denseFirst K, moeEvery N) whose MoE layers (ModelContext.isMoe) are exactly those of `moe`, or undefined. */
const placementOf = (moe: ReadonlyArray<boolean>): { readonly denseFirst: number; readonly moeEvery: number } | undefined => {
  const denseFirst = moe.indexOf(true)
  if (denseFirst < 0) return undefined
  for (let moeEvery = 1; moeEvery <= moe.length; moeEvery++) if (moe.every((m, l) => m === ModelContext.isMoe({ denseFirst, moeEvery }, l))) return { denseFirst, moeEvery }
  return undefined
}

/**
 * pleat's model (and the format its tensors are laid out in) of a config; a ConfigError on
 * `--model-dir` naming the key pleat's model cannot follow.
 * @category constructors
 */
const modelOf = (c: HfConfig, dir: string): { readonly model: ModelConfig.ModelConfig; readonly format: HfLayout.Format } => {
  const refuse = (reason: string, fix: string) => unusable(dir, reason, fix)
  if (c.model_type !== "mixtral" && c.model_type !== "qwen2_moe")
    throw refuse(`holds a ${c.model_type} model`, "pass a Mixtral or Qwen2-MoE model directory (model_type mixtral or qwen2_moe)")
  const d = defaults[c.model_type]
  const heads = c.num_attention_heads
  if ((c.hidden_act ?? "silu") !== "silu") throw refuse(`has hidden_act ${c.hidden_act} in config.json`, "pleat's experts are SwiGLU (silu): import a model with hidden_act silu")
  if (c.head_dim !== undefined && c.head_dim !== null && c.head_dim * heads !== c.hidden_size)
    throw refuse(
      `has head_dim ${c.head_dim} in config.json, where pleat's heads are hidden_size / num_attention_heads = ${c.hidden_size / heads}`,
      "import a model whose heads split hidden_size",
    )
  if (c.hidden_size % heads !== 0) throw refuse(`has hidden_size ${c.hidden_size} not divisible by num_attention_heads ${heads}`, "import a model whose heads split hidden_size")
  const windowed = c.model_type === "mixtral" ? c.sliding_window !== undefined && c.sliding_window !== null : c.use_sliding_window === true
  if (windowed)
    throw refuse(
      `has a sliding window (sliding_window ${c.sliding_window}) in config.json`,
      "pleat's attention is full causal: set sliding_window to null in config.json if you train on sequences no longer than the window",
    )
  const ropeType = c.rope_parameters?.rope_type ?? "default"
  if (ropeType !== "default" || (c.rope_scaling !== undefined && c.rope_scaling !== null))
    throw refuse(
      `scales RoPE (rope_type ${ropeType}${c.rope_scaling === undefined || c.rope_scaling === null ? "" : `, rope_scaling ${JSON.stringify(c.rope_scaling)}`})`,
      "import a model with plain RoPE (rope_type default)",
    )
  const layers = c.num_hidden_layers
  const experts = (c.model_type === "mixtral" ? c.num_local_experts : c.num_experts) ?? d.experts
  const qwen = c.model_type === "qwen2_moe"
  // Qwen2-MoE: layer l is sparse when not in mlp_only_layers and (l + 1) % decoder_sparse_step == 0.
  const sparse = Array.from({ length: layers }, (_, l) => !qwen || (!(c.mlp_only_layers ?? []).includes(l) && (l + 1) % (c.decoder_sparse_step ?? 1) === 0))
  const placement = placementOf(sparse)
  if (placement === undefined) {
    const which = sparse.flatMap((s, l) => (s ? [l] : []))
    throw refuse(
      which.length === 0
        ? "has no MoE layer (mlp_only_layers and decoder_sparse_step leave none)"
        : `has MoE layers ${which.join(", ")}, where pleat's are every N-th from the first K dense layers (--dense-first K --moe-every N)`,
      "import a model whose MoE layers are K, K + N, K + 2N, ... (mlp_only_layers and decoder_sparse_step)",
    )
  }
  const shared = qwen ? (c.shared_expert_intermediate_size ?? d.sharedFfn) : undefined
  if (shared === 0) throw refuse("has shared_expert_intermediate_size 0", "import a Qwen2-MoE model with its shared expert")
  // Softmax routing, renormalized over the top-k unless Qwen2-MoE's norm_topk_prob is false.
  const moe: MoeSettings.MoeSettings = {
    preSoftmax: qwen && c.norm_topk_prob !== true,
    auxLosses: [{ type: "aux", coeff: c.router_aux_loss_coef ?? 0.001 }],
    scoreFunction: MoeSettings.defaults.scoreFunction,
    zLossCoeff: MoeSettings.defaults.zLossCoeff,
    dispatcher: MoeSettings.defaults.dispatcher,
    probsAt: MoeSettings.defaults.probsAt,
    dropPolicy: MoeSettings.defaults.dropPolicy,
    padToCapacity: MoeSettings.defaults.padToCapacity,
    expertBias: MoeSettings.defaults.expertBias,
    biasUpdateRate: MoeSettings.defaults.biasUpdateRate,
  }
  const model: ModelConfig.ModelConfig = {
    vocab: c.vocab_size,
    hidden: c.hidden_size,
    layers,
    heads,
    kvHeads: c.num_key_value_heads ?? d.kvHeads,
    ffn: c.intermediate_size,
    experts,
    topk: c.num_experts_per_tok,
    moeFfn: c.moe_intermediate_size ?? d.moeFfn ?? c.intermediate_size,
    moeEvery: placement.moeEvery,
    ...(placement.denseFirst === 0 ? {} : { denseFirst: placement.denseFirst }),
    // Not the model's identity (a run sets its own): the context it was made for, at most 4096.
    seq: Math.min(c.max_position_embeddings ?? 4096, 4096),
    ...((c.tie_word_embeddings ?? d.tie) ? {} : { untieEmbeddings: true }),
    ...(shared === undefined ? {} : { sharedExpertFfn: shared, sharedExpertGate: true }),
    // Qwen2-MoE's biases (transformers' default: on); zeros are read where they are off.
    ...(qwen && c.qkv_bias !== false ? { qkvBias: true } : {}),
    ropeTheta: c.rope_parameters?.rope_theta ?? c.rope_theta ?? d.ropeTheta,
    normEps: c.rms_norm_eps ?? d.normEps,
    moe,
  }
  return { model, format: qwen ? "qwen2-moe" : "mixtral" }
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
): Map<string, DType.Storage> => {
  const out = new Map<string, DType.Storage>()
  const placed = new Set<string>()
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
        throw unusable(dir, `has a non-zero ${p.hf}, a bias pleat's attention has not`, "import a model without q, k, v biases (or with zero ones)")
      continue
    }
    if (t === undefined) throw unusable(dir, `lacks ${p.hf}`, "pass a complete model directory")
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
    if (p.kind === "same") into.set(t.values)
    else into.set(HfLayout.transposed(t.values, 0, cols, rows), p.kind === "expert" ? p.expert * rows * cols : 0)
  }
  const extra = [...tensors.keys()].filter(
    (name) => !placed.has(name) && !(name === "lm_head.weight" && m.untieEmbeddings !== true && sameAs(tensors, name, "model.embed_tokens.weight")),
  )
  if (extra.length > 0)
    throw unusable(
      dir,
      `holds ${extra.slice(0, 3).join(", ")}${extra.length > 3 ? ` and ${extra.length - 3} more` : ""}, which pleat's ${format} model has no place for`,
      "import a Mixtral or Qwen2-MoE model as transformers writes it",
    )
  return out
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
  const { model, format } = modelOf(dir.config, request.modelDir)
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
  const values = paramsOf(model, format, dir.tensors, request.dtype, request.modelDir, new Map(specs.map((s) => [s.name, s.shape])))
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
  }
  CheckpointDirectory.publish(stepDir, JSON.stringify(manifest, null, 2))
  return { out: request.out, stepDir, format, model, parameters: [...values.values()].reduce((n, v) => n + v.length, 0) }
}
