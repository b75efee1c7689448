/**
 * HfImport: a Hugging Face Mixtral, Qwen2-MoE, Qwen3-MoE, dots1, DeepSeek-V3, GPT-OSS, GLM-4.5, DeepSeek-V2 or OLMoE model directory as a pleat checkpoint at step 0
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
 * transformers' default) or as they are (false) into pleat's rotate-half order; its and GLM-4.5's
 * layers past num_hidden_layers (multi-token-prediction modules, num_nextn_predict_layers) become pleat's
 * --mtp-num-layers where the directory holds them (their copies of the embedding and output layer
 * must equal the model's), and are left out otherwise, as transformers leaves them. A dense
 * Llama, Mistral or Qwen3 is read as the mixture it is upcycled to (HfUpcycle) where asked.
 *
 * The checkpoint is written as training writes one (CheckpointDirectory: step directory, rank
 * file, manifest last): a crash leaves none or the whole one. It is written a parameter at a
 * time, each made from its tensors as it is written (the files' headers are read first, their
 * values when asked for: Safetensors.open), so an import holds one parameter and the matrix it
 * transposes or a slab of the tensor it copies (GPT-OSS's fused experts a few at a time), never a
 * file or the model. Everything that can refuse an import is found before
 * anything is written (planOf), but for the copies of DeepSeek's multi-token prediction layers,
 * compared as they are placed: such a refusal removes what the import had written.
 */
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs"
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
import * as HfUpcycle from "./HfUpcycle.js"
import * as Params from "./Params.js"
import * as ModelConfig from "./ModelConfig.js"
import * as Safetensors from "./Safetensors.js"

/**
 * A model directory read: its config and tensors.
 * @category models
 */
interface ModelDirectory {
  readonly config: HfConfig.HfConfig
  /** Read from their files when asked for (a tensor at a time). */
  readonly tensors: ReadonlyMap<string, Safetensors.Lazy>
}

const unusable = (dir: string, reason: string, fix: string): ConfigError.ConfigError => ConfigError.make("--model-dir", dir, reason, fix)

const oneLine = (text: string): string => text.replace(/\s+/g, " ").trim()

/**
 * Reads config.json and every weight file of `dir`; a ConfigError on `--model-dir` naming the
 * file when one is missing or is not what it should be.
 * @category constructors
 */
const read = (dir: string, upcycle: HfUpcycle.Upcycle | undefined): ModelDirectory => {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw unusable(dir, "is not a directory", "pass a Hugging Face model directory (config.json and safetensors weights)")
  const configFile = path.join(dir, "config.json")
  if (!existsSync(configFile)) throw unusable(dir, "has no config.json", "pass a Hugging Face model directory (config.json and safetensors weights)")
  let json: unknown
  try {
    json = JSON.parse(readFileSync(configFile, "utf8"))
  } catch (error) {
    throw unusable(dir, `has a config.json that is not JSON (${oneLine(error instanceof Error ? error.message : String(error))})`, "pass a model directory transformers wrote")
  }
  const denseType = HfUpcycle.denseType(json)
  if (upcycle === undefined && denseType !== undefined)
    throw unusable(dir, `holds a dense ${denseType} model`, "pass --experts E (and --topk K) to upcycle it to a mixture of E experts, each a copy of its MLP")
  const decoded = Schema.decodeUnknownResult(HfConfig.HfConfig)(upcycle === undefined ? json : HfUpcycle.configOf(json, upcycle))
  if (Result.isFailure(decoded)) {
    throw unusable(
      dir,
      `has a config.json pleat cannot read (${oneLine(SchemaIssue.makeFormatterDefault()(decoded.failure.issue))})`,
      "pass a Mixtral, Qwen2-MoE, Qwen3-MoE, dots1, DeepSeek-V3, GPT-OSS, GLM-4.5, DeepSeek-V2 or OLMoE model directory",
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
  const tensors = new Map<string, Safetensors.Lazy>()
  for (const file of files) {
    if (!existsSync(path.join(dir, file))) throw unusable(dir, `lacks ${file}, which model.safetensors.index.json names`, "pass a complete model directory")
    let held: Map<string, Safetensors.Lazy>
    try {
      held = Safetensors.open(path.join(dir, file))
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

/** The placements of an import: each of pleat's parameters' in order, and the expert biases. */
interface Plan {
  readonly byParam: ReadonlyMap<string, ReadonlyArray<HfLayout.Placement>>
  readonly biases: Record<string, ReadonlyArray<number>>
}

/**
 * Where each of the directory's tensors goes, every shape checked against config.json's, biases
 * pleat has not checked to be zero, and the expert biases read: all that can refuse an import,
 * found before anything is written (but the copies of DeepSeek's multi-token prediction layers,
 * compared as they are placed). A ConfigError on `--model-dir` names a tensor that is missing,
 * of another shape, a non-zero bias pleat has not, or one pleat's model has no place for.
 */
const planOf = (
  m: ModelConfig.ModelConfig,
  format: HfLayout.Format,
  tensors: ReadonlyMap<string, Safetensors.Lazy>,
  dir: string,
  shapes: ReadonlyMap<string, ReadonlyArray<number>>,
): Plan => {
  const byParam = new Map<string, Array<HfLayout.Placement>>()
  const biases: Record<string, ReadonlyArray<number>> = {}
  const placed = new Set<string>()
  const mismatch = (hf: string, shape: ReadonlyArray<number>, expected: ReadonlyArray<number>) =>
    unusable(dir, `has ${hf} of shape [${shape.join(", ")}], where config.json makes it [${expected.join(", ")}]`, "pass a model directory whose weights match its config.json")
  const into = (name: string, p: HfLayout.Placement) => {
    const list = byParam.get(name)
    if (list === undefined) byParam.set(name, [p])
    else list.push(p)
  }
  for (const p of HfLayout.placements(m, format)) {
    const t = tensors.get(p.hf)
    placed.add(p.hf)
    if (p.kind === "zeros") {
      if (t?.values().some((v) => v !== 0) === true)
        throw unusable(dir, `has a non-zero ${p.hf}, a bias pleat's model has not`, "import a model without such biases (or with zero ones)")
      continue
    }
    if (t === undefined) throw unusable(dir, `lacks ${p.hf}`, "pass a complete model directory")
    if (p.kind === "gateUp") {
      // GPT-OSS's fused experts [E, H, 2F] (and their biases [E, 2F]).
      const shape = shapes.get(p.gate) as ReadonlyArray<number>
      const fused = [...shape.slice(0, -1), 2 * (shape[shape.length - 1] as number)]
      if (t.shape.join("x") !== fused.join("x")) throw mismatch(p.hf, t.shape, fused)
      into(p.gate, p)
      into(p.up, p)
      continue
    }
    if (p.kind === "bias") {
      if (t.shape.join("x") !== String(p.size)) throw mismatch(p.hf, t.shape, [p.size])
      // The layer's expert biases, as a checkpoint keeps them (the manifest's expertBias).
      biases[String(p.layer)] = [...t.values()]
      continue
    }
    const pleatShape = shapes.get(p.pleat) as ReadonlyArray<number>
    const [rows, cols] = (p.kind === "expert" ? pleatShape.slice(1) : pleatShape) as [number, number]
    const expected = p.kind === "same" ? pleatShape : [cols, rows]
    if (t.shape.join("x") !== expected.join("x")) throw mismatch(p.hf, t.shape, expected)
    into(p.pleat, p)
  }
  const extra = [...tensors.keys()].filter(
    (name) =>
      !placed.has(name) &&
      !(name === "lm_head.weight" && m.untieEmbeddings !== true && sameAs(tensors, name, "model.embed_tokens.weight")) &&
      !(HfLayout.holdsMtp(format) && multiTokenPrediction(name, m.layers)),
  )
  if (extra.length > 0)
    throw unusable(
      dir,
      `holds ${extra.slice(0, 3).join(", ")}${extra.length > 3 ? ` and ${extra.length - 3} more` : ""}, which pleat's ${format} model has no place for`,
      `import a ${format} model as transformers writes it`,
    )
  return { byParam, biases }
}

/**
 * One of pleat's parameters, whole, in `dtype`, from its placements (`tensor` gives a tensor;
 * GPT-OSS's fused experts and every tensor placed as it is are read a slab of entries at a time,
 * so no more than the parameter is held). DeepSeek-V3's and GLM-4.5's multi-token prediction layers copy the
 * embedding and the output layer: a copy must be what the first placed, which pleat shares (a
 * ConfigError naming both otherwise).
 */
const parameterOf = (
  spec: Params.ParamSpec,
  placements: ReadonlyArray<HfLayout.Placement>,
  tensor: (hf: string) => Safetensors.Lazy,
  dtype: DType.DType,
  dir: string,
  format: HfLayout.Format,
  ropeInterleave: boolean,
): DType.Storage => {
  const into = DType.allocate(
    dtype,
    spec.shape.reduce((p, x) => p * x, 1),
  )
  let first: string | undefined
  for (const p of placements) {
    if (p.kind === "gateUp") {
      // Gate from the even columns, up from the odd: element i of either is element 2i (+1) of the fused.
      const odd = p.up === spec.name ? 1 : 0
      Safetensors.eachSlab(tensor(p.hf), (fused, from) => {
        const at = from / 2
        for (let i = 0; i < fused.length / 2; i++) into[at + i] = fused[2 * i + odd] as number
      })
      continue
    }
    if (p.kind !== "same" && p.kind !== "linear" && p.kind !== "expert") continue
    const [rows, cols] = (p.kind === "expert" ? spec.shape.slice(1) : spec.shape) as [number, number]
    if (p.kind === "expert") {
      into.set(HfLayout.transposed(tensor(p.hf).values(), 0, cols, rows), p.expert * rows * cols)
      continue
    }
    // Element k of `values` goes to element `to(k)`: placed, or (a copy, compared as stored:
    // rounded to the checkpoint's dtype) checked.
    const copy = first
    const stored = DType.allocate(dtype, 1)
    const place = (values: Float64Array, to: (k: number) => number): void => {
      for (let k = 0; k < values.length; k++) {
        if (copy === undefined) into[to(k)] = values[k] as number
        else {
          stored[0] = values[k] as number
          if (stored[0] !== into[to(k)])
            throw unusable(dir, `holds ${p.hf} unlike ${copy}, where pleat's model shares one ${spec.name}`, `import a ${format} model whose copies of ${copy} are the same`)
        }
      }
    }
    if (p.kind === "same") Safetensors.eachSlab(tensor(p.hf), (values, from) => (copy === undefined ? into.set(values, from) : place(values, (k) => from + k)))
    else if (p.rope !== undefined && ropeInterleave) {
      // DeepSeek-V3's interleaved rotary rows back into pleat's rotate-half order first (whole: an attention projection).
      const hf = HfLayout.interleaved(tensor(p.hf).values(), cols, rows, p.rope, false)
      place(HfLayout.transposed(hf, 0, cols, rows), (k) => k)
    } else {
      // transformers' [cols, rows] a slab of its rows (pleat's columns) at a time: its element (c, r) is pleat's (r, c).
      Safetensors.eachSlab(tensor(p.hf), (values, _from, c0) => place(values, (k) => (k % rows) * cols + c0 + Math.floor(k / rows)))
    }
    first ??= p.hf
  }
  return into
}

/**
 * Whether `name` is in a layer past the model's `layers`: DeepSeek-V3's and GLM-4.5's
 * multi-token-prediction modules (num_nextn_predict_layers), which transformers does not load:
 * left out where the directory holds no joining projection (eh_proj) of the first.
 */
const multiTokenPrediction = (name: string, layers: number): boolean => {
  const layer = /^model\.layers\.(\d+)\./.exec(name)?.[1]
  return layer !== undefined && Number(layer) >= layers
}

/** Whether two tensors hold the same values (a tied lm_head written out), compared a slab at a time. */
const sameAs = (tensors: ReadonlyMap<string, Safetensors.Lazy>, a: string, b: string): boolean => {
  const x = tensors.get(a)
  const y = tensors.get(b)
  if (x === undefined || y === undefined || x.shape.join("x") !== y.shape.join("x")) return false
  let same = true
  Safetensors.eachSlab(x, (values, _from, first, count) => {
    if (!same) return
    const other = y.slab(first, count)
    same = values.every((v, i) => v === other[i])
  })
  return same
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
  /** A dense model made a mixture of these many experts, each token's top-k (HfUpcycle). */
  readonly upcycle?: HfUpcycle.Upcycle | undefined
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
  const source = read(request.modelDir, request.upcycle)
  const decoded = HfConfig.modelOf(source.config, request.modelDir)
  const { format, ropeInterleave } = decoded
  // A dense model's MLPs read as every expert's, its routers pleat's initial ones.
  const dir =
    request.upcycle === undefined
      ? source
      : { config: source.config, tensors: HfUpcycle.tensorsOf(source.tensors, format, decoded.model, request.seed, request.upcycle.granularity) }
  // DeepSeek-V3's and GLM-4.5's multi-token prediction layers, where the directory holds them (transformers' own saves have none).
  const mtp = HfLayout.holdsMtp(format) ? (dir.config.num_nextn_predict_layers ?? 0) : 0
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
  const plan = planOf(model, format, dir.tensors, request.modelDir, new Map(specs.map((s) => [s.name, s.shape])))
  // A parameter at a time, its tensors read as it is made (GPT-OSS's fused gate and up read a
  // slab of experts at a time, for each); the moments are zero and not stored (the manifest says so).
  const tensor = (hf: string): Safetensors.Lazy => dir.tensors.get(hf) as Safetensors.Lazy
  function* shards(): Generator<Checkpoint.Shard> {
    for (const s of specs) {
      const value = parameterOf(s, plan.byParam.get(s.name) ?? [], tensor, request.dtype, request.modelDir, format, ropeInterleave)
      yield { name: s.name, shape: s.shape, slice: s.shape.map((n): [number, number] => [0, n]), value }
    }
  }
  const existed = existsSync(request.out)
  const [stepDir] = CheckpointDirectory.prepare(request.out, [0]) as [string]
  let checksums: Record<string, string>
  try {
    checksums = Checkpoint.writeShards(stepDir, 0, shards())
  } catch (error) {
    // A copy that differs, found as it was placed: nothing of the import stays.
    for (const entry of existed ? readdirSync(request.out) : []) rmSync(path.join(request.out, entry), { recursive: true, force: true })
    if (!existed) rmSync(request.out, { recursive: true, force: true })
    throw error
  }
  const biases = plan.biases
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
    moments: "zero",
    // dots1's e_score_correction_bias: the expert biases --expert-bias trains on from here.
    ...(Object.keys(biases).length === 0 ? {} : { expertBias: biases }),
  }
  CheckpointDirectory.publish(stepDir, JSON.stringify(manifest, null, 2))
  return { out: request.out, stepDir, format, model, parameters: specs.reduce((n, s) => n + s.shape.reduce((p, x) => p * x, 1), 0) }
}
