/**
 * ModelShapeSettings: the settings of a run that shape the model (sizes, attention, layer
 * pattern, shared experts), a part of RunConfig's one table of settings.
 */
import * as ModelContext from "../model/ModelContext.js"
import * as ModelConfig from "../train/ModelConfig.js"
import { choice, count, flag, optionalCount, optionalReal, optionalText, whole } from "./SettingKinds.js"

const model = ModelConfig.small

/**
 * The model's sizes and attention, as RunConfig's settings.
 * @category configuration
 */
export const modelShapeSettings = {
  layers: count("transformer layers", model.layers),
  hidden: count("hidden size", model.hidden),
  heads: count("attention heads", model.heads),
  "kv-heads": count("key/value heads", model.kvHeads),
  vocab: count("vocabulary", model.vocab),
  experts: count("experts", model.experts),
  topk: count("experts per token", model.topk),
  ffn: count("dense MLP width (the layers that are not MoE)", model.ffn),
  "moe-ffn": count("expert MLP width", model.moeFfn),
  "moe-every": count("every N-th layer is MoE, from layer --dense-first (1: every layer)", model.moeEvery),
  "dense-first": whole("the first N layers are dense MLPs (DeepSeek-V3's first_k_dense_replace): layer i is MoE when i >= N and (i - N) % --moe-every is 0", 0),
  "moe-layer-freq": optionalText(
    `Megatron's --moe-layer-freq: N (every N-th layer MoE, from layer 0) or a list of 1 (MoE) and 0 (dense) a layer, such as "([0]*3+[1]*58)"; it must be K dense layers then every N-th MoE (it sets --dense-first K --moe-every N; give it without them)`,
    "SPEC",
  ),
  seq: count("sequence length", model.seq),
  "untie-embeddings": flag("separate input and output embeddings (Mixtral-style); tied by default (GPT-style: the output layer is the embedding table)"),
  "qkv-bias": flag("biases on the attention's q, k and v, initialized to zero (Qwen-style)"),
  "add-bias-linear": flag(
    "biases on every linear layer of the blocks, from zero (Megatron's add_bias_linear; GPT-OSS's): q, k, v (as --qkv-bias), the attention's output, and both projections of the dense MLPs, shared experts and routed experts",
  ),
  "router-bias": flag("a learned bias on the router's logits, from zero (GPT-OSS's router; not --expert-bias, which only steers the selection)"),
  "head-dim": optionalCount("each attention head's width (default --hidden / --heads; Qwen3's 128 with hidden 2048 and 32 heads)"),
  "qk-norm": flag("an RMSNorm over each head's q and k before RoPE, one weight per head width (Qwen3-style)"),
  "apply-layernorm-1p": flag("every norm's weight zero-centered: stored from 0, the norm scaling by 1 + w (Megatron's --apply-layernorm-1p, for numerical stability; Nemotron's)"),
  "qk-norm-over-heads": flag("--qk-norm over each token's whole q and whole k, every head at once, one weight per column (OLMoE's and OLMo 2's), instead of over each head"),
  "qk-l2-norm": flag("each head's q and k scaled to unit root mean square before RoPE, x / sqrt(mean(x^2) + eps), no weight (Llama 4's; Megatron's --qk-l2-norm)"),
  "multi-latent-attention": flag(
    "multi-latent attention (DeepSeek-V2/V3) in place of grouped-query attention: queries and keys/values from low-rank latents, a rotary key part shared by the heads; --kv-heads is --heads",
  ),
  "q-lora-rank": optionalCount("multi-latent attention: the query latent's width (none by default: queries straight from the hidden rows; DeepSeek-V3's 1536)"),
  "kv-lora-rank": optionalCount("multi-latent attention: the key/value latent's width (default 4 x the head width; DeepSeek-V3's 512)"),
  "qk-head-dim": optionalCount("multi-latent attention: each head's query/key width without RoPE (default the head width; DeepSeek-V3's 128)"),
  "qk-pos-emb-head-dim": optionalCount("multi-latent attention: the RoPE part's width, even (default half the head width, rounded up to even; DeepSeek-V3's 64)"),
  "v-head-dim": optionalCount("multi-latent attention: each head's value width (default the head width; DeepSeek-V3's 128)"),
  "sliding-window": optionalCount(
    "sliding-window attention in every layer: a token attends to the last N tokens, itself included (transformers' sliding_window; Megatron's --window-size N-1,0); the whole causal context by default",
  ),
  "no-rope-freq": optionalText(
    "every N-th layer (layers N, 2N, ... counting from 1) without RoPE, its q and k unturned (Megatron's --no-rope-freq; Llama 4's NoPE layers, N 4), or Megatron's list of 1 (no RoPE) and 0 (RoPE) a layer of that form, such as \"([0]*3+[1])*2\"; N divides the layers; RoPE in every layer by default",
    "N",
  ),
  "window-attn-skip-freq": optionalText(
    "with --sliding-window: every N-th layer (layers N, 2N, ... counting from 1) attends to its whole causal context instead (Megatron's --window-attn-skip-freq; GPT-OSS's 2, Gemma 3's 6), or Megatron's list of 1 (windowed) and 0 (whole context) a layer of that form, such as \"([1]*5+[0])*2\"; every layer has the window by default",
    "N|LIST",
  ),
  "softmax-type": choice(
    ModelContext.softmaxTypes,
    "vanilla",
    "the attention softmax (Megatron's --softmax-type): off-by-one adds a logit fixed at 0 to every row, which takes probability and gives no value (a softmax sink); learnable makes it a parameter per head (GPT-OSS's sinks, starting at 0)",
    "TYPE",
  ),
  "rope-theta": optionalReal("RoPE's frequency base (default 10000; a --model preset sets its model's)"),
  "rotary-percent": optionalReal(
    "the share of each head's q and k RoPE rotates: its first floor(head width x F) dimensions, their frequencies over that width, the rest unrotated (Megatron's --rotary-percent, transformers' partial_rotary_factor; GLM-4.5's 0.5; default 1)",
  ),
  "mtp-num-layers": optionalCount(
    "multi-token prediction layers after the last (DeepSeek-V3's 1): each predicts one token further ahead from the previous one's rows and the next token's embedding, on the last stage (none by default)",
  ),
  "mtp-loss-scaling-factor": optionalReal("the MTP losses' weight in the objective, divided over the depths (default 0.1, Megatron's)"),
  "rope-type": choice(
    ["rope", "yarn", "llama3", "linear"],
    "rope",
    "RoPE's frequencies: plain, YaRN's context extension (DeepSeek-V3, Qwen3 long context; Megatron's --rope-type), Llama 3's scaling (Llama 3.1 to 4; Megatron's --use-rope-scaling), or linear position interpolation (every position divided by --rotary-scaling-factor; Megatron's --rotary-seq-len-interpolation-factor)",
    "TYPE",
  ),
  "rotary-scaling-factor": optionalReal("yarn, llama3, linear: the context extension factor s (DeepSeek-V3's 40; needed with --rope-type yarn and linear; llama3's default 8)"),
  "original-max-position-embeddings": optionalCount(
    "yarn, llama3: the pretraining length the frequencies were trained at (default 4096 for yarn, as Megatron's; 8192 for llama3, Llama 3.1's)",
  ),
  "low-freq-factor": optionalReal("llama3: pairs whose wavelength is above the pretraining length over this are divided by the factor (default 1)"),
  "high-freq-factor": optionalReal("llama3: pairs whose wavelength is below the pretraining length over this keep their frequency (default 4)"),
  "beta-fast": optionalReal("yarn: pairs turning more than this many times over the pretraining length keep their frequency (default 32)"),
  "beta-slow": optionalReal("yarn: pairs turning fewer than this many times are interpolated by the factor (default 1)"),
  mscale: optionalReal("yarn: the attention factor's numerator coefficient (default 1)"),
  "no-yarn-correction-range-round-to-int": flag(
    "yarn: the frequency ramp's ends as computed, not rounded out to whole pairs (Megatron's flag; transformers' truncate false, GPT-OSS's)",
  ),
  "mscale-all-dim": optionalReal("yarn: the attention factor's denominator coefficient, and (multi-latent attention) the softmax scale's (default 0: none)"),
  "norm-eps": optionalReal("every RMSNorm's epsilon (default 1e-6; a --model preset sets its model's)"),
  "shared-expert-ffn": optionalCount("shared experts: a dense MLP of this width every token of an MoE layer goes through (none by default)"),
  "moe-latent-size": optionalCount(
    "LatentMoE (Nemotron 3's; Megatron's --moe-latent-size): each MoE layer projects its tokens to this width after the router, and its routed experts take and give rows of it (none by default: hidden)",
  ),
  "shared-expert-gate": flag("scale the shared experts' output by a learned sigmoid gate per token (needs --shared-expert-ffn)"),
  "quick-geglu": flag(
    "every gated MLP (dense, shared and routed experts) as quick-GELU GLU: gate * sigmoid(1.702 gate) * up in place of SwiGLU's silu(gate) * up (Megatron's --quick-geglu; GPT-OSS's)",
  ),
  "glu-linear-offset": optionalReal("added to the gated MLPs' linear half: act(gate) * (up + F) (Megatron's --glu-linear-offset; GPT-OSS's 1; default 0)"),
  "activation-func-clamp-value": optionalReal(
    "clamps the gated MLPs' gate half to at most F and their linear half to [-F, F] before the activation (Megatron's --activation-func-clamp-value; GPT-OSS's 7); above 0",
  ),
} as const
