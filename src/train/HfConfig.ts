/**
 * HfConfig: a transformers config.json (Mixtral, Qwen2-MoE, Qwen3-MoE, dots1, DeepSeek-V3, GPT-OSS, GLM-4.5, DeepSeek-V2 or OLMoE) as pleat's model and
 * the layout its tensors are in (HfLayout), for `pleat import`.
 *
 * The keys below are decoded with a Schema (others ignored), with transformers' defaults for
 * those left out (by model_type). Everything pleat's model cannot compute as transformers would
 * is refused, naming the key and the fix (a ConfigError on --model-dir): another architecture, an
 * activation other than silu, an odd head width, a sliding window in some layers only (mixtral's, every layer's, is
 * --sliding-window), RoPE scaling other than YaRN and Llama 3's (HfRope), MoE layers that
 * are not K, K + N, K + 2N, ... (pleat's --dense-first K --moe-every N; decoder_sparse_step N is
 * K = N - 1), a Qwen2-MoE without its shared expert.
 *
 * What each architecture becomes:
 *   mixtral     every layer MoE, probs renormalized over the top-k
 *   qwen2_moe   the gated shared expert (--shared-expert-ffn, --shared-expert-gate), q/k/v
 *               biases (qkv_bias, on by default: --qkv-bias), norm_topk_prob false as --pre-softmax
 *   qwen3_moe   q and k norms (--qk-norm), no shared expert, biases on q/k/v/o with
 *               attention_bias (o's must be zeros: pleat's attention has none)
 *   dots1       Qwen3's attention; sigmoid routing with expert biases (--expert-bias; the
 *               checkpoint keeps e_score_correction_bias), groups, routed_scaling_factor, ungated
 *               shared experts (n_shared_experts x moe_intermediate_size), first_k_dense_replace
 *   deepseek_v3 dots1's MoE with multi-latent attention (--multi-latent-attention: q_lora_rank,
 *               null for none, kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim);
 *               its rotary rows interleaved unless rope_interleave is false (HfLayout.ropeRow);
 *               refused: attention_bias, rms_norm_eps other than 1e-6 (its latent norms' epsilon)
 *   glm4_moe    dots1's MoE (first_k_dense_replace default 1) with grouped-query attention: q/k/v
 *               biases with attention_bias (o has none), q and k norms with use_qk_norm, RoPE on
 *               the first partial_rotary_factor (default 0.5) of each head (--rotary-percent);
 *               its multi-token prediction layers past the last read as DeepSeek-V3's (HfImport)
 *   olmoe       Qwen3-MoE's layers with q and k norms over every head at once (q_norm over the
 *               whole q, k_norm over the whole k: --qk-norm --qk-norm-over-heads); clip_qkv refused
 *   deepseek_v2 DeepSeek-V3's attention (rotary rows always interleaved) and shared experts;
 *               softmax routing over every expert, its top-k weighted as they are (--pre-softmax)
 *               times routed_scaling_factor (DeepseekV2Router); first_k_dense_replace default 0
 * A head_dim other than hidden_size / num_attention_heads (every Qwen3) becomes --head-dim.
 */
import * as ConfigError from "../errors/ConfigError.js"
import * as ModelContext from "../model/ModelContext.js"
import * as MoeSettings from "../moe/MoeSettings.js"
import * as Schema from "effect/Schema"
import type * as LatentAttention from "../attention/LatentAttention.js"
import type * as HfLayout from "./HfLayout.js"
import * as HfDeepSeekV2 from "./HfDeepSeekV2.js"
import * as HfGptOss from "./HfGptOss.js"
import * as HfRope from "./HfRope.js"
import type * as ModelConfig from "./ModelConfig.js"

const count = Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(1))
const natural = Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0))
const positive = Schema.Number.check(Schema.isGreaterThan(0))

/**
 * The keys of config.json that pleat reads.
 * @category models
 */
export const HfConfig = Schema.Struct({
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
  rope_parameters: Schema.optional(Schema.NullOr(HfRope.RopeKeys)),
  rope_scaling: Schema.optional(Schema.NullOr(HfRope.RopeKeys)),
  tie_word_embeddings: Schema.optional(Schema.Boolean),
  sliding_window: Schema.optional(Schema.NullOr(Schema.Number)),
  use_sliding_window: Schema.optional(Schema.Boolean),
  layer_types: Schema.optional(Schema.Array(Schema.String)),
  swiglu_limit: Schema.optional(Schema.Number),
  router_aux_loss_coef: Schema.optional(Schema.Number),
  max_position_embeddings: Schema.optional(count),
  qkv_bias: Schema.optional(Schema.Boolean),
  attention_bias: Schema.optional(Schema.Boolean),
  n_routed_experts: Schema.optional(Schema.NullOr(count)),
  n_shared_experts: Schema.optional(Schema.NullOr(natural)),
  n_group: Schema.optional(Schema.NullOr(count)),
  topk_group: Schema.optional(Schema.NullOr(count)),
  first_k_dense_replace: Schema.optional(Schema.NullOr(natural)),
  routed_scaling_factor: Schema.optional(positive),
  max_window_layers: Schema.optional(Schema.NullOr(natural)),
  q_lora_rank: Schema.optional(Schema.NullOr(count)),
  kv_lora_rank: Schema.optional(count),
  qk_nope_head_dim: Schema.optional(count),
  qk_rope_head_dim: Schema.optional(count),
  v_head_dim: Schema.optional(Schema.NullOr(count)),
  rope_interleave: Schema.optional(Schema.NullOr(Schema.Boolean)),
  use_qk_norm: Schema.optional(Schema.Boolean),
  partial_rotary_factor: Schema.optional(Schema.NullOr(Schema.Number)),
  num_nextn_predict_layers: Schema.optional(Schema.NullOr(Schema.Number)),
  topk_method: Schema.optional(Schema.NullOr(Schema.String)),
  mlp_bias: Schema.optional(Schema.Boolean),
  aux_loss_alpha: Schema.optional(Schema.Number),
  clip_qkv: Schema.optional(Schema.NullOr(Schema.Number)),
  seq_aux: Schema.optional(Schema.Boolean),
  quantization_config: Schema.optional(
    Schema.NullOr(
      Schema.Struct({
        quant_method: Schema.optional(Schema.NullOr(Schema.String)),
        fmt: Schema.optional(Schema.NullOr(Schema.String)),
        weight_block_size: Schema.optional(Schema.NullOr(Schema.Array(Schema.Number))),
      }),
    ),
  ),
})

/**
 * A decoded config.json.
 * @category models
 */
export type HfConfig = typeof HfConfig.Type

/** transformers' defaults of the keys a config may leave out, by model_type. */
const defaults = {
  mixtral: { kvHeads: 8, normEps: 1e-5, ropeTheta: 1e6, tie: false, experts: 8, moeFfn: undefined, sharedFfn: undefined },
  qwen2_moe: { kvHeads: 16, normEps: 1e-6, ropeTheta: 10000, tie: false, experts: 60, moeFfn: 1408, sharedFfn: 5632 },
  qwen3_moe: { kvHeads: 4, normEps: 1e-6, ropeTheta: 10000, tie: false, experts: 128, moeFfn: 768, sharedFfn: undefined },
  dots1: { kvHeads: undefined, normEps: 1e-6, ropeTheta: 10000, tie: false, experts: undefined, moeFfn: 1408, sharedFfn: undefined },
  deepseek_v3: { kvHeads: undefined, normEps: 1e-6, ropeTheta: 10000, tie: false, experts: 256, moeFfn: 2048, sharedFfn: undefined },
  gpt_oss: { kvHeads: 8, normEps: 1e-5, ropeTheta: 150000, tie: false, experts: 128, moeFfn: undefined, sharedFfn: undefined },
  glm4_moe: { kvHeads: 8, normEps: 1e-5, ropeTheta: 10000, tie: false, experts: 128, moeFfn: 1408, sharedFfn: undefined },
  deepseek_v2: { kvHeads: undefined, normEps: 1e-6, ropeTheta: 10000, tie: false, experts: 64, moeFfn: 1407, sharedFfn: undefined },
  olmoe: { kvHeads: undefined, normEps: 1e-5, ropeTheta: 10000, tie: false, experts: 64, moeFfn: undefined, sharedFfn: undefined },
} as const

const formatOf = {
  mixtral: "mixtral",
  qwen2_moe: "qwen2-moe",
  qwen3_moe: "qwen3-moe",
  dots1: "dots1",
  deepseek_v3: "deepseek-v3",
  gpt_oss: "gpt-oss",
  glm4_moe: "glm4-moe",
  deepseek_v2: "deepseek-v2",
  olmoe: "olmoe",
} as const satisfies Record<keyof typeof defaults, HfLayout.Format>

const isKnown = (type: string): type is keyof typeof defaults => Object.hasOwn(defaults, type)

/** The placement (denseFirst K, moeEvery N) whose MoE layers (ModelContext.isMoe) are exactly those of `moe`, or undefined. */
const placementOf = (moe: ReadonlyArray<boolean>): { readonly denseFirst: number; readonly moeEvery: number } | undefined => {
  const denseFirst = moe.indexOf(true)
  if (denseFirst < 0) return undefined
  for (let moeEvery = 1; moeEvery <= moe.length; moeEvery++) if (moe.every((m, l) => m === ModelContext.isMoe({ denseFirst, moeEvery }, l))) return { denseFirst, moeEvery }
  return undefined
}

/**
 * dots1's router as pleat's: sigmoid scores, the expert biases (e_score_correction_bias, read
 * into the checkpoint's expertBias), groups where n_group > 1 (scored by their top 2, which is
 * pleat's top floor(topk / topk_group) only where that is 2), routed_scaling_factor; a ConfigError
 * where pleat's router cannot follow (probs not renormalized over a top-k of more than one).
 */
const dots1Router = (c: HfConfig, refuse: (reason: string, fix: string) => ConfigError.ConfigError): Partial<MoeSettings.MoeSettings> => {
  const k = c.num_experts_per_tok
  const name = c.model_type
  if (k > 1 && c.norm_topk_prob !== true)
    throw refuse("has norm_topk_prob false", `pleat renormalizes sigmoid probs over the top-k (Megatron's rule): import a ${name} model with norm_topk_prob true`)
  const groups = c.n_group ?? 1
  const keep = c.topk_group ?? 1
  if (groups > 1 && Math.floor(k / keep) !== 2)
    throw refuse(
      `has n_group ${groups} and topk_group ${keep} with num_experts_per_tok ${k}: ${name} scores a group by its top 2, pleat by its top floor(${k} / ${keep})`,
      "import a model whose num_experts_per_tok is twice or a bit more than twice topk_group, or with n_group 1",
    )
  const scaling = c.routed_scaling_factor ?? 1
  return { scoreFunction: "sigmoid", expertBias: true, ...(groups > 1 ? { numGroups: groups, groupTopk: keep } : {}), ...(scaling === 1 ? {} : { scalingFactor: scaling }) }
}

/** transformers' DeepseekV3Config defaults of the keys its router and attention read. */
const deepSeekDefaults = {
  first_k_dense_replace: 3,
  n_group: 8,
  topk_group: 4,
  routed_scaling_factor: 2.5,
  n_shared_experts: 1,
  norm_topk_prob: true,
  q_lora_rank: 1536,
  kv_lora_rank: 512,
  qk_nope_head_dim: 128,
  qk_rope_head_dim: 64,
  v_head_dim: 128,
  rope_interleave: true,
} as const

/** transformers' DeepseekV2Config defaults of the keys its router and attention read. */
const deepSeekV2Defaults = {
  first_k_dense_replace: 0,
  routed_scaling_factor: 1,
  n_shared_experts: 2,
  norm_topk_prob: false,
  topk_method: "greedy",
  q_lora_rank: 1536,
  kv_lora_rank: 512,
  qk_nope_head_dim: 128,
  qk_rope_head_dim: 64,
  v_head_dim: 128,
} as const

/** transformers' Glm4MoeConfig defaults of the keys its router and layers read. */
const glmDefaults = { first_k_dense_replace: 1, norm_topk_prob: true, n_shared_experts: 1 } as const

/** The architectures whose config.json keys left out take transformers' defaults here, by model_type. */
const ownDefaults: Readonly<Record<string, Partial<HfConfig> | undefined>> = { deepseek_v3: deepSeekDefaults, deepseek_v2: deepSeekV2Defaults, glm4_moe: glmDefaults }

/**
 * DeepSeek-V3's multi-latent attention as pleat's widths; a ConfigError for what pleat's cannot
 * compute as transformers does (biases; latent norms at an epsilon other than 1e-6).
 */
const latentOf = (c: HfConfig, refuse: (reason: string, fix: string) => ConfigError.ConfigError): LatentAttention.LatentSizes => {
  if (c.attention_bias === true)
    throw refuse(
      "has attention_bias true (biases on q_a_proj, kv_a_proj_with_mqa and o_proj)",
      "pleat's multi-latent attention has no biases: import a model with attention_bias false",
    )
  const eps = c.rms_norm_eps ?? 1e-6
  if (eps !== 1e-6)
    throw refuse(
      `has rms_norm_eps ${eps}, where transformers' q_a_layernorm and kv_a_layernorm keep 1e-6 (pleat's latent norms use --norm-eps)`,
      `import a ${c.model_type} model with rms_norm_eps 1e-6`,
    )
  const dn = c.qk_nope_head_dim ?? deepSeekDefaults.qk_nope_head_dim
  return {
    qLoraRank: c.q_lora_rank ?? 0,
    kvLoraRank: c.kv_lora_rank ?? deepSeekDefaults.kv_lora_rank,
    qkHeadDim: dn,
    qkPosEmbHeadDim: c.qk_rope_head_dim ?? deepSeekDefaults.qk_rope_head_dim,
    vHeadDim: c.v_head_dim ?? dn,
  }
}

/**
 * pleat's model (and the format its tensors are laid out in) of a config; a ConfigError on
 * `--model-dir` (`dir`) naming the key pleat's model cannot follow. `ropeInterleave`: the rotary
 * rows of multi-latent attention are in DeepSeek's interleaved order (HfLayout.ropeRow).
 * @category constructors
 */
export const modelOf = (config: HfConfig, dir: string): { readonly model: ModelConfig.ModelConfig; readonly format: HfLayout.Format; readonly ropeInterleave: boolean } => {
  const refuse = (reason: string, fix: string) => ConfigError.make("--model-dir", dir, reason, fix)
  // DeepSeek-V3's, -V2's and GLM-4.5's keys left out are transformers' defaults (a null q_lora_rank stays null: no query latent).
  const own = ownDefaults[config.model_type]
  // once a job: an import
  const c: HfConfig = own === undefined ? config : { ...own, ...config }
  if (!isKnown(c.model_type))
    throw refuse(
      `holds a ${c.model_type} model`,
      "pass a Mixtral, Qwen2-MoE, Qwen3-MoE, dots1, DeepSeek-V3, GPT-OSS, GLM-4.5, DeepSeek-V2 or OLMoE model directory (model_type mixtral, qwen2_moe, qwen3_moe, dots1, deepseek_v3, gpt_oss, glm4_moe, deepseek_v2 or olmoe)",
    )
  const d = defaults[c.model_type]
  const format = formatOf[c.model_type]
  const heads = c.num_attention_heads
  if ((c.hidden_act ?? "silu") !== "silu") throw refuse(`has hidden_act ${c.hidden_act} in config.json`, "pleat's experts are SwiGLU (silu): import a model with hidden_act silu")
  const v2 = c.model_type === "deepseek_v2"
  const mla = c.model_type === "deepseek_v3" || v2 ? latentOf(c, refuse) : undefined
  if (c.clip_qkv !== undefined && c.clip_qkv !== null)
    throw refuse(`has clip_qkv ${c.clip_qkv} (q, k and v clamped)`, "import an OLMoE model with clip_qkv null: pleat's attention does not clamp")
  if (v2 && c.mlp_bias === true)
    throw refuse("has mlp_bias true (biases on its MLPs and experts)", "import a DeepSeek-V2 model with mlp_bias false: pleat's MLA models have no MLP biases")
  // DeepSeek-V3's head_dim is its rotary width; its heads are the latent widths (mla).
  const headDim = mla === undefined ? (c.head_dim ?? c.hidden_size / heads) : 2
  if (!Number.isInteger(headDim) || headDim % 2 !== 0)
    throw refuse(
      c.head_dim === undefined || c.head_dim === null
        ? `has hidden_size ${c.hidden_size} and num_attention_heads ${heads}: heads of width ${headDim}, which RoPE cannot turn`
        : `has head_dim ${c.head_dim}, which RoPE cannot turn (an odd width)`,
      "import a model whose heads are of an even width",
    )
  // Mixtral's sliding_window is every layer's (pleat's --sliding-window); the others' are per layer.
  const window = c.model_type === "mixtral" && c.sliding_window !== undefined && c.sliding_window !== null ? c.sliding_window : undefined
  const windowed =
    c.model_type === "dots1"
      ? c.sliding_window !== undefined && c.sliding_window !== null && (c.max_window_layers ?? 62) < c.num_hidden_layers
      : c.model_type !== "mixtral" && c.use_sliding_window === true
  if (windowed)
    throw refuse(
      `has a sliding window in some layers (sliding_window ${c.sliding_window}) in config.json`,
      "pleat's sliding window is every layer's: set sliding_window to null in config.json if you train on sequences no longer than the window",
    )
  if (window !== undefined && !(Number.isInteger(window) && window >= 1))
    throw refuse(`has sliding_window ${window} in config.json`, "use a whole number of tokens, 1 or more, or null for the whole context")
  // GPT-OSS: its sinks, per-layer window, experts' activation and biases.
  const gptOss = c.model_type === "gpt_oss" ? HfGptOss.fieldsOf(c, refuse) : undefined
  const scaling = HfRope.scalingOf(c, refuse)
  const layers = c.num_hidden_layers
  // Each architecture's own key first (the Hub's configs), the other as transformers 5 may save it.
  const experts = (c.model_type === "mixtral" ? (c.num_local_experts ?? c.num_experts) : (c.n_routed_experts ?? c.num_experts ?? c.num_local_experts)) ?? d.experts
  if (experts === undefined) throw refuse("has no n_routed_experts in config.json", "pass a dots1 model directory whose config.json gives n_routed_experts")
  // DeepSeek-V3's MoE is dots1's, and GLM-4.5's; DeepSeek-V2's has their shared experts and dense layers.
  const dots1 = c.model_type === "dots1" || c.model_type === "deepseek_v3" || c.model_type === "glm4_moe" || v2
  const qwen = c.model_type !== "mixtral" && !dots1 && gptOss === undefined
  // Qwen: layer l is sparse when not in mlp_only_layers and (l + 1) % decoder_sparse_step == 0; dots1: from first_k_dense_replace on.
  const sparse = Array.from({ length: layers }, (_, l) =>
    dots1 ? l >= (c.first_k_dense_replace ?? 0) : !qwen || (!(c.mlp_only_layers ?? []).includes(l) && (l + 1) % (c.decoder_sparse_step ?? 1) === 0),
  )
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
  const moeFfn = c.moe_intermediate_size ?? d.moeFfn ?? c.intermediate_size
  const shared = c.model_type === "qwen2_moe" ? (c.shared_expert_intermediate_size ?? d.sharedFfn) : dots1 ? moeFfn * (c.n_shared_experts ?? 0) : undefined
  if (shared === 0) throw refuse(dots1 ? "has no shared experts (n_shared_experts 0)" : "has shared_expert_intermediate_size 0", "import a model with its shared experts")
  // Biases: Qwen2-MoE's qkv_bias (transformers' default: on), Qwen3-MoE's and dots1's attention_bias (default off).
  // GPT-OSS's biases, all of them, are pleat's (HfGptOss.fieldsOf).
  const biased = c.model_type === "qwen2_moe" ? c.qkv_bias !== false : c.model_type !== "mixtral" && gptOss === undefined && c.attention_bias === true
  const router = v2 ? HfDeepSeekV2.routerOf(c, refuse) : dots1 ? dots1Router(c, refuse) : undefined
  // GLM-4.5 turns the first partial_rotary_factor of each head (in rope_parameters or beside it; 0.5 by default).
  const partial = c.model_type === "glm4_moe" ? (c.rope_parameters?.partial_rotary_factor ?? c.partial_rotary_factor ?? 0.5) : 1
  // Softmax routing, renormalized over the top-k unless a Qwen's norm_topk_prob is false; dots1's sigmoid router (dots1Router).
  const moe: MoeSettings.MoeSettings = {
    preSoftmax: qwen && c.norm_topk_prob !== true,
    auxLosses: router === undefined ? [{ type: "aux", coeff: c.router_aux_loss_coef ?? 0.001 }] : (router.auxLosses ?? []),
    ...router,
    scoreFunction: router?.scoreFunction ?? MoeSettings.defaults.scoreFunction,
    zLossCoeff: MoeSettings.defaults.zLossCoeff,
    dispatcher: MoeSettings.defaults.dispatcher,
    probsAt: MoeSettings.defaults.probsAt,
    dropPolicy: MoeSettings.defaults.dropPolicy,
    padToCapacity: MoeSettings.defaults.padToCapacity,
    expertBias: router?.expertBias ?? MoeSettings.defaults.expertBias,
    biasUpdateRate: MoeSettings.defaults.biasUpdateRate,
  }
  const model: ModelConfig.ModelConfig = {
    vocab: c.vocab_size,
    hidden: c.hidden_size,
    layers,
    heads,
    // Multi-latent attention gives every head its own keys and values.
    kvHeads: mla === undefined ? (c.num_key_value_heads ?? d.kvHeads ?? heads) : heads,
    ffn: c.intermediate_size,
    experts,
    topk: c.num_experts_per_tok,
    moeFfn,
    moeEvery: placement.moeEvery,
    ...(placement.denseFirst === 0 ? {} : { denseFirst: placement.denseFirst }),
    // Not the model's identity (a run sets its own): the context it was made for, at most 4096.
    seq: Math.min(c.max_position_embeddings ?? 4096, 4096),
    ...((c.tie_word_embeddings ?? d.tie) ? {} : { untieEmbeddings: true }),
    ...(shared === undefined ? {} : dots1 ? { sharedExpertFfn: shared } : { sharedExpertFfn: shared, sharedExpertGate: true }),
    ...(biased ? { qkvBias: true } : {}),
    ...(mla !== undefined || headDim === c.hidden_size / heads ? {} : { headDim }),
    ...(c.model_type === "qwen3_moe" || c.model_type === "dots1" || (c.model_type === "glm4_moe" && c.use_qk_norm === true) ? { qkNorm: true } : {}),
    ...(c.model_type === "olmoe" ? { qkNorm: true, qkNormOverHeads: true } : {}),
    ...(partial === 1 ? {} : { rotaryPercent: partial }),
    ...(mla === undefined ? {} : { mla }),
    ropeTheta: c.rope_parameters?.rope_theta ?? c.rope_theta ?? d.ropeTheta,
    ...(scaling === undefined ? {} : { ropeScaling: scaling }),
    ...(window === undefined ? {} : { slidingWindow: window }),
    ...gptOss,
    normEps: c.rms_norm_eps ?? d.normEps,
    moe,
  }
  // DeepSeek-V2's rotary pairs are always interleaved (transformers turns them as complex numbers).
  return { model, format, ropeInterleave: mla !== undefined && (v2 || c.rope_interleave !== false) }
}
