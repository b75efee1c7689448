// OLMoE-1B-7B's own config.json (the Hub's allenai/OLMoE-1B-7B-0924, its keys as published)
// reads as pleat's olmoe-1b-7b preset: the sizes, every layer MoE, no shared experts, q and k
// norms over every head at once, the router (softmax over every expert, the top-k as it is:
// norm_topk_prob false) and untied embeddings; clip_qkv (which clamps q, k and v) is refused.
import { describe, expect, test } from "vitest"
import * as ConfigError from "../../src/errors/ConfigError.js"
import { expectPresetShape, readConfig } from "./publishedConfig.js"

const published = {
  architectures: ["OlmoeForCausalLM"],
  attention_bias: false,
  attention_dropout: 0.0,
  clip_qkv: null,
  eos_token_id: 50279,
  hidden_act: "silu",
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 1024,
  max_position_embeddings: 4096,
  model_type: "olmoe",
  norm_topk_prob: false,
  num_attention_heads: 16,
  num_experts: 64,
  num_experts_per_tok: 8,
  num_hidden_layers: 16,
  num_key_value_heads: 16,
  output_router_logits: false,
  pad_token_id: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: null,
  rope_theta: 10000.0,
  router_aux_loss_coef: 0.01,
  tie_word_embeddings: false,
  torch_dtype: "bfloat16",
  transformers_version: "4.43.0.dev0",
  use_cache: true,
  vocab_size: 50304,
}

const read = (config: Record<string, unknown>) => readConfig(config, "OLMoE")

describe("OLMoE's published config.json", () => {
  test("reads as the olmoe-1b-7b preset", () => {
    const { model, format } = read(published)
    expect(format).toBe("olmoe")
    expectPresetShape(model, "olmoe-1b-7b", ["qkNorm", "qkNormOverHeads", "headDim"])
    expect(model.moe).toMatchObject({ scoreFunction: "softmax", preSoftmax: true, expertBias: false, auxLosses: [{ type: "aux", coeff: 0.01 }] })
    // norm_topk_prob true: the top-k renormalized, pleat's default router.
    expect(read({ ...published, norm_topk_prob: true }).model.moe?.preSoftmax).toBe(false)
  })

  test("clip_qkv is refused, naming the key and the fix", () => {
    let reason = ""
    try {
      read({ ...published, clip_qkv: 8 })
    } catch (e) {
      if (ConfigError.isConfigError(e)) reason = `${e.reason}; fix: ${e.fix}`
    }
    expect(reason).toBe("has clip_qkv 8 (q, k and v clamped); fix: import an OLMoE model with clip_qkv null: pleat's attention does not clamp")
  })
})
