/**
 * HfExportConfig: config.json of an exported model directory, the architecture's settings as
 * transformers reads them for each format (GPT-OSS's own keys: HfGptOss; DeepSeek-V2's router's:
 * HfDeepSeekV2).
 */
import * as ModelContext from "../model/ModelContext.js"
import type * as Checkpoint from "./Checkpoint.js"
import type * as HfExport from "./HfExport.js"
import * as HfDeepSeekV2 from "./HfDeepSeekV2.js"
import * as HfGptOss from "./HfGptOss.js"
import type * as HfLayout from "./HfLayout.js"
import * as HfRope from "./HfRope.js"

type Model = Checkpoint.Manifest["model"]
type Format = HfLayout.Format

/** DeepSeek-V3's MoE keys, dots1's too: the router, shared experts and leading dense layers. */
const deepSeekMoe = (m: Model): Record<string, unknown> => {
  const r = m.moe
  return {
    intermediate_size: m.ffn,
    moe_intermediate_size: m.moeFfn,
    n_routed_experts: m.experts,
    n_shared_experts: (m.sharedExpertFfn ?? 0) / m.moeFfn,
    first_k_dense_replace: m.denseFirst ?? 0,
    // Without group limits, one group kept whole (its score, the top 2, picks nothing).
    n_group: r?.numGroups ?? 1,
    topk_group: r?.groupTopk ?? 1,
    // pleat renormalizes sigmoid probs over a top-k of more than one (Megatron's rule).
    norm_topk_prob: m.topk > 1,
    routed_scaling_factor: r?.scalingFactor === undefined || r.scalingFactor === 0 ? 1 : r.scalingFactor,
  }
}

/** Multi-latent attention's keys (DeepSeek-V2's and -V3's): the latents' and heads' widths. */
const latentKeys = (m: Model): Record<string, unknown> => {
  const s = m.mla as NonNullable<Model["mla"]>
  return {
    // Every head has its own keys and values; transformers' head_dim is the rotary width.
    num_key_value_heads: m.heads,
    head_dim: s.qkPosEmbHeadDim,
    q_lora_rank: s.qLoraRank === 0 ? null : s.qLoraRank,
    kv_lora_rank: s.kvLoraRank,
    qk_nope_head_dim: s.qkHeadDim,
    qk_rope_head_dim: s.qkPosEmbHeadDim,
    qk_head_dim: s.qkHeadDim + s.qkPosEmbHeadDim,
    v_head_dim: s.vHeadDim,
    attention_bias: false,
  }
}

/**
 * config.json of the model directory: the architecture's settings as transformers reads them.
 */
const config = (m: Model, format: Format, dtype: HfExport.WeightDtype): Record<string, unknown> => {
  const aux = m.moe?.auxLosses.find((t) => t.type === "aux")?.coeff ?? 0
  const ropeTheta = m.ropeTheta ?? ModelContext.defaultRopeTheta
  const common = {
    vocab_size: m.vocab,
    hidden_size: m.hidden,
    num_hidden_layers: m.layers,
    num_attention_heads: m.heads,
    num_key_value_heads: m.kvHeads,
    head_dim: ModelContext.headDim(m),
    hidden_act: "silu",
    max_position_embeddings: m.seq,
    rms_norm_eps: m.normEps ?? ModelContext.defaultNormEps,
    ...HfRope.keysOf(ropeTheta, m.ropeScaling),
    attention_dropout: 0,
    tie_word_embeddings: m.untieEmbeddings !== true,
    num_experts_per_tok: m.topk,
    router_aux_loss_coef: aux,
    output_router_logits: false,
    use_cache: true,
    torch_dtype: dtype,
    dtype,
  }
  if (format === "gpt-oss") return HfGptOss.config(m, common)
  if (format === "mixtral") {
    return {
      architectures: ["MixtralForCausalLM"],
      model_type: "mixtral",
      ...common,
      intermediate_size: m.moeFfn,
      num_local_experts: m.experts,
      sliding_window: m.slidingWindow ?? null,
    }
  }
  if (format === "dots1") {
    return {
      architectures: ["Dots1ForCausalLM"],
      model_type: "dots1",
      ...common,
      ...deepSeekMoe(m),
      attention_bias: m.qkvBias === true,
      sliding_window: null,
      max_window_layers: m.layers,
    }
  }
  if (format === "glm4-moe") {
    const partial = m.rotaryPercent ?? 1
    const rope = HfRope.keysOf(ropeTheta, undefined) as { rope_parameters: Record<string, unknown> }
    return {
      architectures: ["Glm4MoeForCausalLM"],
      model_type: "glm4_moe",
      ...common,
      // The rotated share of each head, beside the RoPE keys (transformers 4) and among them (5).
      rope_parameters: { partial_rotary_factor: partial, ...rope.rope_parameters },
      partial_rotary_factor: partial,
      ...deepSeekMoe(m),
      attention_bias: m.qkvBias === true,
      use_qk_norm: m.qkNorm === true,
      num_nextn_predict_layers: m.mtpLayers ?? 0,
    }
  }
  if (format === "deepseek-v2") {
    return {
      architectures: ["DeepseekV2ForCausalLM"],
      model_type: "deepseek_v2",
      ...common,
      ...latentKeys(m),
      ...deepSeekMoe(m),
      ...HfDeepSeekV2.configKeys(m),
      // What DeepSeek's own code reads (transformers does not): every layer past the dense ones MoE, no MLP biases.
      moe_layer_freq: 1,
      mlp_bias: false,
    }
  }
  if (format === "deepseek-v3") {
    return {
      architectures: ["DeepseekV3ForCausalLM"],
      model_type: "deepseek_v3",
      ...common,
      ...latentKeys(m),
      ...deepSeekMoe(m),
      // The rotary rows are written interleaved (tensors), as DeepSeek's checkpoints are.
      rope_interleave: true,
      // What the Hub's DeepSeek-V3 configs say of the router, for the tools that read them (transformers does not).
      topk_method: "noaux_tc",
      scoring_func: "sigmoid",
      num_nextn_predict_layers: m.mtpLayers ?? 0,
    }
  }
  // The Qwens' keys (after `common` where they are spread into the file).
  const qwen = {
    intermediate_size: m.ffn,
    moe_intermediate_size: m.moeFfn,
    num_experts: m.experts,
    norm_topk_prob: m.moe?.preSoftmax !== true,
    decoder_sparse_step: 1,
    mlp_only_layers: Array.from({ length: m.layers }, (_, l) => l).filter((l) => !ModelContext.isMoe(m, l)),
    use_sliding_window: false,
    sliding_window: null,
    max_window_layers: m.layers,
  }
  if (format === "olmoe") {
    return {
      architectures: ["OlmoeForCausalLM"],
      model_type: "olmoe",
      ...common,
      // OLMoE's intermediate_size is its experts' width (it has no dense layers).
      intermediate_size: m.moeFfn,
      num_experts: m.experts,
      norm_topk_prob: m.moe?.preSoftmax !== true,
      attention_bias: m.qkvBias === true,
      clip_qkv: null,
    }
  }
  if (format === "qwen3-moe") return { architectures: ["Qwen3MoeForCausalLM"], model_type: "qwen3_moe", ...common, ...qwen, attention_bias: m.qkvBias === true }
  return {
    architectures: ["Qwen2MoeForCausalLM"],
    model_type: "qwen2_moe",
    ...common,
    ...qwen,
    shared_expert_intermediate_size: m.sharedExpertFfn,
    // Without pleat biases the file holds zeros, which transformers 4 (always biased) reads too.
    qkv_bias: m.qkvBias === true,
  }
}

/**
 * config.json's text: `config`, with the keys transformers' strict configs type as float written
 * with a decimal point when whole (JSON.stringify writes 1.0 as 1, which DeepseekV3Config and
 * Dots1Config refuse for routed_scaling_factor).
 * @category constructors
 */
export const configText = (m: Model, format: Format, dtype: HfExport.WeightDtype): string =>
  `${JSON.stringify(config(m, format, dtype), null, 2).replace(/^(\s*"(?:routed_scaling_factor|router_aux_loss_coef|rms_norm_eps)": )(-?\d+)(,?)$/gm, "$1$2.0$3")}\n`
