/**
 * HfGptOss: what a model needs to be written as transformers' GPT-OSS (GptOssForCausalLM), and
 * the keys of its config.json. GPT-OSS's layers are all MoE (softmax over the top-k logits, no
 * shared experts) with grouped-query attention whose softmax has a sink per head (pleat's
 * --softmax-type learnable; off-by-one is that sink at 0, written as zeros), a sliding window on
 * the layers layer_types names (pleat's window and --window-attn-skip-freq, ModelContext.windowOf),
 * and experts whose activation is fixed in transformers: quick-GELU's slope 1.702, the linear
 * half's offset 1 and the clamp 7 (pleat's --quick-geglu --glu-linear-offset 1
 * --activation-func-clamp-value 7; transformers ignores config.json's swiglu_limit). Every linear layer of GPT-OSS and its router has a bias; a
 * pleat model has none (or q, k, v ones with --qkv-bias), so the others are written as zeros:
 * the directory computes exactly pleat's model. The experts' gate and up are one tensor
 * gate_up_proj [E, H, 2F], gate in the even columns and up in the odd (HfLayout).
 */
import * as ModelContext from "../model/ModelContext.js"
import * as GatedActivation from "../tensor/ops/GatedActivation.js"
import type * as Checkpoint from "./Checkpoint.js"

type Model = Checkpoint.Manifest["model"]

/**
 * Why `m` cannot be written as GPT-OSS (a phrase naming the setting), or undefined. The router
 * options are checked with the other softmax formats' (HfExport).
 * @category guards
 */
export const problem = (m: Model): string | undefined => {
  if (m.qkNorm === true) return "it has q and k norms (--qk-norm), which GPT-OSS has not"
  if (m.sharedExpertFfn !== undefined) return `it has shared experts (--shared-expert-ffn ${m.sharedExpertFfn}), which GPT-OSS has not`
  if (m.moeEvery !== 1 || (m.denseFirst ?? 0) > 0) return "it has dense layers (--moe-every, --dense-first), where GPT-OSS's are all MoE"
  if (m.moe?.preSoftmax === true) return "its probs are not renormalized over the top-k (--pre-softmax), where GPT-OSS's are"
  if (m.softmaxType === undefined || m.softmaxType === "vanilla") return "its attention has no softmax sinks, which every GPT-OSS attention has (--softmax-type learnable)"
  const glu = m.glu
  // transformers fixes the clamp at 7 (its swiglu_limit is written for the servers that read it).
  if (glu === undefined || glu.alpha !== GatedActivation.quickGeluAlpha || glu.offset !== 1 || glu.limit !== 7)
    return "its experts' activation is not GPT-OSS's (--quick-geglu --glu-linear-offset 1 --activation-func-clamp-value 7: transformers fixes the clamp at 7)"
  return undefined
}

/**
 * GPT-OSS's keys of config.json (beside the keys every format has).
 * @category constructors
 */
export const configKeys = (m: Model): Record<string, unknown> => ({
  architectures: ["GptOssForCausalLM"],
  model_type: "gpt_oss",
  intermediate_size: m.moeFfn,
  num_local_experts: m.experts,
  attention_bias: true,
  swiglu_limit: m.glu?.limit,
  // A window on the layers windowOf gives one; the others attend to their whole context. Without
  // a window every layer is full_attention, and transformers still wants a number here: seq.
  sliding_window: m.slidingWindow ?? m.seq,
  layer_types: Array.from({ length: m.layers }, (_, l) => (ModelContext.windowOf(m, l) === undefined ? "full_attention" : "sliding_attention")),
})
