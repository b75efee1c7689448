/**
 * LatentFlags: the attention's settings that come as a group (and the sliding window with them): multi-latent attention's (`--multi-latent-attention` and the widths,
 * Megatron's flag names) as the model's LatentSizes, with their defaults from the head width
 * (--head-dim, else hidden / heads, whole): qk-head-dim and v-head-dim the head width,
 * qk-pos-emb-head-dim half of it rounded up to even, kv-lora-rank 4 x it (DeepSeek-V3's ratios:
 * 128, 128, 64, 512), no query latent unless --q-lora-rank is given; and YaRN's
 * (`--rope-type yarn` and its settings, Megatron's names) as RopeScaling.Yarn, the original
 * length 4096 and the betas, mscales at their defaults where not given, or Llama 3's
 * (`--rope-type llama3`) at Llama 3.1's where not given.
 */
import type * as LatentAttention from "../attention/LatentAttention.js"
import * as ConfigError from "../errors/ConfigError.js"
import * as RopeScaling from "../tensor/ops/RopeScaling.js"
import * as LayerPattern from "./LayerPattern.js"
import type * as RunConfig from "./RunConfig.js"

/** The width settings that size multi-latent attention. */
const widths = ["q-lora-rank", "kv-lora-rank", "qk-head-dim", "qk-pos-emb-head-dim", "v-head-dim"] as const

/**
 * The model's multi-latent attention widths, or undefined without --multi-latent-attention;
 * throws a ConfigError for a width given without it.
 */
const latentOf = (c: RunConfig.RunConfig): LatentAttention.LatentSizes | undefined => {
  if (!c["multi-latent-attention"]) {
    const stray = widths.find((k) => c[k] !== undefined)
    if (stray !== undefined)
      throw ConfigError.make(stray, c[stray], "sizes multi-latent attention, which this model does not use", `add --multi-latent-attention, or drop --${stray}`)
    return undefined
  }
  const head = Math.max(2, c["head-dim"] ?? Math.floor(c.hidden / c.heads))
  return {
    qLoraRank: c["q-lora-rank"] ?? 0,
    kvLoraRank: c["kv-lora-rank"] ?? 4 * head,
    qkHeadDim: c["qk-head-dim"] ?? head,
    qkPosEmbHeadDim: c["qk-pos-emb-head-dim"] ?? 2 * Math.ceil(head / 4),
    vHeadDim: c["v-head-dim"] ?? head,
  }
}

/**
 * The model's fields these settings give, where they are set: multi-latent attention's widths
 * (`mla`), RoPE scaling (`ropeScaling`: YaRN or Llama 3), the layers without RoPE (`noRopeFreq`) and the sliding window (`slidingWindow`, `windowAttnSkipFreq`);
 * throws as latentOf and scalingOf.
 * @category constructors
 */
export const attentionFieldsOf = (c: RunConfig.RunConfig) => {
  const mla = latentOf(c)
  const ropeScaling = scalingOf(c)
  const window = c["sliding-window"]
  const skipText = c["window-attn-skip-freq"]
  const skip = skipText === undefined ? undefined : LayerPattern.windowSkipOf("window-attn-skip-freq", skipText, c.layers)
  const noRopeText = c["no-rope-freq"]
  const noRope = noRopeText === undefined ? undefined : LayerPattern.noRopeOf("no-rope-freq", noRopeText, c.layers)
  return {
    ...(mla === undefined ? {} : { mla }),
    ...(ropeScaling === undefined ? {} : { ropeScaling }),
    ...(window === undefined ? {} : { slidingWindow: window }),
    ...(skip === undefined ? {} : { windowAttnSkipFreq: skip }),
    ...(noRope === undefined ? {} : { noRopeFreq: noRope }),
    ...(c["softmax-type"] === "vanilla" ? {} : { softmaxType: c["softmax-type"] }),
  }
}

/**
 * The key/value heads of the model: --heads under multi-latent attention where --kv-heads was
 * left at its default (every head has its own keys there), else --kv-heads.
 * @category constructors
 */
export const kvHeadsOf = (c: RunConfig.RunConfig, sources: RunConfig.Decoded["sources"]): number =>
  c["multi-latent-attention"] && sources["kv-heads"]?._tag === "default" ? c.heads : c["kv-heads"]

/** YaRN's settings. */
const yarnSettings = [
  "rotary-scaling-factor",
  "original-max-position-embeddings",
  "beta-fast",
  "beta-slow",
  "mscale",
  "mscale-all-dim",
  "no-yarn-correction-range-round-to-int",
] as const

/** Llama 3's settings of their own (the factor and the length are YaRN's too). */
const llama3Settings = ["low-freq-factor", "high-freq-factor"] as const

/**
 * The model's RoPE scaling (YaRN's or Llama 3's), or undefined with --rope-type rope; throws a
 * ConfigError for a setting of a scaling the model does not use, or yarn without its factor.
 */
const scalingOf = (c: RunConfig.RunConfig): RopeScaling.Scaling | undefined => {
  const type = c["rope-type"]
  const foreign =
    type === "rope"
      ? [...yarnSettings, ...llama3Settings]
      : type === "yarn"
        ? llama3Settings
        : type === "llama3"
          ? yarnSettings.slice(2)
          : [...yarnSettings.slice(1), ...llama3Settings]
  const stray = foreign.find((k) => c[k] !== undefined && c[k] !== false)
  if (stray !== undefined) {
    const owner = (llama3Settings as ReadonlyArray<string>).includes(stray) ? "llama3" : "yarn"
    throw ConfigError.make(
      stray,
      c[stray],
      `sets ${owner === "yarn" ? "YaRN" : "Llama 3's scaling"}, which this model's RoPE does not use`,
      `add --rope-type ${owner}, or drop --${stray}`,
    )
  }
  if (type === "rope") return undefined
  if (type === "linear") {
    const f = c["rotary-scaling-factor"]
    if (f === undefined) throw ConfigError.make("rope-type", "linear", "has no interpolation factor", "add --rotary-scaling-factor F (positions are divided by F)")
    return { type: "linear", factor: f }
  }
  if (type === "llama3")
    return {
      type: "llama3",
      factor: c["rotary-scaling-factor"] ?? RopeScaling.llama3Defaults.factor,
      lowFreqFactor: c["low-freq-factor"] ?? RopeScaling.llama3Defaults.lowFreqFactor,
      highFreqFactor: c["high-freq-factor"] ?? RopeScaling.llama3Defaults.highFreqFactor,
      originalMaxPositions: c["original-max-position-embeddings"] ?? RopeScaling.llama3Defaults.originalMaxPositions,
    }
  const factor = c["rotary-scaling-factor"]
  if (factor === undefined) throw ConfigError.make("rope-type", "yarn", "has no context extension factor", "add --rotary-scaling-factor F (DeepSeek-V3's 40)")
  return {
    factor,
    originalMaxPositions: c["original-max-position-embeddings"] ?? 4096,
    betaFast: c["beta-fast"] ?? RopeScaling.yarnDefaults.betaFast,
    betaSlow: c["beta-slow"] ?? RopeScaling.yarnDefaults.betaSlow,
    mscale: c.mscale ?? RopeScaling.yarnDefaults.mscale,
    mscaleAllDim: c["mscale-all-dim"] ?? RopeScaling.yarnDefaults.mscaleAllDim,
    ...(c["no-yarn-correction-range-round-to-int"] ? { truncate: false } : {}),
  }
}
