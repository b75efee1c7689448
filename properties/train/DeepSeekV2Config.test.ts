// DeepSeek-V2-Lite's own config.json (the Hub's deepseek-ai/DeepSeek-V2-Lite, its keys as
// published) reads as pleat's model: multi-latent attention without a query latent, one dense
// layer first, two shared experts, 64 experts top-6 routed by a softmax over every expert with the
// top-k weighted as it is (--pre-softmax), the sequence-wise balance loss, its YaRN (factor 40,
// mscale and mscale_all_dim 0.707) and untied embeddings; the rotary rows always interleaved.
// What pleat's router cannot follow is refused naming the key: DeepSeek-V2's own groups (topk 6
// over 3 kept groups: scored by the best expert, pleat's by the top 2), norm_topk_prob, a
// noaux_tc router, MLP biases.
import { describe, expect, test } from "vitest"
import * as ConfigError from "../../src/errors/ConfigError.js"
import * as ModelPresets from "../../src/train/ModelPresets.js"
import { expectPresetShape, readConfig } from "./publishedConfig.js"

const published = {
  architectures: ["DeepseekV2ForCausalLM"],
  attention_bias: false,
  attention_dropout: 0.0,
  aux_loss_alpha: 0.001,
  bos_token_id: 100000,
  eos_token_id: 100001,
  first_k_dense_replace: 1,
  hidden_act: "silu",
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 10944,
  kv_lora_rank: 512,
  max_position_embeddings: 163840,
  model_type: "deepseek_v2",
  moe_intermediate_size: 1408,
  moe_layer_freq: 1,
  n_group: 1,
  n_routed_experts: 64,
  n_shared_experts: 2,
  norm_topk_prob: false,
  num_attention_heads: 16,
  num_experts_per_tok: 6,
  num_hidden_layers: 27,
  num_key_value_heads: 16,
  pretraining_tp: 1,
  q_lora_rank: null,
  qk_nope_head_dim: 128,
  qk_rope_head_dim: 64,
  rms_norm_eps: 1e-6,
  // biome-ignore lint/suspicious/noApproximativeNumericConstant: the published config's mscale, not 1 / sqrt(2)
  rope_scaling: { beta_fast: 32, beta_slow: 1, factor: 40, mscale: 0.707, mscale_all_dim: 0.707, original_max_position_embeddings: 4096, type: "yarn" },
  rope_theta: 10000,
  routed_scaling_factor: 1.0,
  scoring_func: "softmax",
  seq_aux: true,
  tie_word_embeddings: false,
  topk_group: 1,
  topk_method: "greedy",
  torch_dtype: "bfloat16",
  use_cache: true,
  v_head_dim: 128,
  vocab_size: 102400,
}

const read = (config: Record<string, unknown>) => readConfig(config, "DeepSeek-V2")

/** The one-line reason a config is refused for. */
const refusal = (config: Record<string, unknown>): string => {
  try {
    read(config)
  } catch (e) {
    if (ConfigError.isConfigError(e)) return `${e.reason}; fix: ${e.fix}`
    throw e
  }
  throw new Error("read without a refusal")
}

describe("DeepSeek-V2's published config.json", () => {
  test("DeepSeek-V2-Lite reads as the deepseek-v2-lite preset, with its YaRN and its router", () => {
    const { model, format, ropeInterleave } = read(published)
    expect([format, ropeInterleave]).toEqual(["deepseek-v2", true])
    expectPresetShape(model, "deepseek-v2-lite", ["ffn", "mla"])
    expect(model.mla).toEqual({ qLoraRank: 0, kvLoraRank: 512, qkHeadDim: 128, qkPosEmbHeadDim: 64, vHeadDim: 128 })
    expect(model.moe).toMatchObject({ scoreFunction: "softmax", preSoftmax: true, expertBias: false, auxLosses: [{ type: "seq_aux", coeff: 0.001 }] })
    expect([model.moe?.numGroups, model.moe?.scalingFactor]).toEqual([undefined, undefined])
    expect(ModelPresets.model("deepseek-v2-lite", 1).moe).toMatchObject({ scoreFunction: "softmax", preSoftmax: true, expertBias: false })
    const { mscale, mscale_all_dim } = published.rope_scaling
    expect(model.ropeScaling).toEqual({ factor: 40, originalMaxPositions: 4096, betaFast: 32, betaSlow: 1, mscale, mscaleAllDim: mscale_all_dim })
  })

  test("transformers' defaults fill the keys a config leaves out (DeepseekV2Config's)", () => {
    const { topk_method: _m, first_k_dense_replace: _f, n_shared_experts: _s, routed_scaling_factor: _r, norm_topk_prob: _n, ...rest } = published
    const { model } = read(rest)
    // No dense layer first, two shared experts, no scaling, the top-k as it is.
    expect([model.denseFirst, model.sharedExpertFfn, model.moe?.scalingFactor, model.moe?.preSoftmax]).toEqual([undefined, 2 * 1408, undefined, true])
  })

  test("group-limited routing reads where a group's best expert is pleat's top floor(topk / kept groups); scaling reads", () => {
    const { model } = read({ ...published, topk_method: "group_limited_greedy", n_group: 8, topk_group: 4, num_experts_per_tok: 6, routed_scaling_factor: 16.0 })
    expect(model.moe).toMatchObject({ numGroups: 8, groupTopk: 4, scalingFactor: 16 })
    // Groups named without group_limited_greedy limit nothing (transformers' greedy ignores them).
    expect(read({ ...published, n_group: 8, topk_group: 3 }).model.moe?.numGroups).toBeUndefined()
  })

  test("what pleat's router cannot follow is refused, naming the key and the fix", () => {
    // DeepSeek-V2 (236B): 6 experts in 3 of 8 groups, each group scored by its best expert.
    expect(refusal({ ...published, topk_method: "group_limited_greedy", n_group: 8, topk_group: 3 })).toContain(
      "has n_group 8 and topk_group 3 with num_experts_per_tok 6: DeepSeek-V2 scores a group by its best expert, pleat by its top floor(6 / 3)",
    )
    expect(refusal({ ...published, norm_topk_prob: true })).toContain("has norm_topk_prob true")
    expect(refusal({ ...published, topk_method: "noaux_tc" })).toContain("has topk_method noaux_tc")
    expect(refusal({ ...published, mlp_bias: true })).toContain("has mlp_bias true")
    expect(refusal({ ...published, rms_norm_eps: 1e-5 })).toContain("import a deepseek_v2 model with rms_norm_eps 1e-6")
    expect(refusal({ ...published, attention_bias: true })).toContain("has attention_bias true")
  })
})
