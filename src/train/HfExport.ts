/**
 * HfExport: a checkpoint as a Hugging Face model directory (config.json and safetensors
 * weights) that transformers' AutoModelForCausalLM loads and runs as pleat's model.
 *
 * Nine architectures of transformers hold pleat's model exactly:
 *   mixtral     every layer MoE, no shared experts, probs renormalized over the top-k (pleat's
 *               default router: softmax over the k selected logits)
 *   qwen2-moe   shared experts with their sigmoid gate (--shared-expert-ffn with
 *               --shared-expert-gate), any --moe-every (dense layers as mlp_only_layers), probs
 *               renormalized or not (--pre-softmax: norm_topk_prob false)
 *   qwen3-moe   q and k norms (--qk-norm), no shared experts, dense layers and the router as
 *               qwen2-moe's; q/k/v biases as attention_bias (with zeros for o's)
 *   dots1       sigmoid routing (--score-function sigmoid) with the expert biases of
 *               --expert-bias as e_score_correction_bias (zeros without), group limits
 *               (--num-groups, --group-topk, where topk / group-topk is 2: dots1 scores a group
 *               by its top 2), --scaling-factor as routed_scaling_factor, ungated shared experts
 *               of a whole number of expert widths, --dense-first as first_k_dense_replace,
 *               Qwen3's attention (--qk-norm required). DeepSeek-V3's router on an attention
 *               pleat has (DeepSeek-V3's own uses MLA).
 *   deepseek-v3 dots1's MoE (the same router and shared experts) with multi-latent attention
 *               (--multi-latent-attention: q_a_proj/q_a_layernorm/q_b_proj or q_proj,
 *               kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj), YaRN's softmax factor from
 *               mscale_all_dim as pleat's (LatentAttention), --norm-eps 1e-6 (transformers'
 *               latent norms have that epsilon whatever rms_norm_eps says).
 *   gpt-oss     every layer MoE with softmax over the top-k, learnable (or off-by-one) softmax
 *               sinks, GPT-OSS's expert activation (--quick-geglu --glu-linear-offset 1
 *               --activation-func-clamp-value L), its window on the layers pleat's has one
 *               (layer_types), biases pleat has not written as zeros (HfGptOss)
 *   glm4-moe    dots1's MoE with grouped-query attention: q/k/v biases (--qkv-bias) as
 *               attention_bias (o has none), q/k norms (--qk-norm) as use_qk_norm, partial RoPE
 *               (--rotary-percent) as partial_rotary_factor; plain RoPE only (GLM-4.5's)
 *   olmoe       Qwen3-MoE's layers, every one MoE, without shared experts, q and k norms over
 *               every head at once (--qk-norm --qk-norm-over-heads), heads hidden / heads wide
 *   deepseek-v2 DeepSeek-V3's attention and shared experts with a softmax router: the top-k of a
 *               softmax over every expert weighted as they are (--pre-softmax), --scaling-factor
 *               as routed_scaling_factor, groups scored by their best expert (HfDeepSeekV2);
 *               YaRN's softmax factor as DeepSeek's code has it (transformers' DeepseekV2 leaves
 *               it out: a model with --rope-type yarn runs there with another attention scale)
 * Decision: deepseek-v3 is written with rope_interleave true, its rotary rows permuted into
 * DeepSeek's interleaved pairs (HfLayout.ropeRow), the layout of DeepSeek's own checkpoints, so
 * that the directory runs as written wherever DeepSeek-V3 checkpoints run (transformers, and
 * servers that always rotate interleaved pairs), not only where rope_interleave is read.
 * deepseek-v2 is written the same way (transformers always turns its pairs interleaved).
 * Multi-latent attention is in no other format.
 * A head width of its own (--head-dim) is written as head_dim. The first three need softmax
 * routing without group limits, scaling or expert bias.
 * `auto` takes the first that fits. Token dropping (--capacity-factor) is a training device:
 * transformers runs the experts dropless, as Megatron-trained models are served.
 *
 * RMSNorm's epsilon and RoPE's base are the model's (--norm-eps, --rope-theta), and its YaRN
 * (--rope-type yarn) in both key styles (HfRope).
 * What matches, element for element (properties/train/HfExport.prop.ts: an independent reading
 * of transformers' two models; properties/cli/ExportCommand.test.ts: transformers itself):
 * RMSNorm and RoPE in the rotate-half layout, head-major q, k, v
 * columns, grouped-query heads (query head h reads kv head h / (heads / kv-heads)), SwiGLU
 * silu(x Wg) * (x Wu) Wd, a tied embedding (tie_word_embeddings) or a separate lm_head.
 * pleat keeps weights as [in, out]; transformers' Linear as [out, in]: every matrix is
 * transposed. Expert weights are written one matrix per expert under the names of the models on
 * the Hub (Mixtral's w1, w3, w2: gate, up, down), which transformers 4 loads as they are and
 * transformers 5 fuses on loading. Qwen2-MoE's q, k, v biases are pleat's (--qkv-bias), or zeros
 * with qkv_bias false without them (transformers 4 has biases in every Qwen2-MoE and reads the
 * zeros; Mixtral has none, so a model with biases is a qwen2-moe).
 */
import * as GatedActivation from "../tensor/ops/GatedActivation.js"
import * as ConfigError from "../errors/ConfigError.js"
import * as ModelContext from "../model/ModelContext.js"
import type * as Tensor from "../tensor/Tensor.js"
import type * as Checkpoint from "./Checkpoint.js"
import * as HfGptOss from "./HfGptOss.js"
import * as HfDeepSeekV2 from "./HfDeepSeekV2.js"
import * as HfLayout from "./HfLayout.js"
import * as Safetensors from "./Safetensors.js"

const formats = HfLayout.formats
type Format = HfLayout.Format

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

/**
 * The parameters an export writes: their shapes, and each one's values when its tensors are made
 * (Checkpoint.stored reads them from the checkpoint then; `inMemory` for parameters held).
 * @category models
 */
export interface Parameters {
  readonly shapes: ReadonlyMap<string, ReadonlyArray<number>>
  readonly value: (name: string) => Tensor.Tensor
}

/**
 * Parameters held in memory, as an export takes them.
 * @category constructors
 */
export const inMemory = (values: ReadonlyMap<string, Tensor.Tensor>): Parameters => ({
  shapes: new Map([...values].map(([name, t]) => [name, t.shape])),
  value: (name) => values.get(name) as Tensor.Tensor,
})

/** What keeps `m`'s router from `format`, as the flag that set it; undefined when nothing does. */
const routerProblem = (m: Model, format: Format): string | undefined => {
  const r = m.moe
  if (r === undefined) return "its manifest records no router options (saved by an older pleat: resume it and save again)"
  if (r.sinkhorn === true) return "it was trained with Sinkhorn routing (--sinkhorn), which no Hugging Face MoE config describes"
  if (r.probsAt === "input")
    return "it weights each token's input to its expert by the prob (--probs-at input), where the Hugging Face MoE layers pleat writes weight the expert's output"
  if (r.quantileBalancing === true) return "it routes with quantile balancing's per-expert beta on the logits (--quantile-balancing), which no Hugging Face MoE config describes"
  if (r.hashLayers !== undefined) return `its first ${r.hashLayers} layers route each token by its id (--hash-layers), which no MoE config pleat writes describes`
  if (format === "deepseek-v2") return HfDeepSeekV2.routerProblem(m)
  if (HfLayout.deepSeekMoe(format)) {
    if (r.scoreFunction !== "sigmoid") return `it routes with ${r.scoreFunction}, where ${format} routes with sigmoid scores (--score-function sigmoid)`
    // dots1 and DeepSeek-V3 score a group by its top 2; pleat (Megatron) by its top floor(topk / group-topk).
    if (r.numGroups !== undefined && Math.floor(m.topk / (r.groupTopk ?? 1)) !== 2)
      return `it scores an expert group by its top ${Math.floor(m.topk / (r.groupTopk ?? 1))} (topk ${m.topk} / --group-topk ${r.groupTopk}), where ${format} scores by the top 2`
    return undefined
  }
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
  const name = {
    mixtral: "Mixtral",
    "qwen2-moe": "Qwen2-MoE",
    "qwen3-moe": "Qwen3-MoE",
    dots1: "dots1",
    "deepseek-v3": "DeepSeek-V3",
    "gpt-oss": "GPT-OSS",
    "glm4-moe": "GLM-4.5",
    "deepseek-v2": "DeepSeek-V2",
    olmoe: "OLMoE",
  }[format]
  if (HfLayout.latentAttention(format) && m.mla === undefined)
    return `it has no multi-latent attention (--multi-latent-attention), which every ${name} attention has${format === "deepseek-v3" ? " (a sigmoid-routed model with --qk-norm is a dots1)" : ""}`
  if (!HfLayout.latentAttention(format) && m.mla !== undefined)
    return `it has multi-latent attention (--multi-latent-attention), which ${name} has not (deepseek-v3 and deepseek-v2 have)`
  if (m.moeLatentSize !== undefined)
    return `its MoE layers are LatentMoE (--moe-latent-size ${m.moeLatentSize}), which ${name}'s are not (of Hugging Face's, only Nemotron-H's hybrid Mamba models have them, and pleat has no Mamba layers)`
  if ((m.mtpLayers ?? 0) > 0 && !HfLayout.holdsMtp(format))
    return `it has multi-token prediction layers (--mtp-num-layers ${m.mtpLayers}), which ${name} has not (deepseek-v3 and glm4-moe hold them as layers past the last)`
  const router = routerProblem(m, format)
  if (router !== undefined) return router
  if ((m.rotaryPercent ?? 1) !== 1 && format !== "glm4-moe")
    return `its RoPE turns a part of each head (--rotary-percent ${m.rotaryPercent}), which ${name}'s does not (glm4-moe's does)`
  if (format === "glm4-moe" && m.ropeScaling !== undefined) return "it scales RoPE (--rope-type), which pleat writes for glm4-moe only as plain RoPE"
  if (m.qkL2Norm === true) return "it scales each head's q and k to unit RMS (--qk-l2-norm, Llama 4's), which no format pleat writes has"
  if (m.qkNormOverHeads === true && format !== "olmoe")
    return `its q and k norms are over every head at once (--qk-norm-over-heads), where ${name}'s are per head (olmoe's are over the heads)`
  if (format === "gpt-oss") return HfGptOss.problem(m)
  if (m.linearBias === true) return `it has biases on its output projections and MLPs (--add-bias-linear), which ${name} has not (gpt-oss has)`
  if (m.routerBias === true) return `its router has a bias (--router-bias), which ${name}'s has not (gpt-oss's has)`
  if (m.qkNorm === true && format !== "qwen3-moe" && format !== "dots1" && format !== "glm4-moe" && format !== "olmoe")
    return `it has q and k norms (--qk-norm), which ${name} has not`
  if (m.softmaxType !== undefined && m.softmaxType !== "vanilla") return `its attention softmax has sinks (--softmax-type ${m.softmaxType}), which ${name} has not (gpt-oss has)`
  if (m.glu !== undefined && !GatedActivation.isPlain(m.glu))
    return `its MLPs' activation is not SwiGLU (--quick-geglu, --glu-linear-offset or --activation-func-clamp-value), where ${name}'s is (gpt-oss's experts have GPT-OSS's)`
  if (m.normOnePlus === true) return "its norms' weights are zero-centered (--apply-layernorm-1p), which no format pleat writes stores"
  if (m.noRopeFreq !== undefined) return `it has layers without RoPE (--no-rope-freq ${m.noRopeFreq}, Llama 4's NoPE layers), which ${name} has not`
  if (m.windowAttnSkipFreq !== undefined)
    return `it has full-attention layers among its sliding-window ones (--window-attn-skip-freq ${m.windowAttnSkipFreq}), where ${name}'s window is every layer's (gpt-oss's layer_types name them)`
  if (m.slidingWindow !== undefined && format !== "mixtral")
    return `it has sliding-window attention (--sliding-window ${m.slidingWindow}), which pleat writes only as mixtral's or gpt-oss's sliding_window (${name}'s windows are per layer)`
  if (HfLayout.deepSeekMoe(format)) {
    if (format === "dots1" && m.qkNorm !== true) return "it has no q and k norms, which every dots1 attention has (--qk-norm)"
    if (m.sharedExpertFfn === undefined || m.sharedExpertFfn % m.moeFfn !== 0)
      return `its shared experts are not a whole number of experts' widths (--shared-expert-ffn a multiple of --moe-ffn ${m.moeFfn}), as ${format}'s are`
    if (m.sharedExpertGate === true) return `its shared experts have a gate (--shared-expert-gate), which ${format}'s have not`
    if (m.moeEvery !== 1) return `it has dense layers between MoE ones (--moe-every ${m.moeEvery}), where ${format}'s dense layers come first only (--dense-first)`
    const eps = m.normEps ?? ModelContext.defaultNormEps
    if (HfLayout.latentAttention(format) && eps !== 1e-6)
      return `its latent norms have epsilon --norm-eps ${eps}, where ${name}'s q_a_layernorm and kv_a_layernorm always have 1e-6 (train with --norm-eps 1e-6)`
    return undefined
  }
  if (format === "mixtral") {
    if (m.qkvBias === true) return "it has q, k, v biases (--qkv-bias), which Mixtral has not"
    if (m.sharedExpertFfn !== undefined) return `it has shared experts (--shared-expert-ffn ${m.sharedExpertFfn}), which Mixtral has not`
    if (m.moeEvery !== 1) return `it has dense layers (--moe-every ${m.moeEvery}), where Mixtral's are all MoE`
    if ((m.denseFirst ?? 0) > 0) return `it has dense layers (--dense-first ${m.denseFirst}), where Mixtral's are all MoE`
    if (m.moe?.preSoftmax === true) return "its probs are not renormalized over the top-k (--pre-softmax), where Mixtral's are"
    return undefined
  }
  if (format === "olmoe") {
    if (m.qkNormOverHeads !== true) return "its q and k norms are not over every head at once, where OLMoE's are (--qk-norm --qk-norm-over-heads)"
    if (ModelContext.headDim(m) * m.heads !== m.hidden) return `its heads are --head-dim ${m.headDim} wide, where OLMoE's are hidden / heads (its q norm is hidden wide)`
    if (m.sharedExpertFfn !== undefined) return `it has shared experts (--shared-expert-ffn ${m.sharedExpertFfn}), which OLMoE has not`
    if (m.moeEvery !== 1 || (m.denseFirst ?? 0) > 0) return "it has dense layers (--moe-every, --dense-first), where OLMoE's are all MoE"
    return undefined
  }
  if (format === "qwen3-moe") {
    if (m.qkNorm !== true) return "it has no q and k norms, which every Qwen3-MoE attention has (--qk-norm)"
    if (m.sharedExpertFfn !== undefined) return `it has shared experts (--shared-expert-ffn ${m.sharedExpertFfn}), which Qwen3-MoE has not`
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
  const fix =
    "export a model trained with softmax routing: every layer MoE without shared experts (mixtral; with GPT-OSS's sinks and activation, gpt-oss), shared experts with --shared-expert-gate (qwen2-moe), or --qk-norm without shared experts (qwen3-moe); or with sigmoid routing and ungated shared experts, and --qk-norm (dots1), --multi-latent-attention (deepseek-v3) or q/k norms optional with partial RoPE (glm4-moe); or --multi-latent-attention with softmax routing, --pre-softmax and ungated shared experts (deepseek-v2); or --qk-norm --qk-norm-over-heads, every layer MoE (olmoe)"
  if (requested !== "auto") {
    const problem = problemFor(m, requested)
    if (problem !== undefined) throw ConfigError.make("--format", requested, `cannot hold the checkpoint in ${dir}: ${problem}`, fix)
    return requested
  }
  const fits = formats.find((f) => problemFor(m, f) === undefined)
  if (fits !== undefined) return fits
  const why = [...new Set(formats.map((f) => problemFor(m, f)))].join("; ")
  throw ConfigError.make(
    "--checkpoint",
    dir,
    `holds a model no transformers architecture pleat writes can run (mixtral, qwen2-moe, qwen3-moe, dots1, deepseek-v3, gpt-oss, glm4-moe, deepseek-v2 or olmoe): ${why}`,
    fix,
  )
}

/**
 * The tensors of the model directory, by their transformers names, in the model's order
 * (HfLayout): each made from the checkpoint's values as the file is written (a parameter's
 * values asked for then, the last kept for the next tensors made from it: an export from
 * Checkpoint.stored holds one parameter at a time). A ConfigError on `--checkpoint` (`dir`) when
 * the parameters are not exactly the built-in model's.
 * @category constructors
 */
export const tensors = (
  m: Model,
  format: Format,
  params: Parameters,
  dtype: WeightDtype,
  dir: string,
  biases?: Readonly<Record<string, ReadonlyArray<number>>>,
): Array<Safetensors.Entry> => {
  const st = safetensorsDtype[dtype]
  const placements = HfLayout.placements(m, format)
  const used = new Set(placements.flatMap((p) => (p.kind === "zeros" || p.kind === "bias" ? [] : p.kind === "gateUp" ? [p.gate, p.up] : [p.pleat])))
  // Every parameter written, and nothing else: a model of one's own (--definition) is not pleat's.
  const missing = [...used].filter((name) => !params.shapes.has(name))
  const extra = [...params.shapes.keys()].filter((name) => !used.has(name))
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
  // A parameter's values when an entry's bytes are made: the last one kept, as entries that
  // share one (the experts of a layer, gate and up) come together.
  let last: { readonly name: string; readonly data: Float32Array | Float64Array } | undefined
  const dataOf = (name: string): Float32Array | Float64Array => {
    if (last?.name !== name) last = { name, data: params.value(name).data as Float32Array | Float64Array }
    return last.data
  }
  const shapeOf = (name: string) => params.shapes.get(name) as ReadonlyArray<number>
  return placements.map((p): Safetensors.Entry => {
    if (p.kind === "zeros") return { name: p.hf, dtype: st, shape: [...(p.shape ?? [p.size])], bytes: () => Safetensors.encode(new Float64Array(p.size), st) }
    if (p.kind === "gateUp") {
      const shape = shapeOf(p.gate)
      const f = shape[shape.length - 1] as number
      return {
        name: p.hf,
        dtype: st,
        shape: [...shape.slice(0, -1), 2 * f],
        // A slab of rows at a time: gate and up held, never the fused tensor whole.
        bytes: () => {
          const [gate, up] = [dataOf(p.gate), dataOf(p.up)]
          return pieces(gate.length / f, f, st, (first, count) => HfLayout.gateUp(gate.subarray(first * f, (first + count) * f), up.subarray(first * f, (first + count) * f), f))
        },
      }
    }
    if (p.kind === "bias") {
      // The expert biases as trained (zeros without --expert-bias); never bfloat16: they only pick, and transformers keeps them in float32.
      const bias = Float64Array.from(biases?.[String(p.layer)] ?? new Array<number>(p.size).fill(0))
      const biasDtype = dtype === "bfloat16" ? "F32" : st
      return { name: p.hf, dtype: biasDtype, shape: [p.size], bytes: () => Safetensors.encode(bias, biasDtype) }
    }
    const shape = shapeOf(p.pleat)
    if (p.kind === "same") {
      const entry = shape.slice(1).reduce((n, d) => n * d, 1)
      return {
        name: p.hf,
        dtype: st,
        shape: [...shape],
        bytes: () => pieces(shape[0] ?? 1, entry, st, (first, count) => dataOf(p.pleat).subarray(first * entry, (first + count) * entry)),
      }
    }
    const [rows, cols] = (p.kind === "linear" ? shape : shape.slice(1)) as [number, number]
    const at = p.kind === "expert" ? p.expert * rows * cols : 0
    const rope = p.kind === "linear" ? p.rope : undefined
    // transformers' [cols, rows], a slab of its rows at a time (DeepSeek-V3's rotary rows interleaved on the whole).
    const bytes = () =>
      rope === undefined
        ? pieces(cols, rows, st, (first, count) => HfLayout.transposed(dataOf(p.pleat), at, rows, cols, first, count))
        : Safetensors.encode(HfLayout.interleaved(HfLayout.transposed(dataOf(p.pleat), at, rows, cols), cols, rows, rope, true), st)
    return { name: p.hf, dtype: st, shape: [cols, rows], bytes }
  })
}

/**
 * A tensor of `entries` entries of `entry` elements each, as the bytes of `st` made a slab of
 * entries at a time (Safetensors.slabs): `make(first, count)` gives the values of entries
 * first..first + count - 1.
 */
function* pieces(entries: number, entry: number, st: Safetensors.Dtype, make: (first: number, count: number) => Float32Array | Float64Array): Generator<Uint8Array> {
  for (const [first, count] of Safetensors.slabs(entries, entry)) yield Safetensors.encode(make(first, count), st)
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
