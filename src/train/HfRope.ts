/**
 * HfRope: RoPE's settings in a Hugging Face config.json, both ways: plain (rope_type default),
 * YaRN (rope_type yarn: factor, original_max_position_embeddings, beta_fast, beta_slow,
 * mscale, mscale_all_dim) or Llama 3's (rope_type llama3: factor, low_freq_factor,
 * high_freq_factor, original_max_position_embeddings), as transformers 5 saves them (`rope_parameters`, the base inside)
 * and as the Hub's configs and transformers 4 do (`rope_theta` and `rope_scaling`, its type
 * under `type` or `rope_type`).
 *
 * transformers' YaRN is pleat's (RopeScaling, checked against `_compute_yarn_parameters`):
 * frequencies and attention factor, and DeepSeek-V3's softmax factor from mscale_all_dim.
 * Reading: beta_fast and beta_slow absent (or 0, as transformers' `or` reads them) are 32 and 1;
 * mscale or mscale_all_dim absent are 0 (transformers' attention factor then ignores both, as
 * pleat's does for a 0). Refused, naming the key: another rope_type, an explicit
 * attention_factor, truncate false, partial_rotary_factor other than 1, a factor below 1 or
 * missing, no original_max_position_embeddings.
 */
import * as Schema from "effect/Schema"
import type * as ConfigError from "../errors/ConfigError.js"
import * as RopeScaling from "../tensor/ops/RopeScaling.js"

/**
 * The RoPE keys a config may hold, in `rope_parameters` or `rope_scaling`.
 * @category models
 */
export const RopeKeys = Schema.Struct({
  rope_type: Schema.optional(Schema.NullOr(Schema.String)),
  type: Schema.optional(Schema.NullOr(Schema.String)),
  rope_theta: Schema.optional(Schema.NullOr(Schema.Number)),
  factor: Schema.optional(Schema.NullOr(Schema.Number)),
  original_max_position_embeddings: Schema.optional(Schema.NullOr(Schema.Number)),
  beta_fast: Schema.optional(Schema.NullOr(Schema.Number)),
  beta_slow: Schema.optional(Schema.NullOr(Schema.Number)),
  mscale: Schema.optional(Schema.NullOr(Schema.Number)),
  mscale_all_dim: Schema.optional(Schema.NullOr(Schema.Number)),
  attention_factor: Schema.optional(Schema.NullOr(Schema.Number)),
  truncate: Schema.optional(Schema.NullOr(Schema.Boolean)),
  partial_rotary_factor: Schema.optional(Schema.NullOr(Schema.Number)),
  low_freq_factor: Schema.optional(Schema.NullOr(Schema.Number)),
  high_freq_factor: Schema.optional(Schema.NullOr(Schema.Number)),
})

type Keys = typeof RopeKeys.Type

/** A config's RoPE keys: transformers 5's `rope_parameters` and the legacy `rope_scaling`. */
interface Held {
  readonly rope_parameters?: Keys | null | undefined
  readonly rope_scaling?: Keys | null | undefined
}

const typeOf = (k: Keys | null | undefined): string => k?.rope_type ?? k?.type ?? "default"

/**
 * The RoPE scaling of a config (YaRN or Llama 3), or undefined for plain RoPE; throws `refuse(reason, fix)` for what
 * pleat's RoPE cannot be.
 * @category constructors
 */
export const scalingOf = (c: Held, refuse: (reason: string, fix: string) => ConfigError.ConfigError): RopeScaling.Scaling | undefined => {
  const keys = typeOf(c.rope_parameters) !== "default" ? c.rope_parameters : c.rope_scaling
  const type = typeOf(keys)
  if (keys === undefined || keys === null || type === "default") return undefined
  const fix = "import a model with plain RoPE, linear, YaRN or Llama 3's scaling as transformers writes it"
  if (type === "llama3") return llama3Of(keys, refuse, fix)
  if (type === "linear") {
    const f = keys.factor
    if (f === undefined || f === null || !(f > 0) || !Number.isFinite(f)) throw refuse(`gives linear RoPE scaling a factor of ${f}`, `${fix}: a factor above 0`)
    return { type: "linear", factor: f }
  }
  if (type !== "yarn") throw refuse(`scales RoPE with rope_type ${type}`, `${fix} (rope_type default, linear, yarn or llama3)`)
  if (keys.attention_factor !== undefined && keys.attention_factor !== null)
    throw refuse(`gives YaRN an attention_factor of its own (${keys.attention_factor})`, `${fix}: the factor from mscale and mscale_all_dim`)
  if ((keys.partial_rotary_factor ?? 1) !== 1)
    throw refuse(`rotates a part of each head (partial_rotary_factor ${keys.partial_rotary_factor})`, "import a model that rotates whole heads")
  const factor = keys.factor
  if (factor === undefined || factor === null || !(factor >= 1)) throw refuse(`gives YaRN a factor of ${factor}`, `${fix}: a factor of 1 or more`)
  const original = keys.original_max_position_embeddings
  if (original === undefined || original === null || !Number.isSafeInteger(original) || original < 1)
    throw refuse(`gives YaRN no original_max_position_embeddings (${original})`, `${fix}: the pretraining length as original_max_position_embeddings`)
  return {
    factor,
    originalMaxPositions: original,
    betaFast: keys.beta_fast || RopeScaling.yarnDefaults.betaFast,
    betaSlow: keys.beta_slow || RopeScaling.yarnDefaults.betaSlow,
    mscale: keys.mscale ?? 0,
    mscaleAllDim: keys.mscale_all_dim ?? 0,
    ...(keys.truncate === false ? { truncate: false } : {}),
  }
}

/** Llama 3's scaling of a config's keys; throws `refuse` where a key is missing or out of range. */
const llama3Of = (keys: Keys, refuse: (reason: string, fix: string) => ConfigError.ConfigError, fix: string): RopeScaling.Llama3 => {
  const value = (key: "factor" | "low_freq_factor" | "high_freq_factor" | "original_max_position_embeddings"): number => {
    const v = keys[key]
    if (v === undefined || v === null || !(v > 0) || !Number.isFinite(v)) throw refuse(`gives Llama 3's RoPE scaling ${key} ${v}`, `${fix}: a number above 0`)
    return v
  }
  if ((keys.partial_rotary_factor ?? 1) !== 1)
    throw refuse(`rotates a part of each head (partial_rotary_factor ${keys.partial_rotary_factor})`, "import a model that rotates whole heads")
  return {
    type: "llama3",
    factor: value("factor"),
    lowFreqFactor: value("low_freq_factor"),
    highFreqFactor: value("high_freq_factor"),
    originalMaxPositions: value("original_max_position_embeddings"),
  }
}

/**
 * The RoPE keys of a config.json for RoPE of base `theta`, scaled by `scaling` (YaRN's or Llama
 * 3's; both key styles: transformers 5's rope_parameters and the legacy rope_theta with rope_scaling).
 * @category constructors
 */
export const keysOf = (theta: number, scaling: RopeScaling.Scaling | undefined): Record<string, unknown> => {
  if (scaling === undefined) return { rope_theta: theta, rope_parameters: { rope_type: "default", rope_theta: theta }, rope_scaling: null }
  if (RopeScaling.isLlama3(scaling)) {
    const llama3 = {
      factor: scaling.factor,
      low_freq_factor: scaling.lowFreqFactor,
      high_freq_factor: scaling.highFreqFactor,
      original_max_position_embeddings: scaling.originalMaxPositions,
    }
    return { rope_theta: theta, rope_parameters: { rope_type: "llama3", rope_theta: theta, ...llama3 }, rope_scaling: { rope_type: "llama3", ...llama3 } }
  }
  if (RopeScaling.isLinear(scaling)) {
    const linear = { factor: scaling.factor }
    return { rope_theta: theta, rope_parameters: { rope_type: "linear", rope_theta: theta, ...linear }, rope_scaling: { type: "linear", rope_type: "linear", ...linear } }
  }
  const yarn = scaling
  const keys = {
    factor: yarn.factor,
    original_max_position_embeddings: yarn.originalMaxPositions,
    beta_fast: yarn.betaFast,
    beta_slow: yarn.betaSlow,
    // 0 is "not given" in pleat as absent is in transformers.
    ...(yarn.mscale === 0 ? {} : { mscale: yarn.mscale }),
    ...(yarn.mscaleAllDim === 0 ? {} : { mscale_all_dim: yarn.mscaleAllDim }),
    ...(yarn.truncate === false ? { truncate: false } : {}),
  }
  return { rope_theta: theta, rope_parameters: { rope_type: "yarn", rope_theta: theta, ...keys }, rope_scaling: { type: "yarn", rope_type: "yarn", ...keys } }
}
