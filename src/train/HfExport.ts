/**
 * HfExport: a checkpoint as a Hugging Face model directory (config.json and safetensors
 * weights) that transformers' AutoModelForCausalLM loads and runs as pleat's model.
 *
 * Two architectures of transformers hold pleat's model exactly:
 *   mixtral     every layer MoE, no shared experts, probs renormalized over the top-k (pleat's
 *               default router: softmax over the k selected logits)
 *   qwen2-moe   shared experts with their sigmoid gate (--shared-expert-ffn with
 *               --shared-expert-gate), any --moe-every (dense layers as mlp_only_layers), probs
 *               renormalized or not (--pre-softmax: norm_topk_prob false)
 * Both need softmax routing without group limits, scaling or expert bias (no architecture of
 * transformers with pleat's attention routes with sigmoid scores: DeepSeek-V3's uses MLA).
 * `auto` takes the first that fits. Token dropping (--capacity-factor) is a training device:
 * transformers runs the experts dropless, as Megatron-trained models are served.
 *
 * RMSNorm's epsilon and RoPE's base are the model's (--norm-eps, --rope-theta).
 * What matches, element for element (properties/train/HfExport.prop.ts: an independent reading
 * of transformers' two models; properties/cli/ExportCommand.test.ts: transformers itself):
 * RMSNorm and RoPE in the rotate-half layout, head-major q, k, v
 * columns, grouped-query heads (query head h reads kv head h / (heads / kv-heads)), SwiGLU
 * silu(x Wg) * (x Wu) Wd, a tied embedding (tie_word_embeddings) or a separate lm_head.
 * pleat keeps weights as [in, out]; transformers' Linear as [out, in]: every matrix is
 * transposed. Expert weights are written one matrix per expert under the names of the models on
 * the Hub (Mixtral's w1, w3, w2: gate, up, down), which transformers 4 loads as they are and
 * transformers 5 fuses on loading. Qwen2-MoE's q, k, v biases are written as zeros (transformers
 * 4 has them in every Qwen2-MoE).
 */
import * as ConfigError from "../errors/ConfigError.js"
import * as ModelContext from "../model/ModelContext.js"
import * as Tensor from "../tensor/Tensor.js"
import type * as Checkpoint from "./Checkpoint.js"
import * as Safetensors from "./Safetensors.js"

/**
 * The architectures a checkpoint can be written as.
 * @category models
 */
export const formats = ["mixtral", "qwen2-moe"] as const

/**
 * One of `formats`.
 * @category models
 */
export type Format = (typeof formats)[number]

/**
 * The element types of the weights, by their transformers names.
 * @category models
 */
export const dtypes = ["float32", "bfloat16", "float64"] as const

/**
 * One of `dtypes`.
 * @category models
 */
export type WeightDtype = (typeof dtypes)[number]

const safetensorsDtype: Readonly<Record<WeightDtype, Safetensors.Dtype>> = { float32: "F32", bfloat16: "BF16", float64: "F64" }

type Model = Checkpoint.Manifest["model"]

/** What a missing parameter reads as while the rest are checked (never written: tensors throws). */
const placeholder = Tensor.zeros([0, 0, 0])

const isMoe = (m: Model, layer: number): boolean => layer % m.moeEvery === 0

/** What keeps `m`'s router from any of the formats, as the flag that set it; undefined when nothing does. */
const routerProblem = (m: Model): string | undefined => {
  const r = m.moe
  if (r === undefined) return "its manifest records no router options (saved by an older pleat: resume it and save again)"
  if (r.scoreFunction !== "softmax") return `it routes with --score-function ${r.scoreFunction}`
  if (r.expertBias) return "it routes with --expert-bias"
  if (r.numGroups !== undefined) return `it routes with --num-groups ${r.numGroups} --group-topk ${r.groupTopk}`
  if (r.scalingFactor !== undefined && r.scalingFactor !== 0 && r.scalingFactor !== 1) return `it scales its probs by --scaling-factor ${r.scalingFactor}`
  return undefined
}

/**
 * Why `m` cannot be written as `format` (a phrase naming the setting), or undefined.
 * @category guards
 */
const problemFor = (m: Model, format: Format): string | undefined => {
  const router = routerProblem(m)
  if (router !== undefined) return router
  if (format === "mixtral") {
    if (m.sharedExpertFfn !== undefined) return `it has shared experts (--shared-expert-ffn ${m.sharedExpertFfn}), which Mixtral has not`
    if (m.moeEvery !== 1) return `it has dense layers (--moe-every ${m.moeEvery}), where Mixtral's are all MoE`
    if (m.moe?.preSoftmax === true) return "its probs are not renormalized over the top-k (--pre-softmax), where Mixtral's are"
    return undefined
  }
  if (m.sharedExpertFfn === undefined) return "it has no shared experts, which every Qwen2-MoE layer has (--shared-expert-ffn with --shared-expert-gate)"
  if (m.sharedExpertGate !== true) return "its shared experts have no gate, where Qwen2-MoE's always do (--shared-expert-gate)"
  return undefined
}

/**
 * The format to write: `requested`, or with `auto` the first of `formats` that holds the model;
 * a ConfigError on `--format` (or on `--checkpoint` with auto) naming what does not fit.
 * @category constructors
 */
export const choose = (m: Model, requested: Format | "auto", dir: string): Format => {
  const fix = "export a model trained with softmax routing: every layer MoE without shared experts (mixtral), or shared experts with --shared-expert-gate (qwen2-moe)"
  if (requested !== "auto") {
    const problem = problemFor(m, requested)
    if (problem !== undefined) throw ConfigError.make("--format", requested, `cannot hold the checkpoint in ${dir}: ${problem}`, fix)
    return requested
  }
  const fits = formats.find((f) => problemFor(m, f) === undefined)
  if (fits !== undefined) return fits
  const why = [...new Set(formats.map((f) => problemFor(m, f)))].join("; ")
  throw ConfigError.make("--checkpoint", dir, `holds a model no transformers architecture pleat writes can run (mixtral or qwen2-moe): ${why}`, fix)
}

/** `data` of shape [rows, cols] (from `at`), transposed into [cols, rows]. */
const transposed = (data: Float32Array | Float64Array, at: number, rows: number, cols: number): Float32Array | Float64Array => {
  const out = data instanceof Float32Array ? new Float32Array(rows * cols) : new Float64Array(rows * cols)
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[at + r * cols + c] as number
  return out
}

/**
 * The tensors of the model directory, by their transformers names, in the model's order: each
 * made from the checkpoint's values as the file is written. A ConfigError on `--checkpoint`
 * (`dir`) when the values are not exactly the built-in model's parameters.
 * @category constructors
 */
export const tensors = (m: Model, format: Format, values: ReadonlyMap<string, Tensor.Tensor>, dtype: WeightDtype, dir: string): Array<Safetensors.Entry> => {
  const st = safetensorsDtype[dtype]
  const out: Array<Safetensors.Entry> = []
  const used = new Set<string>()
  const missing: Array<string> = []
  const value = (name: string): Tensor.Tensor => {
    used.add(name)
    const t = values.get(name)
    if (t === undefined) missing.push(name)
    return t ?? placeholder
  }
  const data = (t: Tensor.Tensor) => t.data as Float32Array | Float64Array
  /** A pleat parameter as it is (vectors, the embedding). */
  const same = (hf: string, name: string) => {
    const t = value(name)
    out.push({ name: hf, dtype: st, shape: [...t.shape], bytes: () => Safetensors.encode(data(t), st) })
  }
  /** A pleat [in, out] matrix as a Linear's [out, in] weight. */
  const linear = (hf: string, name: string) => {
    const t = value(name)
    const [rows, cols] = t.shape as [number, number]
    out.push({ name: hf, dtype: st, shape: [cols, rows], bytes: () => Safetensors.encode(transposed(data(t), 0, rows, cols), st) })
  }
  /** Expert e's [in, out] matrix of a pleat [E, in, out] parameter, as its Linear's weight. */
  const expert = (hf: string, name: string, e: number) => {
    const t = value(name)
    const [, rows, cols] = t.shape as [number, number, number]
    out.push({ name: hf, dtype: st, shape: [cols, rows], bytes: () => Safetensors.encode(transposed(data(t), e * rows * cols, rows, cols), st) })
  }
  const zeros = (hf: string, n: number) => out.push({ name: hf, dtype: st, shape: [n], bytes: () => Safetensors.encode(new Float64Array(n), st) })
  const headDim = m.hidden / m.heads
  same("model.embed_tokens.weight", "embedding")
  for (let l = 0; l < m.layers; l++) {
    const p = `layers.${l}.`
    const hf = `model.layers.${l}.`
    same(`${hf}input_layernorm.weight`, `${p}attentionNorm`)
    for (const [proj, w, width] of [
      ["q_proj", "wq", m.heads],
      ["k_proj", "wk", m.kvHeads],
      ["v_proj", "wv", m.kvHeads],
    ] as const) {
      linear(`${hf}self_attn.${proj}.weight`, `${p}${w}`)
      if (format === "qwen2-moe") zeros(`${hf}self_attn.${proj}.bias`, width * headDim)
    }
    linear(`${hf}self_attn.o_proj.weight`, `${p}wo`)
    same(`${hf}post_attention_layernorm.weight`, `${p}ffnNorm`)
    if (!isMoe(m, l)) {
      for (const [proj, w] of [
        ["gate_proj", "wGate"],
        ["up_proj", "wUp"],
        ["down_proj", "wDown"],
      ] as const)
        linear(`${hf}mlp.${proj}.weight`, `${p}${w}`)
      continue
    }
    const block = format === "mixtral" ? `${hf}block_sparse_moe.` : `${hf}mlp.`
    linear(`${block}gate.weight`, `${p}router`)
    const names = format === "mixtral" ? (["w1", "w3", "w2"] as const) : (["gate_proj", "up_proj", "down_proj"] as const)
    for (let e = 0; e < m.experts; e++) {
      expert(`${block}experts.${e}.${names[0]}.weight`, `${p}experts.wGate`, e)
      expert(`${block}experts.${e}.${names[1]}.weight`, `${p}experts.wUp`, e)
      expert(`${block}experts.${e}.${names[2]}.weight`, `${p}experts.wDown`, e)
    }
    if (format === "qwen2-moe") {
      linear(`${block}shared_expert.gate_proj.weight`, `${p}shared.wGate`)
      linear(`${block}shared_expert.up_proj.weight`, `${p}shared.wUp`)
      linear(`${block}shared_expert.down_proj.weight`, `${p}shared.wDown`)
      linear(`${block}shared_expert_gate.weight`, `${p}shared.gate`)
    }
  }
  same("model.norm.weight", "finalNorm")
  if (m.untieEmbeddings === true) linear("lm_head.weight", "output")
  // Every parameter written, and nothing else: a model of one's own (--definition) is not pleat's.
  const extra = [...values.keys()].filter((name) => !used.has(name))
  if (missing.length > 0 || extra.length > 0) {
    const listed = (names: ReadonlyArray<string>) => `${names.slice(0, 3).join(", ")}${names.length > 3 ? ` and ${names.length - 3} more` : ""}`
    const what = [missing.length > 0 ? `lacks ${listed(missing)}` : "", extra.length > 0 ? `holds ${listed(extra)}, which ${format} has no place for` : ""].filter((w) => w !== "")
    throw ConfigError.make(
      "--checkpoint",
      dir,
      `is not a checkpoint of pleat's built-in model (it ${what.join(" and ")})`,
      "export a checkpoint of the built-in model (a model of your own, --definition, has its own layout)",
    )
  }
  return out
}

/**
 * config.json of the model directory: the architecture's settings as transformers reads them.
 * @category constructors
 */
export const config = (m: Model, format: Format, dtype: WeightDtype): Record<string, unknown> => {
  const aux = m.moe?.auxLosses.find((t) => t.type === "aux")?.coeff ?? 0
  const ropeTheta = m.ropeTheta ?? ModelContext.defaultRopeTheta
  const common = {
    vocab_size: m.vocab,
    hidden_size: m.hidden,
    num_hidden_layers: m.layers,
    num_attention_heads: m.heads,
    num_key_value_heads: m.kvHeads,
    head_dim: m.hidden / m.heads,
    hidden_act: "silu",
    max_position_embeddings: m.seq,
    rms_norm_eps: m.normEps ?? ModelContext.defaultNormEps,
    rope_theta: ropeTheta,
    rope_parameters: { rope_type: "default", rope_theta: ropeTheta },
    attention_dropout: 0,
    tie_word_embeddings: m.untieEmbeddings !== true,
    num_experts_per_tok: m.topk,
    router_aux_loss_coef: aux,
    output_router_logits: false,
    use_cache: true,
    torch_dtype: dtype,
    dtype,
  }
  if (format === "mixtral") {
    return { architectures: ["MixtralForCausalLM"], model_type: "mixtral", ...common, intermediate_size: m.moeFfn, num_local_experts: m.experts, sliding_window: null }
  }
  return {
    architectures: ["Qwen2MoeForCausalLM"],
    model_type: "qwen2_moe",
    ...common,
    intermediate_size: m.ffn,
    moe_intermediate_size: m.moeFfn,
    shared_expert_intermediate_size: m.sharedExpertFfn,
    num_experts: m.experts,
    norm_topk_prob: m.moe?.preSoftmax !== true,
    decoder_sparse_step: 1,
    mlp_only_layers: Array.from({ length: m.layers }, (_, l) => l).filter((l) => !isMoe(m, l)),
    qkv_bias: true,
    use_sliding_window: false,
    sliding_window: null,
    max_window_layers: m.layers,
  }
}

/**
 * `entries` cut into files of at most `maxBytes` of data each, in order (a tensor larger than
 * that alone in its file).
 * @category constructors
 */
export const shards = (entries: ReadonlyArray<Safetensors.Entry>, maxBytes: number): Array<Array<Safetensors.Entry>> => {
  const out: Array<Array<Safetensors.Entry>> = []
  let current: Array<Safetensors.Entry> = []
  let bytes = 0
  for (const e of entries) {
    const size = Safetensors.byteLength(e)
    if (current.length > 0 && bytes + size > maxBytes) {
      out.push(current)
      current = []
      bytes = 0
    }
    current.push(e)
    bytes += size
  }
  if (current.length > 0) out.push(current)
  return out
}
