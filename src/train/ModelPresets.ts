/**
 * ModelPresets: the shapes of the MoE models users train (and the paper measures), by name, and
 * `model`, one of them shrunk to run on a CPU (PresetScale) while keeping its expert count and top-k.
 *
 * Where the numbers come from:
 * - mixtral-8x22b, mixtral-8x22b-g8t8, qwen2-57b-a14b, llama3-8x70b: the model table of
 *   shared/reference/paper.md (section 4.1: hidden, layers, KV heads, experts, top-k, expert FFN,
 *   shared experts, vocab; seq 4096 of Tables 1/3). Query heads, which that table leaves out, are
 *   the public Hugging Face configs' (Mixtral 8x22B 48, Qwen2-57B-A14B 28, Llama3-70B 64).
 *   G8T8 is Mixtral 8x22B with 64 experts of 1/8 the width, 8 active (paper 4.1), so its heads,
 *   KV heads and vocab are Mixtral 8x22B's. Llama3-8x70B's top-2 is the table's assumption.
 * - mixtral-8x7b: the public config (32 layers, hidden 4096, 32 heads, 8 KV heads, expert FFN
 *   14336, 8 experts top-2, vocab 32000); seq 4096 as the paper trains.
 * - qwen2-57b-a14b's router: softmax over all experts before the top-k with no renormalization
 *   (the public config's norm_topk_prob false, here --pre-softmax), a gated shared expert of
 *   width 20480 (8 x 2560), aux-loss coefficient 0.001 (router_aux_loss_coef).
 * - deepseek-v3-style: a DeepSeek-V3-like fine-grained model, not DeepSeek-V3 itself: hidden
 *   7168, 61 layers, 128 heads, vocab 129280, 256 experts top-8 of width 2048, one shared
 *   expert of width 2048 (ungated), dense FFN 18432, and its router: sigmoid scores, aux-loss-free
 *   balancing (expert bias), 8 groups keeping 4, scaling factor 2.5, a small sequence aux loss
 *   (0.0001), and its first 3 layers dense (first_k_dense_replace, here denseFirst), on
 *   grouped-query attention with 128 KV heads (what dots1 is: DeepSeek-V3's MoE on GQA).
 * - deepseek-v3: DeepSeek-V3's public config: deepseek-v3-style's MoE and sizes on its multi-latent
 *   attention (q_lora_rank 1536, kv_lora_rank 512, qk_nope_head_dim 128, qk_rope_head_dim 64,
 *   v_head_dim 128). What differs from the real model: no multi-token prediction (its
 *   num_nextn_predict_layers 1), no YaRN context extension (rope_scaling), seq 4096.
 *
 * - qwen3-30b-a3b, qwen3-235b-a22b: the public Hugging Face configs (hidden 2048 / 4096, 48 / 94
 *   layers, 32 / 64 query heads and 4 KV heads of width 128 (head_dim, not hidden / heads), dense
 *   FFN 6144 / 12288 (unused: every layer is MoE), 128 experts top-8 of width 768 / 1536, vocab
 *   151936, q/k norms, norm_topk_prob true, router_aux_loss_coef 0.001, rope_theta 1e6, rms_norm_eps
 *   1e-6, untied). Not in the paper: models users import (pleat import) and train today.
 * - gpt-oss-20b, gpt-oss-120b: the public Hugging Face configs (hidden 2880, 24 / 36 layers, 64
 *   query heads and 8 KV heads of width 64, 32 / 128 experts top-4 of width 2880, vocab 201088,
 *   every layer MoE, sliding window 128 on every other layer from the first (layer_types, here
 *   --window-attn-skip-freq 2), learnable softmax sinks, the experts' activation (alpha 1.702,
 *   swiglu_limit 7, up + 1), YaRN factor 32 over 4096 positions unrounded (truncate false),
 *   rope_theta 150000, rms_norm_eps 1e-5, router_aux_loss_coef 0.9, untied), with the release's
 *   biases on q, k, v, o, the router and the experts (--add-bias-linear --router-bias; Megatron-LM's
 *   GPT-OSS example trains without them: add --disable-bias-linear to its names, or drop them
 *   from a config file). Beside the release, every gated MLP has the experts' activation (the
 *   release has no others).
 * - RoPE base and RMSNorm epsilon: the public configs' rope_theta and rms_norm_eps (Mixtral
 *   1e6 and 1e-5, Qwen2 1e6 and 1e-6, Llama 3 500000 and 1e-5, DeepSeek-V3 10000 and 1e-6), so
 *   a preset's model computes what the real one does and exports with them (`pleat export`).
 *   Qwen2-57B-A14B has biases on its q, k and v (qkv_bias), so its preset sets `qkvBias`.
 * - Embeddings: every one of these models has separate input and output embeddings (their
 *   public configs' tie_word_embeddings is false), so every preset sets `untieEmbeddings`; the
 *   default small model is tied (GPT-style, Params).
 *
 * Presets fill only the model shape and the router options their model uses; the rest is the
 * run's (RunConfig layers them: defaults < preset < config file < flags).
 */
import * as MoeSettings from "../moe/MoeSettings.js"
import * as GatedActivation from "../tensor/ops/GatedActivation.js"
import type * as ModelConfig from "./ModelConfig.js"
import * as PresetScale from "./PresetScale.js"

/**
 * A named model shape, and the router options that differ from MoeSettings.defaults.
 * @category models
 */
export interface Preset {
  readonly model: ModelConfig.ModelConfig
  readonly moe: Partial<MoeSettings.MoeSettings>
}

const paperSeq = 4096

/** A model as GPT-OSS's public configs give it: `layers` and `experts` differ between the two (ModelPresets' notes). */
function gptOss(size: { readonly layers: number; readonly experts: number }): ModelConfig.ModelConfig {
  return {
    vocab: 201088,
    hidden: 2880,
    layers: size.layers,
    heads: 64,
    kvHeads: 8,
    headDim: 64,
    ffn: 2880,
    experts: size.experts,
    topk: 4,
    moeFfn: 2880,
    moeEvery: 1,
    seq: paperSeq,
    untieEmbeddings: true,
    ropeTheta: 150000,
    normEps: 1e-5,
    ropeScaling: { factor: 32, originalMaxPositions: 4096, betaFast: 32, betaSlow: 1, mscale: 0, mscaleAllDim: 0, truncate: false },
    slidingWindow: 128,
    windowAttnSkipFreq: 2,
    softmaxType: "learnable",
    glu: { alpha: GatedActivation.quickGeluAlpha, offset: 1, limit: 7 },
    qkvBias: true,
    linearBias: true,
    routerBias: true,
  }
}

/** GPT-OSS's router: top-k of the logits then a softmax over them (MoeSettings' default), aux-loss coefficient 0.9. */
const gptOssRouter: Partial<MoeSettings.MoeSettings> = { auxLosses: [{ type: "aux", coeff: 0.9 }] }

/** DeepSeek-V3's MoE and sizes on grouped-query attention (the deepseek-v3-style preset). */
const deepseekV3Style = {
  model: {
    vocab: 129280,
    hidden: 7168,
    layers: 61,
    heads: 128,
    kvHeads: 128,
    ffn: 18432,
    experts: 256,
    topk: 8,
    moeFfn: 2048,
    moeEvery: 1,
    denseFirst: 3,
    seq: paperSeq,
    untieEmbeddings: true,
    sharedExpertFfn: 2048,
    ropeTheta: 10000,
    normEps: 1e-6,
  },
  moe: { scoreFunction: "sigmoid", expertBias: true, numGroups: 8, groupTopk: 4, scalingFactor: 2.5, auxLosses: [{ type: "seq_aux", coeff: 0.0001 }] },
} as const satisfies Preset

/**
 * GLM-4.5-Air (transformers' glm4_moe): DeepSeek-V3's sigmoid router with expert biases and a
 * sequence aux loss over 128 experts top-8 with one shared expert and one leading dense layer,
 * on grouped-query attention (96 heads of 128 over 8 KV heads) with q/k/v biases and RoPE on half
 * of each head; 106.85B parameters (the card's 106B; its multi-token prediction layer, which the
 * release adds, left out as the DeepSeek-V3 presets leave theirs).
 */
const glm45Air = {
  model: {
    vocab: 151552,
    hidden: 4096,
    layers: 46,
    heads: 96,
    kvHeads: 8,
    headDim: 128,
    qkvBias: true,
    rotaryPercent: 0.5,
    ffn: 10944,
    experts: 128,
    topk: 8,
    moeFfn: 1408,
    moeEvery: 1,
    denseFirst: 1,
    sharedExpertFfn: 1408,
    seq: paperSeq,
    untieEmbeddings: true,
    ropeTheta: 1e6,
    normEps: 1e-5,
  },
  moe: { scoreFunction: "sigmoid", expertBias: true, auxLosses: [{ type: "seq_aux", coeff: 0.0001 }] },
} as const satisfies Preset

/**
 * DeepSeek-V2-Lite (transformers' deepseek_v2): multi-latent attention without a query latent (16
 * heads, kv_lora_rank 512, qk_nope 128, qk_rope 64, v 128), 64 experts top-6 of width 1408 with
 * two shared ones and one leading dense layer (FFN 10944), routed by a softmax over every expert
 * whose top-k is weighted as it is (norm_topk_prob false: --pre-softmax) with the sequence-wise
 * balance loss (aux_loss_alpha 0.001, seq_aux); 15.71B parameters (the card's 15.7B). Its YaRN
 * context extension (factor 40) left out as the DeepSeek-V3 preset leaves its own.
 */
const deepseekV2Lite = {
  model: {
    vocab: 102400,
    hidden: 2048,
    layers: 27,
    heads: 16,
    kvHeads: 16,
    mla: { qLoraRank: 0, kvLoraRank: 512, qkHeadDim: 128, qkPosEmbHeadDim: 64, vHeadDim: 128 },
    ffn: 10944,
    experts: 64,
    topk: 6,
    moeFfn: 1408,
    moeEvery: 1,
    denseFirst: 1,
    sharedExpertFfn: 2816,
    seq: paperSeq,
    untieEmbeddings: true,
    ropeTheta: 10000,
    normEps: 1e-6,
  },
  moe: { preSoftmax: true, auxLosses: [{ type: "seq_aux", coeff: 0.001 }] },
} as const satisfies Preset

/**
 * OLMoE-1B-7B (transformers' olmoe, AllenAI's fully open MoE): 16 layers, every one MoE, of 64
 * experts top-8 of width 1024 without shared experts, a softmax router whose top-k is weighted as
 * it is (norm_topk_prob false: --pre-softmax) with aux loss 0.01 and z-loss 0.001, q and k norms
 * over every head at once (--qk-norm --qk-norm-over-heads); 6.92B parameters (the card's 6.9B).
 */
const olmoe1b7b = {
  model: {
    vocab: 50304,
    hidden: 2048,
    layers: 16,
    heads: 16,
    kvHeads: 16,
    qkNorm: true,
    qkNormOverHeads: true,
    ffn: 1024,
    experts: 64,
    topk: 8,
    moeFfn: 1024,
    moeEvery: 1,
    seq: paperSeq,
    untieEmbeddings: true,
    ropeTheta: 10000,
    normEps: 1e-5,
  },
  moe: { preSoftmax: true, auxLosses: [{ type: "aux", coeff: 0.01 }], zLossCoeff: 0.001 },
} as const satisfies Preset

const mixtral8x22b: ModelConfig.ModelConfig = {
  vocab: 32000,
  hidden: 6144,
  layers: 56,
  heads: 48,
  kvHeads: 8,
  ffn: 16384,
  experts: 8,
  topk: 2,
  moeFfn: 16384,
  moeEvery: 1,
  seq: paperSeq,
  untieEmbeddings: true,
  ropeTheta: 1e6,
  normEps: 1e-5,
}

/** A Qwen3-MoE: 128 experts top-8, 4 KV heads of width 128 (not hidden / heads), q/k norms, no shared expert. */
const qwen3 = (sizes: Pick<ModelConfig.ModelConfig, "hidden" | "layers" | "heads" | "ffn" | "moeFfn">): ModelConfig.ModelConfig => ({
  vocab: 151936,
  hidden: sizes.hidden,
  layers: sizes.layers,
  heads: sizes.heads,
  kvHeads: 4,
  headDim: 128,
  qkNorm: true,
  ffn: sizes.ffn,
  experts: 128,
  topk: 8,
  moeFfn: sizes.moeFfn,
  moeEvery: 1,
  seq: paperSeq,
  untieEmbeddings: true,
  ropeTheta: 1e6,
  normEps: 1e-6,
})

/** Qwen3-MoE's router: softmax, the top-k renormalized (norm_topk_prob true), aux-loss coefficient 0.001. */
const qwen3Router: Partial<MoeSettings.MoeSettings> = { auxLosses: [{ type: "aux", coeff: 0.001 }] }

/**
 * The presets by name.
 * @category constructors
 */
export const presets = {
  "mixtral-8x7b": {
    model: {
      vocab: 32000,
      hidden: 4096,
      layers: 32,
      heads: 32,
      kvHeads: 8,
      ffn: 14336,
      experts: 8,
      topk: 2,
      moeFfn: 14336,
      moeEvery: 1,
      seq: paperSeq,
      untieEmbeddings: true,
      ropeTheta: 1e6,
      normEps: 1e-5,
    },
    moe: {},
  },
  "mixtral-8x22b": { model: mixtral8x22b, moe: {} },
  // once a job: a preset
  "mixtral-8x22b-g8t8": { model: { ...mixtral8x22b, experts: 64, topk: 8, moeFfn: 2048 }, moe: {} },
  "qwen2-57b-a14b": {
    model: {
      vocab: 151936,
      hidden: 3584,
      layers: 28,
      heads: 28,
      kvHeads: 4,
      ffn: 18944,
      experts: 64,
      topk: 8,
      moeFfn: 2560,
      moeEvery: 1,
      seq: paperSeq,
      untieEmbeddings: true,
      sharedExpertFfn: 20480,
      sharedExpertGate: true,
      qkvBias: true,
      ropeTheta: 1e6,
      normEps: 1e-6,
    },
    moe: { preSoftmax: true, auxLosses: [{ type: "aux", coeff: 0.001 }] },
  },
  "qwen3-30b-a3b": { model: qwen3({ hidden: 2048, layers: 48, heads: 32, ffn: 6144, moeFfn: 768 }), moe: qwen3Router },
  "qwen3-235b-a22b": { model: qwen3({ hidden: 4096, layers: 94, heads: 64, ffn: 12288, moeFfn: 1536 }), moe: qwen3Router },
  "llama3-8x70b": {
    model: {
      vocab: 128256,
      hidden: 8192,
      layers: 80,
      heads: 64,
      kvHeads: 8,
      ffn: 28672,
      experts: 8,
      topk: 2,
      moeFfn: 28672,
      moeEvery: 1,
      seq: paperSeq,
      untieEmbeddings: true,
      ropeTheta: 500000,
      normEps: 1e-5,
    },
    moe: {},
  },
  "gpt-oss-20b": { model: gptOss({ layers: 24, experts: 32 }), moe: gptOssRouter },
  "gpt-oss-120b": { model: gptOss({ layers: 36, experts: 128 }), moe: gptOssRouter },
  "glm-4.5-air": glm45Air,
  "deepseek-v2-lite": deepseekV2Lite,
  "olmoe-1b-7b": olmoe1b7b,
  "deepseek-v3-style": deepseekV3Style,
  "deepseek-v3": {
    // DeepSeek-V3's multi-latent attention on the -style preset's MoE and sizes.
    model: { mla: { qLoraRank: 1536, kvLoraRank: 512, qkHeadDim: 128, qkPosEmbHeadDim: 64, vHeadDim: 128 }, ...deepseekV3Style.model },
    moe: deepseekV3Style.moe,
  },
} as const satisfies Record<string, Preset>

/**
 * A preset's name.
 * @category models
 */
export type Name = keyof typeof presets

/**
 * The preset names, in the order of the help text.
 * @category configuration
 */
export const names = Object.keys(presets) as [Name, ...Array<Name>]

/**
 * The model of a preset scaled by `factor`, with its router options over MoeSettings.defaults.
 * @category constructors
 */
export const model = (name: Name, factor: number): ModelConfig.ModelConfig => {
  const preset: Preset = presets[name]
  // once a job: a preset's settings
  return { ...PresetScale.scale(preset.model, factor), moe: { ...MoeSettings.defaults, ...preset.moe } }
}
