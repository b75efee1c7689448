/**
 * HfGptOss: what a model needs to be written as transformers' GPT-OSS (GptOssForCausalLM), and
 * the keys of its config.json. GPT-OSS's layers are all MoE (softmax over the top-k logits, no
 * shared experts) with grouped-query attention whose softmax has a sink per head (pleat's
 * --softmax-type learnable; off-by-one is that sink at 0, written as zeros), a sliding window on
 * the layers layer_types names (pleat's window and --window-attn-skip-freq, ModelContext.windowOf),
 * and experts whose activation is fixed in transformers: quick-GELU's slope 1.702, the linear
 * half's offset 1 and the clamp 7 (pleat's --quick-geglu --glu-linear-offset 1
 * --activation-func-clamp-value 7; transformers ignores config.json's swiglu_limit). Every linear
 * layer of GPT-OSS and its router has a bias: pleat's with --add-bias-linear (q, k, v, o and the
 * experts') and --router-bias, zeros for those a model has not (q, k, v with --qkv-bias alone): the
 * directory computes exactly pleat's model. The experts' gate and up are one tensor gate_up_proj
 * [E, H, 2F], gate in the even columns and up in the odd, their biases [E, 2F] alike (HfLayout).
 * Read back (pleat import, `fieldsOf`), a GPT-OSS directory has learnable sinks and every bias.
 */
import * as ModelContext from "../model/ModelContext.js"
import * as GatedActivation from "../tensor/ops/GatedActivation.js"
import type * as Checkpoint from "./Checkpoint.js"
import type * as ModelConfig from "./ModelConfig.js"

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
 * GPT-OSS's config.json: its keys with `common`, the keys every format has.
 * @category constructors
 */
export const config = (m: Model, common: Readonly<Record<string, unknown>>): Record<string, unknown> => ({
  architectures: ["GptOssForCausalLM"],
  model_type: "gpt_oss",
  ...common,
  intermediate_size: m.moeFfn,
  num_local_experts: m.experts,
  attention_bias: true,
  swiglu_limit: m.glu?.limit,
  // A window on the layers windowOf gives one; the others attend to their whole context. Without
  // a window every layer is full_attention, and transformers still wants a number here: seq.
  sliding_window: m.slidingWindow ?? m.seq,
  layer_types: layerTypesOf(m.layers, m.slidingWindow, m.windowAttnSkipFreq),
})

/** transformers' GPT-OSS layer_types of `layers` layers with the window on every `skip`-th one left out (ModelContext.windowOf). */
const layerTypesOf = (layers: number, window: number | undefined, skip: number | undefined): Array<string> =>
  Array.from({ length: layers }, (_, l) =>
    ModelContext.windowOf({ slidingWindow: window, windowAttnSkipFreq: skip, layers }, l) === undefined ? "full_attention" : "sliding_attention",
  )

/**
 * A GPT-OSS config's attention and experts as pleat's settings: learnable sinks, the window and
 * the layers without it (layer_types, which must be pleat's pattern: every N-th layer counting
 * from 1 full, or none), the experts' activation; throws `refuse(reason, fix)` for what pleat's
 * model cannot compute as transformers does.
 * @category constructors
 */
export const fieldsOf = (
  c: {
    readonly num_hidden_layers: number
    readonly sliding_window?: number | null | undefined
    readonly layer_types?: ReadonlyArray<string> | undefined
    readonly swiglu_limit?: number | undefined
    readonly attention_bias?: boolean | undefined
  },
  refuse: (reason: string, fix: string) => Error,
): Pick<ModelConfig.ModelConfig, "slidingWindow" | "windowAttnSkipFreq" | "softmaxType" | "glu" | "qkvBias" | "linearBias" | "routerBias"> => {
  const layers = c.num_hidden_layers
  const types = c.layer_types ?? layerTypesOf(layers, 1, 2)
  if (c.swiglu_limit !== undefined && c.swiglu_limit !== 7)
    throw refuse(`has swiglu_limit ${c.swiglu_limit}, where transformers' GPT-OSS clamps at 7 whatever it says`, "import a GPT-OSS model with swiglu_limit 7")
  if (c.attention_bias === false)
    throw refuse(
      "has attention_bias false, where pleat's GPT-OSS has the biases of its experts and of q, k, v and o together (--add-bias-linear)",
      "import a GPT-OSS model with attention_bias true",
    )
  const windowed = types.some((t) => t === "sliding_attention")
  const window = windowed ? c.sliding_window : undefined
  if (windowed && (window === undefined || window === null || !(Number.isInteger(window) && window >= 1)))
    throw refuse(`has sliding_attention layers with sliding_window ${window}`, "use a whole number of tokens, 1 or more")
  const first = types.indexOf("full_attention")
  const skip = windowed && first >= 0 ? first + 1 : undefined
  const slidingWindow = window === undefined || window === null ? undefined : window
  if (types.length !== layers || layerTypesOf(layers, slidingWindow, skip).some((t, l) => t !== types[l]))
    throw refuse(
      `has layer_types ${JSON.stringify(types)}, where pleat's layers without the window are every N-th counting from 1 (--window-attn-skip-freq N)`,
      "import a model whose full_attention layers are N, 2N, ... (counting from 1), or all or none of them",
    )
  const glu = { alpha: GatedActivation.quickGeluAlpha, offset: 1, limit: 7 }
  return {
    softmaxType: "learnable",
    glu,
    qkvBias: true,
    linearBias: true,
    routerBias: true,
    ...(slidingWindow === undefined ? {} : { slidingWindow }),
    ...(skip === undefined ? {} : { windowAttnSkipFreq: skip }),
  }
}
