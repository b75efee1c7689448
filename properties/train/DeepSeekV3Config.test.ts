// DeepSeek-V3's own config.json (the Hub's deepseek-ai/DeepSeek-V3, its keys as published) reads
// as pleat's deepseek-v3 preset: the sizes, the leading dense layers, the shared expert, the
// multi-latent attention widths and the router (sigmoid scores with expert biases, 8 groups
// keeping 4, scaling 2.5), with its YaRN context extension (factor 40 over 4096, mscale and
// mscale_all_dim 1) and untied embeddings.
import { describe, expect, test } from "vitest"
import * as ConfigError from "../../src/errors/ConfigError.js"
import * as HfConfig from "../../src/train/HfConfig.js"
import * as HfFp8 from "../../src/train/HfFp8.js"
import * as Schema from "effect/Schema"
import { expectPresetShape } from "./publishedConfig.js"

const published = {
  architectures: ["DeepseekV3ForCausalLM"],
  attention_bias: false,
  attention_dropout: 0.0,
  aux_loss_alpha: 0.001,
  bos_token_id: 0,
  eos_token_id: 1,
  ep_size: 1,
  first_k_dense_replace: 3,
  hidden_act: "silu",
  hidden_size: 7168,
  initializer_range: 0.02,
  intermediate_size: 18432,
  kv_lora_rank: 512,
  max_position_embeddings: 163840,
  model_type: "deepseek_v3",
  moe_intermediate_size: 2048,
  moe_layer_freq: 1,
  n_group: 8,
  n_routed_experts: 256,
  n_shared_experts: 1,
  norm_topk_prob: true,
  num_attention_heads: 128,
  num_experts_per_tok: 8,
  num_hidden_layers: 61,
  num_key_value_heads: 128,
  num_nextn_predict_layers: 1,
  q_lora_rank: 1536,
  qk_nope_head_dim: 128,
  qk_rope_head_dim: 64,
  quantization_config: { activation_scheme: "dynamic", fmt: "e4m3", quant_method: "fp8", weight_block_size: [128, 128] },
  rms_norm_eps: 1e-6,
  rope_scaling: { beta_fast: 32, beta_slow: 1, factor: 40, mscale: 1.0, mscale_all_dim: 1.0, original_max_position_embeddings: 4096, type: "yarn" },
  rope_theta: 10000,
  routed_scaling_factor: 2.5,
  scoring_func: "sigmoid",
  seq_aux: true,
  tie_word_embeddings: false,
  topk_group: 4,
  topk_method: "noaux_tc",
  torch_dtype: "bfloat16",
  transformers_version: "4.46.3",
  use_cache: true,
  v_head_dim: 128,
  vocab_size: 129280,
}

describe("DeepSeek-V3's published config.json", () => {
  test("reads as the deepseek-v3 preset, with its YaRN", () => {
    const config = Schema.decodeUnknownSync(HfConfig.HfConfig)(published)
    const { model, format, ropeInterleave } = HfConfig.modelOf(config, "DeepSeek-V3")
    expect([format, ropeInterleave]).toEqual(["deepseek-v3", true])
    expectPresetShape(model, "deepseek-v3", ["ffn", "mla"])
    expect(model.moe).toMatchObject({ scoreFunction: "sigmoid", expertBias: true, numGroups: 8, groupTopk: 4, scalingFactor: 2.5 })
    expect(model.ropeScaling).toEqual({ factor: 40, originalMaxPositions: 4096, betaFast: 32, betaSlow: 1, mscale: 1, mscaleAllDim: 1 })
    // Its FP8 blocks are read (HfFp8): no FP8 tensor here, nothing to dequantize.
    expect(HfFp8.dequantized(new Map(), config.quantization_config, (r, f) => ConfigError.make("--model-dir", "DeepSeek-V3", r, f)).size).toBe(0)
  })
})
